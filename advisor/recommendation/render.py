"""Plain-text and Markdown views of the advisor's objects, for the app and the terminal.

Pure functions of plain dicts (the JSON contracts), so the UI stays wiring only and
these are testable without a browser.
"""
from __future__ import annotations

from typing import Any

from trainer.vocabulary import BASE_MODELS, FACTORS, METHOD_FACTS

from ..profile import SETTING_LABELS, setting_value

SLOT_LABELS = {
    "goal": "Goal",
    "subject_type": "Subject type",
    "class_noun": "Class noun",
    "n_images": "Training images",
    "captions": "Captioned",
    "accuracy": "Accuracy (1-5)",
    "flexibility": "Flexibility (1-5)",
    "preservation": "Preservation (1-5)",
    "vram_gb": "GPU memory (GB)",
    "gpu_name": "GPU",
    "time_budget_min": "GPU time per run (min)",
    "n_runs": "Runs you will iterate",
    "base_model": "Base model",
    "max_output_mb": "Output size cap (MB)",
    "dream_prompts": "Dream prompts",
    "preferred_method": "Method you asked for",
    "settings": "Settings you named",
    "rent_gpu": "Renting a GPU",
    "n_subjects": "Subjects in the set",
}


def method_title(method: Any) -> str:
    """The method's name on the card ("DreamBooth (full UNet)"); an unknown key as it is."""
    return METHOD_FACTS[method].title if method in METHOD_FACTS else str(method)


def base_title(base_model: Any) -> str:
    """The base model's name on the card ("Stable Diffusion 1.5"); an unknown key as it is."""
    return BASE_MODELS[base_model].title if base_model in BASE_MODELS else str(base_model)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-3:
            return f"{value:.0e}"
        return f"{value:g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) if value else "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def profile_rows(profile: dict[str, Any], sources: dict[str, str]) -> list[list[str]]:
    """Rows of (slot, value, status) for the "what I know so far" table."""
    rows = []
    for slot, label in SLOT_LABELS.items():
        value = profile.get(slot)
        empty = value is None or value == [] or value == {}
        status = "not yet known" if empty else sources.get(slot, "stated")
        if empty:
            shown = "—"
        elif slot == "settings":
            shown = "; ".join(f"{SETTING_LABELS.get(k, k)} {setting_value(k, v)}" for k, v in value.items())
        elif slot == "preferred_method":
            shown = method_title(value)
        elif slot == "base_model":
            shown = _fmt(base_title(value))
        else:
            shown = _fmt(value)
        rows.append([label, shown, status])
    return rows


def profile_markdown(profile: dict[str, Any], sources: dict[str, str]) -> str:
    lines = ["| What | Value | |", "|---|---|---|"]
    for label, value, status in profile_rows(profile, sources):
        mark = {"stated": "stated", "assumed": "**assumed**"}.get(status, f"_{status}_")
        lines.append(f"| {label} | {value} | {mark} |")
    return "\n".join(lines)


def recommendation_markdown(rec: dict[str, Any] | None) -> str:
    """The recommendation card: method, settings, estimates, reasons, sources, alternatives."""
    if not rec:
        return "_No recommendation yet: tell me about your goal in the chat._"
    est = rec.get("estimates", {})
    method = method_title(rec.get("method"))
    base = base_title(rec.get("base_model"))
    out = [f"### {method} on {base}"]
    if est.get("fits") is False:
        out.append(f"> **Does not fit your budget:** {est.get('fits_reason', '')}")
    out.append(f"**Estimated:** peak GPU memory **{_fmt(est.get('vram_gb'))} GB** · "
               f"about **{_fmt(est.get('minutes'))} GPU min** per run · output **{_size(est.get('output_mb'))}**")
    if est.get("savings"):
        out.append("**Memory savings chosen:** " + "; ".join(str(s) for s in est["savings"]))
    pred = rec.get("predicted") or {}
    if pred:
        parts = []
        for factor in FACTORS:
            p = pred.get(factor)
            if isinstance(p, dict):
                parts.append(f"{factor} {_fmt(p.get('score'))}/5")
        out.append("**Expected:** " + " · ".join(parts))
    out.append("#### Settings")
    table = ["| Setting | Value |", "|---|---|"]
    table += [f"| `{k}` | {_fmt(v)} |" for k, v in (rec.get("hyperparameters") or {}).items()
              if v is not None]
    out.append("\n".join(table))
    _section(out, "Why", rec.get("reasons"))
    _section(out, "Dataset", rec.get("dataset_advice"))
    _section(out, "Plan for your runs", rec.get("iteration_plan"))
    assumptions = rec.get("assumptions") or []
    if assumptions:
        out.append("#### Assumed (say so to change)")
        out.append("\n".join(
            f"- **{SLOT_LABELS.get(a.get('slot'), a.get('slot'))}** = {_fmt(a.get('value'))} — {a.get('how_to_change', '')}"
            if isinstance(a, dict) else f"- {a}" for a in assumptions))
    alts = rec.get("alternatives") or []
    if alts:
        out.append("#### Alternatives")
        out.append("\n".join(f"- **{method_title(a.get('method'))}**: {a.get('why_not', '')}"
                             for a in alts))
    similar = rec.get("similar_runs") or []
    if similar:
        out.append("#### Your most similar past runs")
        out.append("\n".join(_similar_line(r) for r in similar))
    cites = rec.get("citations") or []
    if cites:
        out.append("#### Sources")
        out.append("\n".join(f"- **{c.get('title')}** (`{c.get('card')}`): {c.get('source')}" for c in cites))
    return "\n\n".join(out)


def _similar_line(run: dict[str, Any]) -> str:
    hp = run.get("hyperparameters") or {}
    settings = ", ".join(f"{k} {_fmt(v)}" for k, v in hp.items() if v is not None)
    scores = run.get("scores") or {}
    got = " · ".join(f"{f} {_fmt(scores.get(f))}" for f in FACTORS
                     if scores.get(f) is not None)
    return (f"- `{run.get('id')}` {method_title(run.get('method'))}"
            + (f" ({settings})" if settings else "") + (f": {got}" if got else ""))


def _section(out: list[str], title: str, items: list[str] | None) -> None:
    if items:
        out.append(f"#### {title}")
        out.append("\n".join(f"- {s}" for s in items))


def _size(mb: Any) -> str:
    if not isinstance(mb, (int, float)):
        return "—"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    if mb < 1:
        return f"{mb * 1024:.0f} KB"
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


def recommendation_text(rec: dict[str, Any]) -> str:
    """A terminal-friendly summary (the CLI without --json)."""
    est = rec.get("estimates", {})
    lines = [f"Method: {method_title(rec['method'])} on {base_title(rec['base_model'])}",
             f"Estimate: {_fmt(est.get('vram_gb'))} GB peak, ~{_fmt(est.get('minutes'))} GPU min, output {_size(est.get('output_mb'))}"
             + ("" if est.get("fits", True) else f"  (DOES NOT FIT: {est.get('fits_reason')})"),
             "Settings: " + ", ".join(f"{k}={_fmt(v)}" for k, v in (rec.get("hyperparameters") or {}).items())]
    for r in rec.get("reasons") or []:
        lines.append(f"  - {r}")
    for c in rec.get("citations") or []:
        lines.append(f"  [{c.get('card')}] {c.get('title')}: {c.get('source')}")
    return "\n".join(lines)

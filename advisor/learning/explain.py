"""Explanations for advisor.adapt: what the run log changed and why, in words and numbers.

The reasons and why_not sentences, the settings that differ from the rules' plan, the
predicted factors with their basis, and the logged runs most like the recommended plan.
"""
from __future__ import annotations

import math
from typing import Any

from .log_learner import LogLearner
from .moves import SHOWN_HP
from .scoring import Scored
from ..profile import FACTORS, Profile
from ..recommendation.recommend import Plan, _predicted

N_SIMILAR_SHOWN = 5


def _changes(best: Scored, chosen: Plan, plans: list[Plan] | None = None) -> list[dict[str, Any]]:
    """What differs from the rules' plan: the method (then the settings moved from the rules'
    plan of the new method, taken from `plans` when given, else best's origin), or the settings."""
    out, base = [], chosen
    if best.plan.method != chosen.method:
        out.append({"key": "method", "from": chosen.method, "to": best.plan.method})
        base = next((p for p in plans if p.method == best.plan.method), best.origin) if plans else best.origin
    for k in SHOWN_HP:
        if best.plan.hp.get(k) != base.hp.get(k):
            out.append({"key": k, "from": _plain(base.hp.get(k)), "to": _plain(best.plan.hp.get(k))})
    return out


def _plain(v: Any) -> Any:
    """numpy and pandas scalars as JSON-ready Python values."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _predicted_blend(s: Scored) -> dict[str, dict[str, Any]]:
    rules = _predicted(s.plan)
    out = {}
    for f in FACTORS:
        basis = rules[f]["basis"]
        if s.weight > 0:
            basis += (f"; your run log ({s.n_context:.1f} similar runs, {s.n_local:.1f} near these settings, "
                      f"weight {s.weight:.2f}): {s.predicted[f] - s.prior[f]:+.2f} on the rules' {s.prior[f]:.2f} "
                      f"(model ± {s.model_std[f]:.2f})")
        out[f] = {"score": round(s.predicted[f], 2), "basis": basis}
    return out


def fmt(v: Any) -> str:
    """A setting as people write it: 1e-4, 500, on/off."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float) and 0 < abs(v) < 1e-2:
        mantissa, exp = f"{v:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _reason(best: Scored, rules: Scored, changed: list[dict], learner: LogLearner, profile: Profile,
            weights: dict[str, float]) -> str:
    n = learner.n_runs
    if best.plan.problems:
        return (f"Nothing fits your limits, so your run log ({n} runs) leaves the closest plan as the rules "
                "made it (your run log).")
    if not changed:
        if best.weight == 0:
            return (f"Your run log has {n} run(s), none like this plan, so the rules decide alone "
                    "(your run log).")
        return (f"Your run log ({n} runs, {best.n_context:.1f} similar, weight {best.weight:.2f}) agrees with the "
                f"rules: no nearby setting predicts higher for your priorities; it predicts "
                + ", ".join(f"{f} {best.predicted[f]:.1f}" for f in FACTORS) + " (your run log).")
    # the factor that moved the weighted utility most explains the change
    gain = {f: weights[f] * (best.predicted[f] - rules.predicted[f]) for f in FACTORS}
    f = max(gain, key=lambda k: abs(gain[k]) if gain[k] > 0 else -1)
    imp = getattr(profile, f) or 3
    what = " and ".join(f"the {c['key'].replace('_', ' ')} from {fmt(c['from'])} to {fmt(c['to'])}"
                        for c in changed)
    c = changed[0]
    if c["key"] == "method":
        past = _past(learner, profile, rules.plan.method, None, None, f)
    else:
        past = _past(learner, profile, rules.plan.method, c["key"], c["from"], f)
    seen = (f"your {past[0]} similar {_label(rules.plan.method, profile)} run(s) at {past[2]} scored "
            f"{past[1]:.1f} on {f}" if past else
            f"the log predicts {rules.predicted[f]:.1f} on {f} for the rules' setting")
    return (f"Your run log changed {what}: {seen} (you weight {f} {imp}/5); this one is predicted "
            f"{best.predicted[f]:.1f} ± {best.model_std[f]:.1f} (rules alone: {best.prior[f]:.1f}), a predicted "
            f"utility of {best.utility:.2f} against {rules.utility:.2f} ({best.n_local:.1f} of your {n} runs are near "
            f"these settings; weight {best.weight:.2f}).")


def _label(method: str, profile: Profile) -> str:
    return f"{profile.subject_type} {method.replace('_', ' ')}" if profile.subject_type else method


def _past(learner: LogLearner, profile: Profile, method: str, key: str | None, value: Any, factor: str):
    """(count, mean score on factor, setting text) of logged runs like the rules' plan."""
    rows = []
    for r in learner.records:
        if r["method"] != method or (r["subject_type"] not in (None, profile.subject_type)):
            continue
        if key is not None:
            v = r["hyperparameters"].get(key)
            if isinstance(value, bool) or value is None:
                if bool(v) != bool(value):
                    continue
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 or \
                    abs(math.log10(v / value)) > 0.05:
                continue
        rows.append(r[f"y_{factor}"])
    if not rows:
        return None
    where = fmt(value) if key is not None else "the rules' settings"
    if key in ("prior_preservation", "train_text_encoder"):
        where = f"{key.replace('_', ' ')} {fmt(value)}"
    elif key == "max_train_steps":
        where = f"{fmt(value)} steps"
    elif key == "rank":
        where = f"rank {fmt(value)}"
    return len(rows), sum(rows) / len(rows), where


def _why_not(best: Scored, rules: Scored) -> dict[str, str]:
    if best.plan.method == rules.plan.method:
        return {}
    return {rules.plan.method: f"The rules' first choice, but your run log predicts a utility of "
                               f"{rules.utility:.2f} for it against {best.utility:.2f} for {best.plan.method}."}


def similar_runs(learner: LogLearner, profile: Profile, plan: Plan, n: int = N_SIMILAR_SHOWN) -> list[dict]:
    """The logged runs most like `plan` for this profile, most similar first."""
    from .estimators import featurize

    sims = learner.similarity(profile, plan.method)
    x = featurize(profile.to_dict(), plan.hp, plan.method, profile.base_model)
    # closeness in the recipe-relative learning rate and image views (columns of FEATURES)
    from .estimators import FEATURES
    cols = [FEATURES.index("log10_lr_vs_recipe"), FEATURES.index("log10_views_vs_recipe")]
    out = []
    for i, r in enumerate(learner.records):
        d2 = sum((learner.X[i, c] - x[c]) ** 2 for c in cols)
        sim = sims[i] * math.exp(-d2 / (2 * 0.3 ** 2))
        out.append({"id": r["run_id"], "method": r["method"], "base_model": r["base_model"],
                    "subject_type": r["subject_type"],
                    "hyperparameters": {k: _plain(r["hyperparameters"].get(k)) for k in SHOWN_HP
                                        if r["hyperparameters"].get(k) is not None},
                    "scores": {f: round(float(r[f"y_{f}"]), 2) for f in FACTORS},
                    "from": {f: r[f"target_from_{f}"] for f in FACTORS},
                    "similarity": round(sim, 3)})
    out.sort(key=lambda d: -d["similarity"])
    return out[:n]

"""What the training page shows, as pure functions of a run folder (the UI polls them on a timer).

They read `events.jsonl`, `config.json`, `samples/` and `train.log` and never import training
code, so they work the same for a job this process started, one an earlier app process started,
and one that finished long ago. Paths taken from the event log are checked to stay inside the run
folder before the UI may serve them.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from trainer.events import last_event, pid_alive, read_events, run_status
from trainer.launch import JOB_FILE, LOG_FILE, ended_without_result
from trainer.memory import summary_fields

from .jobs import QUEUED_MARKER, is_builtin_tiny, with_advice

LOG_TAIL_BYTES = 64 * 1024
# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone ESC codes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SMOOTHING = 0.2  # EMA weight of the newest loss: noisy single steps, readable trend


def _attempt(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of the latest attempt (from the last `start`); a resumed run starts a new attempt."""
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("kind") == "start":
            return events[i:]
    return events


def _config(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def run_state(run_dir: str | Path, events: list[dict[str, Any]] | None = None) -> str:
    """queued | waiting | running | completed | stopped | failed | unknown, from the folder alone.

    A `queued` marker means the lab has not started it yet (also when it waits to be resumed);
    a launch newer than the last event whose process lives is "running" even before the new
    attempt's first event, so a resumed run does not show its previous end meanwhile.
    """
    run_dir = Path(run_dir)
    events = read_events(run_dir) if events is None else events
    if (run_dir / QUEUED_MARKER).exists():
        return "queued"
    try:
        job = json.loads((run_dir / JOB_FILE).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        job = None
    if isinstance(job, dict) and isinstance(job.get("pid"), int):
        last_t = events[-1].get("t", 0) if events else 0
        if _number(job.get("started")) and job["started"] > last_t and pid_alive(job["pid"]):
            return "running"
    if not events:
        return "waiting"
    return run_status(run_dir, events)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def progress(run_dir: str | Path) -> dict[str, Any]:
    """step, max_steps, fraction (0-1), eta_s, sec_per_step, status, message: the progress bar."""
    run_dir = Path(run_dir)
    events = read_events(run_dir)
    attempt = _attempt(events)
    status = run_state(run_dir, events)
    start = last_event(attempt, "start") or {}
    max_steps = start.get("max_train_steps") or _config(run_dir).get("max_train_steps")
    step_ev = last_event(attempt, "step")
    resumed = last_event(attempt, "status")
    step = step_ev["step"] if step_ev else _resumed_step(attempt)
    end = last_event(attempt, "end")
    if end:
        step = max(step, end.get("step", 0))
    if status == "running" and end is not None:  # relaunched; the new attempt has not begun yet
        step_ev, resumed = None, None
    fraction = 0.0
    if max_steps:
        fraction = min(1.0, step / max_steps)
    if status == "completed":
        fraction = 1.0
    eta = _number(step_ev.get("eta_s")) if step_ev and status == "running" else (0.0 if status == "completed" else None)
    sec = _number(step_ev.get("sec_per_step")) if step_ev else None
    peak = summary_fields(attempt).get("peak_vram_gb")  # CUDA runs only
    return {"step": step, "max_steps": max_steps, "fraction": round(fraction, 4), "eta_s": eta,
            "sec_per_step": sec, "status": status,
            "vram_gb": peak,
            "message": _progress_message(status, step, max_steps, step_ev, end, resumed, eta, peak, run_dir)}


def _resumed_step(attempt: list[dict[str, Any]]) -> int:
    """Before the first step of a resumed attempt, the step its checkpoint was at."""
    steps = [e.get("step", 0) for e in attempt if e.get("kind") in ("status", "checkpoint")]
    return max(steps, default=0)


def _progress_message(status, step, max_steps, step_ev, end, last_status, eta, peak, run_dir) -> str:
    if status == "queued":
        return "waiting in the queue"
    if status == "waiting":
        return "not started yet"
    if status == "completed":
        return f"completed: {step} steps" + (f", peak GPU memory {peak:.1f} GB" if peak else "")
    if status == "stopped":
        return f"stopped at step {step}; a checkpoint was saved"
    if status == "failed":
        error = (end or {}).get("error") or ended_without_result(run_dir)
        return f"failed at step {step}: {with_advice(error, (end or {}).get('out_of_memory') is True)}"
    if step_ev is None:  # still loading data, the model, class images...
        return (last_status or {}).get("message") or "starting"
    loss = _number(step_ev.get("loss"))
    parts = [f"step {step}/{max_steps}" if max_steps else f"step {step}"]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if eta is not None:
        parts.append(f"about {_duration(eta)} left")
    if peak:
        parts.append(f"GPU memory {peak:.1f} GB")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def loss_frame(run_dir: str | Path):
    """pandas DataFrame(step, loss, smoothed) for a line plot; one row per step, newest value wins
    (a run resumed from an older checkpoint repeats steps), non-finite losses left out."""
    import pandas as pd

    rows = {}
    for e in read_events(run_dir):
        if e.get("kind") == "step":
            loss = _number(e.get("loss"))
            if loss is not None and isinstance(e.get("step"), int):
                rows[e["step"]] = loss
    steps = sorted(rows)
    df = pd.DataFrame({"step": pd.Series(steps, dtype="int64"),
                       "loss": pd.Series([rows[s] for s in steps], dtype="float64")})
    df["smoothed"] = df["loss"].ewm(alpha=SMOOTHING, adjust=True).mean()
    return df


def samples(run_dir: str | Path) -> list[tuple[str, str]]:
    """(path, caption) of the sample images, newest step first; only files inside `samples/`."""
    run_dir = Path(run_dir)
    root = (run_dir / "samples").resolve()
    out, seen = [], set()
    for e in reversed(read_events(run_dir)):
        if e.get("kind") != "sample":
            continue
        paths, prompts = e.get("paths") or [], e.get("prompts") or []
        for i, rel in enumerate(paths):
            path = _inside(run_dir, rel, root)
            if path is None or path in seen:
                continue
            seen.add(path)
            prompt = prompts[i] if i < len(prompts) and isinstance(prompts[i], str) else ""
            out.append((str(path), f"step {e.get('step', '?')}: {prompt}".rstrip(": ")))
    # folders without events (an events file lost or cut short) still show their images
    folders = sorted(root.glob("step-*"), key=lambda p: p.name, reverse=True) if root.is_dir() else []
    for folder in folders:
        step = folder.name.removeprefix("step-").lstrip("0") or "0"
        for img in sorted(folder.glob("*.png")):
            path = img.resolve()
            if path not in seen and path.is_relative_to(root):
                seen.add(path)
                out.append((str(path), f"step {step}"))
    return out


def _inside(run_dir: Path, rel: Any, root: Path) -> Path | None:
    if not isinstance(rel, str) or not rel:
        return None
    path = (run_dir / rel).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def clean_log(text: str) -> str:
    """Terminal output as plain lines: ANSI codes removed, a tqdm bar redrawn with \\r kept at its
    last state, other control characters dropped."""
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    lines = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        lines.append(_CONTROL.sub("", parts[-1] if parts else ""))
    return "\n".join(lines)


def log_tail(run_dir: str | Path, n: int = 40) -> str:
    """The last `n` non-empty lines of `train.log`, cleaned for display ("" when there is none)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; must be an integer >= 1")
    path = Path(run_dir) / LOG_FILE
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    text = clean_log(data.decode("utf-8", errors="replace"))
    lines = [ln.rstrip() for ln in text.split("\n") if ln.strip()]
    if size > LOG_TAIL_BYTES and lines:
        lines = lines[1:]  # the first line was probably cut in half
    return "\n".join(lines[-n:])


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """The facts of a run for its header: id, method, model, status, steps, times, loss, outputs."""
    run_dir = Path(run_dir)
    events = read_events(run_dir)
    cfg = _config(run_dir)
    starts = [e for e in events if e.get("kind") == "start"]
    end = last_event(events, "end")
    steps = [e for e in events if e.get("kind") == "step"]
    losses = [x for x in (_number(e.get("loss")) for e in steps[-10:]) if x is not None]
    status = run_state(run_dir, events)
    first_t = starts[0]["t"] if starts else None
    last_t = events[-1]["t"] if events else None
    base_model = cfg.get("base_model")
    return {
        "run_id": run_dir.name, "status": status, "method": cfg.get("method"), "base_model": base_model,
        "demo": bool(base_model) and is_builtin_tiny(base_model),
        "device": (starts[-1].get("device") if starts else None),
        "steps_done": steps[-1]["step"] if steps else 0, "max_steps": cfg.get("max_train_steps"),
        "attempts": len(starts), "started_at": first_t,
        "finished_at": end["t"] if end and end is events[-1] else None,
        "duration_s": round(last_t - first_t, 1) if first_t and last_t else None,
        "final_loss": round(sum(losses) / len(losses), 6) if losses else None,
        "outputs": list((end or {}).get("outputs") or []), "error": (end or {}).get("error"),
        "peak_vram_gb": summary_fields(events).get("peak_vram_gb"),
        "samples": len(samples(run_dir)), "data_dir": cfg.get("data_dir"), "resolution": cfg.get("resolution"),
        "learning_rate": cfg.get("learning_rate"),
        "rank": cfg.get("rank") if "lora" in str(cfg.get("method")) else None,
    }

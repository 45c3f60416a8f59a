"""Reading a run folder (`runs/<run_id>/`) into a RunRecord, tolerating junk and missing files.

A run folder (config.json, events.jsonl, metrics.json, profile.json, kept_checkpoint.json,
output/) is the single source of truth of a run; what cannot be read is left out and said in
the record's note.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from trainer.checkpoint_scores import KEPT_FILE, parse_kept
from trainer.events import EVENTS_FILE, read_event_log
from trainer.metrics import METRICS_FILE, read_metrics
from trainer.vocabulary import METHOD_NAMES
from trainer.safe_json import loads as json_loads

from .events import summarise_events
from .records import RunRecord, hyperparameters_from_config, kept_step_problem, normalised_profile

_RUN_FILES = ("config.json", EVENTS_FILE, METRICS_FILE, "profile.json", KEPT_FILE)


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "events.jsonl").is_file()


def run_dirs(root: Path) -> Iterable[Path]:
    """The run folders directly under `root`, by name (hidden folders left out)."""
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and is_run_dir(child):
            yield child


def stamp(run_dir: Path) -> str:
    """Sizes and mtimes of the files that feed a record: unchanged stamp, nothing to re-read."""
    parts = []
    for name in _RUN_FILES:
        p = run_dir / name
        if p.is_file():
            st = p.stat()
            parts.append([name, st.st_size, st.st_mtime_ns])
    output = run_dir / "output"
    if output.is_dir():
        parts.append(["output", sorted(p.name for p in output.iterdir())])
    return json.dumps(parts)


def _read_json_object(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json_loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        notes.append(f"{path.name} is not valid JSON; ignored")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object; ignored")
        return None
    return data


def _read_profile(path: Path, notes: list[str]) -> dict | None:
    from ..profile import ProfileError

    profile = _read_json_object(path, notes)
    if profile is None:
        return None
    try:
        return normalised_profile(profile)
    except ProfileError as e:
        notes.append(f"profile.json ignored: {e}")
        return None


def _kept_step(run_dir: Path, steps_done: int | None, notes: list[str]) -> int | None:
    """The step of the checkpoint the user kept (trainer.checkpoint_scores), or None."""
    data = _read_json_object(run_dir / KEPT_FILE, notes)
    if data is None:
        return None
    kept = parse_kept(data)
    if kept is None:
        notes.append(f"{KEPT_FILE} has no usable step, steps_done and max_train_steps; ignored")
        return None
    problem = kept_step_problem(kept.step, steps_done)
    if problem:
        notes.append(f"{KEPT_FILE} ignored: {problem}")
        return None
    return kept.step


def _method(config: dict | None, notes: list[str]) -> str | None:
    method = config.get("method") if config else None
    if method is not None and method not in METHOD_NAMES:
        notes.append(f"config.json method {method!r} is not a known method; left empty")
        return None
    return method


def record_from_run_dir(path: str | Path) -> RunRecord:
    """Read a run folder into a RunRecord, tolerating junk and missing files (noted)."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist or is not a folder")
    if not is_run_dir(run_dir):
        raise ValueError(f"{str(run_dir)!r} is not a run folder (no config.json or events.jsonl)")
    notes: list[str] = []
    source_stamp = stamp(run_dir)  # taken before reading, so a write meanwhile triggers a re-read
    config = _read_json_object(run_dir / "config.json", notes)
    if config is None and not (run_dir / "config.json").is_file():
        notes.append("no config.json")
    metrics = read_metrics(run_dir)
    if not metrics.missing:
        notes.extend(metrics.notes)
    profile = _read_profile(run_dir / "profile.json", notes)
    events, junk = read_event_log(run_dir)
    if junk:
        notes.append(f"events.jsonl: skipped {junk} unreadable line(s)")
    summary = summarise_events(events)
    if summary["nonfinite_loss_step"] is not None:
        notes.append(f"loss became NaN/inf at step {summary['nonfinite_loss_step']}")
    kept_step = _kept_step(run_dir, summary["steps_done"], notes)

    method = _method(config, notes)
    base_model = (profile or {}).get("base_model") or (config.get("base_model") if config else None)
    output = run_dir / "output"
    return RunRecord(
        run_id=run_dir.name,
        source="run_folder",
        name=run_dir.name,
        method=method,
        base_model=base_model if isinstance(base_model, str) else None,
        status=summary["status"],
        hyperparameters=hyperparameters_from_config(config),
        profile=profile,
        config=config,
        metrics=metrics.raw,
        **{f"score_{f}": v for f, v in metrics.scores.items()},
        started_at=summary["started_at"],
        finished_at=summary["finished_at"],
        duration_s=summary["duration_s"],
        steps_done=summary["steps_done"],
        kept_step=kept_step,
        final_loss=summary["final_loss"],
        peak_vram_gb=summary["peak_vram_gb"],
        error=summary["error"],
        out_of_memory=summary["out_of_memory"],
        run_dir=str(run_dir.resolve()),
        output_path=str(output.resolve()) if output.is_dir() and any(output.iterdir()) else None,
        note="; ".join(notes) or None,
        source_stamp=source_stamp,
    )

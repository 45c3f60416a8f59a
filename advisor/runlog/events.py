"""A run's events.jsonl: a reader that tolerates torn and junk lines, and what the events say.

The summary (status, timings, steps, final loss) is what the run log stores for a run
folder; the status rule mirrors trainer.events.run_status, which the advisor cannot import
(it depends on trainer.config only, design.md).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from .records import finite_number

_LOSS_WINDOW = 10


def read_events(path: str | Path) -> tuple[list[dict], int]:
    """The events of an events.jsonl file and the number of unreadable lines skipped.

    A half-written last line is what a running or killed trainer leaves behind; it is
    dropped without being counted as junk.
    """
    path = Path(path)
    if not path.is_file():
        return [], 0
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    events, junk = [], 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("kind"), str):
            events.append(row)
        elif i < len(lines) - 1:  # not the unterminated tail
            junk += 1
    return events, junk


def summarise_events(events: list[dict]) -> dict[str, Any]:
    """Status, timings, steps and loss from the event stream (status = the last status change)."""
    out: dict[str, Any] = {}
    times = [t for t in (finite_number(e.get("t")) for e in events) if t is not None]
    starts = [finite_number(e.get("t")) for e in events if e["kind"] == "start"]
    out["started_at"] = next((t for t in starts if t is not None), times[0] if times else None)
    steps = [e.get("step") for e in events if isinstance(e.get("step"), int) and not isinstance(e.get("step"), bool)]
    out["steps_done"] = max(steps) if steps else None
    out.update(_loss_summary(events))
    out.update(_status(events))
    out["peak_vram_gb"] = _peak_vram(events)
    end = out["finished_at"] or (times[-1] if times else None)
    out["duration_s"] = end - out["started_at"] if end is not None and out["started_at"] is not None else None
    return out


def _loss_summary(events: list[dict]) -> dict[str, Any]:
    """final_loss, and the first step whose loss was NaN/inf (the trainer writes those as strings)."""
    # One step's loss is mostly noise from the sampled timestep; the mean of the last few
    # logged losses is what says where training ended up.
    losses = [x for x in (finite_number(e.get("loss")) for e in events if e["kind"] == "step") if x is not None]
    last = losses[-_LOSS_WINDOW:]
    bad_loss = [e.get("step") for e in events if e["kind"] == "step" and e.get("loss") is not None
                and finite_number(e.get("loss")) is None]
    return {"final_loss": sum(last) / len(last) if losses else None,
            "nonfinite_loss_step": bad_loss[0] if bad_loss else None}


def _peak_vram(events: list[dict]) -> float | None:
    """The most GPU memory any attempt held (the trainer writes `vram_gb` per step on CUDA and
    `peak_vram_gb` at the end); None when nothing was measured (CPU runs, imports)."""
    peaks = [x for x in (finite_number(e.get(k)) for e in events for k in ("peak_vram_gb", "vram_gb"))
             if x is not None and x > 0]
    return max(peaks) if peaks else None


def _status(events: list[dict]) -> dict[str, Any]:
    """status, finished_at and error: each start/end/error/status event moves the status on."""
    out: dict[str, Any] = {"status": "created" if not events else None, "finished_at": None, "error": None}
    last_start = None
    for e in events:
        kind = e["kind"]
        status = e.get("status") if isinstance(e.get("status"), str) else None
        if kind == "start":
            out["status"], out["finished_at"], out["error"] = "running", None, None
            last_start = e
        elif kind == "end":
            out["status"], out["finished_at"] = status or "completed", finite_number(e.get("t"))
            if isinstance(e.get("error"), str) and out["status"] != "completed":
                out["error"] = e["error"]
            last_start = None
        elif kind == "error":
            out["status"], out["finished_at"] = status or "failed", finite_number(e.get("t"))
            out["error"] = str(e.get("error") or e.get("message") or "unknown error")
        elif kind == "status" and status:
            out["status"] = status
        elif out["status"] is None:
            out["status"] = "running"
    if out["status"] == "running" and last_start is not None and _process_gone(last_start):
        # Same rule as trainer.events.run_status: killed before it could write its end.
        out["status"] = "failed"
        out["error"] = out["error"] or f"the training process (pid {last_start['pid']}) ended without an end event"
    return out


def _process_gone(start: dict) -> bool:
    """Whether the process of a `start` event on this host has exited (not knowable elsewhere).

    Mirrors trainer.events.pid_alive; the advisor depends on trainer.config only (design.md).
    """
    pid, host = start.get("pid"), start.get("host")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False  # no pid recorded: no evidence either way
    if host not in (None, socket.gethostname()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else
    try:  # a zombie has exited; only its parent has not reaped it yet
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False

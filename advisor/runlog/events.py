"""What a run's events say, as the run log stores it: status, timings, steps, final loss, the
GPU memory it held and whether it ran out of it.

The events are read with trainer.events.read_event_log (it tolerates torn and junk lines);
the status follows trainer.events.run_status's rule and also keeps when the run ended and why.
"""
from __future__ import annotations

from typing import Any

from trainer.events import start_process_alive
from trainer.memory import summary_fields

from .records import finite_number

_LOSS_WINDOW = 10


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
    out["peak_vram_gb"] = summary_fields(events).get("peak_vram_gb")
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


def _status(events: list[dict]) -> dict[str, Any]:
    """status, finished_at, error and out_of_memory (the trainer's flag on a failed run's end or
    error event): each start/end/error/status event moves the status on."""
    out: dict[str, Any] = {"status": "created" if not events else None, "finished_at": None, "error": None,
                           "out_of_memory": None}
    last_start = None
    for e in events:
        kind = e["kind"]
        status = e.get("status") if isinstance(e.get("status"), str) else None
        if kind == "start":
            out["status"], out["finished_at"], out["error"], out["out_of_memory"] = "running", None, None, None
            last_start = e
        elif kind == "end":
            out["status"], out["finished_at"] = status or "completed", finite_number(e.get("t"))
            if isinstance(e.get("error"), str) and out["status"] != "completed":
                out["error"] = e["error"]
            if isinstance(e.get("out_of_memory"), bool):
                out["out_of_memory"] = e["out_of_memory"]
            last_start = None
        elif kind == "error":
            out["status"], out["finished_at"] = status or "failed", finite_number(e.get("t"))
            out["error"] = str(e.get("error") or e.get("message") or "unknown error")
            if isinstance(e.get("out_of_memory"), bool):
                out["out_of_memory"] = e["out_of_memory"]
        elif kind == "status" and status:
            out["status"] = status
        elif out["status"] is None:
            out["status"] = "running"
    if out["status"] == "running" and last_start is not None and start_process_alive(last_start) is False:
        # Same rule as trainer.events.run_status: killed before it could write its end.
        out["status"] = "failed"
        out["error"] = out["error"] or f"the training process (pid {last_start['pid']}) ended without an end event"
    return out

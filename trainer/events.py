"""The run folder's event log: `events.jsonl`, one JSON object a line, append-only.

It is the one channel from a training run to everything that watches it (the UI, the run log,
`trainer.launch`). Writers append whole lines; readers skip what they cannot parse, so a reader
racing a writer, or a run killed mid-write, never breaks the watcher.

Every row has `t` (unix seconds), `kind` and `step`. Kinds and the fields they carry:

- `start`: pid, host, method, base_model, max_train_steps, resume, device, num_processes,
  mixed_precision, torch
- `status`: phase (a short word, e.g. "loading_model", "class_images"), message, optional
  done/total for progress, optional warning
- `step`: loss, lr, sec_per_step, eta_s, epoch, vram_gb (CUDA only)
- `sample`: paths (relative to the run folder, e.g. samples/step-000100/0.png), prompts
- `eval`: metrics ({factor: 1-5}) and path (written by trainer.evaluate), or error when scoring
  after training failed
- `checkpoint`: path (relative), reason ("interval", "stop", "final")
- `checkpoint_eval`: metrics ({factor: 1-5}), grid (relative), seconds: one checkpoint scored
  (trainer.checkpoint_eval; during the run or after its end), or error when that failed
- `kept`: export_dir, outputs: the user kept (exported) the checkpoint at `step`
- `error`: error (one line), log (relative path of the traceback file), out_of_memory (true when
  CUDA ran out of memory: trainer.memory.is_out_of_memory)
- `end`: status (completed | stopped | failed), outputs (relative paths), peak_vram_gb (CUDA only);
  a failed end also error and out_of_memory, as on its `error` event; a run that stopped early
  on its scores (early_stop_patience) is completed, with early_stop: why

Stdlib only, so the advisor reads run folders with the same functions (`read_event_log`,
`start_process_alive`, `run_status`, `last_event`) without importing torch.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
EVENT_KINDS = ("start", "status", "step", "sample", "eval", "checkpoint", "checkpoint_eval", "kept", "error", "end")
END_STATUSES = ("completed", "stopped", "failed")
RUN_STATUSES = ("running",) + END_STATUSES + ("unknown",)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the line stays valid JSON everywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def emit(run_dir: str | Path, kind: str, step: int, **fields: Any) -> dict[str, Any]:
    """Append one event to `<run_dir>/events.jsonl` and return it."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"kind={kind!r}; pick one of {list(EVENT_KINDS)}")
    row = {"t": round(time.time(), 3), "kind": kind, "step": int(step), **_clean(fields)}
    data = (json.dumps(row, allow_nan=False) + "\n").encode("utf-8")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # One os.write on an O_APPEND descriptor: the line lands whole and after any other writer's.
    fd = os.open(run_dir / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return row


def _parse_lines(text: str) -> tuple[list[dict[str, Any]], int]:
    """(events, junk): the rows with a `kind`, and how many other non-empty lines there were. A
    last line without its newline is what a running or killed writer leaves: it is not junk."""
    rows, junk = [], 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("kind"), str):
            rows.append(row)
        elif i < len(lines) - 1:  # junk, unless it is the unterminated tail
            junk += 1
    return rows, junk


def read_event_log(run_dir: str | Path) -> tuple[list[dict[str, Any]], int]:
    """All parseable events of a run, oldest first, and the number of unreadable lines skipped
    (([], 0) when there is no log yet)."""
    path = Path(run_dir) / EVENTS_FILE
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    return _parse_lines(text)


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """All parseable events of a run, oldest first ([] when there is no log yet)."""
    return read_event_log(run_dir)[0]


def read_new_events(run_dir: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events written after byte `offset`, and the offset to pass next time (for tailing).

    A last line without its newline is left for the next call: the writer may be mid-line.
    """
    path = Path(run_dir) / EVENTS_FILE
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    complete = data.rfind(b"\n") + 1
    return _parse_lines(data[:complete].decode("utf-8", errors="replace"))[0], offset + complete


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (zombies count as gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie has exited; only its parent has not reaped it yet
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def start_process_alive(start: dict[str, Any]) -> bool | None:
    """Whether the process that wrote a `start` event still runs: True or False where that can
    be checked (its pid, on this host), None where it cannot (another host, or no usable pid)."""
    pid = start.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0 or not _on_this_host(start):
        return None
    return pid_alive(pid)


def _on_this_host(start: dict[str, Any]) -> bool:
    return start.get("host") in (None, socket.gethostname())


def run_status(run_dir: str | Path, events: list[dict[str, Any]] | None = None) -> str:
    """running | completed | stopped | failed | unknown, from the events of the latest attempt.

    A run that started and has no `end` is "running" while the pid in its `start` event is
    alive (or on another host, where we cannot look), and "failed" once that process is gone
    (killed before it could write its end) or when the start names no process to look at.
    """
    events = read_events(run_dir) if events is None else events
    last_start = None
    for row in reversed(events):
        if row.get("kind") == "end":
            status = row.get("status")
            return status if status in END_STATUSES else "unknown"
        if row.get("kind") == "start":
            last_start = row
            break
    if last_start is None:
        return "unknown"
    if not _on_this_host(last_start):
        return "running"
    return "running" if start_process_alive(last_start) else "failed"


def last_event(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The newest event of one kind, or None."""
    for row in reversed(events):
        if row.get("kind") == kind:
            return row
    return None


def error_line(error: BaseException) -> str:
    """One human-readable line for an error event or a CLI message.

    Input errors (ValueError and kin: bad config, data, model) are already sentences for the
    user; anything else keeps its type so "RuntimeError: CUDA out of memory" stays recognisable.
    """
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if isinstance(error, (ValueError, FileNotFoundError)) and text:
        return text
    name = type(error).__name__
    return f"{name}: {text}" if text else name

"""events.jsonl: whole lines in, tolerant reading out, and the run status derived from it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from trainer.events import (EVENTS_FILE, emit, error_line, last_event, pid_alive, read_events, read_new_events,
                            run_status, start_process_alive)


def test_emit_appends_one_json_line_per_event(tmp_path):
    row = emit(tmp_path, "step", 3, loss=0.25, lr=1e-4)
    emit(tmp_path, "end", 3, status="completed")
    lines = (tmp_path / EVENTS_FILE).read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first == row and first["kind"] == "step" and first["step"] == 3 and first["loss"] == 0.25
    assert isinstance(first["t"], float)
    assert [e["kind"] for e in read_events(tmp_path)] == ["step", "end"]


def test_emit_rejects_unknown_kind_and_keeps_nan_valid_json(tmp_path):
    with pytest.raises(ValueError, match="kind='progress'"):
        emit(tmp_path, "progress", 0)
    emit(tmp_path, "step", 1, loss=float("nan"), paths=[tmp_path / "a.png"])
    text = (tmp_path / EVENTS_FILE).read_text()
    assert "NaN" not in text  # strict JSON readers (browsers) would choke on NaN
    row = json.loads(text)
    assert row["loss"] == "nan" and row["paths"] == [str(tmp_path / "a.png")]


def test_reader_skips_junk_and_a_truncated_last_line(tmp_path):
    emit(tmp_path, "start", 0, pid=1)
    with open(tmp_path / EVENTS_FILE, "a") as f:
        f.write("not json at all\n[1, 2]\n{\"no_kind\": 1}\n")
    emit(tmp_path, "step", 1, loss=0.5)
    with open(tmp_path / EVENTS_FILE, "a") as f:
        f.write('{"t": 1, "kind": "step", "step": 2, "lo')  # a writer killed mid-line
    assert [(e["kind"], e["step"]) for e in read_events(tmp_path)] == [("start", 0), ("step", 1)]
    assert read_events(tmp_path / "missing") == []


def test_tailing_returns_only_complete_new_lines(tmp_path):
    rows, offset = read_new_events(tmp_path, 0)
    assert rows == [] and offset == 0
    emit(tmp_path, "start", 0)
    rows, offset = read_new_events(tmp_path, offset)
    assert [r["kind"] for r in rows] == ["start"]
    with open(tmp_path / EVENTS_FILE, "a") as f:
        f.write('{"t": 1, "kind": "step", "step": 1')
    rows, offset2 = read_new_events(tmp_path, offset)
    assert rows == [] and offset2 == offset  # the half line waits for its end
    with open(tmp_path / EVENTS_FILE, "a") as f:
        f.write(', "loss": 1.0}\n')
    rows, _ = read_new_events(tmp_path, offset2)
    assert [(r["kind"], r["loss"]) for r in rows] == [("step", 1.0)]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_run_status_from_events_and_pid(tmp_path):
    assert run_status(tmp_path) == "unknown"
    emit(tmp_path, "start", 0, pid=os.getpid(), host=os.uname().nodename)
    assert run_status(tmp_path) == "running"
    emit(tmp_path, "end", 5, status="stopped")
    assert run_status(tmp_path) == "stopped"
    # a resumed attempt: the newest start decides, and a dead pid without an end means it failed
    emit(tmp_path, "start", 5, pid=_dead_pid(), host=os.uname().nodename)
    assert run_status(tmp_path) == "failed"
    emit(tmp_path, "end", 9, status="completed")
    assert run_status(tmp_path) == "completed"


def test_run_on_another_host_counts_as_running(tmp_path):
    emit(tmp_path, "start", 0, pid=_dead_pid(), host="some-gpu-box")
    assert run_status(tmp_path) == "running"


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(-3)


def test_last_event_and_error_line():
    events = [{"kind": "step", "step": 1}, {"kind": "step", "step": 2}, {"kind": "end", "step": 2}]
    assert last_event(events, "step")["step"] == 2
    assert last_event(events, "sample") is None
    assert error_line(ValueError("data_dir 'x' does not exist\nmore")) == "data_dir 'x' does not exist"
    assert error_line(RuntimeError("CUDA out of memory. Tried")) == "RuntimeError: CUDA out of memory. Tried"
    assert error_line(KeyError()) == "KeyError"


def test_start_process_alive_says_what_this_host_can_know():
    here = os.uname().nodename
    assert start_process_alive({"pid": os.getpid(), "host": here}) is True
    assert start_process_alive({"pid": os.getpid()}) is True  # no host recorded: this one
    assert start_process_alive({"pid": _dead_pid(), "host": here}) is False
    assert start_process_alive({"pid": _dead_pid(), "host": "some-gpu-box"}) is None  # cannot look there
    for pid in (None, 0, -3, True, "123", 1.5):
        assert start_process_alive({"pid": pid, "host": here}) is None, pid  # nothing to look at
    assert start_process_alive({}) is None


def test_a_start_without_a_pid_has_no_process_to_wait_for(tmp_path):
    emit(tmp_path, "start", 0, host=os.uname().nodename)
    assert run_status(tmp_path) == "failed"


def test_the_event_and_memory_readers_import_no_torch():
    code = ("import sys, trainer.events, trainer.memory; "
            "print(sorted(m for m in ('torch', 'numpy', 'diffusers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_read_event_log_drops_the_torn_tail_and_counts_junk(tmp_path):
    """The run log's reader (advisor.runlog.folders) notes junk lines; a writer's unfinished
    last line is not junk."""
    from trainer.events import read_event_log

    (tmp_path / "events.jsonl").write_text('{"t": 1, "kind": "start", "step": 0}\nnot json\n\n{"kind": 5}\n'
                                           '{"t": 2, "kind": "st')
    events, junk = read_event_log(tmp_path)
    assert [e["kind"] for e in events] == ["start"] and junk == 2
    assert read_event_log(tmp_path / "missing") == ([], 0)

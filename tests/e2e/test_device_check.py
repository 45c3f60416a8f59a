"""scripts/device_check.py: the whole path (chat -> recommendation -> lab settings -> job queue ->
training -> compare, scores, rating, run log) on the tiny model, as one subprocess on the CPU,
and its refusal to run the full check without a CUDA GPU."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "device_check.py"
FILES = ("summary.md", "summary.json", "compare.png", "loss.png", "sample.png", "train-log.txt")


def run_check(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


@pytest.fixture(scope="module")
def tiny_check(tiny_sd15, tmp_path_factory):  # noqa: F811
    """One --tiny run for the module: its output folder, work folder, decoded summary and process."""
    base = tmp_path_factory.mktemp("device-check")
    user_log = base / "user-runlog.sqlite"  # what the user's own log would be: must stay untouched
    proc = run_check(["--tiny", "--out", str(base / "out"), "--work", str(base / "work")],
                     {"FTA_CACHE_DIR": str(tiny_sd15.parent), "FTA_RUNLOG": str(user_log),
                      "FTA_RUNS_DIR": str(base / "user-runs")})
    summary = json.loads((base / "out" / "summary.json").read_text()) if (base / "out" / "summary.json").is_file() else {}
    return {"out": base / "out", "work": base / "work", "user_log": user_log, "user_runs": base / "user-runs",
            "proc": proc, "summary": summary}


def test_tiny_check_goes_from_chat_to_a_rated_run_in_the_run_log(tiny_check):
    proc, summary = tiny_check["proc"], tiny_check["summary"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["passed"] and summary["failures"] == []
    assert summary["status"] == "completed"
    assert summary["advisor"]["method"] in ("lora", "dreambooth_lora")
    assert summary["dataset"]["images"] == 5
    scores = summary["scores"]
    assert set(scores) == {"accuracy", "flexibility", "preservation"}
    assert all(isinstance(v, (int, float)) and 1 <= v <= 5 for v in scores.values())
    assert summary["rating_saved"] is True
    assert summary["runlog_row_found"] is True
    assert summary["runlog_row"]["rating"] == {"accuracy": 4, "flexibility": 4, "preservation": 4,
                                               "note": "device_check"}
    assert summary["figures"]["steps_done"] == 4 and summary["figures"]["steps_per_s"] > 0
    assert any(name.endswith(".safetensors") for name in summary["figures"]["outputs"])


def test_tiny_check_prints_and_writes_the_summary(tiny_check):
    out, stdout = tiny_check["out"], tiny_check["proc"].stdout
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # flat, nothing else
    text = (out / "summary.md").read_text()
    assert text in stdout
    assert "# Device check: PASSED" in text and "**completed**" in text
    assert 'rating 4/4/4 "device_check" saved: **yes**' in text
    assert "run-log row found (Runs tab): **yes**" in text
    assert "| automatic | " in text and "| automatic | - |" not in text
    assert "peak VRAM" in text and "not recorded" in text  # a CPU run measures no GPU memory
    # progress lines while it trained (which steps a 1-second poll sees depends on the machine's load),
    # and the last one says where the run ended
    assert re.search(r"step [1-4]/4", stdout) and "completed: 4 steps" in stdout


def test_tiny_check_leaves_the_users_log_and_runs_alone(tiny_check):
    assert not tiny_check["user_log"].exists()
    assert not tiny_check["user_runs"].exists()
    assert (tiny_check["work"] / "runlog.sqlite").is_file()
    assert len(list((tiny_check["work"] / "runs").glob("*-lora-*"))) == 1


def test_estimate_for_a_card_outside_the_speed_table_uses_a_named_stand_in(tiny_check):
    spec = importlib.util.spec_from_file_location("device_check_under_test", SCRIPT)
    dc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dc)
    run_dir = next((tiny_check["work"] / "runs").glob("*-lora-*"))
    for device, memory, in_table in (("NVIDIA H200", 150.0, True), ("NVIDIA B200", 192.0, False)):
        check = dc.Check()
        dc.figures(check, run_dir, "sd15", device, memory)
        here = check.facts["estimate_here"]
        assert check.failures == []
        assert here["gpu_in_table"] is in_table
        assert here["vram_gb"] > 0 and here["output_mb"] > 0
        if not in_table:
            assert "NVIDIA B200 is not in the table" in here["gpu"]


def test_full_check_without_cuda_exits_2_with_a_clear_message(tmp_path):
    proc = run_check(["--out", str(tmp_path / "out")], {"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no CUDA GPU") and "--tiny" in last
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bad_steps_are_refused(tmp_path):
    proc = run_check(["--tiny", "--steps", "0", "--out", str(tmp_path)], {}, timeout=60)
    assert proc.returncode == 2 and "--steps" in proc.stderr

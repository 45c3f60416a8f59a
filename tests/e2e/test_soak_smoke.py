"""The soak benchmark in its quick form: a few people chatting and uploading while a training
runs, against `python app.py`; none sees another's data, nothing fails, the run finishes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import soak  # noqa: E402

pytestmark = pytest.mark.slow


def test_quick_soak_prints_no_errors_and_no_crossed_data():
    done = subprocess.run([sys.executable, "benchmarks/soak.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for line in ("errors: 0", "crossed data: 0", "training kept going through the soak: yes"):
        assert line in lines, done.stdout
    assert any(line.startswith("training ended: completed") for line in lines), done.stdout


def test_a_reply_holding_another_users_marker_counts_as_crossed():
    """The checker itself: it finds another user's marker anywhere in a reply, never one's own."""
    ana, bo = soak.User("soak-c000", {"soak-c000", "a" * 32}), soak.User("soak-c001", {"soak-c001"})
    ana.replies = [("chat turn", '{"Goal": "100 photos of my dog soak-c000"}')]
    bo.replies = [("chat turn", '"101 photos of my dog soak-c001"'), ("upload", f'"/uploads/browser{"a" * 32}-x"')]
    assert soak.crossed([ana, bo]) == [f"soak-c001 upload holds soak-c000's {'a' * 32!r}"]

"""The lab's tests: each test gets its own run log, runs and uploads folders, and the lab's job
queue starts empty."""
import pytest


@pytest.fixture(autouse=True)
def _private_lab_state(tmp_path, monkeypatch):
    monkeypatch.setenv("FTA_RUNLOG", str(tmp_path / "state" / "runlog.sqlite"))
    monkeypatch.setenv("FTA_RUNS_DIR", str(tmp_path / "state" / "runs"))
    monkeypatch.setenv("FTA_UPLOADS_DIR", str(tmp_path / "state" / "uploads"))
    return tmp_path / "state"

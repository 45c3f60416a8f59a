"""The advisor's tests: each test reads and writes its own run log, so nothing another test
logged (a lab run, an import) can move a recommendation here."""
import pytest


@pytest.fixture(autouse=True)
def _private_run_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FTA_RUNLOG", str(tmp_path / "runlog.sqlite"))
    monkeypatch.setenv("FTA_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runlog.sqlite"

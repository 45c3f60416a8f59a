"""Where the run log file and the runs folder are: environment variable, else a default."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB_ENV = "FTA_RUNLOG"        # path of the SQLite run log
DEFAULT_DB_NAME = "runlog.sqlite"    # default: in the working directory
RUNS_DIR_ENV = "FTA_RUNS_DIR"        # folder holding runs/<run_id>/ folders
DEFAULT_RUNS_DIR = "runs"


def default_db_path() -> Path:
    """$FTA_RUNLOG, else ./runlog.sqlite."""
    return Path(os.environ.get(DEFAULT_DB_ENV) or DEFAULT_DB_NAME).expanduser()


def default_runs_dir() -> Path:
    """$FTA_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR).expanduser()

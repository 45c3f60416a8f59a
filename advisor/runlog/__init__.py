"""The run log: one SQLite row per training run, the memory the learner learns from.

A run folder (`runs/<run_id>/`: config.json, events.jsonl, metrics.json, output/) is the
single source of truth of a run; the log indexes it, adds the user's rating, and also holds
runs imported from a CSV file or from existing LoRA files (advisor/kohya.py).

One job per module:
- records.py    RunRecord (checked on creation), hyperparameter names, the reserved columns
- schema.py     the `runs` table, schema versions and migrations, record <-> row
- connection.py opening the file: ours or refused (with a backup), WAL, migration, lock retries
- store.py      RunLog: upsert, rate, get, list, ingest run folders, DataFrame
- events.py     events.jsonl: tolerant reader and status/timing/loss summary
- folders.py    a run folder into a RunRecord
- csvio.py      CSV export and import
- importing.py  import from a path (CSV, run folders, LoRA files) and its ImportReport
- cli.py        `python -m advisor runs ...`
- paths.py      where the log and the runs folder are ($FTA_RUNLOG, $FTA_RUNS_DIR)

pandas is imported only inside `RunLog.to_dataframe()`; no torch anywhere on this path.
"""
from __future__ import annotations

from trainer.config import METHOD_NAMES

from .cli import runs_cli
from .connection import BUSY_TIMEOUT_S, WRITE_ATTEMPTS, RunLogError
from .events import read_events
from .folders import record_from_run_dir
from .importing import ImportReport
from .paths import DEFAULT_DB_ENV, DEFAULT_DB_NAME, DEFAULT_RUNS_DIR, RUNS_DIR_ENV, default_db_path, default_runs_dir
from .records import (
    CSV_COLUMNS, FACTORS, HYPERPARAMETER_KEYS, SOURCES, RunRecord, RunRecordError, hyperparameters_from_config,
)
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from .store import RunLog

__all__ = [
    "APPLICATION_ID", "BUSY_TIMEOUT_S", "CSV_COLUMNS", "DEFAULT_DB_ENV", "DEFAULT_DB_NAME", "DEFAULT_RUNS_DIR",
    "FACTORS", "HYPERPARAMETER_KEYS", "METHOD_NAMES", "MIGRATIONS", "RUNS_DIR_ENV", "SCHEMA_VERSION", "SOURCES",
    "WRITE_ATTEMPTS", "ImportReport", "RunLog", "RunLogError", "RunRecord", "RunRecordError",
    "default_db_path", "default_runs_dir", "hyperparameters_from_config", "read_events", "record_from_run_dir",
    "runs_cli",
]

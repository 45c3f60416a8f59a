"""The run log: one SQLite row per training run, the memory the learner learns from.

A run folder (`runs/<run_id>/`: config.json, events.jsonl, metrics.json, output/) is the
single source of truth of a run; the log indexes it, adds the user's rating, and also holds
runs imported from a CSV file or from existing LoRA files (advisor/kohya.py).

Why it is built the way it is:
- stdlib `sqlite3` in WAL mode, so the app, a CLI and a training watcher can read and write
  at once; every write is one `BEGIN IMMEDIATE` transaction (taking the write lock up front
  avoids the deadlock two deferred readers-turned-writers can get into), with a busy
  timeout plus retries so concurrent writers wait instead of losing rows.
- `PRAGMA user_version` is the schema version and MIGRATIONS an ordered list, one function
  per version; `PRAGMA application_id` marks the file as ours.
- A file that is not SQLite, or an SQLite database of another application, is never reset:
  it is copied to `<name>.corrupt-<timestamp>.bak` and RunLogError says so.
- Re-ingesting is idempotent and never erases what is known: an upsert only overwrites a
  column with a non-null value, so a user's rating survives any re-import.

pandas is imported only inside `to_dataframe()`; no torch anywhere on this path.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from trainer.config import METHOD_NAMES

DEFAULT_DB_ENV = "FTA_RUNLOG"        # path of the SQLite run log
DEFAULT_DB_NAME = "runlog.sqlite"    # default: in the working directory
RUNS_DIR_ENV = "FTA_RUNS_DIR"        # folder holding runs/<run_id>/ folders
DEFAULT_RUNS_DIR = "runs"

SCHEMA_VERSION = 2
APPLICATION_ID = 0x46544131          # "FTA1": marks the SQLite file as a run log
BUSY_TIMEOUT_S = 10.0                # how long one statement waits for another writer
WRITE_ATTEMPTS = 6                   # retries of a whole transaction on "database is locked"
SOURCES = ("run_folder", "csv", "kohya", "manual")
FACTORS = ("accuracy", "flexibility", "preservation")

# The flat hyperparameter names (TrainConfig field names) copied from a run's config.json.
# Path-like and prompt fields are left out: they describe this machine, not the recipe.
HYPERPARAMETER_KEYS = (
    "learning_rate", "max_train_steps", "train_batch_size", "gradient_accumulation_steps",
    "resolution", "rank", "lora_alpha", "text_encoder_lr", "train_text_encoder",
    "prior_preservation", "num_class_images", "prior_loss_weight", "mixed_precision",
    "gradient_checkpointing", "use_8bit_adam", "lr_scheduler", "lr_warmup_steps",
    "max_grad_norm", "adam_weight_decay", "snr_gamma", "noise_offset", "seed", "crop",
    "random_flip", "cache_latents", "num_vectors", "use_ema",
)


def default_db_path() -> Path:
    """$FTA_RUNLOG, else ./runlog.sqlite."""
    return Path(os.environ.get(DEFAULT_DB_ENV) or DEFAULT_DB_NAME).expanduser()


def default_runs_dir() -> Path:
    """$FTA_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR).expanduser()


class RunLogError(RuntimeError):
    """The run log file cannot be used as it is (corrupt, foreign, newer, busy)."""


class RunRecordError(ValueError):
    """A run record value is wrong; the message names the field."""


# --- the record at the boundary --------------------------------------------------------------
@dataclass
class RunRecord:
    run_id: str
    source: str = "manual"                 # one of SOURCES
    name: str | None = None                # what the user recognises: folder or file name
    method: str | None = None              # one of trainer.config.METHOD_NAMES
    base_model: str | None = None          # sd15 | sd21 | sdxl, or the hub id / path as given
    status: str | None = None              # created | running | completed | failed | ...
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # flat, TrainConfig names
    profile: dict[str, Any] | None = None  # the Profile that led to the run, when known
    config: dict[str, Any] | None = None   # config.json (or the kohya metadata)
    metrics: dict[str, Any] | None = None  # metrics.json as written by trainer.evaluate
    score_accuracy: float | None = None    # automatic scores, 1-5
    score_flexibility: float | None = None
    score_preservation: float | None = None
    rating_accuracy: int | None = None     # the user's rating, 1-5
    rating_flexibility: int | None = None
    rating_preservation: int | None = None
    rating_note: str | None = None
    rated_at: float | None = None          # unix time of the last rating
    started_at: float | None = None        # unix times
    finished_at: float | None = None
    duration_s: float | None = None
    steps_done: int | None = None
    final_loss: float | None = None        # mean of the last logged losses (see _summarise_events)
    error: str | None = None               # the error message of a failed run
    run_dir: str | None = None
    output_path: str | None = None
    note: str | None = None                # what the import could not read or had to infer
    source_stamp: str | None = None        # sizes/mtimes of the run folder files at ingest
    created_at: float | None = None        # set by the log
    updated_at: float | None = None

    def __post_init__(self) -> None:
        _validate_record(self)

    @property
    def scores(self) -> dict[str, float | None]:
        return {f: getattr(self, f"score_{f}") for f in FACTORS}

    @property
    def rating(self) -> dict[str, Any]:
        return {**{f: getattr(self, f"rating_{f}") for f in FACTORS}, "note": self.rating_note}

    def summary(self) -> dict[str, Any]:
        """The `runs list --json` object for this run."""
        return {
            "id": self.run_id, "name": self.name, "source": self.source, "method": self.method,
            "base_model": self.base_model, "status": self.status or "unknown",
            "hyperparameters": dict(self.hyperparameters), "scores": self.scores,
            "rating": self.rating, "rated_at": self.rated_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "duration_s": self.duration_s,
            "steps_done": self.steps_done, "final_loss": self.final_loss, "error": self.error,
            "run_dir": self.run_dir, "output_path": self.output_path, "note": self.note,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


_STR_FIELDS = ("name", "base_model", "status", "rating_note", "error", "run_dir", "output_path",
               "note", "source_stamp")
_FLOAT_FIELDS = ("rated_at", "started_at", "finished_at", "duration_s", "final_loss",
                 "created_at", "updated_at")
_DICT_FIELDS = ("profile", "config", "metrics")


def _check_rating(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
        raise RunRecordError(f"{name}={v!r}; must be a whole number from 1 to 5")


def _validate_record(r: RunRecord) -> None:
    if not isinstance(r.run_id, str) or not r.run_id.strip() or r.run_id != r.run_id.strip():
        raise RunRecordError(f"run_id={r.run_id!r}; must be non-empty text without surrounding spaces")
    if r.source not in SOURCES:
        raise RunRecordError(f"source={r.source!r}; pick one of {list(SOURCES)}")
    if r.method is not None and r.method not in METHOD_NAMES:
        raise RunRecordError(f"method={r.method!r}; pick one of {list(METHOD_NAMES)}")
    for name in _STR_FIELDS:
        v = getattr(r, name)
        if v is not None and not isinstance(v, str):
            raise RunRecordError(f"{name}={v!r}; must be text")
    for name in _FLOAT_FIELDS:
        v = getattr(r, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise RunRecordError(f"{name}={v!r}; must be a finite number")
    for f in FACTORS:
        s = getattr(r, f"score_{f}")
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float))
                              or not math.isfinite(s) or not 1 <= s <= 5):
            raise RunRecordError(f"score_{f}={s!r}; must be a number from 1 to 5")
        if getattr(r, f"rating_{f}") is not None:
            _check_rating(f"rating_{f}", getattr(r, f"rating_{f}"))
    if r.steps_done is not None and (isinstance(r.steps_done, bool) or not isinstance(r.steps_done, int)
                                     or r.steps_done < 0):
        raise RunRecordError(f"steps_done={r.steps_done!r}; must be a whole number >= 0")
    if not isinstance(r.hyperparameters, dict) or not all(isinstance(k, str) for k in r.hyperparameters):
        raise RunRecordError("hyperparameters must be an object of name (text) -> value")
    clash = sorted(set(r.hyperparameters) & set(CSV_COLUMNS))
    if clash:
        raise RunRecordError(f"hyperparameters use reserved name(s) {clash}")
    for name in ("hyperparameters", *_DICT_FIELDS):
        v = getattr(r, name)
        if v is not None and name != "hyperparameters" and not isinstance(v, dict):
            raise RunRecordError(f"{name} must be a JSON object or null")
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise RunRecordError(f"{name} is not JSON-serialisable: {e}") from None


# --- schema and migrations -------------------------------------------------------------------
def _migrate_to_v1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            source TEXT NOT NULL,
            method TEXT,
            base_model TEXT,
            status TEXT,
            profile_json TEXT,
            config_json TEXT,
            hyperparameters_json TEXT,
            metrics_json TEXT,
            score_accuracy REAL,
            score_flexibility REAL,
            score_preservation REAL,
            rating_accuracy INTEGER CHECK (rating_accuracy BETWEEN 1 AND 5),
            rating_flexibility INTEGER CHECK (rating_flexibility BETWEEN 1 AND 5),
            rating_preservation INTEGER CHECK (rating_preservation BETWEEN 1 AND 5),
            rating_note TEXT,
            started_at REAL,
            finished_at REAL,
            duration_s REAL,
            steps_done INTEGER,
            final_loss REAL,
            run_dir TEXT,
            output_path TEXT
        )""")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _migrate_to_v2(conn: sqlite3.Connection) -> None:
    # v2: a display name, import notes, the error text, when it was rated, and a stamp of
    # the run folder files so unchanged folders are not re-read on every sync.
    for column in ("name TEXT", "note TEXT", "error TEXT", "rated_at REAL", "source_stamp TEXT"):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    conn.execute("CREATE INDEX runs_method_base ON runs (method, base_model)")


# MIGRATIONS[i] moves the schema from version i to i + 1; append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_to_v1, _migrate_to_v2]
assert len(MIGRATIONS) == SCHEMA_VERSION

# Table columns (v2) and where each comes from in a RunRecord.
_JSON_COLUMNS = {"profile_json": "profile", "config_json": "config",
                 "hyperparameters_json": "hyperparameters", "metrics_json": "metrics"}
_COLUMNS = ("run_id", "created_at", "updated_at", "source", "name", "method", "base_model", "status",
            "profile_json", "config_json", "hyperparameters_json", "metrics_json",
            "score_accuracy", "score_flexibility", "score_preservation",
            "rating_accuracy", "rating_flexibility", "rating_preservation", "rating_note", "rated_at",
            "started_at", "finished_at", "duration_s", "steps_done", "final_loss", "error",
            "run_dir", "output_path", "note", "source_stamp")

# CSV export/import columns; every other CSV column is a hyperparameter.
CSV_COLUMNS = ("run_id", "name", "source", "method", "base_model", "status",
               "score_accuracy", "score_flexibility", "score_preservation",
               "rating_accuracy", "rating_flexibility", "rating_preservation", "rating_note", "rated_at",
               "started_at", "finished_at", "duration_s", "steps_done", "final_loss", "error",
               "run_dir", "output_path", "note", "created_at", "updated_at",
               "profile_json", "config_json", "metrics_json")
_CSV_FLOATS = {"score_accuracy", "score_flexibility", "score_preservation", "duration_s", "final_loss"}
_CSV_TIMES = {"rated_at", "started_at", "finished_at", "created_at", "updated_at"}
_CSV_INTS = {"rating_accuracy", "rating_flexibility", "rating_preservation", "steps_done"}


def _record_to_row(r: RunRecord) -> dict[str, Any]:
    row = {}
    for col in _COLUMNS:
        if col in _JSON_COLUMNS:
            v = getattr(r, _JSON_COLUMNS[col])
            row[col] = json.dumps(v, sort_keys=True) if v else None  # {} and None both mean unknown
        else:
            row[col] = getattr(r, col)
    return row


def _row_to_record(row: sqlite3.Row) -> RunRecord:
    data = {}
    for col in _COLUMNS:
        if col in _JSON_COLUMNS:
            v = json.loads(row[col]) if row[col] else None
            data[_JSON_COLUMNS[col]] = v if v is not None or col != "hyperparameters_json" else {}
        else:
            data[col] = row[col]
    return RunRecord(**data)


@dataclass
class ImportReport:
    """What one import did: runs written, and what was skipped with the reason."""
    path: str
    kind: str                                               # csv | run_folder | runs_folder | kohya | folder
    imported: list[str] = field(default_factory=list)       # run ids
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)

    @property
    def ok(self) -> bool:
        return not self.skipped

    def summary(self) -> str:
        text = f"imported {len(self.imported)} run(s) from {self.path} ({self.kind})"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "imported": list(self.imported),
                "skipped": [{"where": w, "why": y} for w, y in self.skipped]}


# --- the log ---------------------------------------------------------------------------------
class RunLog:
    """An open run log. Use as a context manager or call close()."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()  # one connection shared by threads (Gradio handlers)
        self._conn = _open_checked(self.path)

    # context manager -------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RunLogError(f"run log {self.path} is closed")
        return self._conn

    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `work` in one write transaction, retried when another process holds the lock."""
        with self._lock:
            conn = self._connection()

            def attempt():
                with conn:  # commits on success, rolls back on any exception
                    conn.execute("BEGIN IMMEDIATE")
                    return work(conn)
            return _retry_locked(attempt, self.path)

    # writes -----------------------------------------------------------------------------
    def upsert_run(self, record: RunRecord) -> RunRecord:
        """Insert or update one run; null fields never overwrite known values."""
        self.upsert_many([record])
        return self.get(record.run_id)

    def upsert_many(self, records: Iterable[RunRecord]) -> int:
        """Insert or update many runs in one transaction (all or none)."""
        pending = iter(records)
        seen: list[RunRecord] = []  # replayed when a locked attempt is retried

        def work(conn):
            now = time.time()
            for record in _chain(seen, pending):
                row = _record_to_row(record)
                row["updated_at"] = now
                row["created_at"] = record.created_at or now
                conn.execute(_UPSERT_SQL, row)
            return len(seen)
        return self._write(work)

    def rate(self, run_id: str, accuracy: int, flexibility: int, preservation: int,
             note: str | None = None) -> RunRecord:
        """Store the user's 1-5 rating per factor; note=None keeps an earlier note."""
        for name, v in (("accuracy", accuracy), ("flexibility", flexibility), ("preservation", preservation)):
            _check_rating(name, v)
        if note is not None and not isinstance(note, str):
            raise RunRecordError(f"note={note!r}; must be text")

        def work(conn):
            now = time.time()
            cur = conn.execute(
                "UPDATE runs SET rating_accuracy = ?, rating_flexibility = ?, rating_preservation = ?,"
                " rating_note = COALESCE(?, rating_note), rated_at = ?, updated_at = ? WHERE run_id = ?",
                (accuracy, flexibility, preservation, note, now, now, run_id))
            return cur.rowcount
        if self._write(work) == 0:
            raise KeyError(f"no run {run_id!r} in the run log {self.path}")
        return self.get(run_id)

    # reads ------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        with self._lock:
            row = self._connection().execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in the run log {self.path}")
        return _row_to_record(row)

    def records(self) -> list[RunRecord]:
        with self._lock:
            rows = self._connection().execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        return [_row_to_record(row) for row in rows]

    def list_runs(self) -> list[dict[str, Any]]:
        """One `runs list --json` object per run, oldest first."""
        return [r.summary() for r in self.records()]

    def __bool__(self) -> bool:  # an open log is truthy even when empty (len() would say 0)
        return True

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def schema_version(self) -> int:
        with self._lock:
            return self._connection().execute("PRAGMA user_version").fetchone()[0]

    # run folders ------------------------------------------------------------------------
    def ingest_run_dir(self, path: str | Path) -> RunRecord:
        """Index one run folder (idempotent; never touches the user's rating)."""
        record = record_from_run_dir(path)
        return self.upsert_run(record)

    def ingest_runs_folder(self, path: str | Path | None = None,
                           problems: list[tuple[str, str]] | None = None) -> list[RunRecord]:
        """Index every run folder under `path` that is new or changed since the last ingest.

        Returns the records written. A folder that cannot be read is appended to `problems`
        as (folder, reason) when a list is given; it never stops the others.
        """
        root = Path(path) if path is not None else default_runs_dir()
        if not root.is_dir():
            raise ValueError(f"runs folder {str(root)!r} does not exist or is not a folder")
        with self._lock:
            # a "running" row is re-read even when unchanged: its process may have died since
            known = dict(self._connection().execute(
                "SELECT run_id, source_stamp FROM runs WHERE source = 'run_folder' AND status != 'running'"
            ).fetchall())
        records = []
        for run_dir in _run_dirs(root):
            try:
                if known.get(run_dir.name) is not None and known[run_dir.name] == _stamp(run_dir):
                    continue
                records.append(record_from_run_dir(run_dir))
            except (OSError, ValueError) as e:
                if problems is not None:
                    problems.append((str(run_dir), str(e)))
        if records:
            self.upsert_many(records)
        return records

    def sync(self, runs_dir: str | Path | None = None) -> list[RunRecord]:
        """Ingest the runs folder ($FTA_RUNS_DIR or ./runs) if it exists; what the app calls on start."""
        root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        return self.ingest_runs_folder(root) if root.is_dir() else []

    # import / export --------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> int:
        """Write every run to CSV (atomically); returns the number of rows."""
        path = Path(path)
        records = self.records()
        hp_names = [k for k in HYPERPARAMETER_KEYS if any(k in r.hyperparameters for r in records)]
        hp_names += sorted({k for r in records for k in r.hyperparameters} - set(hp_names))
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([*CSV_COLUMNS, *hp_names])
            for r in records:
                writer.writerow([_csv_cell(r, c) for c in CSV_COLUMNS]
                                + [_format_value(r.hyperparameters.get(k)) for k in hp_names])
        os.replace(tmp, path)  # a crash mid-export never leaves a half-written CSV behind
        return len(records)

    def import_csv(self, path: str | Path) -> ImportReport:
        """Import runs from CSV (the export format; extra columns are hyperparameters).

        Bad rows are reported by line number and skipped; the good ones are written in one
        transaction.
        """
        path = Path(path)
        report = ImportReport(str(path), "csv")
        records = {}
        for line, record, error in _read_csv(path):
            if error:
                report.skipped.append((f"line {line}", error))
            else:
                records[record.run_id] = record  # a repeated id: the later row wins
        self.upsert_many(records.values())
        report.imported.extend(records)
        return report

    def import_path(self, path: str | Path) -> ImportReport:
        """Import a CSV file, a run folder, a runs folder or a folder of .safetensors LoRAs."""
        from . import kohya

        path = Path(path)
        if not path.exists():
            raise ValueError(f"{str(path)!r} does not exist")
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix == ".csv":
                return self.import_csv(path)
            if suffix == ".safetensors":
                report = ImportReport(str(path), "kohya")
                self._import_kohya([path], report, kohya)
                return report
            raise ValueError(f"{str(path)!r}: expected a .csv file, a .safetensors file or a folder")
        if _is_run_dir(path):
            record = self.ingest_run_dir(path)
            return ImportReport(str(path), "run_folder", [record.run_id])
        run_dirs = list(_run_dirs(path))
        # LoRA files inside our own run folders are our outputs, not someone else's runs.
        lora_files = sorted(p for p in path.rglob("*.safetensors")
                            if p.is_file() and not any(d in p.parents for d in run_dirs))
        if not run_dirs and not lora_files:
            raise ValueError(f"{str(path)!r} holds no run folders and no .safetensors files")
        kind = "runs_folder" if run_dirs and not lora_files else "kohya" if lora_files and not run_dirs else "folder"
        report = ImportReport(str(path), kind)
        if run_dirs:
            self.ingest_runs_folder(path, report.skipped)
            # folders unchanged since the last ingest are already indexed: they count too
            failed = {where for where, _ in report.skipped}
            report.imported.extend(d.name for d in run_dirs if str(d) not in failed)
        self._import_kohya(lora_files, report, kohya)
        return report

    def _import_kohya(self, files: list[Path], report: ImportReport, kohya) -> None:
        records = []
        for file in files:
            try:
                records.append(kohya.import_file(file))
            except (ValueError, OSError) as e:
                report.skipped.append((file.name, str(e)))
        self.upsert_many(records)
        report.imported.extend(r.run_id for r in records)

    def to_dataframe(self):
        """pandas DataFrame, one row per run, for the learner and the history tab.

        Columns: the CSV columns without the JSON blobs, one column per hyperparameter (its
        TrainConfig name), and `profile_<slot>` for each scalar Profile slot.
        """
        import pandas as pd

        rows = []
        for r in self.records():
            row = {c: getattr(r, c) for c in CSV_COLUMNS if not c.endswith("_json")}
            row.update(r.hyperparameters)
            for k, v in (r.profile or {}).items():
                if v is None or isinstance(v, (str, int, float, bool)):
                    row[f"profile_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else [c for c in CSV_COLUMNS if not c.endswith("_json")])


def _chain(seen: list, pending) -> Iterable:
    """Yield what earlier attempts already took, then take (and remember) the rest."""
    yield from list(seen)
    for item in pending:
        seen.append(item)
        yield item


_UPSERT_SQL = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
    "ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, runs.{c})" for c in _COLUMNS
                if c not in ("run_id", "created_at", "updated_at"))
    + ", updated_at = excluded.updated_at"
)


# --- opening, checking, recovering --------------------------------------------------------------
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _open_checked(path: Path) -> sqlite3.Connection:
    if path.is_dir():
        raise RunLogError(f"run log path {path} is a folder; give a file path in ${DEFAULT_DB_ENV}")
    existed = path.exists() and path.stat().st_size > 0
    if existed:
        with open(path, "rb") as f:
            if f.read(16) != _SQLITE_MAGIC:
                _reject(path, "is not an SQLite database")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; check_same_thread=False
    # because RunLog serialises access with its own lock.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if existed:
            problem = _foreign_or_corrupt(conn)
            if problem:
                conn.close()
                _reject(path, problem)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise RunLogError(f"run log {path} has schema version {version}, newer than this code "
                              f"({SCHEMA_VERSION}); upgrade the app or point ${DEFAULT_DB_ENV} elsewhere")
        # WAL lets readers and one writer work at once; on filesystems without shared memory
        # SQLite answers with another mode, which is slower but still correct.
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(), path)
        if version < SCHEMA_VERSION:
            if version > 0:
                _backup_before_migration(conn, path, version)
            _retry_locked(lambda: _migrate(conn), path)
    except sqlite3.DatabaseError as e:
        conn.close()
        if isinstance(e, sqlite3.OperationalError) and _is_locked(e):
            raise RunLogError(f"run log {path} is busy (locked by another process): {e}") from None
        _reject(path, f"cannot be read as a database ({e})")
    return conn


def _foreign_or_corrupt(conn: sqlite3.Connection) -> str | None:
    """Why this SQLite file is not a usable run log, or None if it is one (any version)."""
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            return f"is damaged (integrity check: {check})"
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and _is_locked(e):
            raise
        return f"cannot be read as a database ({e})"
    if app_id not in (0, APPLICATION_ID):
        return f"belongs to another application (application_id {app_id:#x})"
    if not tables:
        return None if version == 0 else "has a schema version but no tables"
    if "runs" not in tables or "run_id" not in columns or (version == 0 and app_id != APPLICATION_ID):
        return f"is an SQLite database of another application (tables: {', '.join(sorted(tables))})"
    return None


def _migrate(conn: sqlite3.Connection) -> None:
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        # re-read inside the write lock: another process may have migrated meanwhile
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _backup_before_migration(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """Keep a copy of the old-schema log; sqlite's backup API copies a consistent snapshot."""
    target = path.with_name(f"{path.name}.v{version}-{time.strftime('%Y%m%d-%H%M%S')}.bak")
    if target.exists():
        return
    dest = sqlite3.connect(str(target))
    try:
        conn.backup(dest)
    finally:
        dest.close()


def _reject(path: Path, problem: str) -> None:
    backup = _backup_copy(path)
    raise RunLogError(f"run log {path} {problem}; left it untouched and saved a copy as {backup.name}. "
                      f"Move it away or set ${DEFAULT_DB_ENV} to another file to start a new log.")


def _backup_copy(path: Path) -> Path:
    """Copy the file to <name>.corrupt-<timestamp>.bak, reusing an identical earlier copy."""
    digest = _sha1(path)
    for old in sorted(path.parent.glob(f"{path.name}.corrupt-*.bak")):
        if old.stat().st_size == path.stat().st_size and _sha1(old) == digest:
            return old
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}.bak")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}.bak")
        n += 1
    shutil.copy2(path, target)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        shutil.copy2(wal, target.with_name(target.name + "-wal"))
    return target


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_locked(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _retry_locked(attempt: Callable[[], Any], path: Path) -> Any:
    """Retry a whole transaction when SQLite still reports the lock after its busy timeout."""
    for n in range(WRITE_ATTEMPTS):
        try:
            return attempt()
        except sqlite3.OperationalError as e:
            if not _is_locked(e):
                raise
            if n == WRITE_ATTEMPTS - 1:
                raise RunLogError(f"run log {path} stayed locked by another process: {e}") from None
            time.sleep(random.uniform(0.05, 0.2) * (n + 1))  # jitter so writers do not collide again


# --- run folders -------------------------------------------------------------------------------
_RUN_FILES = ("config.json", "events.jsonl", "metrics.json", "profile.json")
_LOSS_WINDOW = 10


def _is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "events.jsonl").is_file()


def _run_dirs(root: Path) -> Iterable[Path]:
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and _is_run_dir(child):
            yield child


def _stamp(run_dir: Path) -> str:
    """Sizes and mtimes of the files that feed a record: unchanged stamp, nothing to re-read."""
    parts = []
    for name in _RUN_FILES:
        p = run_dir / name
        if p.is_file():
            st = p.stat()
            parts.append([name, st.st_size, st.st_mtime_ns])
    output = run_dir / "output"
    if output.is_dir():
        parts.append(["output", sorted(p.name for p in output.iterdir())])
    return json.dumps(parts)


def _read_json_object(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        notes.append(f"{path.name} is not valid JSON; ignored")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object; ignored")
        return None
    return data


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


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _summarise_events(events: list[dict]) -> dict[str, Any]:
    """Status, timings, steps and loss from the event stream (status = the last status change)."""
    out: dict[str, Any] = {"status": "created" if not events else None}
    times = [t for t in (_number(e.get("t")) for e in events) if t is not None]
    starts = [_number(e.get("t")) for e in events if e["kind"] == "start"]
    out["started_at"] = next((t for t in starts if t is not None), times[0] if times else None)
    steps = [e.get("step") for e in events if isinstance(e.get("step"), int) and not isinstance(e.get("step"), bool)]
    out["steps_done"] = max(steps) if steps else None
    # One step's loss is mostly noise from the sampled timestep; the mean of the last few
    # logged losses is what says where training ended up.
    losses = [x for x in (_number(e.get("loss")) for e in events if e["kind"] == "step") if x is not None]
    out["final_loss"] = sum(losses[-_LOSS_WINDOW:]) / len(losses[-_LOSS_WINDOW:]) if losses else None
    bad_loss = [e.get("step") for e in events if e["kind"] == "step" and e.get("loss") is not None
                and _number(e.get("loss")) is None]  # the trainer writes NaN/inf as strings
    out["nonfinite_loss_step"] = bad_loss[0] if bad_loss else None
    out["finished_at"] = out["error"] = None
    last_start = None
    for e in events:
        kind = e["kind"]
        status = e.get("status") if isinstance(e.get("status"), str) else None
        if kind == "start":
            out["status"], out["finished_at"], out["error"] = "running", None, None
            last_start = e
        elif kind == "end":
            out["status"], out["finished_at"] = status or "completed", _number(e.get("t"))
            if isinstance(e.get("error"), str) and out["status"] != "completed":
                out["error"] = e["error"]
            last_start = None
        elif kind == "error":
            out["status"], out["finished_at"] = status or "failed", _number(e.get("t"))
            out["error"] = str(e.get("error") or e.get("message") or "unknown error")
        elif kind == "status" and status:
            out["status"] = status
        elif out["status"] is None:
            out["status"] = "running"
    if out["status"] == "running" and last_start is not None and _process_gone(last_start):
        # Same rule as trainer.events.run_status: killed before it could write its end.
        out["status"] = "failed"
        out["error"] = out["error"] or f"the training process (pid {last_start['pid']}) ended without an end event"
    end = out["finished_at"] or (times[-1] if times else None)
    out["duration_s"] = end - out["started_at"] if end is not None and out["started_at"] is not None else None
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


def _scores(metrics: dict | None, notes: list[str]) -> dict[str, float]:
    """metrics.json shape: {"accuracy": {"score": 1-5, ...raw}, ...} (a bare number also works)."""
    out = {}
    for f in FACTORS:
        entry = (metrics or {}).get(f)
        value = entry.get("score") if isinstance(entry, dict) else entry
        if value is None:
            continue
        score = _number(value)
        if score is None or not 1 <= score <= 5:
            notes.append(f"metrics.json {f} score {value!r} is not a number from 1 to 5; ignored")
            continue
        out[f"score_{f}"] = score
    return out


def hyperparameters_from_config(config: dict | None) -> dict[str, Any]:
    """The flat hyperparameters (HYPERPARAMETER_KEYS) of a TrainConfig dict; nulls left out."""
    if not config:
        return {}
    return {k: config[k] for k in HYPERPARAMETER_KEYS if k in config and config[k] is not None}


def record_from_run_dir(path: str | Path) -> RunRecord:
    """Read a run folder into a RunRecord, tolerating junk and missing files (noted)."""
    from .profile import Profile, ProfileError

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist or is not a folder")
    if not _is_run_dir(run_dir):
        raise ValueError(f"{str(run_dir)!r} is not a run folder (no config.json or events.jsonl)")
    notes: list[str] = []
    stamp = _stamp(run_dir)  # taken before reading, so a write meanwhile triggers a re-read
    config = _read_json_object(run_dir / "config.json", notes)
    if config is None and not (run_dir / "config.json").is_file():
        notes.append("no config.json")
    metrics = _read_json_object(run_dir / "metrics.json", notes)
    profile = _read_json_object(run_dir / "profile.json", notes)
    if profile is not None:
        try:
            profile = Profile.from_dict(profile).to_dict()
        except ProfileError as e:
            notes.append(f"profile.json ignored: {e}")
            profile = None
    events, junk = read_events(run_dir / "events.jsonl")
    if junk:
        notes.append(f"events.jsonl: skipped {junk} unreadable line(s)")
    summary = _summarise_events(events)
    if summary["nonfinite_loss_step"] is not None:
        notes.append(f"loss became NaN/inf at step {summary['nonfinite_loss_step']}")

    method = config.get("method") if config else None
    if method is not None and method not in METHOD_NAMES:
        notes.append(f"config.json method {method!r} is not a known method; left empty")
        method = None
    base_model = (profile or {}).get("base_model") or (config.get("base_model") if config else None)
    output = run_dir / "output"
    return RunRecord(
        run_id=run_dir.name,
        source="run_folder",
        name=run_dir.name,
        method=method,
        base_model=base_model if isinstance(base_model, str) else None,
        status=summary["status"],
        hyperparameters=hyperparameters_from_config(config),
        profile=profile,
        config=config,
        metrics=metrics,
        **_scores(metrics, notes),
        started_at=summary["started_at"],
        finished_at=summary["finished_at"],
        duration_s=summary["duration_s"],
        steps_done=summary["steps_done"],
        final_loss=summary["final_loss"],
        error=summary["error"],
        run_dir=str(run_dir.resolve()),
        output_path=str(output.resolve()) if output.is_dir() and any(output.iterdir()) else None,
        note="; ".join(notes) or None,
        source_stamp=stamp,
    )


# --- CSV -----------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def _format_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)  # repr round-trips floats exactly
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _parse_value(text: str) -> Any:
    """A hyperparameter cell: number, true/false, JSON list/object, or text."""
    s = text.strip()
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    if _INTEGER.match(s):
        return int(s)
    if _NUMBER.match(s):
        return float(s)
    if s[:1] in "[{":
        try:
            return json.loads(s)
        except json.JSONDecodeError:
            pass
    return s


def _csv_cell(r: RunRecord, column: str) -> str:
    if column.endswith("_json"):
        v = getattr(r, column[:-5])
        return json.dumps(v, sort_keys=True) if v else ""
    return _format_value(getattr(r, column))


def _parse_time(column: str, s: str) -> float:
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(s).timestamp()  # a hand-made sheet may hold dates
    except ValueError:
        raise ValueError(f"{column}={s!r} is not a unix time or an ISO date") from None


def _parse_csv_row(row: dict[str, str]) -> RunRecord:
    data: dict[str, Any] = {"hyperparameters": {}}
    for column, cell in row.items():
        text = (cell or "").strip()
        if not text:
            continue
        if column in _CSV_INTS:
            number = float(text) if _NUMBER.match(text) else None
            if number is None or not number.is_integer():
                raise ValueError(f"{column}={text!r} is not a whole number")
            data[column] = int(number)
        elif column in _CSV_FLOATS:
            if not _NUMBER.match(text):
                raise ValueError(f"{column}={text!r} is not a number")
            data[column] = float(text)
        elif column in _CSV_TIMES:
            data[column] = _parse_time(column, text)
        elif column.endswith("_json") and column in CSV_COLUMNS:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"{column} is not valid JSON") from None
            data[column[:-5]] = value
        elif column in CSV_COLUMNS:
            data[column] = text
        else:
            data["hyperparameters"][column] = _parse_value(text)
    data.setdefault("source", "csv")
    if data.get("profile") is not None:
        from .profile import Profile, ProfileError
        try:
            data["profile"] = Profile.from_dict(data["profile"]).to_dict()
        except ProfileError as e:
            raise ValueError(f"profile_json: {e}") from None
    return RunRecord(**data)


def _read_csv(path: Path) -> Iterable[tuple[int, RunRecord | None, str | None]]:
    """Yield (line, record, None) or (line, None, why) per data row."""
    if not path.is_file():
        raise ValueError(f"CSV file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often add a BOM
    except UnicodeDecodeError:
        raise ValueError(f"CSV file {str(path)!r} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))  # csv splits lines itself (quoted newlines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as e:
        raise ValueError(f"CSV file {str(path)!r}: cannot read the header: {e}") from None
    header = ["run_id" if h == "id" else h for h in header]  # `runs list` calls it id
    if "run_id" not in header:
        raise ValueError(f"CSV file {str(path)!r} has no run_id column; found {header}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ValueError(f"CSV file {str(path)!r} repeats column(s) {dupes}")
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield line, None, f"unreadable CSV ({e})"
            line = reader.line_num + 1
            continue
        if any(c.strip() for c in cells):
            if len(cells) != len(header):
                yield line, None, f"has {len(cells)} fields, the header has {len(header)}"
            else:
                try:
                    yield line, _parse_csv_row(dict(zip(header, cells))), None
                except (ValueError, TypeError) as e:
                    yield line, None, str(e)
        line = reader.line_num + 1


# --- CLI: python -m advisor runs ... --------------------------------------------------------------
class _CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 1 (argparse would print usage, exit 2)
        raise _CliError(message)


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help=f"run log file (default: ${DEFAULT_DB_ENV} or ./{DEFAULT_DB_NAME})")
    parser = _Parser(prog="python -m advisor runs", description="The run log: import, list, rate, export.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("import", parents=[common], help="import a CSV file, a runs folder or a folder of LoRAs")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p = sub.add_parser("list", parents=[common], help="list runs (the runs folder is indexed first)")
    p.add_argument("--json", action="store_true", help="one JSON object per run, as a list")
    p = sub.add_parser("rate", parents=[common], help="rate a run 1-5 on each factor")
    p.add_argument("run_id")
    for factor in FACTORS:
        p.add_argument(f"--{factor}", type=int, required=True, metavar="N")
    p.add_argument("--note", default=None)
    p = sub.add_parser("export", parents=[common], help="write every run to a CSV file")
    p.add_argument("csv_path")
    return parser


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def _print_table(runs: list[dict]) -> None:
    if not runs:
        print("no runs in the log")
        return
    print(f"{'id':24} {'method':17} {'base':6} {'status':11} {'steps':>6}  scores a/f/p   rating a/f/p")
    for r in runs:
        s, g = r["scores"], r["rating"]
        scores = "/".join(_fmt(s[f], ".1f") for f in FACTORS)
        rating = "/".join(_fmt(g[f]) for f in FACTORS)
        print(f"{r['id'][:24]:24} {_fmt(r['method']):17} {_fmt(r['base_model'])[:6]:6} "
              f"{r['status'][:11]:11} {_fmt(r['steps_done']):>6}  {scores:13}  {rating}")


def runs_cli(argv: list[str]) -> int:
    """`python -m advisor runs ...`; returns the exit code (errors: one line on stderr, 1)."""
    try:
        args = _build_parser().parse_args(argv)
    except _CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        with RunLog(getattr(args, "db", None)) as log:
            if args.command == "import":
                report = log.import_path(args.path)
                if args.json:
                    print(json.dumps(report.to_dict(), indent=2))
                else:
                    print(report.summary())
                for where, why in report.skipped:
                    print(f"skipped {where}: {why}", file=sys.stderr)
                return 0 if report.imported or not report.skipped else 1
            if args.command == "list":
                problems: list[tuple[str, str]] = []
                if default_runs_dir().is_dir():
                    log.ingest_runs_folder(default_runs_dir(), problems)
                for where, why in problems:
                    print(f"warning: run folder {where}: {why}", file=sys.stderr)
                runs = log.list_runs()
                if args.json:
                    print(json.dumps(runs, indent=2))
                else:
                    _print_table(runs)
                return 0
            if args.command == "rate":
                record = log.rate(args.run_id, args.accuracy, args.flexibility, args.preservation, args.note)
                print(f"rated {record.run_id}: accuracy {record.rating_accuracy}, flexibility "
                      f"{record.rating_flexibility}, preservation {record.rating_preservation}")
                return 0
            if args.command == "export":
                n = log.export_csv(args.csv_path)
                print(f"exported {n} run(s) to {args.csv_path}")
                return 0
    except KeyError as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
    except (RunLogError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
    return 1

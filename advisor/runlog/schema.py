"""The `runs` table: its schema versions, the migrations between them, and record <-> row.

`PRAGMA user_version` is the schema version and MIGRATIONS an ordered list, one function
per version; `PRAGMA application_id` marks the file as ours.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable

from .records import RunRecord, json_blob

SCHEMA_VERSION = 5
APPLICATION_ID = 0x46544131          # "FTA1": marks the SQLite file as a run log


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


def _migrate_to_v3(conn: sqlite3.Connection) -> None:
    # v3: the GPU memory a run held at its peak (trainer.memory), to set beside the estimate.
    conn.execute("ALTER TABLE runs ADD COLUMN peak_vram_gb REAL")


def _migrate_to_v4(conn: sqlite3.Connection) -> None:
    # v4: the trainer's out_of_memory flag (its end and error events), so the learner reads a
    # flag instead of matching error text. Runs logged before the flag existed said it only in
    # their error line, in the trainer's and PyTorch's words: that text is read here, once.
    conn.execute("ALTER TABLE runs ADD COLUMN out_of_memory INTEGER")
    conn.execute("""
        UPDATE runs SET out_of_memory = 1
        WHERE status = 'failed' AND (lower(error) LIKE '%out of gpu memory%'
                                     OR lower(error) LIKE '%cuda out of memory%'
                                     OR lower(error) LIKE '%outofmemoryerror%')""")


def _migrate_to_v5(conn: sqlite3.Connection) -> None:
    # v5: the step of the checkpoint the user kept (kept_checkpoint.json), where the run peaked
    # for them; the learner moves the next plan's steps toward it (advisor.learning.peak).
    conn.execute("ALTER TABLE runs ADD COLUMN kept_step INTEGER")


# MIGRATIONS[i] moves the schema from version i to i + 1; append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_to_v1, _migrate_to_v2, _migrate_to_v3,
                                                          _migrate_to_v4, _migrate_to_v5]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION in one write transaction."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        # re-read inside the write lock: another process may have migrated meanwhile
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# Table columns (v5) and where each comes from in a RunRecord.
_JSON_COLUMNS = {"profile_json": "profile", "config_json": "config",
                 "hyperparameters_json": "hyperparameters", "metrics_json": "metrics"}
_COLUMNS = ("run_id", "created_at", "updated_at", "source", "name", "method", "base_model", "status",
            "profile_json", "config_json", "hyperparameters_json", "metrics_json",
            "score_accuracy", "score_flexibility", "score_preservation",
            "rating_accuracy", "rating_flexibility", "rating_preservation", "rating_note", "rated_at",
            "started_at", "finished_at", "duration_s", "steps_done", "kept_step", "final_loss", "peak_vram_gb",
            "error", "out_of_memory", "run_dir", "output_path", "note", "source_stamp")

# Insert, or update only the columns the new row knows: a null never erases a known value
# (so a re-import keeps the user's rating); created_at stays the first one.
UPSERT_SQL = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
    "ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, runs.{c})" for c in _COLUMNS
                if c not in ("run_id", "created_at", "updated_at"))
    + ", updated_at = excluded.updated_at"
)


def record_to_row(r: RunRecord) -> dict[str, Any]:
    row = {}
    for col in _COLUMNS:
        if col in _JSON_COLUMNS:
            row[col] = json_blob(getattr(r, _JSON_COLUMNS[col]))
        else:
            row[col] = getattr(r, col)
    return row


def row_to_record(row: sqlite3.Row) -> RunRecord:
    data = {}
    for col in _COLUMNS:
        if col in _JSON_COLUMNS:
            v = json.loads(row[col]) if row[col] else None
            data[_JSON_COLUMNS[col]] = v if v is not None or col != "hyperparameters_json" else {}
        elif col == "out_of_memory":  # SQLite keeps a bool as 0/1
            data[col] = None if row[col] is None else bool(row[col])
        else:
            data[col] = row[col]
    return RunRecord(**data)

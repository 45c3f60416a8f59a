"""RunLog: the open run log, one SQLite row per run.

Every write is one `BEGIN IMMEDIATE` transaction (taking the write lock up front avoids the
deadlock two deferred readers-turned-writers can get into), retried while another process
holds the lock. Re-ingesting is idempotent and never erases what is known: an upsert only
overwrites a column with a non-null value, so a user's rating survives any re-import.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from . import csvio
from .connection import RunLogError, open_checked, retry_locked
from .folders import record_from_run_dir, run_dirs, stamp
from .paths import default_db_path, default_runs_dir
from .records import CSV_COLUMNS, RunRecord, RunRecordError, check_rating
from .schema import UPSERT_SQL, record_to_row, row_to_record


class RunLog:
    """An open run log. Use as a context manager or call close()."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()  # one connection shared by threads (Gradio handlers)
        self._conn = open_checked(self.path)

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
            return retry_locked(attempt, self.path)

    def _no_run(self, run_id: str) -> KeyError:
        return KeyError(f"no run {run_id!r} in the run log {self.path}")

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
                row = record_to_row(record)
                row["updated_at"] = now
                row["created_at"] = record.created_at or now
                conn.execute(UPSERT_SQL, row)
            return len(seen)
        return self._write(work)

    def rate(self, run_id: str, accuracy: int, flexibility: int, preservation: int,
             note: str | None = None) -> RunRecord:
        """Store the user's 1-5 rating per factor; note=None keeps an earlier note."""
        for name, v in (("accuracy", accuracy), ("flexibility", flexibility), ("preservation", preservation)):
            check_rating(name, v)
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
            raise self._no_run(run_id)
        return self.get(run_id)

    # reads ------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        with self._lock:
            row = self._connection().execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise self._no_run(run_id)
        return row_to_record(row)

    def records(self) -> list[RunRecord]:
        with self._lock:
            rows = self._connection().execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        return [row_to_record(row) for row in rows]

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

    def to_dataframe(self):
        """pandas DataFrame, one row per run, for the learner and the history tab.

        Columns: the CSV columns without the JSON blobs, one column per hyperparameter (its
        TrainConfig name), and `profile_<slot>` for each scalar Profile slot.
        """
        import pandas as pd  # only here: importing the run log must stay light

        columns = [c for c in CSV_COLUMNS if not c.endswith("_json")]
        rows = []
        for r in self.records():
            row = {c: getattr(r, c) for c in columns}
            row.update(r.hyperparameters)
            for k, v in (r.profile or {}).items():
                if v is None or isinstance(v, (str, int, float, bool)):
                    row[f"profile_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else columns)

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
        for run_dir in run_dirs(root):
            try:
                if known.get(run_dir.name) is not None and known[run_dir.name] == stamp(run_dir):
                    continue
                records.append(record_from_run_dir(run_dir))
            except (OSError, ValueError) as e:
                if problems is not None:
                    problems.append((str(run_dir), str(e)))
        if records:
            self.upsert_many(records)
        return records

    def sync(self, runs_dir: str | Path | None = None,
             problems: list[tuple[str, str]] | None = None) -> list[RunRecord]:
        """Ingest the runs folder ($FTA_RUNS_DIR or ./runs) if it exists; what the app calls on start.

        `problems` collects unreadable run folders as in ingest_runs_folder.
        """
        root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        return self.ingest_runs_folder(root, problems) if root.is_dir() else []

    # export (imports: advisor.runlog.importing) --------------------------------------------
    def export_csv(self, path: str | Path) -> int:
        """Write every run to CSV (atomically); returns the number of rows."""
        path = Path(path)
        records = self.records()
        csvio.write_csv(path, records)
        return len(records)


def _chain(seen: list, pending) -> Iterable:
    """Yield what earlier attempts already took, then take (and remember) the rest."""
    yield from list(seen)
    for item in pending:
        seen.append(item)
        yield item

"""Opening the SQLite file: check it is ours, migrate it, and wait out other writers.

- stdlib `sqlite3` in WAL mode, so the app, a CLI and a training watcher can read and write
  at once, with a busy timeout plus whole-transaction retries so concurrent writers wait
  instead of losing rows.
- A file that is not SQLite, or an SQLite database of another application, is never reset:
  it is copied to `<name>.corrupt-<timestamp>.bak` and RunLogError says so.
"""
from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from .paths import DEFAULT_DB_ENV
from .schema import APPLICATION_ID, SCHEMA_VERSION, migrate

BUSY_TIMEOUT_S = 10.0                # how long one statement waits for another writer
WRITE_ATTEMPTS = 6                   # retries of a whole transaction on "database is locked"

_SQLITE_MAGIC = b"SQLite format 3\x00"


class RunLogError(RuntimeError):
    """The run log file cannot be used as it is (corrupt, foreign, newer, busy)."""


def open_checked(path: Path) -> sqlite3.Connection:
    """A connection to the run log at `path`, created or migrated as needed; RunLogError if unusable."""
    if path.is_dir():
        raise RunLogError(f"run log path {path} is a folder; give a file path in ${DEFAULT_DB_ENV}")
    existed = path.exists() and path.stat().st_size > 0
    if existed:
        with open(path, "rb") as f:
            if f.read(16) != _SQLITE_MAGIC:
                _reject(path, "is not an SQLite database")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunLogError(f"run log folder {path.parent} cannot be made ({e.strerror or e}); "
                              f"set ${DEFAULT_DB_ENV} to a file in a writable folder") from None
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
        _prepare(conn, path)
    except sqlite3.DatabaseError as e:
        conn.close()
        if isinstance(e, sqlite3.OperationalError) and _is_locked(e):
            raise RunLogError(f"run log {path} is busy (locked by another process): {e}") from None
        if isinstance(e, sqlite3.OperationalError) and _is_unwritable(e):
            # a good log on a read-only or full disk: nothing is wrong with the file, so no "corrupt" copy
            raise RunLogError(f"run log {path} cannot be written here ({e}); runs and ratings are not saved until "
                              f"it is writable, or ${DEFAULT_DB_ENV} names a file in a writable folder") from None
        _reject(path, f"cannot be read as a database ({e})")
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a newer schema, switch to WAL, and migrate an older one (after a backup)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise RunLogError(f"run log {path} has schema version {version}, newer than this code "
                          f"({SCHEMA_VERSION}); upgrade the app or point ${DEFAULT_DB_ENV} elsewhere")
    # WAL lets readers and one writer work at once; on filesystems without shared memory
    # SQLite answers with another mode, which is slower but still correct.
    retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(), path)
    if version < SCHEMA_VERSION:
        if version > 0:
            _backup_before_migration(conn, path, version)
        retry_locked(lambda: migrate(conn), path)


def _foreign_or_corrupt(conn: sqlite3.Connection) -> str | None:
    """Why this SQLite file is not a usable run log, or None if it is one (any version)."""
    try:
        # one read transaction, so all the answers come from the same snapshot: read one by one,
        # another process creating the log could commit between them, and a half-seen new log
        # (tables, but not yet our id) would look like another application's
        conn.execute("BEGIN")
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                return f"is damaged (integrity check: {check})"
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
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
    try:
        backup = _backup_copy(path)
    except OSError as e:   # a read-only or full folder: say what is wrong with the file all the same
        raise RunLogError(f"run log {path} {problem}; left it untouched (no copy could be saved: "
                          f"{e.strerror or e}). Set ${DEFAULT_DB_ENV} to another file to start a new log.") from None
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


def _is_unwritable(e: sqlite3.OperationalError) -> bool:
    """SQLite's words for a file it may read but not change: read-only, a full disk, no journal."""
    text = str(e).lower()
    return any(w in text for w in ("readonly", "read-only", "disk is full", "unable to open database file",
                                   "disk i/o error"))


def _is_locked(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def retry_locked(attempt: Callable[[], Any], path: Path) -> Any:
    """Retry a whole transaction when SQLite still reports the lock after its busy timeout."""
    for n in range(WRITE_ATTEMPTS):
        try:
            return attempt()
        except sqlite3.OperationalError as e:
            if _is_unwritable(e):
                raise RunLogError(f"run log {path} cannot be written here ({e}); runs and ratings are not saved "
                                  f"until it is writable, or ${DEFAULT_DB_ENV} names a file in a writable folder") from None
            if not _is_locked(e):
                raise
            if n == WRITE_ATTEMPTS - 1:
                raise RunLogError(f"run log {path} stayed locked by another process: {e}") from None
            time.sleep(random.uniform(0.05, 0.2) * (n + 1))  # jitter so writers do not collide again

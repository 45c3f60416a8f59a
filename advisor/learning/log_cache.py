"""The chat's LogLearner: one per run-log file, refitted only when the file changes.

`learner_for_log()` never raises and never creates a log file; a log that cannot be read
or used gives a one-line note and leaves the rules to decide alone.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from .log_learner import LogLearner

log = logging.getLogger("advisor.adapt")  # the logger's name from before the split, for log filters

_cache: dict[str, tuple[tuple, Any, str | None]] = {}
_cache_lock = threading.Lock()


def _stamp(path: Path) -> tuple:
    """What changes when the log is written: the file and its WAL (writes land there first)."""
    out = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def learner_for_log(path: str | Path | None = None) -> tuple[LogLearner | None, str | None]:
    """(learner, note) for the run log at `path` ($FTA_RUNLOG or ./runlog.sqlite by default).

    (None, None) when there is no log or it has no usable runs: the rules decide alone.
    (None, note) when the log cannot be read: the note is one line for the user. Never
    raises and never creates a log file. Cached on the file's size and mtime (and its WAL's).
    """
    from ..runlog.store import RunLog
    from ..runlog.paths import default_db_path

    path = Path(path) if path is not None else default_db_path()
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None, None
        stamp = _stamp(path)
    except OSError as e:
        return None, f"Your run log {path} could not be read ({e}); this recommendation uses the rules only."
    key = str(path.resolve())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        try:
            with RunLog(path) as runlog:
                learner = LogLearner.fit(runlog) if len(runlog) else None
            if learner is not None and learner.n_runs == 0 and learner.cost_model is None \
                    and learner.memory() is None:
                learner = None  # rows, but none with a score, a rating, enough durations or memory news yet
            note = None
        except Exception as e:  # corrupt, foreign, locked, or a learner bug: the chat must go on
            log.warning("run log %s not used: %s", path, e)
            learner, note = None, (f"Your run log could not be used ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:200]}); this recommendation uses the rules only.")
        _cache[key] = (_stamp(path), learner, note)
        return learner, note

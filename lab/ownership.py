"""Whose run is it: the owner of every run the lab knows, and the owner's folders.

A run the lab trained records its owner in `runs/<id>/lab.json` (`session_id`, written by
JobQueue.submit). A run someone imported (a CSV row, a LoRA file) is recorded in
`runs/owners.json` by the import. A run with neither (made by the CLI, or imported before
owners were kept) belongs to nobody in the app: listed to no one, rated by no one; the machine's
owner still has the command line (`python -m advisor runs ...`).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Iterable

from .jobs import LAB_FILE
from .uploads import new_session_dir

OWNERS_FILE = "owners.json"
_LOCK = threading.Lock()


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def run_owner(runs_dir: str | Path, run_id: str) -> str | None:
    """The owner of `run_id`, or None when the app does not know one."""
    if not isinstance(run_id, str) or not run_id or "/" in run_id or "\\" in run_id or run_id in (".", ".."):
        return None
    owner = _read(Path(runs_dir) / run_id / LAB_FILE).get("session_id")
    if isinstance(owner, str) and owner:
        return owner
    owner = _read(Path(runs_dir) / OWNERS_FILE).get(run_id)
    return owner if isinstance(owner, str) and owner else None


def owned_run_ids(runs_dir: str | Path, run_ids: Iterable[str], owner: str) -> set[str]:
    """Those of `run_ids` that belong to `owner`."""
    return {r for r in run_ids if run_owner(runs_dir, r) == owner}


def record_imports(runs_dir: str | Path, run_ids: Iterable[str], owner: str) -> None:
    """Note `owner` as the owner of imported runs (a run someone else already owns stays theirs)."""
    run_ids = list(run_ids)
    if not run_ids:
        return
    path = Path(runs_dir) / OWNERS_FILE
    with _LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        owners = _read(path)
        for run_id in run_ids:
            if run_owner(runs_dir, run_id) is None:
                owners[run_id] = owner
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(owners, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)


def owner_dir(uploads_root: str | Path, owner: str) -> Path:
    """The owner's own folder under the uploads root (created): datasets, thumbnails, exports."""
    return new_session_dir(uploads_root, owner)

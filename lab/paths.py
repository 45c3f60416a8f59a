"""Where the lab keeps its files, from environment variables (so a Space can point at /data).

- FTA_RUNS_DIR     run folders: advisor.runlog.paths.default_runs_dir (the run log indexes them)
- FTA_UPLOADS_DIR  per-session upload folders; default ./uploads
- FTA_DATA_ROOTS   folders on the server a user may train from, os.pathsep-separated;
                   default: the working directory
- FTA_SECRET_FILE  the server secret that signs browser ids; default <runs dir>/.server-secret
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from advisor.runlog.paths import default_db_path, default_runs_dir
from trainer.tiny import default_cache_root

UPLOADS_DIR_ENV = "FTA_UPLOADS_DIR"
DATA_ROOTS_ENV = "FTA_DATA_ROOTS"
SECRET_FILE_ENV = "FTA_SECRET_FILE"

def default_uploads_root() -> Path:
    """$FTA_UPLOADS_DIR, else ./uploads."""
    return Path(os.environ.get(UPLOADS_DIR_ENV) or "uploads").expanduser()


def allowed_data_roots() -> list[Path]:
    """$FTA_DATA_ROOTS split on os.pathsep (empty parts ignored), else [the working directory]."""
    raw = os.environ.get(DATA_ROOTS_ENV, "")
    roots = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    return roots or [Path.cwd()]


def default_secret_path() -> Path:
    """$FTA_SECRET_FILE, else .server-secret in the runs folder (never served, never a data root)."""
    return Path(os.environ.get(SECRET_FILE_ENV) or default_runs_dir() / ".server-secret").expanduser()


def app_folders() -> list[Path]:
    """The app's own state, never a data root: runs, everyone's uploads, the run log, the caches
    (tiny model, class images), the secret, and Gradio's folder of uploaded files."""
    gradio_tmp = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return [default_runs_dir(), default_uploads_root(), default_db_path(), default_cache_root(),
            default_secret_path(), Path(gradio_tmp)]

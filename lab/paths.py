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


# --- what a user sees of the server's folders -------------------------------------------------------
OWN_ALIAS = "my-uploads"   # how the settings and messages name the user's own upload folder
PATH_SETTINGS = ("data_dir", "class_data_dir")


def client_path(path: str | Path, own: str | Path) -> str:
    """`path` as the user sees it: inside their own upload folder it is `my-uploads/...` (the
    server's layout, other users' folder names included, is not theirs to see); any other path
    as given (a data-root folder the user typed)."""
    text = str(path)
    if not text.strip():
        return text
    real, home = Path(text).expanduser().resolve(), Path(own).expanduser().resolve()
    if real == home or real.is_relative_to(home):
        rel = real.relative_to(home).as_posix()
        return OWN_ALIAS if rel == "." else f"{OWN_ALIAS}/{rel}"
    return text


def server_path(text: str, own: str | Path) -> str:
    """The reverse of `client_path`: `my-uploads/...` inside the owner's folder (a `..` that leaves
    it stays a path the folder checks then refuse); anything else unchanged."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped == OWN_ALIAS or stripped.startswith(OWN_ALIAS + "/"):
        return str(Path(own).expanduser().resolve() / stripped[len(OWN_ALIAS):].lstrip("/"))
    return text


def settings_paths(text: str, own: str | Path, convert) -> str:
    """The settings JSON with its folder settings passed through `convert` (client_path or
    server_path); text that does not parse as an object is returned unchanged (the checks that
    follow say what is wrong with it)."""
    import json

    from trainer.safe_json import loads as json_loads

    try:
        data = json_loads(text or "")
    except json.JSONDecodeError:
        return text
    if not isinstance(data, dict):
        return text
    changed = {k: convert(data[k], own) for k in PATH_SETTINGS if isinstance(data.get(k), str) and data[k]}
    if all(changed[k] == data[k] for k in changed):
        return text
    return json.dumps({**data, **changed}, indent=2, sort_keys=True)


def redact(text: str, own: str | Path | None = None) -> str:
    """Text for a user (a status line, the training log) with the server's folders named, not
    shown: their own upload folder as my-uploads, the app's runs, uploads and cache folders as
    <runs>, <uploads> and <cache>."""
    if not isinstance(text, str) or not text:
        return text
    named = []
    if own is not None:
        named.append((Path(own).expanduser().resolve(), OWN_ALIAS))
    named += [(default_runs_dir().expanduser().resolve(), "<runs>"),
              (default_uploads_root().expanduser().resolve(), "<uploads>"),
              (default_cache_root().expanduser().resolve(), "<cache>")]
    for folder, label in named:   # the owner's folder first: it lies inside the uploads folder
        text = text.replace(str(folder), label)
    return text

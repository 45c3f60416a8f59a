"""Files go to a browser only as the return value of an owner-checked function, never by path.

The app gives Gradio no `allowed_paths`: nothing under the runs or uploads folders can be
fetched by naming it (`/gradio_api/file=<runs>/queue.json` is a 403). A handler that has checked
the owner returns the file's path; Gradio copies it into its cache under a name derived from the
content and a per-process secret, and serves that copy. Gradio copies only from the working
directory or the system's temp folder, so `servable` hands it a private copy (a hard link when
it can) for a file that lies elsewhere (e.g. FTA_RUNS_DIR=/data/runs).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

_OUTBOX: Path | None = None


def _outbox() -> Path:
    global _OUTBOX
    if _OUTBOX is None or not _OUTBOX.is_dir():
        _OUTBOX = Path(tempfile.mkdtemp(prefix="fta-outbox-"))  # mode 0700
    return _OUTBOX


def _copyable(path: Path, roots: Iterable[Path]) -> bool:
    """Whether Gradio itself would copy `path` into its cache (inside a root, not a dotfile)."""
    return not path.name.startswith(".") and any(path == r or path.is_relative_to(r) for r in roots)


def servable(path: str | Path, roots: Iterable[str | Path] | None = None, outbox: str | Path | None = None) -> str:
    """A path Gradio may copy into its cache: `path` itself when it lies in `roots` (default: the
    working directory and the temp folder), else a private copy in `outbox`, named by the file's
    path, size and time (so a changed file gets a new copy)."""
    path = Path(path).resolve()
    roots = [Path(r).resolve() for r in (roots if roots is not None else (os.getcwd(), tempfile.gettempdir()))]
    if _copyable(path, roots):
        return str(path)
    st = path.stat()
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    folder = Path(outbox) if outbox is not None else _outbox()
    dest = folder / key / path.name.lstrip(".")
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copy2(path, tmp)
        os.replace(tmp, dest)
    return str(dest)


def servable_items(items: Any) -> Any:
    """`servable` over what a Gallery or File gets: paths, or (path, caption) pairs; None as is."""
    if items is None:
        return None
    out = []
    for item in items:
        if isinstance(item, (tuple, list)):
            out.append((servable(item[0]), *item[1:]))
        else:
            out.append(servable(item))
    return out

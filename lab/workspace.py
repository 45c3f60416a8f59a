"""What one user's page holds between loads: the chat, the lab's settings, its dataset and the
interview's profile, in a small JSON file in the user's own folder.

The handlers write it as the user works; a page load reads it, so a reload, or a second tab of
the same user (the same signed browser id, or the same login), finds the chat, the settings and
the dataset where they were (the job reattaches through the job queue). The chat is kept as the
user's own messages and replayed through the interview: the interview is a pure function of them.
Everything read back is bounded and checked like any client input: this file lives under the
uploads folder, and the dataset folder in it is checked against the owner's roots again on use.
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.safe_json import loads as json_loads, write_atomic

WORKSPACE_FILE = "workspace.json"
MAX_MESSAGES = 200            # user messages replayed on load
MAX_MESSAGE_CHARS = 4000      # the chat box's own limit is lower; a longer one is cut
MAX_SETTINGS_CHARS = 64_000   # the settings JSON (a TrainConfig is ~2 KB)
MAX_FILE_BYTES = 2_000_000
_LOCK = threading.Lock()      # one read-modify-write at a time in this process (two tabs saving at once)


@dataclass
class Workspace:
    messages: list[str] = field(default_factory=list)   # what the user typed or picked, in order
    settings: str = ""                                   # the lab's settings text, as last edited
    data_dir: str = ""                                   # the dataset folder the lab uses
    profile: dict[str, Any] | None = None                # the interview's profile the lab trains for
    base_model: str = ""                                 # the lab's own picker: base model
    method: str = ""                                     # ... and method


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def parse_workspace(data: Any) -> Workspace:
    """A Workspace from whatever the file held: wrong types become empty, long text is cut."""
    if not isinstance(data, dict):
        return Workspace()
    messages = data.get("messages") if isinstance(data.get("messages"), list) else []
    profile = data.get("profile") if isinstance(data.get("profile"), dict) else None
    return Workspace(messages=[_text(m, MAX_MESSAGE_CHARS) for m in messages if isinstance(m, str)][-MAX_MESSAGES:],
                     settings=_text(data.get("settings"), MAX_SETTINGS_CHARS),
                     data_dir=_text(data.get("data_dir"), 4096), profile=profile,
                     base_model=_text(data.get("base_model"), 200), method=_text(data.get("method"), 64))


def load_workspace(folder: str | Path) -> Workspace:
    """The owner's workspace; an empty one when there is none or it cannot be read."""
    path = Path(folder) / WORKSPACE_FILE
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return Workspace()
        return parse_workspace(json_loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return Workspace()


def update_workspace(folder: str | Path, **changes: Any) -> Workspace:
    """Read, change the named fields, write back atomically; returns what was written. A
    workspace that cannot be written is logged by the caller's absence of it, never an error
    for the user: losing it costs a reload's convenience, not work."""
    folder = Path(folder)
    with _LOCK:
        current = asdict(load_workspace(folder))
        unknown = set(changes) - set(current)
        if unknown:
            raise TypeError(f"unknown workspace field(s) {sorted(unknown)}")
        current.update(changes)
        ws = parse_workspace(current)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / WORKSPACE_FILE, asdict(ws))
        except OSError:
            pass
        return ws

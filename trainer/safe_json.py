"""JSON from outside (a client's settings, a CSV cell, a LoRA file's metadata, a config file)
parsed with a depth limit: `[[[[...` nested 100,000 deep makes Python's decoder raise
RecursionError, and a structure a few thousand deep breaks the code that walks it. Both come
back as json.JSONDecodeError, which every caller already turns into its one-line message.

`write_atomic` is the one writer of the JSON files a run folder holds for readers that may look
at any moment (metrics.json, checkpoint_scores.json, kept_checkpoint.json).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

MAX_DEPTH = 64  # configs and run records are 3-4 levels deep


def loads(text: str | bytes) -> Any:
    """json.loads with nesting limited to MAX_DEPTH; JSONDecodeError otherwise."""
    doc = text.decode("utf-8", errors="replace") if isinstance(text, (bytes, bytearray)) else text
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", doc, 0) from None
    if depth(value) > MAX_DEPTH:
        raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", doc, 0)
    return value


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            level += 1
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level) for child in item)
    return deepest


def write_atomic(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON to `path` atomically: a temporary file in the same folder,
    then os.replace, so a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

"""Write the advisor's golden outputs from cases.py: python tests/advisor/golden/regenerate.py

Run only when a change moves the advice on purpose, and say why in the commit; the diff of the
JSON files is the review of that change.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[2])]

import produce  # noqa: E402


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FTA_RUNLOG"] = str(Path(tmp) / "absent.sqlite")  # the chats see no run log
        outputs = {"recommendations.json": produce.recommendations(),
                   "learned.json": produce.learned(Path(tmp) / "learned.sqlite"),
                   "chats.json": produce.chats()}
    for name, items in outputs.items():
        (HERE / name).write_text(produce.dump(items), encoding="utf-8")
        print(f"{name}: {len(items)} cases")


if __name__ == "__main__":
    main()

"""Print the installed versions of everything the project needs, as pip constraints.

The project's dependencies (with the `test` extra) and theirs, walked through the installed
packages' metadata, pinned at the versions installed now. torch is left out: scripts/setup.sh
installs it first (the CPU build here, or the CUDA build a GPU machine already has).

    python scripts/freeze_constraints.py > constraints.txt
"""
from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement

PROJECT = "finetune-advisor"
EXTRAS = ("test",)
LEFT_OUT = {"torch"}  # and what only torch needs (its CUDA wheels), which the walk never reaches


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure() -> dict[str, str]:
    env = default_environment()
    pinned: dict[str, str] = {}
    todo = [(PROJECT, EXTRAS)]
    while todo:
        name, extras = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed: run `bash scripts/setup.sh test` first") from None
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = [{**env, "extra": e} for e in ("", *extras)]
            if req.marker is not None and not any(req.marker.evaluate(w) for w in wanted):
                continue
            key = canonical(req.name)
            if key in LEFT_OUT or key in pinned:
                continue
            try:
                pinned[key] = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                raise SystemExit(f"{req.name} (needed by {name}) is not installed") from None
            todo.append((req.name, tuple(req.extras)))
    return pinned


def main() -> None:
    pins = closure()
    print("# The versions the test suite passes with (scripts/update_constraints.sh moves them).")
    print(f"# Python {sys.version.split()[0]}; torch is installed by scripts/setup.sh, not pinned here.")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main()

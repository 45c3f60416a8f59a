"""The expert case suite's pass rate by category (tests/advisor/expert/cases.json).

Each case is a request in the words people write on trainer trackers and forums with what an
expert accepts and the source for it; a plan passes when nothing in it would be objected to.

    python benchmarks/expert_cases.py [--failures]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "advisor" / "expert")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["FTA_RUNLOG"] = str(Path(tempfile.mkdtemp()) / "absent.sqlite")  # the rules alone, no run log

import suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", action="store_true", help="list what an expert objects to, per case")
    args = parser.parse_args()
    started = time.perf_counter()
    by_category: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for case in suite.load_cases():
        by_category[case["category"]].append((case["id"], suite.run_case(case)))
    print("| category | cases | pass | rate |\n|---|---|---|---|")
    total = passed = 0
    for category in suite.CATEGORIES:
        results = by_category.get(category, [])
        ok = sum(1 for _, problems in results if not problems)
        total, passed = total + len(results), passed + ok
        print(f"| {category} | {len(results)} | {ok} | {ok / len(results):.0%} |" if results else
              f"| {category} | 0 | - | - |")
    print(f"| **all** | {total} | {passed} | {passed / total:.0%} |")
    print(f"\n{total} cases in {time.perf_counter() - started:.1f} s")
    if args.failures:
        for category in suite.CATEGORIES:
            for case_id, problems in by_category.get(category, []):
                for p in problems:
                    print(f"- {category} / {case_id}: {p}")


if __name__ == "__main__":
    main()

"""`python -m advisor runs ...`: import, list, rate and export runs from the command line.

Errors are one line on stderr and exit code 1 (argparse's usage dump and exit 2 included).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from trainer.vocabulary import FACTORS

from .connection import RunLogError
from .importing import import_path
from .paths import DEFAULT_DB_ENV, DEFAULT_DB_NAME
from .store import RunLog


class _CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 1 (argparse would print usage, exit 2)
        raise _CliError(message)


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help=f"run log file (default: ${DEFAULT_DB_ENV} or ./{DEFAULT_DB_NAME})")
    parser = _Parser(prog="python -m advisor runs", description="The run log: import, list, rate, export.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("import", parents=[common], help="import a CSV file, a runs folder or a folder of LoRAs")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p = sub.add_parser("list", parents=[common], help="list runs (the runs folder is indexed first)")
    p.add_argument("--json", action="store_true", help="one JSON object per run, as a list")
    p = sub.add_parser("rate", parents=[common], help="rate a run 1-5 on each factor")
    p.add_argument("run_id")
    for factor in FACTORS:
        p.add_argument(f"--{factor}", type=int, required=True, metavar="N")
    p.add_argument("--note", default=None)
    p = sub.add_parser("export", parents=[common], help="write every run to a CSV file")
    p.add_argument("csv_path")
    return parser


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def _print_table(runs: list[dict]) -> None:
    if not runs:
        print("no runs in the log")
        return
    print(f"{'id':24} {'method':17} {'base':6} {'status':11} {'steps':>6}  scores a/f/p   rating a/f/p")
    for r in runs:
        s, g = r["scores"], r["rating"]
        scores = "/".join(_fmt(s[f], ".1f") for f in FACTORS)
        rating = "/".join(_fmt(g[f]) for f in FACTORS)
        print(f"{r['id'][:24]:24} {_fmt(r['method']):17} {_fmt(r['base_model'])[:6]:6} "
              f"{r['status'][:11]:11} {_fmt(r['steps_done']):>6}  {scores:13}  {rating}")


# --- one function per command; each returns the exit code ------------------------------------
def _import(log: RunLog, args: argparse.Namespace) -> int:
    report = import_path(log, Path(args.path))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    for where, why in report.skipped:
        print(f"skipped {where}: {why}", file=sys.stderr)
    return 0 if report.imported or not report.skipped else 1


def _list(log: RunLog, args: argparse.Namespace) -> int:
    problems: list[tuple[str, str]] = []
    log.sync(problems=problems)  # index the runs folder first, so new runs show up
    for where, why in problems:
        print(f"warning: run folder {where}: {why}", file=sys.stderr)
    runs = log.list_runs()
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        _print_table(runs)
    return 0


def _rate(log: RunLog, args: argparse.Namespace) -> int:
    record = log.rate(args.run_id, args.accuracy, args.flexibility, args.preservation, args.note)
    print(f"rated {record.run_id}: accuracy {record.rating_accuracy}, flexibility "
          f"{record.rating_flexibility}, preservation {record.rating_preservation}")
    return 0


def _export(log: RunLog, args: argparse.Namespace) -> int:
    n = log.export_csv(args.csv_path)
    print(f"exported {n} run(s) to {args.csv_path}")
    return 0


_COMMANDS: dict[str, Callable[[RunLog, argparse.Namespace], int]] = {
    "import": _import, "list": _list, "rate": _rate, "export": _export,
}


def runs_cli(argv: list[str]) -> int:
    """`python -m advisor runs ...`; returns the exit code (errors: one line on stderr, 1)."""
    try:
        args = _build_parser().parse_args(argv)
    except _CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        with RunLog(getattr(args, "db", None)) as log:
            return _COMMANDS[args.command](log, args)
    except KeyError as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
    except (RunLogError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
    return 1

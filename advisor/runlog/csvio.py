"""Run records to and from CSV: the export format, and hand-made sheets in the same shape.

The columns are CSV_COLUMNS (JSON fields as `<field>_json`) followed by one column per
hyperparameter; on import every column that is not a CSV_COLUMN is a hyperparameter. A bad
value skips its row with the reason, except a bad kept_step: the run is imported without it
and its note says so (the run is good; only the checkpoint it names is not).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from trainer.config import HYPERPARAMETERS
from trainer.safe_json import loads as json_loads

from .records import CSV_COLUMNS, RunRecord, check_hyperparameters, json_blob, kept_step_problem, normalised_profile

_CSV_FLOATS = {"score_accuracy", "score_flexibility", "score_preservation", "duration_s", "final_loss",
               "peak_vram_gb"}
_CSV_BOOLS = {"out_of_memory"}
_CSV_TIMES = {"rated_at", "started_at", "finished_at", "created_at", "updated_at"}
_CSV_INTS = {"rating_accuracy", "rating_flexibility", "rating_preservation", "steps_done"}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")
_INTEGER = re.compile(r"^[+-]?\d+$")


# --- writing ---------------------------------------------------------------------------------
def write_csv(path: Path, records: list[RunRecord]) -> None:
    """Write `records` to `path` atomically: known hyperparameters first, then the rest by name."""
    hp_names = [k for k in HYPERPARAMETERS if any(k in r.hyperparameters for r in records)]
    hp_names += sorted({k for r in records for k in r.hyperparameters} - set(hp_names))
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_COLUMNS, *hp_names])
        for r in records:
            writer.writerow([_csv_cell(r, c) for c in CSV_COLUMNS]
                            + [_format_value(r.hyperparameters.get(k)) for k in hp_names])
    os.replace(tmp, path)  # a crash mid-export never leaves a half-written CSV behind


def _format_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)  # repr round-trips floats exactly
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return _no_formula(str(v))


# A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is written with a
# leading apostrophe (OWASP's CSV-injection advice) and read back without it. Numbers are never
# text cells here, so -0.5 stays -0.5.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _no_formula(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) or (text.startswith("'") and text[1:2] in _FORMULA_START) \
        else text


def _formula_back(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:2] in (*_FORMULA_START, "'") else text


def _csv_cell(r: RunRecord, column: str) -> str:
    if column.endswith("_json"):
        return _no_formula(json_blob(getattr(r, column[:-5])) or "")
    return _format_value(getattr(r, column))


# --- reading ---------------------------------------------------------------------------------
def read_csv(path: Path) -> Iterable[tuple[int, RunRecord | None, str | None]]:
    """Yield (line, record, None) or (line, None, why) per data row; ValueError if the file is unusable."""
    reader, header = _open_csv(path)
    if header is None:
        return
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield line, None, f"unreadable CSV ({e})"
            line = reader.line_num + 1
            continue
        if any(c.strip() for c in cells):
            if len(cells) != len(header):
                yield line, None, f"has {len(cells)} fields, the header has {len(header)}"
            else:
                try:
                    yield line, _parse_csv_row(dict(zip(header, cells))), None
                except (ValueError, TypeError) as e:
                    yield line, None, str(e)
        line = reader.line_num + 1


def _open_csv(path: Path) -> tuple[Any, list[str] | None]:
    """A csv reader past the header, and the checked header (None for an empty file)."""
    if not path.is_file():
        raise ValueError(f"CSV file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often add a BOM
    except UnicodeDecodeError:
        raise ValueError(f"CSV file {str(path)!r} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))  # csv splits lines itself (quoted newlines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return reader, None
    except csv.Error as e:
        raise ValueError(f"CSV file {str(path)!r}: cannot read the header: {e}") from None
    header = ["run_id" if h == "id" else h for h in header]  # `runs list` calls it id
    if "run_id" not in header:
        raise ValueError(f"CSV file {str(path)!r} has no run_id column; found {header}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ValueError(f"CSV file {str(path)!r} repeats column(s) {dupes}")
    return reader, header


def _parse_csv_row(row: dict[str, str]) -> RunRecord:
    data: dict[str, Any] = {"hyperparameters": {}}
    for column, cell in row.items():
        text = _formula_back((cell or "").strip())
        if not text:
            continue
        if column in _CSV_INTS:
            number = float(text) if _NUMBER.match(text) else None
            if number is None or not number.is_integer():
                raise ValueError(f"{column}={text!r} is not a whole number")
            data[column] = int(number)
        elif column == "kept_step":
            data[column] = text  # checked below, against steps_done
        elif column in _CSV_FLOATS:
            if not _NUMBER.match(text):
                raise ValueError(f"{column}={text!r} is not a number")
            data[column] = float(text)
        elif column in _CSV_BOOLS:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{column}={text!r} is not true or false")
            data[column] = text.lower() == "true"
        elif column in _CSV_TIMES:
            data[column] = _parse_time(column, text)
        elif column.endswith("_json") and column in CSV_COLUMNS:
            try:
                value = json_loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"{column} is not valid JSON") from None
            data[column[:-5]] = value
        elif column in CSV_COLUMNS:
            data[column] = text
        else:
            data["hyperparameters"][column] = _parse_value(text)
    check_hyperparameters(data["hyperparameters"])
    _check_kept_step(data)
    data.setdefault("source", "csv")
    if data.get("profile") is not None:
        from ..profile import ProfileError
        try:
            data["profile"] = normalised_profile(data["profile"])
        except ProfileError as e:
            raise ValueError(f"profile_json: {e}") from None
    return RunRecord(**data)


def _check_kept_step(data: dict[str, Any]) -> None:
    """kept_step as a whole number from 0 to steps_done; anything else is dropped and noted."""
    text = data.pop("kept_step", None)
    if text is None:
        return
    number = float(text) if _NUMBER.match(text) else None
    value = int(number) if number is not None and number.is_integer() else text
    problem = kept_step_problem(value, data.get("steps_done"))
    if problem:
        data["note"] = "; ".join(n for n in (data.get("note"), f"{problem} (dropped)") if n)
    else:
        data["kept_step"] = value


def _parse_time(column: str, s: str) -> float:
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(s).timestamp()  # a hand-made sheet may hold dates
    except ValueError:
        raise ValueError(f"{column}={s!r} is not a unix time or an ISO date") from None


def _parse_value(text: str) -> Any:
    """A hyperparameter cell: number, true/false, JSON list/object, or text."""
    s = text.strip()
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    if _INTEGER.match(s):
        return int(s)
    if _NUMBER.match(s):
        return float(s)
    if s[:1] in "[{":
        try:
            return json_loads(s)
        except json.JSONDecodeError:
            pass
    return s

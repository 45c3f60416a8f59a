"""metrics.json, a run's scores: the file's name, its shape, its writer and the one reader.

trainer.evaluate writes it; the lab and the run log read it through `read_metrics`. The shape
(one object; readers rely on the factor scores only, the rest is for people and charts):

    {"accuracy":     {"score": 1-5 (one decimal),     <- what every reader uses
                      "scores": {measure: 1-5},        the per-measure scores averaged into it
                      <measure>: raw value or null,    e.g. dino, clip_i, clip_t, ssim_base_vs_tuned, pres
                      "proxy": {...}, "method": str, "encoder": str, "basis": str, counts},
     "flexibility":  {...same...},
     "preservation": {...same...},
     "encoders", "prompts", "seeds", "steps", "n_images", "n_train_images", "resolution", "device",
     "method", "base_model", "calibration", "grids": {name: "eval/<name>.png"}, "evaluated_at", "seconds"}

A factor given as a bare number (a hand-written file) is read as its score. Stdlib only: the
advisor's import path reads it without torch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .safe_json import write_atomic
from .vocabulary import FACTORS

METRICS_FILE = "metrics.json"
PROXY_METHOD = "weight-free proxy"   # a factor's "method" when no CLIP/DINO encoder could be used


@dataclass(frozen=True)
class MetricsReading:
    """What `read_metrics` found in a run folder."""
    scores: dict[str, float]      # factor -> 1-5, only the factors with a usable score, in FACTORS order
    raw: dict[str, Any] | None    # the whole file; None when it is missing, unreadable or not an object
    notes: tuple[str, ...] = ()   # one line per problem: the file itself, or a score that was dropped
    missing: bool = False         # no metrics.json at all: the run has not been scored (also in notes)

    @property
    def problem(self) -> str | None:
        """The notes as one line; None when the file was read and every score in it was usable."""
        return "; ".join(self.notes) or None


def factor_scores(metrics: Any) -> tuple[dict[str, float], list[str]]:
    """The 1-5 score of each factor in a metrics object (`{"score": x}` or a bare number), and a
    note for each score dropped because it is not a number from 1 to 5. Factors left out, or
    given as null, are simply unscored."""
    scores: dict[str, float] = {}
    notes: list[str] = []
    if not isinstance(metrics, dict):
        return scores, notes
    for factor in FACTORS:
        entry = metrics.get(factor)
        value = entry.get("score") if isinstance(entry, dict) else entry
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 1 <= value <= 5:
            notes.append(f"{METRICS_FILE} {factor} score {value!r} is not a number from 1 to 5; ignored")
            continue
        scores[factor] = float(value)
    return scores, notes


def read_metrics(run_dir: str | Path) -> MetricsReading:
    """Read `<run_dir>/metrics.json`, tolerating every way it can be missing or broken (said in
    the notes, never raised)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return MetricsReading({}, None, (f"no {METRICS_FILE}: the run has not been scored",), missing=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        return MetricsReading({}, None, (f"{METRICS_FILE} is not valid JSON ({e.msg} at line {e.lineno})",))
    except (OSError, UnicodeDecodeError) as e:
        return MetricsReading({}, None, (f"{METRICS_FILE} cannot be read ({e})",))
    if not isinstance(data, dict):
        return MetricsReading({}, None, (f"{METRICS_FILE} is not a JSON object",))
    scores, notes = factor_scores(data)
    return MetricsReading(scores, data, tuple(notes))


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write `<run_dir>/metrics.json` atomically (a temporary file in the same folder, then
    os.replace: readers see the old file or the new one). Every factor must hold a 1-5 "score":
    what the reader would drop is refused here, so a scored run always reads back whole."""
    scores, notes = factor_scores(metrics)
    unscored = [f for f in FACTORS if f not in scores]
    if unscored:
        raise ValueError(f"{METRICS_FILE} needs a score from 1 to 5 for every factor: "
                         + ("; ".join(notes) or f"none for {', '.join(unscored)}"))
    return write_atomic(Path(run_dir) / METRICS_FILE, metrics)


def stand_in_factors(metrics: Any) -> list[str]:
    """The factors a metrics object scored with weight-free stand-ins instead of CLIP/DINO."""
    if not isinstance(metrics, dict):
        return []
    return [f for f in FACTORS if isinstance(metrics.get(f), dict) and metrics[f].get("method") == PROXY_METHOD]


def nothing_changed(metrics: Any) -> bool:
    """Whether the evaluation found the fine-tuned model drawing what the base drew (trainer.evaluate
    sets preservation's "unchanged"): then preservation 5/5 means training did not take."""
    entry = metrics.get("preservation") if isinstance(metrics, dict) else None
    return isinstance(entry, dict) and entry.get("unchanged") is True

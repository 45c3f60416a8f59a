"""Scores along a run: the files, the choice of the best checkpoint, and when to stop early.

trainer.checkpoint_eval scores each saved checkpoint on the three factors and writes
`checkpoint_scores.json`; the lab, the run log and the advisor read it here. Exporting a
checkpoint writes `kept_checkpoint.json`: which step the user kept, and why. Shapes:

    checkpoint_scores.json  {"checkpoints": [{"step": int, "accuracy": 1-5, "flexibility": 1-5,
                                              "preservation": 1-5, "raw": {factor: {measure: value}},
                                              "grid": "eval/checkpoints/step-000300.png", "seconds": float}, ...],
                             "max_train_steps": int, "encoders": {...}, "prompts": {...}, "seeds": [...],
                             "steps": int (denoising), "base_grid": "eval/checkpoints/base.png"}
    kept_checkpoint.json    {"step": int, "steps_done": int, "max_train_steps": int,
                             "scores": {factor: 1-5}, "weights": {factor: w}, "reason": str,
                             "export_dir": "exports/checkpoint-300", "outputs": [...], "kept_at": float}

`choose_checkpoint` weighs the three scores by the user's own importance of each factor (a
person who cares little for preservation gets a later checkpoint); `early_stop_reason` says
when accuracy has stopped rising while preservation falls (kohya_ss #2701: likeness peaked at
250 steps, then degraded). Stdlib only: the advisor's import path reads these files.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .safe_json import loads as json_loads, write_atomic
from .vocabulary import FACTORS

CHECKPOINT_SCORES_FILE = "checkpoint_scores.json"
KEPT_FILE = "kept_checkpoint.json"
SCORE_CHECKPOINTS = ("off", "after", "during")   # TrainConfig.score_checkpoints
MIN_GAIN = 0.2        # a change of a 1-5 score smaller than this is noise (scores have one decimal,
                      # from a few seeds), neither a rise of accuracy nor a fall of preservation
_EPS = 1e-9           # scores are one-decimal floats: 4.2 + 0.2 must count as 4.4
FACTOR_LABELS = {"accuracy": "accuracy", "flexibility": "flexibility", "preservation": "preservation"}


@dataclass(frozen=True)
class CheckpointScore:
    """One scored checkpoint."""
    step: int
    scores: dict[str, float]                       # factor -> 1-5
    grid: str | None = None                        # sample grid, relative to the run folder
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None                   # what scoring it cost

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, **self.scores, "raw": self.raw, "grid": self.grid, "seconds": self.seconds}


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if 1 <= value <= 5 else None


def parse_checkpoint_scores(data: Any) -> list[CheckpointScore]:
    """The well-formed entries of a checkpoint_scores object, by step (a broken entry is left out)."""
    entries = data.get("checkpoints") if isinstance(data, dict) else None
    found: dict[int, CheckpointScore] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        step = entry.get("step")
        scores = {f: _score(entry.get(f)) for f in FACTORS}
        if isinstance(step, bool) or not isinstance(step, int) or step < 0 or None in scores.values():
            continue
        grid = entry.get("grid") if isinstance(entry.get("grid"), str) else None
        raw = entry.get("raw") if isinstance(entry.get("raw"), dict) else {}
        seconds = entry.get("seconds") if isinstance(entry.get("seconds"), (int, float)) else None
        found[step] = CheckpointScore(step, scores, grid, raw, seconds)
    return [found[s] for s in sorted(found)]


def read_checkpoint_scores(run_dir: str | Path) -> tuple[list[CheckpointScore], dict[str, Any]]:
    """(scored checkpoints by step, the whole file) from a run folder; ([], {}) when there is none
    or it cannot be read."""
    path = Path(run_dir) / CHECKPOINT_SCORES_FILE
    try:
        data = json_loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return [], {}
    return parse_checkpoint_scores(data), data if isinstance(data, dict) else {}


def write_checkpoint_scores(run_dir: str | Path, scores: Sequence[CheckpointScore], info: dict[str, Any]) -> Path:
    """The whole file, atomically: `info` (encoders, prompts, ...) plus the checkpoints by step."""
    data = {**info, "checkpoints": [s.to_dict() for s in sorted(scores, key=lambda s: s.step)]}
    return write_atomic(Path(run_dir) / CHECKPOINT_SCORES_FILE, data)


# --- which checkpoint is best for this user ------------------------------------------------------------
def normalised_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """Factor weights summing to 1 (equal when none, or when they are unusable)."""
    raw = {f: float((weights or {}).get(f, 0) or 0) for f in FACTORS}
    if any(not math.isfinite(v) or v < 0 for v in raw.values()) or sum(raw.values()) <= 0:
        raw = dict.fromkeys(FACTORS, 1.0)
    total = sum(raw.values())
    return {f: v / total for f, v in raw.items()}


@dataclass(frozen=True)
class Choice:
    step: int
    scores: dict[str, float]
    utility: float                 # the weighted mean score, 1-5
    weights: dict[str, float]      # normalised
    reason: str                    # one sentence


def utility(scores: dict[str, float], weights: dict[str, float]) -> float:
    return sum(weights[f] * scores[f] for f in FACTORS)


def _weights_phrase(weights: dict[str, float]) -> str:
    top = max(weights.values())
    if max(weights.values()) - min(weights.values()) < 1e-9:
        return "all three factors weighed equally"
    first = [f for f in FACTORS if weights[f] == top]
    return f"{' and '.join(first)} weighed most, as you asked"


def _scores_phrase(scores: dict[str, float]) -> str:
    return ", ".join(f"{f} {scores[f]:.1f}" for f in FACTORS)


def choose_checkpoint(checkpoints: Sequence[CheckpointScore], weights: dict[str, float] | None) -> Choice | None:
    """The checkpoint with the highest weighted score (ties: the earlier one, less trained), with
    one sentence of why, set against the last checkpoint."""
    if not checkpoints:
        return None
    w = normalised_weights(weights)
    ordered = sorted(checkpoints, key=lambda c: c.step)
    best = max(ordered, key=lambda c: (round(utility(c.scores, w), 6), -c.step))
    last = ordered[-1]
    u = utility(best.scores, w)
    reason = (f"Step {best.step} scores best with {_weights_phrase(w)} ({_scores_phrase(best.scores)}; "
              f"weighted {u:.2f} of 5)")
    if best.step != last.step:
        lost = [f for f in FACTORS if last.scores[f] < best.scores[f] - 1e-9]
        gained = [f for f in FACTORS if last.scores[f] > best.scores[f] + 1e-9]
        later = f"; by the last step, {last.step}, " + (
            " and ".join(f"{f} fell to {last.scores[f]:.1f}" for f in lost) or "no score was higher")
        if gained:
            later += " while " + " and ".join(f"{f} rose only to {last.scores[f]:.1f}" for f in gained)
        reason += later
    elif len(ordered) > 1:
        reason += "; it is the last checkpoint, so training longer may still help"
    return Choice(best.step, dict(best.scores), round(u, 3), w, reason + ".")


# --- when to stop ---------------------------------------------------------------------------------------
def early_stop_reason(checkpoints: Sequence[CheckpointScore], patience: int, min_gain: float = MIN_GAIN) -> str | None:
    """Why to stop now, or None: accuracy has not risen by `min_gain` over its best for the last
    `patience` checkpoints, and preservation is lower now than at that best. `patience` 0: never."""
    if patience < 1:
        return None
    ordered = sorted(checkpoints, key=lambda c: c.step)
    if len(ordered) < patience + 1:
        return None
    best_i = 0
    for i, c in enumerate(ordered):   # the first checkpoint whose accuracy no later one beats by min_gain
        if c.scores["accuracy"] >= ordered[best_i].scores["accuracy"] + min_gain - _EPS:
            best_i = i
    since = len(ordered) - 1 - best_i
    if since < patience:
        return None
    best, now = ordered[best_i], ordered[-1]
    if now.scores["preservation"] > best.scores["preservation"] - min_gain + _EPS:
        return None
    return (f"accuracy has not risen for {since} checkpoint{'s' if since != 1 else ''} since step {best.step} "
            f"({best.scores['accuracy']:.1f}) while preservation fell from {best.scores['preservation']:.1f} to "
            f"{now.scores['preservation']:.1f}")


# --- the kept checkpoint ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeptCheckpoint:
    """Which checkpoint the user kept (exported), read by the run log and the advisor."""
    step: int
    steps_done: int
    max_train_steps: int
    scores: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    export_dir: str = ""
    outputs: list[str] = field(default_factory=list)
    kept_at: float = field(default_factory=time.time)

    @property
    def fraction(self) -> float:
        """Where in the run it peaked: kept step / steps done (0-1]."""
        return self.step / self.steps_done if self.steps_done else 1.0


def write_kept(run_dir: str | Path, kept: KeptCheckpoint) -> Path:
    return write_atomic(Path(run_dir) / KEPT_FILE, asdict(kept))


def parse_kept(data: Any) -> KeptCheckpoint | None:
    if not isinstance(data, dict):
        return None
    ints = [data.get(k) for k in ("step", "steps_done", "max_train_steps")]
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ints) or ints[0] > ints[1] or ints[1] < 1:
        return None
    scores = {f: v for f in FACTORS if (v := _score((data.get("scores") or {}).get(f) if isinstance(
        data.get("scores"), dict) else None)) is not None}
    weights = data.get("weights") if isinstance(data.get("weights"), dict) else {}
    outputs = [o for o in data.get("outputs", []) if isinstance(o, str)] if isinstance(data.get("outputs"), list) else []
    kept_at = data.get("kept_at")
    return KeptCheckpoint(ints[0], ints[1], ints[2], scores,
                          {f: float(v) for f, v in weights.items() if f in FACTORS and isinstance(v, (int, float))},
                          str(data.get("reason", ""))[:1000], str(data.get("export_dir", ""))[:500], outputs,
                          float(kept_at) if isinstance(kept_at, (int, float)) and math.isfinite(kept_at) else 0.0)


def read_kept(run_dir: str | Path) -> KeptCheckpoint | None:
    """The kept checkpoint of a run folder; None when none was kept or the file is unreadable."""
    try:
        return parse_kept(json_loads((Path(run_dir) / KEPT_FILE).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None

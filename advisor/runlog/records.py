"""RunRecord: one run at the boundary of the run log, checked field by field on creation.

Also the flat columns a record is written as (CSV, DataFrame), which a hyperparameter (a
trainer.config.HYPERPARAMETERS name) may not reuse.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from trainer.config import HYPERPARAMETERS
from trainer.vocabulary import FACTORS, METHOD_NAMES

SOURCES = ("run_folder", "csv", "kohya", "manual")

# CSV export/import columns; every other CSV column is a hyperparameter, so these names are
# reserved (a hyperparameter called "status" could not be told apart from the run's status).
CSV_COLUMNS = ("run_id", "name", "source", "method", "base_model", "status",
               "score_accuracy", "score_flexibility", "score_preservation",
               "rating_accuracy", "rating_flexibility", "rating_preservation", "rating_note", "rated_at",
               "started_at", "finished_at", "duration_s", "steps_done", "kept_step", "final_loss", "peak_vram_gb",
               "error", "out_of_memory",
               "run_dir", "output_path", "note", "created_at", "updated_at",
               "profile_json", "config_json", "metrics_json")


class RunRecordError(ValueError):
    """A run record value is wrong; the message names the field."""


@dataclass
class RunRecord:
    run_id: str
    source: str = "manual"                 # one of SOURCES
    name: str | None = None                # what the user recognises: folder or file name
    method: str | None = None              # one of trainer.vocabulary.METHOD_NAMES
    base_model: str | None = None          # sd15 | sd21 | sdxl, or the hub id / path as given
    status: str | None = None              # created | running | completed | failed | ...
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # flat, TrainConfig names
    profile: dict[str, Any] | None = None  # the Profile that led to the run, when known
    config: dict[str, Any] | None = None   # config.json (or the kohya metadata)
    metrics: dict[str, Any] | None = None  # metrics.json as written by trainer.evaluate
    score_accuracy: float | None = None    # automatic scores, 1-5
    score_flexibility: float | None = None
    score_preservation: float | None = None
    rating_accuracy: int | None = None     # the user's rating, 1-5
    rating_flexibility: int | None = None
    rating_preservation: int | None = None
    rating_note: str | None = None
    rated_at: float | None = None          # unix time of the last rating
    started_at: float | None = None        # unix times
    finished_at: float | None = None
    duration_s: float | None = None
    steps_done: int | None = None
    kept_step: int | None = None           # the checkpoint the user kept (trainer.checkpoint_scores.KEPT_FILE)
    final_loss: float | None = None        # mean of the last logged losses (see events.summarise_events)
    peak_vram_gb: float | None = None      # GiB the CUDA allocator held at its highest (trainer.memory)
    error: str | None = None               # the error message of a failed run
    out_of_memory: bool | None = None      # the trainer's flag on a failed run: it ran out of GPU memory
    run_dir: str | None = None
    output_path: str | None = None
    note: str | None = None                # what the import could not read or had to infer
    source_stamp: str | None = None        # sizes/mtimes of the run folder files at ingest
    created_at: float | None = None        # set by the log
    updated_at: float | None = None

    def __post_init__(self) -> None:
        _validate_record(self)

    @property
    def scores(self) -> dict[str, float | None]:
        return {f: getattr(self, f"score_{f}") for f in FACTORS}

    @property
    def rating(self) -> dict[str, Any]:
        return {**{f: getattr(self, f"rating_{f}") for f in FACTORS}, "note": self.rating_note}

    def summary(self) -> dict[str, Any]:
        """The `runs list --json` object for this run."""
        return {
            "id": self.run_id, "name": self.name, "source": self.source, "method": self.method,
            "base_model": self.base_model, "status": self.status or "unknown",
            "hyperparameters": dict(self.hyperparameters), "scores": self.scores,
            "rating": self.rating, "rated_at": self.rated_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "duration_s": self.duration_s,
            "steps_done": self.steps_done, "kept_step": self.kept_step, "final_loss": self.final_loss,
            "peak_vram_gb": self.peak_vram_gb,
            "error": self.error, "out_of_memory": self.out_of_memory,
            "run_dir": self.run_dir, "output_path": self.output_path, "note": self.note,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


_STR_FIELDS = ("name", "base_model", "status", "rating_note", "error", "run_dir", "output_path",
               "note", "source_stamp")
_FLOAT_FIELDS = ("rated_at", "started_at", "finished_at", "duration_s", "final_loss", "peak_vram_gb",
                 "created_at", "updated_at")
_DICT_FIELDS = ("profile", "config", "metrics")


def finite_number(v: Any) -> float | None:
    """v as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def check_rating(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
        raise RunRecordError(f"{name}={v!r}; must be a whole number from 1 to 5")


def kept_step_problem(kept_step: Any, steps_done: Any = None) -> str | None:
    """Why `kept_step` cannot be the kept checkpoint's step of a run that did `steps_done` steps,
    or None: it must be a whole number >= 0, and not above steps_done where that is known. A
    reader that meets a bad one (a run folder, a CSV cell) drops it with this as its note.

    A RunRecord checks only the first: the log merges a run's columns from several sources
    (a later import may bring the kept step, an earlier one the steps), and a merged row must
    always read back; the learner leaves out a run whose kept step is past its steps."""
    if kept_step is None:
        return None
    if isinstance(kept_step, bool) or not isinstance(kept_step, int) or kept_step < 0:
        return f"kept_step={kept_step!r}; must be a whole number >= 0"
    if isinstance(steps_done, int) and not isinstance(steps_done, bool) and kept_step > steps_done:
        return f"kept_step={kept_step!r}; must not be above steps_done ({steps_done})"
    return None


def _validate_record(r: RunRecord) -> None:
    if not isinstance(r.run_id, str) or not r.run_id.strip() or r.run_id != r.run_id.strip():
        raise RunRecordError(f"run_id={r.run_id!r}; must be non-empty text without surrounding spaces")
    if r.source not in SOURCES:
        raise RunRecordError(f"source={r.source!r}; pick one of {list(SOURCES)}")
    if r.method is not None and r.method not in METHOD_NAMES:
        raise RunRecordError(f"method={r.method!r}; pick one of {list(METHOD_NAMES)}")
    for name in _STR_FIELDS:
        v = getattr(r, name)
        if v is not None and not isinstance(v, str):
            raise RunRecordError(f"{name}={v!r}; must be text")
    if r.out_of_memory is not None and not isinstance(r.out_of_memory, bool):
        raise RunRecordError(f"out_of_memory={r.out_of_memory!r}; must be true, false or null")
    for name in _FLOAT_FIELDS:
        v = getattr(r, name)
        if v is not None and finite_number(v) is None:
            raise RunRecordError(f"{name}={v!r}; must be a finite number")
    for f in FACTORS:
        s = getattr(r, f"score_{f}")
        if s is not None and (finite_number(s) is None or not 1 <= s <= 5):
            raise RunRecordError(f"score_{f}={s!r}; must be a number from 1 to 5")
        if getattr(r, f"rating_{f}") is not None:
            check_rating(f"rating_{f}", getattr(r, f"rating_{f}"))
    if r.steps_done is not None and (isinstance(r.steps_done, bool) or not isinstance(r.steps_done, int)
                                     or r.steps_done < 0):
        raise RunRecordError(f"steps_done={r.steps_done!r}; must be a whole number >= 0")
    problem = kept_step_problem(r.kept_step)
    if problem:
        raise RunRecordError(problem)
    _validate_json_fields(r)


def _validate_json_fields(r: RunRecord) -> None:
    if not isinstance(r.hyperparameters, dict) or not all(isinstance(k, str) for k in r.hyperparameters):
        raise RunRecordError("hyperparameters must be an object of name (text) -> value")
    clash = sorted(set(r.hyperparameters) & set(CSV_COLUMNS))
    if clash:
        raise RunRecordError(f"hyperparameters use reserved name(s) {clash}")
    for name in ("hyperparameters", *_DICT_FIELDS):
        v = getattr(r, name)
        if v is not None and name != "hyperparameters" and not isinstance(v, dict):
            raise RunRecordError(f"{name} must be a JSON object or null")
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise RunRecordError(f"{name} is not JSON-serialisable: {e}") from None


def check_hyperparameters(hp: dict[str, Any]) -> None:
    """For imports (CSV rows, LoRA files): a number no run can have is refused with its row or
    file: infinite or NaN values, and learning rates outside (0, 1] (TrainConfig's own bound),
    which would swamp the learner's features."""
    for key, value in hp.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key}={value!r} is not a finite number")
        if key in ("learning_rate", "text_encoder_lr") and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and not 0 < value <= 1:
            raise ValueError(f"{key}={value!r} is outside (0, 1]; typical values are 1e-6 to 1e-3")


def json_blob(value: dict | None) -> str | None:
    """How a JSON field is stored (database column, CSV cell): {} and None both mean unknown."""
    return json.dumps(value, sort_keys=True) if value else None


def normalised_profile(data: Any) -> dict[str, Any]:
    """A Profile dict checked and filled in by advisor.profile; ProfileError if it is not one."""
    from ..profile import Profile

    return Profile.from_dict(data).to_dict()


def hyperparameters_from_config(config: dict | None) -> dict[str, Any]:
    """The flat hyperparameters (trainer.config.HYPERPARAMETERS) of a TrainConfig dict; nulls left out."""
    if not config:
        return {}
    return {k: config[k] for k in HYPERPARAMETERS if k in config and config[k] is not None}

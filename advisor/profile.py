"""The Profile: what the interview learned about the user's goal and costs.

The JSON shape is a contract (see shared/design.md). Unknown values are `None`, never
guessed silently: `with_defaults` fills them and reports each filled slot as assumed.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainer.vocabulary import ALL_WEIGHT_METHODS, BASE_MODELS, FACTORS, METHOD_NAMES

SUBJECT_TYPES = ("person", "animal", "object", "style", "concept", "general")

# Sensible defaults used when the user does not know or skips. Each is a value a newcomer
# on a mid-range card would plausibly have; they are always reported as assumed. The time budget
# has none: a limit the user never gave must not shorten or reject a plan (None = no limit).
DEFAULTS: dict[str, Any] = {
    "subject_type": "object",
    "n_images": 10,
    "captions": False,
    "accuracy": 3,
    "flexibility": 3,
    "preservation": 3,
    "vram_gb": 12.0,
    "n_runs": 3,
    "base_model": "sd15",
}
# The base model when none is named depends on the card (`default_value`): from this much memory
# on, SDXL. diffusers' README_sdxl trains an SDXL LoRA in under 16 GB (gradient checkpointing,
# 8-bit Adam) and kohya_ss puts the floor at 12 GB (shared/research/models-2026.md); at 16 GB and
# more it fits with room, and SDXL is the base 2026's subject and style LoRAs (and the community
# checkpoints: Pony, Illustrious, NoobAI) are trained on. Below, SD 1.5: it fits and steps are
# about five times faster (advisor.recommendation.costs, the T4 figures). A method that trains every
# weight, asked for by name, moves the line up: an SDXL full fine-tune is about 24.5 GB here and
# kohya documents 24 GB, so SDXL only from 32 GB.
SDXL_FROM_GB = 16.0
SDXL_ALL_WEIGHTS_FROM_GB = 32.0


def default_value(slot: str, data: dict[str, Any]) -> Any:
    """The default of `slot` for a profile whose other values are `data` (filled in DEFAULTS order)."""
    if slot == "base_model":
        vram = data.get("vram_gb")
        line = SDXL_ALL_WEIGHTS_FROM_GB if data.get("preferred_method") in ALL_WEIGHT_METHODS else SDXL_FROM_GB
        return "sdxl" if vram is not None and vram >= line else DEFAULTS["base_model"]
    return DEFAULTS[slot]

# Plausible bounds; values outside are rejected with a message (not clamped).
BOUNDS: dict[str, tuple[float, float]] = {
    "n_images": (1, 100_000),
    "vram_gb": (2, 640),
    "time_budget_min": (1, 60 * 24 * 30),
    "n_runs": (1, 100),
    "max_output_mb": (0.01, 100_000),
    "n_subjects": (1, 50),
}

# Training settings a user may name ("rank 32", "learning rate 5e-5"): TrainConfig field -> the
# plausible range. The plan uses them where the method has the knob, or the card says why not.
SETTING_BOUNDS: dict[str, tuple[float, float]] = {
    "rank": (1, 256),
    "lora_alpha": (0.1, 512),
    "learning_rate": (1e-8, 1e-2),
    "max_train_steps": (10, 200_000),
    "train_batch_size": (1, 64),
    "resolution": (256, 2048),
}
WHOLE_SETTINGS = ("rank", "max_train_steps", "train_batch_size", "resolution")
SWITCH_SETTINGS = ("prior_preservation", "train_text_encoder", "conv_lora")   # on/off: true or false
SETTING_LABELS = {"rank": "rank", "lora_alpha": "LoRA alpha", "learning_rate": "learning rate",
                  "max_train_steps": "steps", "train_batch_size": "batch size", "resolution": "resolution",
                  "prior_preservation": "prior preservation", "train_text_encoder": "text encoder training",
                  "conv_lora": "LoCon (LoRA on the UNet's convolutions too)"}


def setting_value(name: str, value: float | bool) -> str:
    """A named setting's value as the user reads it: '32', '5e-05', 'off'."""
    return ("on" if value else "off") if name in SWITCH_SETTINGS else f"{value:g}"


class ProfileError(ValueError):
    """A profile value is wrong; the message names the slot."""


@dataclass
class Profile:
    goal: str | None = None                 # free text: what the user wants to make
    subject_type: str | None = None         # one of SUBJECT_TYPES
    class_noun: str | None = None           # "dog", "woman", "sneaker": the DreamBooth class
    n_images: int | None = None             # training images the user has
    captions: bool | None = None            # are the images captioned?
    accuracy: int | None = None             # 1-5: how exactly the subject must be replicated
    flexibility: int | None = None          # 1-5: how far from the training images it must go
    preservation: int | None = None         # 1-5: how much of the base model must stay intact
    vram_gb: float | None = None            # GPU memory in GB
    gpu_name: str | None = None             # the card, when the user named one
    time_budget_min: float | None = None    # GPU minutes for one run; None: no limit
    n_runs: int | None = None               # how many runs the user will iterate
    base_model: str | None = None           # a key of trainer.vocabulary.BASE_MODELS
    max_output_mb: float | None = None      # size cap of the output file (sharing), optional
    preferred_method: str | None = None     # a method the user asked for by name (METHOD_NAMES); never assumed
    rent_gpu: bool | None = None            # the user will rent a card and asks which: none of theirs to fit
    n_subjects: int | None = None           # subjects in the set when several ("3 characters, 25 each")
    dream_prompts: list[str] = field(default_factory=list)  # the user's own target prompts
    settings: dict[str, float] = field(default_factory=dict)  # settings named by the user (SETTING_BOUNDS)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        if not isinstance(data, dict):
            raise ProfileError(f"a profile must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"unknown profile key(s) {unknown}; known keys: {sorted(known)}")
        clean = dict(data)
        if clean.get("dream_prompts") is None:
            clean["dream_prompts"] = []
        if clean.get("settings") is None:
            clean["settings"] = {}
        return cls(**clean)

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        path = Path(path)
        if not path.is_file():
            raise ProfileError(f"profile file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProfileError(f"profile file {str(path)!r} is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def missing(self) -> list[str]:
        """Slots still unknown (None), in interview order."""
        return [name for name in DEFAULTS if getattr(self, name) is None]

    def with_defaults(self, **fixed: Any) -> tuple["Profile", list[str]]:
        """A copy with every unknown slot filled by its default (or by `fixed`'s value for it), and
        the names filled."""
        data = self.to_dict()
        assumed = []
        for name in DEFAULTS:
            if data[name] is None:
                data[name] = fixed[name] if name in fixed else default_value(name, data)
                assumed.append(name)
        return Profile.from_dict(data), assumed


def validate(p: Profile) -> None:
    """Raise ProfileError naming the first bad slot."""
    if p.goal is not None and not isinstance(p.goal, str):
        raise ProfileError(f"goal must be text, got {type(p.goal).__name__}")
    if p.subject_type is not None and p.subject_type not in SUBJECT_TYPES:
        raise ProfileError(f"subject_type={p.subject_type!r}; pick one of {list(SUBJECT_TYPES)}")
    if p.preferred_method is not None and p.preferred_method not in METHOD_NAMES:
        raise ProfileError(f"preferred_method={p.preferred_method!r}; pick one of {list(METHOD_NAMES)} or null")
    if p.base_model is not None and p.base_model not in BASE_MODELS:
        raise ProfileError(f"base_model={p.base_model!r}; pick one of {list(BASE_MODELS)}")
    for name in FACTORS:
        v = getattr(p, name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
            raise ProfileError(f"{name}={v!r}; must be a whole number from 1 to 5")
    for name in ("captions", "rent_gpu"):
        v = getattr(p, name)
        if v is not None and not isinstance(v, bool):
            raise ProfileError(f"{name}={v!r}; must be true or false")
    for name, (lo, hi) in BOUNDS.items():
        v = getattr(p, name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ProfileError(f"{name}={v!r}; must be a number")
        if name in ("n_images", "n_runs", "n_subjects") and not float(v).is_integer():
            raise ProfileError(f"{name}={v!r}; must be a whole number")
        if not lo <= v <= hi:
            raise ProfileError(f"{name}={v!r} is out of range; expected {lo:g} to {hi:g}")
    for name in ("class_noun", "gpu_name"):
        v = getattr(p, name)
        if v is not None and not isinstance(v, str):
            raise ProfileError(f"{name} must be text, got {type(v).__name__}")
    if not isinstance(p.dream_prompts, list) or not all(isinstance(s, str) for s in p.dream_prompts):
        raise ProfileError("dream_prompts must be a list of strings")
    if not isinstance(p.settings, dict):
        raise ProfileError(f"settings must be an object of setting -> number, got {type(p.settings).__name__}")
    for name, v in p.settings.items():
        problem = setting_problem(name, v)
        if problem:
            raise ProfileError(problem)


def setting_problem(name: str, value: object) -> str | None:
    """Why `value` cannot be the named setting `name`, or None when it can."""
    if name in SWITCH_SETTINGS:
        return None if isinstance(value, bool) else f"settings: {name}={value!r}; must be true or false"
    if name not in SETTING_BOUNDS:
        return f"settings: {name!r} is not a setting the advisor takes; known: {list(SETTING_LABELS)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"settings: {name}={value!r}; must be a number"
    if name in WHOLE_SETTINGS and not float(value).is_integer():
        return f"settings: {name}={value!r}; must be a whole number"
    lo, hi = SETTING_BOUNDS[name]
    if not lo <= value <= hi:
        return f"settings: {name}={value:g} is out of range; expected {lo:g} to {hi:g}"
    if name == "resolution" and value % 8:
        return f"settings: resolution={value:g}; must be a multiple of 8"
    return None

"""What a user's settings may ask of this server: upper bounds on sizes and counts, and folders
checked against the user's own upload folder and the allowed data roots.

The trainer's `TrainConfig` checks that a config makes sense (a headless user on their own GPU
may train at 4096 px); this is the shared server's policy on top, checked before a job is
queued. Every refusal is one line that names the field, its value and the limit.
"""
from __future__ import annotations

import os
from pathlib import Path

from trainer.config import TrainConfig
from trainer.tiny import BUILTIN_MODELS

from .uploads import allowed_location

# field: the largest value the lab accepts (each well above what any published recipe uses)
LIMITS: dict[str, int] = {
    "resolution": 2048,                  # SDXL trains at 1024; 2048 is already 4x the pixels
    "train_batch_size": 64,
    "gradient_accumulation_steps": 256,
    "max_train_steps": 100_000,
    "lr_warmup_steps": 100_000,
    "num_class_images": 1_000,           # each is a full image generation before training starts
    "num_validation_images": 8,
    "validation_inference_steps": 150,
    "rank": 512,
    "num_vectors": 64,
    "checkpoints_total_limit": 20,
    "seed": 2**32 - 1,
}
MAX_VALIDATION_PROMPTS = 8
MAX_PROMPT_CHARS = 1_000
_TEXT_FIELDS = ("instance_prompt", "class_prompt", "placeholder_token", "initializer_token", "base_model")


def limit_problem(cfg: TrainConfig) -> str | None:
    """The first setting over the lab's bounds, as one line; None when all are within them."""
    for name, top in LIMITS.items():
        value = getattr(cfg, name)
        if value > top:
            return f"{name}={value} is over this server's limit of {top}"
    if cfg.seed < 0:
        return f"seed={cfg.seed}; must be an integer >= 0"
    if len(cfg.validation_prompts) > MAX_VALIDATION_PROMPTS:
        return (f"validation_prompts has {len(cfg.validation_prompts)} prompts; this server samples at most "
                f"{MAX_VALIDATION_PROMPTS}")
    for name in _TEXT_FIELDS:
        if len(getattr(cfg, name)) > MAX_PROMPT_CHARS:
            return f"{name} is {len(getattr(cfg, name))} characters; the limit is {MAX_PROMPT_CHARS}"
    for prompt in cfg.validation_prompts:
        if len(prompt) > MAX_PROMPT_CHARS:
            return f"a validation prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}"
    return None


def path_problem(cfg: TrainConfig, own: str | Path) -> str | None:
    """Whether the config's folders are the user's to use: `data_dir` and `class_data_dir` inside
    `own` (their upload folder) or an allowed data root outside the app's folders; a local
    `base_model` folder inside a data root. None when they are; else one line."""
    try:
        if cfg.data_dir.strip():
            allowed_location(cfg.data_dir, own=own, what="data_dir")
        if cfg.class_data_dir.strip():
            allowed_location(cfg.class_data_dir, own=own, what="class_data_dir")
        if _local_folder(cfg.base_model):
            allowed_location(cfg.base_model, own=own, what="base_model")
    except ValueError as e:
        return str(e)
    return None


def _local_folder(base_model: str) -> bool:
    """Whether `base_model` names a folder on this machine rather than a hub id or the tiny model."""
    text = base_model.strip()
    if text in BUILTIN_MODELS:
        return False
    return os.path.isabs(text) or text.startswith((".", "~")) or Path(text).expanduser().exists()


def settings_problem(cfg: TrainConfig, own: str | Path) -> str | None:
    """`limit_problem`, then `path_problem`: why the lab will not queue `cfg` for this user."""
    return limit_problem(cfg) or path_problem(cfg, own)

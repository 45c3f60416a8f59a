"""One validated config object for one training run.

`TrainConfig` is the single source of every setting a run uses. It is saved as
`config.json` in the run folder and reloads to an identical object. Bad values raise
`ValueError` naming the field and the allowed values; nothing is silently rewritten.

This module must stay import-light (stdlib only): the advisor imports it to build a
ready-to-run config without pulling in torch.
"""
from __future__ import annotations

import ast
import json
import math
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from . import safe_json
from .checkpoint_scores import SCORE_CHECKPOINTS
from .vocabulary import (ADAPTER_KINDS, ADAPTERS, ALL_WEIGHT_METHODS, CLASS_IMAGE_METHODS, FAMILY_NAMES,
                         METHOD_FACTS, METHOD_NAMES, QUANTIZE_BASE)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
CROP_MODES = ("center", "random", "bucket")
TINY_MODEL = "tiny"  # the built-in tiny random model (tests, demos, CPU)


class ConfigError(ValueError):
    """A config value is wrong; the message names the field."""


@dataclass
class TrainConfig:
    # --- what to train -------------------------------------------------------------
    base_model: str = TINY_MODEL          # hub id, local diffusers folder, or "tiny"
    family: str = "auto"                  # the model family (FAMILY_NAMES); "auto" = read from the model's files
    method: str = "lora"                  # a key of trainer.vocabulary.METHOD_FACTS
    data_dir: str = ""                    # folder of training images (+ .txt captions)
    instance_prompt: str = "a photo of sks dog"  # prompt for every instance image without a caption
    class_prompt: str = ""                # prompt for class images (prior preservation)
    output_dir: str = "runs/run"          # the run folder: config.json, events.jsonl, ...
    # --- optimisation --------------------------------------------------------------
    max_train_steps: int = 400            # optimizer steps (diffusers counting)
    learning_rate: float = 1e-4           # UNet / adapter / embedding learning rate
    text_encoder_lr: float | None = None  # only when train_text_encoder; None = learning_rate
    train_batch_size: int = 1             # images per micro-batch
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    lr_scheduler: str = "constant"        # one of LR_SCHEDULERS
    lr_warmup_steps: int = 0              # linear warm-up steps
    max_grad_norm: float = 1.0            # gradient clipping
    adam_weight_decay: float = 1e-2       # AdamW weight decay
    use_8bit_adam: bool = False           # bitsandbytes AdamW8bit (CUDA only, opt-in)
    use_adafactor: bool = False           # Adafactor (transformers): factored state, about none per weight
    snr_gamma: float | None = None        # min-SNR weighting gamma (5.0 is usual); None = off
    noise_offset: float = 0.0             # noise offset (0.05-0.1 helps dark/bright images)
    seed: int = 42                        # everything random derives from this
    # --- images ----------------------------------------------------------------------
    resolution: int = 512                 # training side length in pixels
    crop: str = "center"                  # one of CROP_MODES
    random_flip: bool = False             # horizontal flip augmentation
    skip_bad_images: bool = False         # skip unreadable files instead of stopping
    # --- method knobs --------------------------------------------------------------
    rank: int = 4                         # LoRA rank (lora, dreambooth_lora)
    lora_alpha: float | None = None       # LoRA alpha; None = rank (diffusers convention)
    conv_lora: bool = False               # LoRA on the UNet's ResNet convolutions too (kohya's LoCon,
                                          # ai-toolkit's conv rank): room to draw a new shape
    adapter: str = "lora"                 # the adapter kind (ADAPTER_KINDS): lora, dora, loha, lokr
    train_text_encoder: bool = False      # also train the text encoder
    prior_preservation: bool = False      # DreamBooth prior-preservation loss
    class_data_dir: str = ""              # class images; generated here when too few
    num_class_images: int = 100           # class images wanted for prior preservation
    prior_loss_weight: float = 1.0        # weight of the prior loss (lambda)
    placeholder_token: str = "<sks>"      # textual inversion: the new token
    initializer_token: str = "dog"        # textual inversion: word the embedding starts from
    num_vectors: int = 1                  # textual inversion: vectors per token
    use_ema: bool = False                 # full fine-tune: keep an EMA copy of the UNet
    # --- speed and memory ------------------------------------------------------------
    mixed_precision: str = "no"           # "no" (fp32, safe default), "fp16", "bf16"
    gradient_checkpointing: bool = False  # trade ~20% speed for activation memory
    cache_latents: bool = False           # encode images once (VAE frozen)
    quantize_base: str = "no"             # the frozen denoiser's weights: "no", "int8" (torchao), "nf4" (CUDA)
    cache_text_encoder_outputs: bool = False  # encode every training prompt once, then hold the text
                                          # encoders on the CPU (T5 and CLIP off the GPU while steps run)
    # --- monitoring ----------------------------------------------------------------
    validation_prompts: list[str] = field(default_factory=list)  # sampled every validation_steps
    validation_steps: int = 100           # 0 = only at the end
    num_validation_images: int = 1        # images per validation prompt (fixed seeds)
    validation_inference_steps: int = 25  # denoising steps for samples
    checkpointing_steps: int = 200        # 0 = only at the end
    checkpoints_total_limit: int = 2      # keep the newest N checkpoints
    evaluate_after_training: bool = False  # score the run (metrics.json) when it completes
    score_checkpoints: str = "off"        # score every checkpoint: "off", "after" the run, "during" it
    early_stop_patience: int = 0          # stop when accuracy has not risen for N scored checkpoints
                                          # and preservation fell (needs "during"); 0 = never

    def __post_init__(self) -> None:
        _check_types(self)
        _check_choice("method", self.method, METHOD_NAMES)
        _check_choice("family", self.family, ("auto", *FAMILY_NAMES))
        _check_choice("adapter", self.adapter, ADAPTER_KINDS)
        _check_choice("quantize_base", self.quantize_base, QUANTIZE_BASE)
        _check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _check_choice("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        _check_choice("crop", self.crop, CROP_MODES)
        _check_choice("score_checkpoints", self.score_checkpoints, SCORE_CHECKPOINTS)
        if not self.base_model.strip():
            raise ConfigError("base_model is empty; give a hub id, a local diffusers folder or 'tiny'")
        if not self.output_dir.strip():
            raise ConfigError("output_dir is empty; give the run folder to write")
        for name in ("max_train_steps", "train_batch_size", "gradient_accumulation_steps", "rank",
                     "num_vectors", "num_validation_images", "validation_inference_steps"):
            _check_min(name, getattr(self, name), 1)
        for name in ("lr_warmup_steps", "validation_steps", "checkpointing_steps",
                     "num_class_images", "checkpoints_total_limit", "early_stop_patience"):
            _check_min(name, getattr(self, name), 0)
        _check_positive_float("learning_rate", self.learning_rate)
        if self.text_encoder_lr is not None:
            _check_positive_float("text_encoder_lr", self.text_encoder_lr)
        if self.learning_rate > 1.0:
            raise ConfigError(f"learning_rate={self.learning_rate} is above 1.0; typical values are 1e-6 to 1e-3")
        if self.resolution < 8 or self.resolution % 8:
            raise ConfigError(f"resolution={self.resolution}; must be a multiple of 8 and at least 8")
        for name in ("max_grad_norm", "prior_loss_weight", "noise_offset", "adam_weight_decay"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{name}={v}; must be a finite number >= 0")
        if self.snr_gamma is not None:
            _check_positive_float("snr_gamma", self.snr_gamma)
        if self.lora_alpha is not None:
            _check_positive_float("lora_alpha", self.lora_alpha)
        if self.prior_preservation:
            if self.method not in CLASS_IMAGE_METHODS:
                raise ConfigError(f"prior_preservation=True needs method {' or '.join(map(repr, CLASS_IMAGE_METHODS))}, "
                                  f"not {self.method!r}")
            if not self.class_prompt.strip():
                raise ConfigError("prior_preservation=True needs class_prompt (e.g. 'a photo of a dog')")
            if self.num_class_images < 1:
                raise ConfigError("prior_preservation=True needs num_class_images >= 1")
        if self.method == "textual_inversion":
            if not self.placeholder_token.strip() or " " in self.placeholder_token:
                raise ConfigError(f"placeholder_token={self.placeholder_token!r}; must be one word, e.g. '<sks>'")
            if not self.initializer_token.strip() or " " in self.initializer_token.strip():
                raise ConfigError(f"initializer_token={self.initializer_token!r}; must be one existing word")
        if self.train_text_encoder and METHOD_FACTS[self.method].family == "embedding":
            raise ConfigError(f"train_text_encoder=True does not apply to {self.method} "
                              "(only the new embedding trains)")
        if self.conv_lora and not METHOD_FACTS[self.method].adapter:
            raise ConfigError(f"conv_lora=True applies to {' and '.join(ADAPTERS)}, not {self.method!r}")
        if self.adapter != "lora" and not METHOD_FACTS[self.method].adapter:
            raise ConfigError(f"adapter={self.adapter!r} applies to {' and '.join(ADAPTERS)}, not {self.method!r}")
        if self.quantize_base != "no" and not METHOD_FACTS[self.method].adapter:
            raise ConfigError(f"quantize_base={self.quantize_base!r} applies to {' and '.join(ADAPTERS)} (the frozen "
                              f"weights are quantized); {self.method} trains them")
        if self.use_ema and self.method not in ALL_WEIGHT_METHODS:
            raise ConfigError(f"use_ema=True applies to {' and '.join(ALL_WEIGHT_METHODS)}, not {self.method!r}")
        if self.use_8bit_adam and self.use_adafactor:
            raise ConfigError("use_8bit_adam=True and use_adafactor=True conflict: pick one optimizer")
        if self.cache_text_encoder_outputs and (self.train_text_encoder or METHOD_FACTS[self.method].family == "embedding"):
            raise ConfigError(f"cache_text_encoder_outputs=True needs frozen text encoders; "
                              f"{'train_text_encoder=True' if self.train_text_encoder else self.method} trains them")
        if self.cache_latents and self.random_flip:
            raise ConfigError("cache_latents=True and random_flip=True conflict: cached latents cannot be flipped")
        if self.score_checkpoints != "off" and self.checkpoints_total_limit:
            raise ConfigError(f"score_checkpoints={self.score_checkpoints!r} keeps every checkpoint so the best one "
                              f"can be exported; set checkpoints_total_limit=0 (now {self.checkpoints_total_limit})")
        if self.early_stop_patience and self.score_checkpoints != "during":
            raise ConfigError(f"early_stop_patience={self.early_stop_patience} needs score_checkpoints='during' "
                              "(it stops on the scores of the checkpoints saved so far)")
        if not all(isinstance(p, str) for p in self.validation_prompts):
            raise ConfigError("validation_prompts must be a list of strings")

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON/TOML object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            else:
                data = safe_json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {str(path)!r} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}") from None
        return cls.from_dict(data)

    def with_overrides(self, overrides: list[str]) -> "TrainConfig":
        """Apply `key=value` overrides (values parsed as Python literals, else as strings)."""
        data = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not key=value")
            key, raw = item.split("=", 1)
            key = key.strip()
            if key not in data:
                raise ConfigError(f"unknown config key {key!r} in override {item!r}")
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw
            data[key] = value
        return TrainConfig.from_dict(data)


# --- the fields by kind -------------------------------------------------------------
# What a run is about and what it keeps: its model, data, prompts, folders, samples and
# checkpoints. Every other field is a hyperparameter: how the run trains. The run log, the
# advisor and the learner read the hyperparameters by these names.
RUN_FIELDS = ("base_model", "family", "method", "data_dir", "instance_prompt", "class_prompt", "output_dir", "skip_bad_images",
              "class_data_dir", "placeholder_token", "initializer_token", "validation_prompts", "validation_steps",
              "num_validation_images", "validation_inference_steps", "checkpointing_steps",
              "checkpoints_total_limit", "evaluate_after_training", "score_checkpoints", "early_stop_patience")
HYPERPARAMETERS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if f.name not in RUN_FIELDS)
DEFAULTS: dict[str, Any] = {f.name: f.default if f.default is not MISSING else f.default_factory()
                            for f in fields(TrainConfig)}
if set(RUN_FIELDS) - set(DEFAULTS):  # a renamed field must not silently become a hyperparameter
    raise ImportError(f"RUN_FIELDS names no field {sorted(set(RUN_FIELDS) - set(DEFAULTS))}")


# --- small validation helpers (pure functions) ---------------------------------------
def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r}; pick one of {list(allowed)}")


def _check_min(name: str, value: int, lo: int) -> None:
    if value < lo:
        raise ConfigError(f"{name}={value}; must be an integer >= {lo}")


def _check_positive_float(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value}; must be a finite number > 0")


_HINTS: dict[str, Any] | None = None


def _check_types(cfg: TrainConfig) -> None:
    """Reject wrong JSON types by field (ints may stand for floats, never the reverse)."""
    global _HINTS
    if _HINTS is None:
        _HINTS = get_type_hints(TrainConfig)
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        hint = str(_HINTS[f.name])
        optional = "None" in hint
        if value is None:
            if optional:
                continue
            raise ConfigError(f"{f.name} is null; it needs a value")
        if "list" in hint:
            ok = isinstance(value, list)
        elif "bool" in hint:
            ok = isinstance(value, bool)
        elif "float" in hint:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                setattr(cfg, f.name, float(value))
        elif "int" in hint:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            kind = hint.replace("typing.", "").replace("<class '", "").replace("'>", "")
            raise ConfigError(f"{f.name}={value!r} has type {type(value).__name__}; expected {kind}")

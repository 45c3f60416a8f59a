"""The interface every model family implements, its registry, and what a loaded model is.

A family is how one kind of pipeline trains: which parts it loads, how a prompt becomes the
denoiser's conditioning, how a clean latent becomes the noisy input and the target, how the
denoiser is called, which of its layers an adapter targets, and which pipeline samples it.
The training loop (trainer.loop) calls these hooks and never branches on the family's name, as
it never branches on the method's. One file per kind of denoiser beside this one: unet.py
(SD 1.x/2.x, SDXL: noise or v prediction on a DDPM schedule) and flow.py (SD 3.5, Flux.1,
Flux.2 klein, Z-Image, Qwen-Image: rectified flow on a transformer). Importing `trainer.families`
registers them all.

The family of a folder is read from its own files (model_index.json's pipeline class), never
from its name. Heavy imports stay inside functions so importing this module is cheap.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..vocabulary import FAMILY_METHODS, FAMILY_NAMES

FAMILIES: dict[str, "Family"] = {}
PICKLE_ENV = "FTA_ALLOW_PICKLE"   # "1": also load .bin / .ckpt weights (pickle can run code)
_LIBRARIES = ("diffusers", "transformers")   # the only libraries a model_index.json may name


class ModelError(ValueError):
    """The base model cannot be found or is not a pipeline of a family this trainer trains."""


def weights_kw() -> dict[str, Any]:
    """Model weights load from .safetensors only, unless the user opts in to pickle files."""
    return {} if os.environ.get(PICKLE_ENV, "").strip() in ("1", "true", "yes") else {"use_safetensors": True}


def dtype_kw(dtype) -> dict[str, Any]:
    """from_pretrained's dtype argument under its name in this diffusers: `dtype` where
    diffusers resolves it (newer releases deprecate `torch_dtype`), else `torch_dtype`
    (transformers 5 takes `dtype` too)."""
    if dtype is None:
        return {}
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}


def register_family(cls):
    """Class decorator: add one instance of a Family subclass to FAMILIES under its `name`."""
    if cls.name in FAMILIES:
        raise KeyError(f"family {cls.name!r} registered twice")
    FAMILIES[cls.name] = cls()
    return cls


class Noised(NamedTuple):
    """One step's training input: the noisy latents, the timesteps the denoiser is told, and
    what it should predict."""
    inputs: Any
    timesteps: Any
    target: Any


@dataclass
class Components:
    """The parts of one pipeline that training touches.

    `denoiser` is the UNet or the transformer (`family.denoiser` is its folder name);
    `text_encoders`/`tokenizers` are in the pipeline's order (text_encoder, text_encoder_2, ...).
    `noise_scheduler` is the training schedule (DDPM, or the flow-matching schedule as loaded);
    `inference_scheduler` is the folder's own scheduler class (samples, class images).
    """
    family: "Family"
    source: Path
    denoiser: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    noise_scheduler: Any
    inference_scheduler: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clip_encoders(self) -> list[Any]:
        """The CLIP text encoders (the leading ones): what LoRA's text-encoder option and
        textual inversion train; T5 and other large encoders stay frozen."""
        return self.text_encoders[:self.family.clip_encoders]

    @property
    def text_device(self):
        """Where the text encoders are, so where prompts are tokenized: the denoiser's device, except
        while cached text outputs are made before the denoiser is placed (trainer.loop)."""
        return next(self.text_encoders[0].parameters()).device

    def modules(self) -> dict[str, Any]:
        """Name -> torch module, names as in the pipeline folder."""
        named = {self.family.denoiser: self.denoiser, "vae": self.vae}
        named.update(zip(text_encoder_names(len(self.text_encoders)), self.text_encoders))
        return named


def text_encoder_names(count: int) -> list[str]:
    return ["text_encoder" if i == 0 else f"text_encoder_{i + 1}" for i in range(count)]


def tokenizer_names(count: int) -> list[str]:
    return ["tokenizer" if i == 0 else f"tokenizer_{i + 1}" for i in range(count)]


def read_model_index(folder: Path) -> dict[str, Any]:
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"base model '{folder}': unreadable model_index.json ({e})") from None
    if not isinstance(index, dict):
        raise ModelError(f"base model '{folder}': model_index.json is not a JSON object")
    return index


def trained_families_text() -> str:
    return ", ".join(f.label for f in FAMILIES.values())


def detect_family(folder: Path) -> "Family":
    """The family of a diffusers folder, from its model_index.json; ModelError naming the
    pipeline and what is trained here when no family claims it."""
    index = read_model_index(folder)
    for family in FAMILIES.values():
        if family.matches(index):
            return family
    name = index.get("_class_name") or "pipeline"
    raise ModelError(f"base model '{folder}' is a {name}; this trainer trains {trained_families_text()}")


def part_class(index: dict[str, Any], name: str, folder: Path):
    """The class model_index.json names for part `name`, from diffusers or transformers only."""
    import importlib

    entry = index.get(name)
    if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in _LIBRARIES and isinstance(entry[1], str)):
        raise ModelError(f"base model '{folder}': model_index.json names no {_LIBRARIES} class for '{name}'")
    cls = getattr(importlib.import_module(entry[0]), entry[1], None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelError(f"base model '{folder}': {entry[0]} has no class {entry[1]!r} (for '{name}')")
    return cls


def _quantized_part(index: dict[str, Any], name: str, folder: Path, quantize: str, wkw: dict[str, Any]):
    """The denoiser with its linear layers quantized on load, through diffusers' own quantizers:
    int8 weight-only by torchao (runs on the CPU too), NF4 by bitsandbytes (CUDA) with bf16
    compute, as the Flux QLoRA post loads it. The other layers load in `wkw`'s dtype, fp32 when it
    names none (the loop casts them)."""
    import torch

    if quantize == "int8":
        from diffusers import TorchAoConfig
        from torchao.quantization import Int8WeightOnlyConfig

        config = TorchAoConfig(Int8WeightOnlyConfig())
    else:
        from diffusers import BitsAndBytesConfig

        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    wkw = {**dtype_kw(torch.float32), **wkw}
    return part_class(index, name, folder).from_pretrained(folder, subfolder=name, quantization_config=config, **wkw)


class Family:
    """Base class of the model families; subclasses set the facts and implement the hooks."""

    name = ""                      # TrainConfig.family, trainer.vocabulary.FAMILY_NAMES
    label = ""                     # in messages: "SD 1.x / 2.x"
    pipeline_class = ""            # the diffusers pipeline that samples it
    denoiser = "unet"              # the denoiser's folder (and keyword) in the pipeline
    text_encoder_count = 1         # text encoders the pipeline has
    clip_encoders = 1              # of them, the leading CLIP ones (LoRA's text option, textual inversion)
    lora_targets: tuple[str, ...] = ()       # the denoiser's layers LoRA adapts (peft target_modules)
    conv_targets: tuple[str, ...] = ()       # conv_lora's extra layers (UNet ResNet convolutions)
    vae_fp32_under_fp16 = False    # keep the VAE in fp32 when frozen weights are fp16 (it overflows)
    lora_keys_to_diffusers = True  # LoRA file: diffusers' key names (UNet) or PEFT's as they are (transformers)
    single_file = False            # a full fine-tune is also written as one original-layout file (trainer.single_file)
    vae_frames = False             # the VAE is a video VAE: images go in as one-frame clips (Qwen-Image)
    comfy_lycoris_prefix = ""      # LoHa / LoKr copy in ComfyUI's names for the family ("" = none; kohya's: kohya_version)
    pipeline_extras: dict[str, Any] = {}     # constructor arguments besides the parts (safety checker off)
    negative_prompt: str | None = None       # what its model card samples with besides the prompt (None: nothing)

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this trainer runs on the family (trainer.vocabulary.FAMILY_METHODS)."""
        return FAMILY_METHODS[self.name]

    # --- what a folder is ------------------------------------------------------------------------
    def matches(self, index: dict[str, Any]) -> bool:
        """Whether a model_index.json describes this family's pipeline."""
        return index.get("_class_name") == self.pipeline_class

    def check(self, config) -> None:
        """ConfigError when `config` asks for something this family cannot do (before any weight loads)."""
        from ..config import ConfigError

        if config.method not in self.methods:
            raise ConfigError(f"method {config.method!r} is not trained on {self.label} here; "
                              f"pick one of {list(self.methods)}")
        if config.conv_lora and not self.conv_targets:
            raise ConfigError(f"conv_lora=True adapts a UNet's convolutions; {self.label} has none to adapt")

    def warnings(self, config) -> list[str]:
        """Settings this family ignores, said once in the run's events."""
        return []

    # --- loading -----------------------------------------------------------------------------------
    def load(self, folder: Path, quantize: str = "no", *, frozen_dtype=None,
             as_saved: tuple[str, ...] = ()) -> Components:
        """Every part training needs from a local diffusers folder, each with the class the folder's
        model_index.json names; the denoiser's linear layers quantized as `quantize` says
        (trainer.vocabulary.QUANTIZE_BASE). Weights load as the libraries load them (fp32 for
        diffusers' parts), except that with `frozen_dtype` every part not named in `as_saved` (those
        whose own weights train) loads straight in it: the loop casts frozen weights to that dtype
        anyway, and loading them in it halves the host memory a large model passes through (Flux.1's
        transformer and T5: 67 GB in fp32, 33 GB in bf16). A VAE the family keeps in fp32 under fp16
        stays as saved."""
        import diffusers
        import torch

        index = read_model_index(folder)
        kw = {"local_files_only": True}
        wkw = {**kw, **weights_kw()}
        missing = [n for n in (self.denoiser, "vae", "scheduler", *text_encoder_names(self.text_encoder_count),
                               *tokenizer_names(self.text_encoder_count)) if n not in index]
        if missing:
            raise ModelError(f"base model '{folder}' is a {self.label} pipeline without {missing}")
        keep = set(as_saved) | ({"vae"} if self.vae_fp32_under_fp16 and frozen_dtype == torch.float16 else set())

        def weights(name: str) -> dict[str, Any]:
            return {**wkw, **(dtype_kw(frozen_dtype) if name not in keep else {})}

        def part(name: str, with_weights: bool = True):
            return part_class(index, name, folder).from_pretrained(folder, subfolder=name,
                                                                   **(weights(name) if with_weights else kw))

        denoiser = (part(self.denoiser) if quantize == "no"
                    else _quantized_part(index, self.denoiser, folder, quantize, weights(self.denoiser)))
        vae = part("vae")
        text_encoders = [part(n) for n in text_encoder_names(self.text_encoder_count)]
        tokenizers = [part(n, with_weights=False) for n in tokenizer_names(self.text_encoder_count)]
        sched_cls = getattr(diffusers, json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
                            .get("_class_name", ""), None)
        inference_scheduler = (sched_cls or self.default_scheduler()).from_pretrained(folder, subfolder="scheduler", **kw)
        noise_scheduler = self.training_scheduler().from_pretrained(folder, subfolder="scheduler", **kw)
        for module in [denoiser, vae, *text_encoders]:
            module.requires_grad_(False)
        return Components(family=self, source=folder, denoiser=denoiser, vae=vae, text_encoders=text_encoders,
                          tokenizers=tokenizers, noise_scheduler=noise_scheduler,
                          inference_scheduler=inference_scheduler)

    def training_scheduler(self):
        """The scheduler class training draws timesteps and noise levels from."""
        raise NotImplementedError

    def default_scheduler(self):
        """The sampling scheduler when the folder names an unknown one."""
        return self.training_scheduler()

    # --- one training step -------------------------------------------------------------------------
    def model_latents(self, c: Components, latents):
        """The VAE's latents as the denoiser takes them: shifted and scaled by the VAE's config (SD3's
        and Flux's VAEs are shifted too)."""
        config = c.vae.config
        return (latents - (config.get("shift_factor") or 0.0)) * config.get("scaling_factor", 1.0)

    def vae_scale_factor(self, vae) -> int:
        """How many pixels one latent spans, per side (8 for the released models)."""
        return 2 ** (len(vae.config.block_out_channels) - 1)

    def lora_modules(self, denoiser) -> list[str]:
        """peft target_modules for a LoRA on `denoiser` (the family's `lora_targets`)."""
        return list(self.lora_targets)

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """(prompt_embeds, pooled or None) as the family's pipeline builds them; `text_encoders`
        overrides `c.text_encoders` (accelerate-wrapped when they train)."""
        raise NotImplementedError

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        """The arguments of a call of the family's pipeline `pipe` that stand for `prompts` and for
        what its sampling guides against (the negative prompt, where it samples with guidance), from
        the pipeline's own encode_prompt on its text encoders' device: samples drawn with them are the
        samples `prompt=` draws (sampling_kwargs included), and need no text encoder on the device."""
        raise NotImplementedError

    def batch_embeds(self, per_prompt: list[Any]):
        """One step's prompt embeddings from one per prompt (as `encode_prompts` gives them, one by
        one): stacked into a batch; Z-Image keeps a list, Qwen-Image pads and masks (their prompt
        states are as long as each prompt)."""
        import torch

        return torch.stack(per_prompt)

    def noised(self, c: Components, latents, noise, generator) -> Noised:
        """The noisy input, its timesteps and the target, drawing from `generator` only."""
        raise NotImplementedError

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size: tuple[int, int]):
        """The denoiser's prediction, shaped like `noised.target`."""
        raise NotImplementedError

    def loss_weights(self, c: Components, timesteps, snr_gamma: float):
        """Per-sample min-SNR weights, or None where the family has no such weighting."""
        return None

    # --- sampling, saving ----------------------------------------------------------------------------
    def pipeline(self, c: Components):
        """An inference pipeline sharing the (possibly training) modules of `c`; nothing is copied."""
        import diffusers

        parts = {**c.modules(), "scheduler": c.inference_scheduler, **self.pipeline_extras}
        parts.update(zip(tokenizer_names(self.text_encoder_count), c.tokenizers))
        pipe = getattr(diffusers, self.pipeline_class)(**parts)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def load_pipeline(self, folder: Path, dtype_kw: dict[str, Any], quantize: str = "no"):
        """The family's pipeline from a diffusers folder (safetensors only unless opted in), the
        denoiser's linear layers quantized as `quantize` says (as Family.load quantizes them)."""
        import diffusers

        parts = {}
        if quantize != "no":
            wkw = {"local_files_only": True, **weights_kw(), **dtype_kw}
            parts[self.denoiser] = _quantized_part(read_model_index(folder), self.denoiser, folder, quantize, wkw)
        pipe = getattr(diffusers, self.pipeline_class).from_pretrained(
            folder, local_files_only=True, **self.pipeline_extras, **dtype_kw, **weights_kw(), **parts)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def sampling_kwargs(self, n_prompts: int) -> dict[str, Any]:
        """What a call of the family's pipeline passes besides the prompts, for `n_prompts` of them:
        the negative prompt its model card samples with (Qwen-Image's true CFG runs only with one)."""
        return {} if self.negative_prompt is None else {"negative_prompt": [self.negative_prompt] * n_prompts}

    def kohya_version(self, c: Components) -> str | None:
        """kohya's ss_base_model_version, or None where we write no kohya-format LoRA copy."""
        return None


def family_of_pipeline(pipe) -> "Family | None":
    """The family whose pipeline class `pipe` is, or None (e.g. the shapes demo model's pipeline)."""
    return next((f for f in FAMILIES.values() if type(pipe).__name__ == f.pipeline_class), None)


def check_registry() -> None:
    """The vocabulary's family names (the config's choices) and the registered families agree."""
    if set(FAMILIES) != set(FAMILY_NAMES):
        raise ImportError(f"trainer.families registers {sorted(FAMILIES)} but trainer.vocabulary lists "
                          f"{sorted(FAMILY_NAMES)}")

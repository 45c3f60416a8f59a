"""Small helpers the training loop shares: seeding, learning-rate schedule, min-SNR weights, VAE
latents (with their caches), setup (accelerator, optimizer, precision). Each takes explicit
arguments (never the whole config), like `diffusers.training_utils.compute_snr`. Checkpoint
folders and their save/load live in trainer.checkpoints.
"""
from __future__ import annotations

import importlib
import math
import random
from typing import Any, Iterable

from .config import ConfigError


# --- randomness ------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device) for code we do not control (e.g. LoRA init)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_generator(seed: int, micro_step: int, process_index: int = 0):
    """A CPU generator for one micro-step, derived from (seed, micro_step, process).

    Noise and timesteps come from here rather than from a global RNG stream, so a resumed run
    draws exactly the numbers the uninterrupted run would have drawn at the same step.
    """
    import torch

    mixed = (seed * 1_000_003 + micro_step * 7_919 + process_index * 104_729) % (2**63 - 1)
    return torch.Generator(device="cpu").manual_seed(mixed)


def epoch_order(n_items: int, epoch: int, seed: int) -> list[int]:
    """The shuffled item order of one epoch: a pure function of (seed, epoch)."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed * 31 + epoch)
    return torch.randperm(n_items, generator=g).tolist()


# --- learning rate ---------------------------------------------------------------------------
def lr_factor(schedule: str, step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based).

    Warm-up is linear from 1/(warmup+1) to 1 over `warmup_steps` for every schedule, so
    `lr_warmup_steps` never goes silently unused; after it, "constant" and
    "constant_with_warmup" stay at 1, "linear" falls to 0, "cosine" follows half a cosine to 0.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule in ("constant", "constant_with_warmup"):
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr_scheduler={schedule!r}; pick one of constant, constant_with_warmup, linear, cosine")


def make_lr_scheduler(optimizer, schedule: str, warmup_steps: int, total_steps: int):
    """A LambdaLR over `lr_factor`; step it once per optimizer step (it checkpoints with the run)."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda s: lr_factor(schedule, s, warmup_steps, total_steps))


# --- loss ------------------------------------------------------------------------------------
def min_snr_weights(noise_scheduler, timesteps, gamma: float, prediction_type: str):
    """Per-sample loss weights of min-SNR-gamma (Hang et al. 2023), as diffusers' examples do.

    epsilon: min(SNR, gamma) / SNR; v_prediction: min(SNR, gamma) / (SNR + 1).
    """
    import torch
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr


# --- latents ---------------------------------------------------------------------------------
def vae_latents(vae, images: list[tuple[Any, Any]], generator, cache: dict[Any, Any] | None, cache_latents: bool,
                frames: bool = False):
    """VAE latents (shifted and scaled as the VAE's config says, fp32) of (key, load_pixels) pairs.

    When preprocessing is deterministic (no random crop, no flip) an image gives the same
    pixels every epoch, so the VAE gives the same posterior: its moments are kept per image
    and a fresh latent is drawn from them each step: what encoding again would draw (same
    diffusers sampling code, same generator; equal up to float rounding), minus the encoder's
    cost. `cache_latents` instead keeps one drawn latent per image (kohya's caching).
    `cache` (None: no caching) lives in CPU memory and is filled in place. `frames`: the VAE is a
    video VAE (Qwen-Image's), which takes (batch, channels, frames, height, width): one frame each.
    """
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    fixed = cache_latents
    todo = [j for j, (key, _) in enumerate(images) if cache is None or key not in cache]
    fresh = {}
    if todo:
        pixels = torch.stack([images[j][1]() for j in todo]).to(vae.device, vae.dtype)
        if frames:
            pixels = pixels.unsqueeze(2)
        with torch.no_grad():
            posterior = vae.encode(pixels).latent_dist
            values = posterior.sample(generator=generator) if fixed else posterior.parameters
        for j, value in zip(todo, values):
            fresh[j] = value
            if cache is not None:
                cache[images[j][0]] = value.cpu()
    stacked = torch.stack([fresh[j] if j in fresh else cache[key].to(vae.device)
                           for j, (key, _) in enumerate(images)])
    latents = stacked if fixed else DiagonalGaussianDistribution(stacked).sample(generator=generator)
    return latents.float()   # as the VAE gives them: the family scales them (Family.model_latents)


# --- setup ----------------------------------------------------------------------------------
def weight_dtype(mixed_precision: str):
    """The dtype frozen weights are held in under `mixed_precision`."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def load_dtype(mixed_precision: str):
    """The dtype frozen weights load in: the one they are held in under mixed precision; None
    without it (as the libraries load them; the loop casts to fp32)."""
    return None if mixed_precision == "no" else weight_dtype(mixed_precision)


def cast_weights(modules: dict[str, Any], device, dtype, fp32_modules: Iterable[str] = ()) -> None:
    """Move every module to `device`: frozen weights to `dtype`, trained ones (requires_grad) to
    fp32, like diffusers' `cast_training_params`. Modules named in `fp32_modules` are held in fp32
    whole (SDXL's VAE under fp16), whatever dtype their weights were saved in. Quantized weights
    (quantize_base) keep their format."""
    import torch

    for name, module in modules.items():
        module.to(device)
        frozen_dtype = torch.float32 if name in fp32_modules else dtype
        for p in module.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.float32)
            elif type(p.data) is torch.Tensor and p.data.is_floating_point():
                p.data = p.data.to(frozen_dtype)
            # else a quantized weight (quantize_base: torchao's Int8Tensor, bitsandbytes' packed NF4) stays as it is


def make_accelerator(mixed_precision: str, gradient_accumulation_steps: int):
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("mixed_precision='fp16' needs a CUDA GPU; use 'bf16' or 'no' on the CPU")
    if mixed_precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ConfigError("mixed_precision='bf16' is not supported by this GPU; use 'fp16'")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision:
        # accelerate keeps one precision per process; a process that runs several trainings
        # (tests, the benchmark) must drop the last run's (the process group is kept)
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps)


def check_quantization_available(kind: str) -> None:
    """quantize_base: int8 needs torchao; NF4 needs bitsandbytes on CUDA. Said before any model loads."""
    import torch

    if kind == "nf4":
        if not torch.cuda.is_available():
            raise ConfigError("quantize_base='nf4' needs a CUDA GPU (bitsandbytes); use 'int8' (torchao) on the CPU")
        try:
            importlib.import_module("bitsandbytes")
        except ImportError:
            raise ConfigError("quantize_base='nf4' needs bitsandbytes: pip install bitsandbytes") from None
    if kind == "int8":
        try:
            importlib.import_module("torchao")
        except ImportError:
            raise ConfigError("quantize_base='int8' needs torchao: pip install torchao") from None


def check_8bit_adam_available() -> None:
    """8-bit Adam needs bitsandbytes on CUDA; say so before any model loads."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("use_8bit_adam=True needs a CUDA GPU (bitsandbytes' 8-bit Adam); set it to False")
    try:
        importlib.import_module("bitsandbytes")  # imported only to prove it loads
    except ImportError:
        raise ConfigError("use_8bit_adam=True needs bitsandbytes: pip install bitsandbytes") from None


def make_optimizer(groups: list[dict[str, Any]], *, lr: float, weight_decay: float, use_8bit_adam: bool,
                   use_adafactor: bool = False):
    import torch

    if use_adafactor:
        # kohya's SDXL full fine-tune settings: a fixed learning rate, no relative step or
        # parameter scaling (transformers' defaults would ignore `lr`)
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, weight_decay=weight_decay, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    if use_8bit_adam:
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, lr=lr, weight_decay=weight_decay)
    # fused: one kernel for all parameters instead of a loop over them (about 3x faster steps
    # of the optimizer itself, on the CPU as on CUDA); same arithmetic as the default AdamW
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)


def format_seconds(seconds: float) -> str:
    """12s, 3m05s, 1h02m: short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"

"""Small helpers the training loop shares: seeding, learning-rate schedule, min-SNR weights,
setup (accelerator, optimizer, precision), checkpoint folders and their save/load. Each takes
explicit arguments (never the whole config), like `diffusers.training_utils.compute_snr`.
"""
from __future__ import annotations

import json
import math
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import ConfigError

CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


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


# --- checkpoints -----------------------------------------------------------------------------
def checkpoint_dirs(checkpoints_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `checkpoints_dir` as (step, path), oldest first.

    A checkpoint counts once its `meta.json` exists: it is written last, so a folder from a
    save that was killed halfway is never picked up by `--resume latest`.
    """
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _CHECKPOINT_RE.match(path.name)
        if m and path.is_dir() and (path / "meta.json").is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(checkpoints_dir)
    return found[-1][1] if found else None


def checkpoint_path(checkpoints_dir: str | Path, step: int) -> Path:
    return Path(checkpoints_dir) / f"{CHECKPOINT_PREFIX}{step}"


def prune_checkpoints(checkpoints_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints (keep=0 keeps all); return what was removed."""
    if keep <= 0:
        return []
    found = checkpoint_dirs(checkpoints_dir)
    removed = [path for _, path in found[:-keep]]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def check_run_folder(run_dir: str | Path, resume: str | None) -> None:
    """Refuse to start over a run that has checkpoints or outputs, unless resuming it."""
    run_dir = Path(run_dir)
    if resume:
        return
    if checkpoint_dirs(run_dir / "checkpoints") or (run_dir / "output").is_dir():
        raise ConfigError(f"output_dir '{run_dir}' already holds a run with checkpoints or outputs; "
                          "continue it with --resume latest or pick a new output_dir")


def register_trainable_checkpointing(accelerator, trained_parameters: Callable[[], Iterable[tuple[str, Any]]],
                                     objects: list[Any]) -> None:
    """Make `accelerator.save_state` checkpoint only the trained weights (`trainable.safetensors`)
    plus optimizer, grad scaler, RNG and `objects` (lr schedule, EMA): the frozen base reloads
    from the base model, so a LoRA checkpoint is megabytes, not the whole UNet."""
    from accelerate.utils import DistributedType
    from safetensors.torch import load_file, save_file

    accelerator.register_for_checkpointing(*objects)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return  # DeepSpeed saves its engines (and sharded optimizer) itself

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            state = {k: p.detach().contiguous().cpu() for k, p in trained_parameters()}
            save_file(state, str(Path(output_dir) / "trainable.safetensors"))
        weights.clear()

    def load_hook(models, input_dir):
        models.clear()
        state = load_file(str(Path(input_dir) / "trainable.safetensors"))
        for key, p in trained_parameters():
            if key not in state or state[key].shape != p.shape:
                raise ConfigError(f"checkpoint '{input_dir}' does not match this config at {key}; "
                                  "was it made with another method, rank or model?")
            p.data.copy_(state[key].to(p.device, p.dtype))

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def save_checkpoint(accelerator, checkpoints_dir: str | Path, step: int, meta: dict[str, Any], keep: int) -> Path:
    """`accelerator.save_state` into checkpoint-<step>, atomically; prune to the newest `keep`.

    Saved under a temporary name, `meta.json` written last, then one rename: a checkpoint
    that was killed half-way is never the one `--resume latest` picks.
    """
    root = Path(checkpoints_dir)
    final = checkpoint_path(root, step)
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "t": time.time()}) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        prune_checkpoints(root, keep)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | Path, method: str) -> int:
    """Restore a checkpoint folder made by `save_checkpoint`; return its step."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"resume: '{path}' is not a complete checkpoint folder (no meta.json)") from None
    if meta.get("method") != method:
        raise ConfigError(f"resume: checkpoint '{path}' was made by method {meta.get('method')!r}, not {method!r}")
    accelerator.load_state(str(path))
    return int(meta["step"])


# --- setup ----------------------------------------------------------------------------------
def weight_dtype(mixed_precision: str):
    """The dtype frozen weights are held in under `mixed_precision`."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


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


def check_8bit_adam_available() -> None:
    """8-bit Adam needs bitsandbytes on CUDA; say so before any model loads."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("use_8bit_adam=True needs a CUDA GPU (bitsandbytes' 8-bit Adam); set it to False")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("use_8bit_adam=True needs bitsandbytes: pip install bitsandbytes") from None


def make_optimizer(groups: list[dict[str, Any]], *, lr: float, weight_decay: float, use_8bit_adam: bool):
    import torch

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

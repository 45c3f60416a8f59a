"""Checkpoint folders of a run: where they live, which are complete, saving, loading, rotation and
what `--resume` points at.

A checkpoint is `checkpoints/checkpoint-<step>/`: accelerate's state (optimizer, grad scaler,
RNG, lr schedule, EMA) plus `trainable.safetensors` with only the weights that train, and a
`meta.json` written last. Each helper takes explicit arguments (never the whole config).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import ConfigError

CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


# --- folders ---------------------------------------------------------------------------------
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


def resume_path(checkpoints_dir: str | Path, resume: str) -> Path | None:
    """The folder `resume` names: "latest" is the newest complete checkpoint (None if there is none)."""
    return latest_checkpoint(checkpoints_dir) if resume == "latest" else Path(resume)


# --- what a checkpoint holds -------------------------------------------------------------------
def trained_parameters(modules: dict[str, Any], trained: Iterable[str]):
    """(name, parameter) of every weight that trains in the `trained` modules: exactly what a
    checkpoint holds."""
    for name in trained:
        for pname, p in modules[name].named_parameters():
            if p.requires_grad:
                yield f"{name}.{pname}", p


def register_trainable_checkpointing(accelerator, named_trained: Callable[[], Iterable[tuple[str, Any]]],
                                     objects: list[Any]) -> None:
    """Make `accelerator.save_state` checkpoint only the weights `named_trained()` yields
    (`trainable.safetensors`) plus optimizer, grad scaler, RNG and `objects` (lr schedule, EMA):
    the frozen base reloads from the base model, so a LoRA checkpoint is megabytes, not the UNet."""
    from accelerate.utils import DistributedType
    from safetensors.torch import load_file, save_file

    accelerator.register_for_checkpointing(*objects)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return  # DeepSpeed saves its engines (and sharded optimizer) itself

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            state = {k: p.detach().contiguous().cpu() for k, p in named_trained()}
            save_file(state, str(Path(output_dir) / "trainable.safetensors"))
        weights.clear()

    def load_hook(models, input_dir):
        models.clear()
        state = load_file(str(Path(input_dir) / "trainable.safetensors"))
        for key, p in named_trained():
            if key not in state or state[key].shape != p.shape:
                raise ConfigError(f"checkpoint '{input_dir}' does not match this config at {key}; "
                                  "was it made with another method, rank or model?")
            p.data.copy_(state[key].to(p.device, p.dtype))

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


# --- save and load -----------------------------------------------------------------------------
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

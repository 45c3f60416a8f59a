"""Checkpoint folders of a run: where they live, which are complete, saving, loading, rotation and
what `--resume` points at.

A checkpoint is `checkpoints/checkpoint-<step>/`: `trainable.safetensors` with only the weights
that train (the frozen base reloads from the base model, so a LoRA checkpoint is megabytes),
`training_state.safetensors` + `.json` (optimizer, lr schedule, EMA, grad scaler), one
`rng_<process>.safetensors` + `.json` per process, and a `meta.json` written last. Nothing is
pickled, and a checkpoint folder holding a pickle file is refused on resume: a planted or
downloaded checkpoint cannot run code (accelerate's own `save_state` would pickle the
registered objects and load them with `weights_only=False`). Under DeepSpeed the engine saves
the weights and the sharded optimizer itself. Each helper takes explicit arguments (never the
whole config).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import ConfigError
from .state_files import load_tree, rng_state, save_tree, set_rng_state

CHECKPOINT_PREFIX = "checkpoint-"
TRAINABLE_FILE = "trainable.safetensors"
STATE_NAME = "training_state"
RNG_NAME = "rng"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt")
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


@dataclass
class CheckpointParts:
    """What a checkpoint saves and restores besides its meta.json."""
    named_trained: Callable[[], Iterable[tuple[str, Any]]]  # (name, parameter) of every weight that trains
    optimizer: Any                                          # the (accelerate-wrapped) optimizer
    objects: list[Any] = field(default_factory=list)        # lr schedule, EMA: state_dict/load_state_dict


def _deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def _write_state(accelerator, parts: CheckpointParts, folder: Path) -> None:
    """The trained weights, optimizer, lr schedule, EMA, grad scaler and RNG as safetensors + JSON.
    Under DeepSpeed its engine has already saved the weights and (sharded) optimizer."""
    from safetensors.torch import save_file

    deepspeed = _deepspeed(accelerator)
    if accelerator.is_main_process:
        if not deepspeed:
            state = {k: p.detach().contiguous().cpu() for k, p in parts.named_trained()}
            save_file(state, str(folder / TRAINABLE_FILE))
        scaler = getattr(accelerator, "scaler", None)
        save_tree({"optimizer": None if deepspeed else parts.optimizer.state_dict(),
                   "objects": [o.state_dict() for o in parts.objects],
                   "scaler": scaler.state_dict() if scaler is not None else None,
                   "accelerator_step": accelerator.step}, folder, STATE_NAME)
    save_tree(rng_state(), folder, f"{RNG_NAME}_{accelerator.process_index}")


def _read_state(accelerator, parts: CheckpointParts, folder: Path) -> None:
    from safetensors.torch import load_file

    if not _deepspeed(accelerator):
        weights = load_file(str(folder / TRAINABLE_FILE))
        for key, p in parts.named_trained():
            if key not in weights or weights[key].shape != p.shape:
                raise ConfigError(f"checkpoint '{folder}' does not match this config at {key}; "
                                  "was it made with another method, rank or model?")
            p.data.copy_(weights[key].to(p.device, p.dtype))
    state = load_tree(folder, STATE_NAME)
    if state["optimizer"] is not None:
        parts.optimizer.load_state_dict(state["optimizer"])
    if len(state["objects"]) != len(parts.objects):
        raise ConfigError(f"checkpoint '{folder}' holds {len(state['objects'])} extra state(s), this run has "
                          f"{len(parts.objects)} (EMA on in one and off in the other?)")
    for obj, saved in zip(parts.objects, state["objects"]):
        obj.load_state_dict(saved)
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    accelerator.step = int(state["accelerator_step"])
    rng = folder / f"{RNG_NAME}_{accelerator.process_index}.json"
    if rng.is_file():  # another process count: keep this process's fresh generators
        set_rng_state(load_tree(folder, rng.name.removesuffix(".json")))


def load_trained_weights(parts: CheckpointParts, folder: str | Path) -> int:
    """Put a checkpoint's trained weights, and the method's own state (an EMA), into models set up
    as the run set them up, without an optimizer or accelerator: scoring and exporting a
    checkpoint. `parts.objects` are the method's checkpoint objects only (the lr schedule, always
    first in a checkpoint, is skipped). Returns the checkpoint's step; pickle files are refused."""
    from safetensors.torch import load_file

    folder = Path(folder)
    unsafe = pickle_files(folder) if folder.is_dir() else []
    if unsafe:
        raise ConfigError(f"checkpoint '{folder}' holds pickle files ({', '.join(unsafe)}), which can run code "
                          "when loaded; only safetensors and JSON checkpoints are read")
    try:
        meta = json.loads((folder / "meta.json").read_text())
        weights = load_file(str(folder / TRAINABLE_FILE))
    except (OSError, ValueError):
        raise ConfigError(f"'{folder}' is not a complete checkpoint folder of this trainer") from None
    for key, p in parts.named_trained():
        if key not in weights or weights[key].shape != p.shape:
            raise ConfigError(f"checkpoint '{folder}' does not match this config at {key}; "
                              "was it made with another method, rank or model?")
        p.data.copy_(weights[key].to(p.device, p.dtype))
    if parts.objects:
        saved = load_tree(folder, STATE_NAME)["objects"][1:]
        if len(saved) != len(parts.objects):
            raise ConfigError(f"checkpoint '{folder}' holds {len(saved)} method state(s), this run has "
                              f"{len(parts.objects)} (EMA on in one and off in the other?)")
        for obj, state in zip(parts.objects, saved):
            obj.load_state_dict(state)
    return int(meta["step"])


def pickle_files(folder: str | Path) -> list[str]:
    """Names of files in `folder` that only a pickle loader reads (and so could run code)."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)


# --- save and load -----------------------------------------------------------------------------
def save_checkpoint(accelerator, parts: CheckpointParts, checkpoints_dir: str | Path, step: int,
                    meta: dict[str, Any], keep: int) -> Path:
    """The run's state into checkpoint-<step> as safetensors + JSON, atomically; prune to the
    newest `keep`.

    Saved under a temporary name, `meta.json` written last, then one rename: a checkpoint
    that was killed half-way is never the one `--resume latest` picks.
    """
    root = Path(checkpoints_dir)
    final = checkpoint_path(root, step)
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if _deepspeed(accelerator):
        accelerator.save_state(str(tmp))  # the engine's own files; accelerate adds an RNG pickle
        if accelerator.is_main_process:
            for name in pickle_files(tmp):
                (tmp / name).unlink()
    _write_state(accelerator, parts, tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "t": time.time()}) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        prune_checkpoints(root, keep)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, parts: CheckpointParts, path: str | Path, method: str) -> int:
    """Restore a checkpoint folder made by `save_checkpoint`; return its step. A folder with a
    pickle file in it (an older checkpoint, or a planted one) is refused before anything loads."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"resume: '{path}' is not a complete checkpoint folder (no meta.json)") from None
    if meta.get("method") != method:
        raise ConfigError(f"resume: checkpoint '{path}' was made by method {meta.get('method')!r}, not {method!r}")
    unsafe = pickle_files(path)
    if unsafe:
        raise ConfigError(f"resume: checkpoint '{path}' holds pickle files ({', '.join(unsafe)}), which can run "
                          "code when loaded; only safetensors and JSON checkpoints are resumed (start the run again)")
    if not (path / f"{STATE_NAME}.json").is_file():
        raise ConfigError(f"resume: checkpoint '{path}' has no {STATE_NAME}.json; it was not made by this trainer")
    if _deepspeed(accelerator):
        accelerator.load_state(str(path))
    _read_state(accelerator, parts, path)
    return int(meta["step"])

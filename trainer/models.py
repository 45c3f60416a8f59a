"""Loading a base model into its parts, with diffusers' and transformers' own classes.

A base model is a built-in tiny model (trainer.tiny.TINY_MODELS: "tiny", "tiny-sdxl", "tiny-flux", ...), the
pretrained shapes demo model ("shapes-demo"), a local diffusers folder, a single-file
`.safetensors` checkpoint (trainer.single_file: read once into a diffusers folder), or a hub id (resolved
through the local cache; downloaded only when the hub is online). What a folder holds and how
it trains is its family's business (trainer.families), read from its model_index.json. Heavy
imports stay inside functions so importing this module is cheap.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .families.base import Components, ModelError, dtype_kw

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_base_model(base_model: str, cache_root: str | Path | None = None) -> Path:
    """The local diffusers folder behind `base_model`; ModelError with a one-line reason if none."""
    from .tiny import DEMO_MODEL, resolve_tiny

    if base_model == DEMO_MODEL:
        from .shapes.demo_model import ensure_demo_model

        return ensure_demo_model(cache_root)
    tiny = resolve_tiny(base_model, cache_root)
    if tiny is not None:
        return tiny
    path = Path(base_model).expanduser()
    if path.is_file():
        from .single_file import single_file_folder

        return single_file_folder(path, cache_root, offline=hub_offline())
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"base_model '{base_model}' is a folder without model_index.json; "
                             "give a diffusers pipeline folder")
        return path
    if not _HUB_ID.match(base_model):
        raise ModelError(f"base_model '{base_model}' is neither a local diffusers folder, a .safetensors "
                         "checkpoint file, a hub id like 'org/name', nor 'tiny'")
    from diffusers import DiffusionPipeline

    try:
        return Path(DiffusionPipeline.download(base_model, local_files_only=hub_offline()))
    except Exception as e:  # hub errors come in many classes; the user needs one sentence
        if hub_offline():
            raise ModelError(f"base model '{base_model}' is not in the local cache and the hub is offline") from None
        raise ModelError(f"base model '{base_model}' could not be downloaded: {str(e).splitlines()[0]}") from None


def load_components(folder: Path, family: str = "auto", quantize: str = "no", frozen_dtype=None,
                    as_saved: tuple[str, ...] = ()):
    """Every part training needs, loaded by the folder's family (trainer.families): the one its
    model_index.json names; `family` other than "auto" must agree with it. `quantize`: the
    denoiser's frozen weights (trainer.vocabulary.QUANTIZE_BASE). `frozen_dtype` / `as_saved`:
    Family.load's (the parts that stay frozen straight in the dtype training holds them in)."""
    from .families.base import detect_family

    found = detect_family(folder)
    if family not in ("auto", found.name):
        raise ModelError(f"base model '{folder}' is a {found.label} pipeline ({found.name}), not family={family!r}")
    return found.load(folder, quantize, frozen_dtype=frozen_dtype, as_saved=as_saved)


def make_pipeline(c: Components):
    """An inference pipeline sharing the (possibly training) modules of `c`; nothing is copied."""
    return c.family.pipeline(c)


def load_pipeline(folder: str | Path, torch_dtype=None, quantize: str = "no"):
    """A pipeline from a diffusers folder (a base model or a DreamBooth / full output), for sampling,
    with its family's pipeline class; `quantize`: the denoiser's linear layers (QUANTIZE_BASE). The
    safety checker is left out: samples and class images are for the person training."""
    from .families.base import detect_family

    folder = Path(folder)
    return detect_family(folder).load_pipeline(folder, dtype_kw(torch_dtype), quantize)


def sampling_quantize(quantize_base: str, device: str) -> str:
    """How a run's own sampling pipelines (its comparison images, its scores) load the denoiser: as it
    trained, the QLoRA recipe's inference and the memory the plan was made for (the LoRA file itself
    loads on the full-precision base too); NF4 only on CUDA (bitsandbytes)."""
    return "no" if quantize_base == "nf4" and not str(device).startswith("cuda") else quantize_base


def sampling_kwargs(pipe, n_prompts: int) -> dict[str, Any]:
    """What a call of `pipe` passes besides `n_prompts` prompts, as its family's model card samples
    (Family.sampling_kwargs; nothing for a pipeline of no family here)."""
    from .families.base import family_of_pipeline

    family = family_of_pipeline(pipe)
    return {} if family is None else family.sampling_kwargs(n_prompts)


def inference_dtype(device: str, mixed_precision: str = "no"):
    """The dtype to generate in: fp32 on the CPU (it has no fp16 matrix multiply); on a GPU
    bf16 when the run trained in bf16, else fp16 (what diffusers' scripts sample in)."""
    import torch

    if str(device).startswith("cpu"):
        return torch.float32
    return torch.bfloat16 if mixed_precision == "bf16" else torch.float16


def sampling_dtypes(device: str, mixed_precision: str = "no"):
    """(dtype to load weights in, dtype to sample in). On the CPU weights load as saved and are
    cast after (`place_pipeline`): SD 1.5 then peaks at 1.40x its fp32 size against 1.52x when
    loaded straight into fp32. On a GPU they load straight into the half dtype."""
    dtype = inference_dtype(device, mixed_precision)
    return (None if str(device).startswith("cpu") else dtype), dtype


def with_pipeline(load, use):
    """`use(pipe)` on the pipeline `load()` returns, gone from memory when this returns: no
    caller holds it, so the next pipeline never shares memory with this one."""
    import gc

    import torch

    pipe = load()
    try:
        return use(pipe)
    finally:
        del pipe
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def place_pipeline(pipe, device: str, dtype):
    """Move `pipe` to `device` with every weight in `dtype`. Weights saved in fp16 (most
    published checkpoints) are cast up for the CPU; a pipeline already all in `dtype` only
    moves (a no-op cast makes diffusers warn); quantized weights keep their format. On CUDA, a
    pipeline that does not fit the free memory is offloaded (trainer.memory.pipeline_placement):
    its parts take turns on the GPU (diffusers' model CPU offload), or, when even the largest
    part does not fit alone, go layer by layer (sequential offload: slow, but it draws)."""
    import torch

    from .memory import free_vram_gb, pipeline_placement

    modules = {n: m for n, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
    params = [p for m in modules.values() for p in m.parameters()]
    plain = all(type(p.data) is torch.Tensor for p in params)   # no quantized weights
    parts_gb = {n: sum(p.numel() * (dtype.itemsize if p.is_floating_point() else p.element_size())
                       for p in m.parameters()) / 2**30 for n, m in modules.items()}
    placement = pipeline_placement(parts_gb, free_vram_gb(device))
    target = device if placement == "device" else "cpu"
    if plain and {p.dtype for p in params} == {dtype}:
        pipe.to(target)
    elif plain:
        pipe.to(target, dtype)
    else:
        for module in modules.values():
            module.to(target)
            for p in module.parameters():
                if type(p.data) is torch.Tensor and p.data.is_floating_point() and p.dtype != dtype:
                    p.data = p.data.to(dtype)
    if placement == "offload":
        pipe.enable_model_cpu_offload(device=device)
    elif placement == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    return pipe

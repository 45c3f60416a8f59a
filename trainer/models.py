"""Loading a base model into its parts, with diffusers' and transformers' own classes.

A base model is the built-in tiny model ("tiny", "tiny-sdxl"), the pretrained shapes demo
model ("shapes-demo"), a local diffusers folder, or a
hub id (resolved through the local cache; downloaded only when the hub is online). SD 1.x and
SD 2.x share one code path ("sd"); SDXL ("sdxl") adds a second text encoder and size/crop
conditioning. Heavy imports stay inside functions so importing this module is cheap.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCHS = ("sd", "sdxl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ModelError(ValueError):
    """The base model cannot be found or is not a supported Stable Diffusion pipeline."""


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
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"base_model '{base_model}' is a folder without model_index.json; "
                             "give a diffusers pipeline folder")
        return path
    if not _HUB_ID.match(base_model):
        raise ModelError(f"base_model '{base_model}' is neither a local diffusers folder, "
                         "a hub id like 'org/name', nor 'tiny'")
    from diffusers import DiffusionPipeline

    try:
        return Path(DiffusionPipeline.download(base_model, local_files_only=hub_offline()))
    except Exception as e:  # hub errors come in many classes; the user needs one sentence
        if hub_offline():
            raise ModelError(f"base model '{base_model}' is not in the local cache and the hub is offline") from None
        raise ModelError(f"base model '{base_model}' could not be downloaded: {str(e).splitlines()[0]}") from None


def detect_arch(folder: Path) -> str:
    """"sd" (1.x/2.x) or "sdxl", from model_index.json."""
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"base model '{folder}': unreadable model_index.json ({e})") from None
    name = index.get("_class_name", "")
    parts = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    if not parts <= set(index):
        raise ModelError(f"base model '{folder}' is a {name or 'pipeline'} without "
                         f"{sorted(parts - set(index))}; only Stable Diffusion 1.x, 2.x and SDXL are supported")
    return "sdxl" if "text_encoder_2" in index or "XL" in name else "sd"


@dataclass
class Components:
    """The parts of one Stable Diffusion pipeline that training touches.

    `text_encoders`/`tokenizers` hold one entry for SD 1.x/2.x and two for SDXL, in the
    pipeline's order. `noise_scheduler` is DDPM (training); `inference_scheduler` is the
    folder's own scheduler class (validation samples, class images).
    """
    arch: str
    source: Path
    unet: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    noise_scheduler: Any
    inference_scheduler: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prediction_type(self) -> str:
        return self.noise_scheduler.config.prediction_type

    @property
    def vae_scale(self) -> float:
        return self.vae.config.scaling_factor

    def modules(self) -> dict[str, Any]:
        """Name -> torch module, names as in the pipeline folder."""
        named = {"unet": self.unet, "vae": self.vae}
        for i, te in enumerate(self.text_encoders):
            named["text_encoder" if i == 0 else f"text_encoder_{i + 1}"] = te
        return named


PICKLE_ENV = "FTA_ALLOW_PICKLE"   # "1": also load .bin / .ckpt weights (pickle can run code)


def weights_kw() -> dict[str, Any]:
    """Model weights load from .safetensors only, unless the user opts in to pickle files."""
    return {} if os.environ.get(PICKLE_ENV, "").strip() in ("1", "true", "yes") else {"use_safetensors": True}


def load_components(folder: Path) -> Components:
    """Load every part from a local diffusers folder (fp32; the loop casts frozen parts)."""
    import diffusers
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    arch = detect_arch(folder)
    kw = {"local_files_only": True}
    wkw = {**kw, **weights_kw()}
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **wkw)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **wkw)
    tokenizers = [CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **kw)]
    text_encoders = [CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **wkw)]
    if arch == "sdxl":
        tokenizers.append(CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2", **kw))
        text_encoders.append(CLIPTextModelWithProjection.from_pretrained(folder, subfolder="text_encoder_2", **wkw))
    noise_scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", **kw)
    sched_cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    sched_cls = getattr(diffusers, sched_cfg.get("_class_name", ""), None) or diffusers.DDIMScheduler
    inference_scheduler = sched_cls.from_pretrained(folder, subfolder="scheduler", **kw)
    for module in [unet, vae, *text_encoders]:
        module.requires_grad_(False)
    return Components(arch=arch, source=folder, unet=unet, vae=vae, text_encoders=text_encoders,
                      tokenizers=tokenizers, noise_scheduler=noise_scheduler,
                      inference_scheduler=inference_scheduler)


def tokenize(tokenizer, prompts: list[str]):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def encode_prompts(c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
    """(prompt_embeds, pooled or None) exactly as the SD / SDXL pipelines build them.

    `text_encoders` overrides `c.text_encoders` (the loop passes accelerate-wrapped encoders
    when they train).
    """
    import torch

    encoders = text_encoders or c.text_encoders
    device = c.unet.device
    if c.arch == "sd":
        ids = tokenize(c.tokenizers[0], prompts).to(device)
        return encoders[0](ids)[0], None
    # SDXL: penultimate hidden states of both encoders side by side; pooled from the second.
    hidden, pooled = [], None
    for tokenizer, encoder in zip(c.tokenizers, encoders):
        out = encoder(tokenize(tokenizer, prompts).to(device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]
    return torch.cat(hidden, dim=-1), pooled


def added_conditions(c: Components, pooled, height: int, width: int) -> dict[str, Any] | None:
    """SDXL's extra UNet inputs: pooled text embedding and (original size, crop, target size).

    We train on the prepared image as the original, uncropped, so the ids are (h, w, 0, 0, h, w).
    """
    if c.arch != "sdxl":
        return None
    import torch

    ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=pooled.dtype, device=pooled.device)
    return {"text_embeds": pooled, "time_ids": ids.repeat(pooled.shape[0], 1)}


def make_pipeline(c: Components):
    """An inference pipeline sharing the (possibly training) modules of `c`; nothing is copied."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if c.arch == "sdxl":
        pipe = StableDiffusionXLPipeline(
            vae=c.vae, text_encoder=c.text_encoders[0], text_encoder_2=c.text_encoders[1],
            tokenizer=c.tokenizers[0], tokenizer_2=c.tokenizers[1], unet=c.unet,
            scheduler=c.inference_scheduler)
    else:
        pipe = StableDiffusionPipeline(
            vae=c.vae, text_encoder=c.text_encoders[0], tokenizer=c.tokenizers[0], unet=c.unet,
            scheduler=c.inference_scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(folder: str | Path, torch_dtype=None):
    """A pipeline from a diffusers folder (a base model or a DreamBooth / full output), for sampling.

    The safety checker is left out: samples and class images are for the person training.
    """
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = Path(folder)
    kw = {"local_files_only": True, **_dtype_kw(torch_dtype), **weights_kw()}
    if detect_arch(folder) == "sdxl":
        pipe = StableDiffusionXLPipeline.from_pretrained(folder, **kw)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, feature_extractor=None,
                                                       requires_safety_checker=False, **kw)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _dtype_kw(dtype) -> dict[str, Any]:
    """from_pretrained's dtype argument under its name in this diffusers: `dtype` where
    diffusers resolves it (newer releases deprecate `torch_dtype`), else `torch_dtype`."""
    if dtype is None:
        return {}
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}


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
    moves (a no-op cast makes diffusers warn)."""
    import torch

    dtypes = {p.dtype for module in pipe.components.values() if isinstance(module, torch.nn.Module)
              for p in module.parameters()}
    return pipe.to(device) if dtypes == {dtype} else pipe.to(device, dtype)


def base_model_version(c: Components) -> str:
    """kohya's ss_base_model_version: sd_v1, sd_v2 (1024-dim text encoder) or sdxl_base_v1-0."""
    if c.arch == "sdxl":
        return "sdxl_base_v1-0"
    return "sd_v2" if c.text_encoders[0].config.hidden_size >= 1024 else "sd_v1"

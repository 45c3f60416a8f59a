"""GPU memory: how much a run held, and what to change when it ran out.

The peak is `torch.cuda.max_memory_reserved`: what PyTorch's caching allocator held at its
highest, the part of `nvidia-smi`'s figure that the run controls (the CUDA context, a few
hundred MB more, is outside it). On the CPU there is no such figure and nothing is recorded.

Stdlib only at import: torch (and safetensors) are imported inside the functions that measure,
so the advisor reads a run's peak from its events (`summary_fields`) without them.
"""
from __future__ import annotations

import math
from typing import Any

GIB = 2 ** 30


def peak_vram_gb(device) -> float | None:
    """Peak GiB reserved on `device` since the process started; None off CUDA."""
    import torch

    if getattr(device, "type", str(device).split(":")[0]) != "cuda" or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_reserved(device) / GIB, 2)


def vram_fields(device, key: str) -> dict[str, float]:
    """`{key: peak GiB}` for an event on CUDA, `{}` elsewhere (events carry only what was measured)."""
    peak = peak_vram_gb(device)
    return {} if peak is None else {key: peak}


# What encoding prompts holds beside the encoders' weights (activations of a few prompts, allocator slack)
TEXT_ENCODING_SLACK_GB = 1.0


def text_encoding_device(device, encoders_gb: float, free_gb: float | None) -> str:
    """Where cached text outputs are made: on `device` when the text encoders (`encoders_gb` of
    weights) fit in its `free_gb` with slack, else on the CPU, slower but without running out of
    memory (Z-Image's Qwen3-4B is 8 GB in bf16: its NF4 plans for 8 GB cards encode on the CPU).
    `free_gb` None (off CUDA): `device` itself."""
    if free_gb is None or encoders_gb + TEXT_ENCODING_SLACK_GB <= free_gb:
        return str(device)
    return "cpu"


# What drawing holds beside a pipeline's weights at the sizes people sample at (activations, the VAE
# decode, allocator slack)
SAMPLING_SLACK_GB = 2.0


def pipeline_placement(parts_gb: dict[str, float], free_gb: float | None) -> str:
    """How a sampling pipeline whose parts weigh `parts_gb` goes on a GPU with `free_gb` free:
    "device" (all of it), "offload" (the parts take turns: each fits alone; diffusers' model CPU
    offload, as its Flux docs run it on smaller cards) or "sequential" (layer by layer: the largest
    part alone does not fit, e.g. Flux.1's 23.8 GB bf16 transformer on a 24 GB card). Off CUDA
    (`free_gb` None): "device"."""
    if free_gb is None or sum(parts_gb.values()) + SAMPLING_SLACK_GB <= free_gb:
        return "device"
    return "offload" if max(parts_gb.values(), default=0.0) + SAMPLING_SLACK_GB <= free_gb else "sequential"


def free_vram_gb(device) -> float | None:
    """GiB free on a CUDA `device` now (the driver's count: other processes included); None off CUDA."""
    import torch

    if getattr(device, "type", str(device).split(":")[0]) != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.mem_get_info(device)[0] / GIB


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error (torch.OutOfMemoryError, or an older RuntimeError saying so)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(error, oom) or (isinstance(error, RuntimeError) and "CUDA out of memory" in str(error))


def out_of_memory_message(config, step: int, peak_gb: float | None) -> str:
    """One line for a run that ran out of GPU memory: where, how much it held, and the settings
    that save memory, cheapest first, leaving out those already on (the order of
    advisor.costs.fit_memory; the knowledge cards cite the savings)."""
    where = "while loading or preparing" if step == 0 else f"at step {step}"
    held = f" (it held {peak_gb:.1f} GB)" if peak_gb else ""
    return (f"out of GPU memory {where}{held}; to fit, try in this order: "
            + "; ".join(memory_savings(config)))


def memory_savings(config) -> list[str]:
    """The memory-saving changes not yet made in `config`, cheapest in quality and time first."""
    steps: list[tuple[bool, str]] = [
        (config.mixed_precision == "no", "mixed_precision='fp16' (or 'bf16')"),
        (not config.gradient_checkpointing, "gradient_checkpointing=true (about 20% slower)"),
        (not config.use_8bit_adam and (config.method in ("dreambooth", "full_finetune") or config.train_text_encoder),
         "use_8bit_adam=true (needs bitsandbytes)"),
        (not config.cache_latents, "cache_latents=true"),
        (not config.cache_text_encoder_outputs and not config.train_text_encoder
         and config.method != "textual_inversion", "cache_text_encoder_outputs=true"),
        (config.train_text_encoder, "train_text_encoder=false"),
        (config.train_batch_size > 1, f"train_batch_size=1 with gradient_accumulation_steps="
                                      f"{config.train_batch_size * config.gradient_accumulation_steps}"),
        (config.resolution > 512, f"resolution={_lower_resolution(config.resolution)}"),
    ]
    chosen = [text for wanted, text in steps if wanted]
    return chosen or ["a GPU with more memory (every memory saving is already on)"]


def _lower_resolution(resolution: int) -> int:
    return max(512, (resolution * 3 // 4) // 64 * 64)


def summary_fields(events: list[dict[str, Any]]) -> dict[str, float]:
    """The highest `peak_vram_gb` / `vram_gb` in a run's events (the end's peak, or the steps'
    readings of a run killed before its end), as {"peak_vram_gb": x} or {} when nothing was
    measured (CPU runs); values that are not finite positive numbers are ignored."""
    values = [e.get(k) for e in events for k in ("peak_vram_gb", "vram_gb")]
    peaks = [float(v) for v in values
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0]
    return {"peak_vram_gb": max(peaks)} if peaks else {}


# --- host memory for sampling on the CPU ------------------------------------------------------------
# Measured peaks of scoring on the CPU (benchmarks/real_architecture_cpu.py), one pipeline at a time,
# weights saved in fp16 and cast to fp32: SD 1.5 (3.97 GiB in fp32) 5.7 GiB, SDXL (12.9 GiB) 15.6 GiB.
# fp32 size x 1.25 + 1 GiB (the interpreter, torch and the images) covers both.
LOAD_OVERHEAD = 1.25
BASELINE_GB = 1.0
_WEIGHT_DIRS = ("unet", "text_encoder", "text_encoder_2", "vae", "transformer")


def fp32_weights_gb(folder) -> float:
    """GiB the pipeline in `folder` holds in fp32: its weight files, fp16 ones counted twice."""
    from pathlib import Path

    from safetensors import safe_open

    total = 0.0
    for sub in _WEIGHT_DIRS:
        for path in sorted((Path(folder) / sub).glob("*.safetensors")):
            with safe_open(str(path), "pt") as f:
                keys = list(f.keys())
                half = bool(keys) and f.get_slice(keys[0]).get_dtype() in ("F16", "BF16")
            total += path.stat().st_size * (2 if half else 1)
    return total / GIB


def available_host_gb() -> float | None:
    """MemAvailable from /proc/meminfo in GiB; None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / GIB
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_memory_problem(folder, what: str) -> str | None:
    """One line when sampling the pipeline in `folder` on the CPU would not fit the memory left
    (the kernel would kill the process, the app's own included, without a word); else None."""
    free = available_host_gb()
    if free is None:
        return None
    needed = fp32_weights_gb(folder) * LOAD_OVERHEAD + BASELINE_GB
    if needed <= free:
        return None
    return (f"{what} on the CPU needs about {needed:.0f} GB of memory for this model (fp32) and {free:.0f} GB "
            "are free; run it on a CUDA GPU, or free memory first")


def savings_on(config) -> list[str]:
    """The memory savings a run has on, in words, for its events (what the guides call them)."""
    named = [("gradient_checkpointing", "gradient checkpointing"), ("cache_latents", "cached latents"),
             ("cache_text_encoder_outputs", "cached text-encoder outputs"), ("use_8bit_adam", "8-bit Adam"),
             ("use_adafactor", "Adafactor")]
    savings = [f"{config.mixed_precision} frozen weights"] if config.mixed_precision != "no" else []
    quantized = {"int8": ["int8 base weights (torchao)"], "nf4": ["NF4 base weights (bitsandbytes)"]}
    return savings + quantized.get(config.quantize_base, []) + [words for field, words in named if getattr(config, field)]

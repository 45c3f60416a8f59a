"""Prompt embeddings for training steps: encoded once per distinct prompt while the text
encoders are frozen (every step of a 5-image run repeats the same few prompts), through the
trained (accelerate-wrapped) encoders every time when they train; with cache_text_encoder_outputs,
all of them (and the samples' prompts) before the denoiser is placed, the encoders then away.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator


PromptKey = tuple  # the prompts of one pipeline call, in order (a sample: one; a scoring batch: several)


@dataclass
class CachedText:
    """cache_text_encoder_outputs: what the text encoders made before they left the device."""
    embeddings: dict[str, tuple[Any, Any]]     # training prompt -> (embedding, pooled or None)
    calls: dict[PromptKey, dict[str, Any]]     # a call's prompts -> its arguments (Family.prompt_call_kwargs)


@contextlib.contextmanager
def encoders_on_device(c, device, dtype) -> Iterator[tuple[str, float]]:
    """The text encoders cast to `dtype` and on `device`, or on the CPU when they do not fit its free
    memory (trainer.memory.text_encoding_device), for the block; yields (where they are, their GiB).
    Afterwards they wait on the CPU, their GPU memory released."""
    import torch

    from .families.base import text_encoder_names
    from .memory import free_vram_gb, text_encoding_device
    from .training_utils import cast_weights

    size_gb = sum(p.numel() for te in c.text_encoders for p in te.parameters()) * dtype.itemsize / 2**30
    where = text_encoding_device(device, size_gb, free_vram_gb(device))
    cast_weights(dict(zip(text_encoder_names(len(c.text_encoders)), c.text_encoders)), where, dtype)
    try:
        yield where, size_gb
    finally:
        for te in c.text_encoders:
            te.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def prompt_calls(c, keys, device) -> dict[PromptKey, dict[str, Any]]:
    """Each key's pipeline-call arguments (inside encoders_on_device), on `device`."""
    import torch
    from accelerate.utils import send_to_device

    if not keys:
        return {}
    pipe = c.family.pipeline(c)
    with torch.no_grad():
        return send_to_device({key: c.family.prompt_call_kwargs(pipe, list(key)) for key in dict.fromkeys(keys)},
                              device)


def cache_text_outputs(c, method, accelerator, *, mixed_precision: str, prompts: list[str],
                       call_keys: list[PromptKey], status: Callable[..., None]) -> CachedText:
    """Every prompt a step can ask for, and the prompts of the pipeline calls to come (samples,
    scoring during training) as those calls take them, encoded before the denoiser is placed; then
    the text encoders wait on the CPU. The device never holds them beside the denoiser: the peak the
    advisor's estimate counts (Qwen-Image's 16.6 GB encoder beside an 11 GB NF4 transformer would not
    fit the 24 GB its plan is for). They encode on the CPU when they do not fit the free GPU memory."""
    import torch
    from accelerate.utils import send_to_device

    from .training_utils import weight_dtype

    prompts = sorted({method.training_prompt(p) for p in prompts})
    with encoders_on_device(c, accelerator.device, weight_dtype(mixed_precision)) as (device, size_gb):
        with torch.no_grad():
            embeds, pooled = c.family.encode_prompts(c, prompts)
        calls = prompt_calls(c, call_keys, accelerator.device)
    size = f"{size_gb:.1f} GB" if size_gb >= 1 else f"{size_gb * 1024:.1f} MB"
    where = ("" if device == str(accelerator.device)
             else f" (encoded on the CPU: {size} did not fit the free GPU memory)")
    status("text_cache", f"text-encoder outputs cached for {len(prompts)} prompt(s){where}; the text encoders "
           f"({size}) wait on the CPU", prompts=len(prompts), text_encoders_mb=round(size_gb * 1024, 3), device=device)
    cache = {p: (embeds[j], None if pooled is None else pooled[j]) for j, p in enumerate(prompts)}
    return CachedText(send_to_device(cache, accelerator.device), calls)


class PromptEmbeddings:
    """`embeddings(prompts) -> (embeds, pooled)`; pooled is None where the family has none (SD 1.x/2.x)."""

    def __init__(self, components, method, wrapped: dict[str, Any], cached: dict[str, tuple[Any, Any]] | None = None):
        self.components, self.method, self.wrapped = components, method, wrapped
        self.frozen = not method.trains_text_encoder()
        self.cache: dict[str, tuple[Any, Any]] = dict(cached or {})
        self.sealed = cached is not None   # cache_text_encoder_outputs: every prompt is cached, the encoders are away

    def __call__(self, prompts: list[str]):
        import torch

        c = self.components
        prompts = [self.method.training_prompt(p) for p in prompts]
        if not self.frozen:
            names = [n for n in c.modules() if n.startswith("text_encoder")]
            embeds, pooled = c.family.encode_prompts(c, prompts, [self.wrapped.get(n, c.modules()[n]) for n in names])
            return c.family.batch_embeds(list(embeds)), pooled
        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing and self.sealed:
            raise RuntimeError(f"prompt {missing[0]!r} was not cached before the text encoders left the device")
        if missing:
            with torch.no_grad():
                embeds, pooled = c.family.encode_prompts(c, missing)
            for j, p in enumerate(missing):
                self.cache[p] = (embeds[j], None if pooled is None else pooled[j])
        embeds = c.family.batch_embeds([self.cache[p][0] for p in prompts])
        pooled = None if self.cache[prompts[0]][1] is None else torch.stack([self.cache[p][1] for p in prompts])
        return embeds, pooled

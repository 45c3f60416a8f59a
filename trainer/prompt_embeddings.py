"""Prompt embeddings for training steps: encoded once per distinct prompt while the text
encoders are frozen (every step of a 5-image run repeats the same few prompts), through the
trained (accelerate-wrapped) encoders every time when they train.
"""
from __future__ import annotations

from typing import Any


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

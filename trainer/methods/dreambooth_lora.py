"""DreamBooth-LoRA: DreamBooth's data (one instance prompt with a rare token, optional prior
preservation with class images) trained into LoRA weights instead of the whole UNet.

The weights, saving and loading are LoRA's; what differs is the data, which the loop builds
from the config (`prior_preservation`, `class_prompt`); like DreamBooth it trains every image
with the instance prompt (trainer.vocabulary: uses_captions is False).
"""
from __future__ import annotations

from .registry import register
from .lora import LoRA


@register("dreambooth_lora")
class DreamBoothLoRA(LoRA):
    """LoRA's weights with DreamBooth's data (see the module docstring)."""

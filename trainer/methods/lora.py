"""LoRA: low-rank adapters (peft) on the denoiser's layers its family names (a UNet's attention, and
its convolutions with `conv_lora`; a transformer's attention and feed-forward layers), optionally
on the CLIP text encoder(s).

Follows diffusers' LoRA training docs and scripts: rank `r`, `lora_alpha` = rank unless given,
Gaussian init (B = 0, so training starts from the base model exactly), the family's targets in
the denoiser and q/k/v/out_proj in CLIP. The text encoder gets its own learning rate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .registry import Method, register, trainable_parameters

TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@register("lora")
class LoRA(Method):
    needs_base_for_output = True

    @property
    def alpha(self) -> float:
        return self.config.lora_alpha if self.config.lora_alpha is not None else self.config.rank

    def _lora_config(self, targets: list[str]):
        """The peft config of `config.adapter`: LoRA (DoRA with use_dora) starts from B = 0, LoHa and
        LoKr from their zero factor (peft's init_weights), so every kind starts at the base model."""
        import peft

        cfg = self.config
        if cfg.adapter == "loha":
            return peft.LoHaConfig(r=cfg.rank, alpha=self.alpha, target_modules=targets)
        if cfg.adapter == "lokr":
            return peft.LoKrConfig(r=cfg.rank, alpha=self.alpha, target_modules=targets)
        return peft.LoraConfig(r=cfg.rank, lora_alpha=self.alpha, init_lora_weights="gaussian", target_modules=targets,
                               use_dora=cfg.adapter == "dora")

    def setup(self, components) -> list[dict[str, Any]]:
        cfg = self.config
        # conv_lora: the ResNet blocks' two 3x3 convolutions as well (kohya's LoCon, ai-toolkit's
        # "conv" rank), at the same rank and alpha; the attention layers alone change what goes
        # where, the convolutions how an outline is drawn
        family = components.family
        components.denoiser.add_adapter(self._lora_config(
            family.lora_modules(components.denoiser) + (list(family.conv_targets) if cfg.conv_lora else [])))
        groups = [{"params": trainable_parameters(components.denoiser), "lr": cfg.learning_rate}]
        if cfg.train_text_encoder:
            params = []
            from peft import inject_adapter_in_model

            for te in components.clip_encoders:
                # peft's own injection, not transformers' te.add_adapter: transformers 5.x gates
                # that on a newer peft than diffusers needs, and the weights are the same.
                inject_adapter_in_model(self._lora_config(TEXT_ENCODER_TARGETS), te)
                params += trainable_parameters(te)
            groups.append({"params": params, "lr": cfg.text_encoder_lr or cfg.learning_rate})
        return groups

    def save(self, components, out_dir: Path, info: dict[str, Any]) -> list[Path]:
        from ..export import save_lora, save_lycoris

        te_config = self._lora_config(TEXT_ENCODER_TARGETS) if self.config.train_text_encoder else None
        if self.config.adapter in ("loha", "lokr"):   # diffusers' LoRA loader reads LoRA and DoRA only
            return save_lycoris(components, out_dir, text_encoder_config=te_config, alpha=self.alpha,
                                rank=self.config.rank, info=info)
        return save_lora(components, out_dir, alpha=self.alpha, text_encoder_config=te_config, info=info)

    @classmethod
    def load_for_inference(cls, pipe, out_dir: Path, config):
        from ..export import LORA_WEIGHTS, load_lycoris

        if config.adapter in ("loha", "lokr"):
            return load_lycoris(pipe, out_dir)
        pipe.load_lora_weights(str(out_dir), weight_name=LORA_WEIGHTS)
        return pipe

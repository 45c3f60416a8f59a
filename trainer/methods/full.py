"""Full fine-tune: every weight of the denoiser (UNet or transformer) trains (optionally the CLIP
text encoders), usually on a captioned folder; an EMA copy of the denoiser is optional and, when
on, is what gets saved.

The output is a complete diffusers pipeline folder and, for SD / SDXL, the same model as one
fp16 `<run>.safetensors` file in the original layout (what AUTOMATIC1111, Forge and ComfyUI load).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .registry import Method, register


@register("full_finetune")
class FullFineTune(Method):
    def __init__(self, config):
        super().__init__(config)
        self.ema = None

    def setup(self, components) -> list[dict[str, Any]]:
        cfg = self.config
        components.denoiser.requires_grad_(True)
        groups = [{"params": list(components.denoiser.parameters()), "lr": cfg.learning_rate}]
        if cfg.train_text_encoder:
            params = []
            for te in components.clip_encoders:
                te.requires_grad_(True)
                params += list(te.parameters())
            groups.append({"params": params, "lr": cfg.text_encoder_lr or cfg.learning_rate})
        return groups

    def place(self, components, device) -> None:
        if self.config.use_ema:
            from diffusers.training_utils import EMAModel

            # built after the move so the shadow weights live on the same device as the denoiser
            denoiser = components.denoiser
            self.ema = EMAModel(denoiser.parameters(), model_cls=type(denoiser), model_config=denoiser.config)

    def after_step(self, components) -> None:
        if self.ema is not None:
            self.ema.step(components.denoiser.parameters())

    def checkpoint_objects(self) -> list[Any]:
        return [self.ema] if self.ema is not None else []

    @contextlib.contextmanager
    def inference_weights(self, components):
        if self.ema is None:
            yield
            return
        params = list(components.denoiser.parameters())
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield
        finally:
            self.ema.restore(params)

    def save(self, components, out_dir: Path, info: dict[str, Any]) -> list[Path]:
        from ..export import save_pipeline

        trained = {components.family.denoiser: components.denoiser}
        if self.config.train_text_encoder:
            from ..families.base import text_encoder_names

            modules = components.modules()
            trained.update({k: modules[k] for k in text_encoder_names(components.family.clip_encoders)})
        with self.inference_weights(components):
            paths = save_pipeline(components, out_dir, trained)
        if components.family.single_file:   # the file AUTOMATIC1111 / Forge / ComfyUI load, in fp16
            from ..single_file import write_single_file

            paths.append(write_single_file(out_dir, out_dir / f"{info.get('output_name', 'model')}.safetensors",
                                           half=True))
        return paths

    @classmethod
    def load_for_inference(cls, pipe, out_dir: Path, config):
        from ..models import load_pipeline

        return load_pipeline(out_dir)

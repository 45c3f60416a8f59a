"""The UNet families: Stable Diffusion 1.x/2.x ("sd") and SDXL ("sdxl").

Training follows diffusers' text-to-image and DreamBooth scripts: DDPM forward noising at a
uniformly drawn timestep, the target the scheduler's `prediction_type` names (epsilon for SD 1.x
and SDXL; v_prediction for SD 2.x-768 and the v-prediction SDXL checkpoints such as NoobAI's,
whose schedulers also set `rescale_betas_zero_snr`, which DDPMScheduler reads from the same
config), optional min-SNR weights. SDXL adds a second CLIP encoder, a pooled embedding and the
size / crop conditioning.
"""
from __future__ import annotations

from typing import Any

from .base import Components, Family, Noised, register_family


def tokenize(tokenizer, prompts: list[str]):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


class UNetFamily(Family):
    denoiser = "unet"
    # diffusers' LoRA docs: the attention projections; conv_lora adds the ResNet convolutions
    # (kohya's LoCon, ai-toolkit's "conv" rank)
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0")
    conv_targets = ("conv1", "conv2")
    single_file = True   # AUTOMATIC1111, Forge and ComfyUI load SD / SDXL checkpoints as one file

    def training_scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler

    def default_scheduler(self):
        from diffusers import DDIMScheduler

        return DDIMScheduler

    def prediction_type(self, c: Components) -> str:
        return c.noise_scheduler.config.prediction_type

    def noised(self, c: Components, latents, noise, generator) -> Noised:
        import torch

        sched = c.noise_scheduler
        t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), generator=generator)
        t = t.to(latents.device)
        target = noise if self.prediction_type(c) == "epsilon" else sched.get_velocity(latents, noise, t)
        return Noised(sched.add_noise(latents, noise, t), t, target)

    def loss_weights(self, c: Components, timesteps, snr_gamma: float):
        from ..training_utils import min_snr_weights

        return min_snr_weights(c.noise_scheduler, timesteps, snr_gamma, self.prediction_type(c))


@register_family
class StableDiffusion(UNetFamily):
    name = "sd"
    label = "SD 1.x / 2.x"
    pipeline_class = "StableDiffusionPipeline"
    pipeline_extras = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    def matches(self, index: dict[str, Any]) -> bool:
        # older folders (and some community conversions) name other SD pipeline classes
        return "unet" in index and "text_encoder" in index and "text_encoder_2" not in index and "XL" not in str(
            index.get("_class_name", ""))

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        embeds, negative = pipe.encode_prompt(list(prompts), pipe.text_encoder.device, 1, True)
        return {"prompt_embeds": embeds, "negative_prompt_embeds": negative}

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        encoders = text_encoders or c.text_encoders
        ids = tokenize(c.tokenizers[0], prompts).to(c.text_device)
        return encoders[0](ids)[0], None

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        return denoiser(noised.inputs, noised.timesteps, embeds).sample

    def kohya_version(self, c: Components) -> str | None:
        """sd_v1, or sd_v2 (its text encoder is 1024 wide)."""
        return "sd_v2" if c.text_encoders[0].config.hidden_size >= 1024 else "sd_v1"


@register_family
class StableDiffusionXL(UNetFamily):
    name = "sdxl"
    label = "SDXL"
    pipeline_class = "StableDiffusionXLPipeline"
    text_encoder_count = 2
    clip_encoders = 2
    vae_fp32_under_fp16 = True   # SDXL's VAE overflows in fp16; diffusers' scripts keep it in fp32

    def matches(self, index: dict[str, Any]) -> bool:
        return "unet" in index and ("text_encoder_2" in index or "XL" in str(index.get("_class_name", "")))

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        out = pipe.encode_prompt(prompt=list(prompts), device=pipe.text_encoder.device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=True)
        return dict(zip(("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
                         "negative_pooled_prompt_embeds"), out))

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """Penultimate hidden states of both encoders side by side; pooled from the second."""
        import torch

        encoders = text_encoders or c.text_encoders
        hidden, pooled = [], None
        for tokenizer, encoder in zip(c.tokenizers, encoders):
            out = encoder(tokenize(tokenizer, prompts).to(c.text_device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]
        return torch.cat(hidden, dim=-1), pooled

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        """With SDXL's extra inputs: the pooled embedding and (original size, crop, target size);
        we train on the prepared image as the original, uncropped: (h, w, 0, 0, h, w)."""
        import torch

        h, w = pixel_size
        ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=pooled.dtype, device=pooled.device)
        added = {"text_embeds": pooled, "time_ids": ids.repeat(pooled.shape[0], 1)}
        return denoiser(noised.inputs, noised.timesteps, embeds, added_cond_kwargs=added).sample

    def kohya_version(self, c: Components) -> str | None:
        return "sdxl_base_v1-0"

"""The rectified-flow transformer families: Stable Diffusion 3.5 ("sd3"), Flux.1 ("flux"),
Flux.2 klein ("flux2"), Z-Image ("zimage") and Qwen-Image ("qwenimage").

Training follows diffusers' `examples/dreambooth/train_dreambooth_lora_sd3.py` and
`train_dreambooth_lora_flux.py`: a noise level sigma is drawn per image (SD3: logit-normal,
mean 0, std 1; Flux: uniform, each script's default `weighting_scheme`), looked up in the
model's own flow-matching schedule (so SD3's shift applies), the input is
(1 - sigma) * latent + sigma * noise and the target the velocity noise - latent. Latents are the
VAE's, shifted and scaled (`shift_factor`, `scaling_factor`). Flux packs 2x2 latent patches into
tokens, takes the timestep divided by 1000, positions as image / text ids, and (Flux.1 dev, a
guidance-distilled model) a guidance value, 3.5 in diffusers' script.

The prompt goes through the CLIP encoders and T5 with the token counts the pipelines sample
with (`max_sequence_length`: SD3 256, Flux 512), so training and samples see the same
conditioning. T5 never trains here (LoRA's text-encoder option adapts the CLIP encoders, as in
diffusers' scripts); textual inversion is not offered: these models read a prompt mostly
through T5, which a CLIP token cannot reach.
"""
from __future__ import annotations

from typing import Any

from .base import Components, Family, Noised, register_family
from .unet import tokenize

FLUX_TRAIN_GUIDANCE = 3.5   # train_dreambooth_lora_flux.py --guidance_scale default (Flux.1 dev)


class FlowFamily(Family):
    denoiser = "transformer"
    lora_keys_to_diffusers = False   # diffusers' flow scripts save PEFT's key names as they are
    timestep_sampling = "none"       # compute_density_for_timestep_sampling's weighting_scheme
    prompt_tokens = 256              # the pipeline's max_sequence_length default (T5's, klein's Qwen3's)
    resolution_multiple = 16         # 8x VAE, then 2x2 patches
    language_model = ""              # where the only text encoder is a language model (no CLIP): which
    # comfy/lora.py maps 'lycoris_<diffusers module, dots as underscores>' (SimpleTuner's LyCORIS
    # names) for SD3, Flux, Lumina2 / Z-Image and Qwen-Image
    comfy_lycoris_prefix = "lycoris_"

    def check(self, config) -> None:
        from ..config import ConfigError

        super().check(config)
        if config.train_text_encoder and not self.clip_encoders:
            raise ConfigError(f"train_text_encoder=True: {self.label}'s text encoder is a {self.language_model} "
                              "language model, which diffusers' script keeps frozen (and so does this trainer)")
        if config.resolution % self.resolution_multiple:
            raise ConfigError(f"resolution={config.resolution}; {self.label} needs a multiple of "
                              f"{self.resolution_multiple} (8x VAE, 2x2 patches)")

    def warnings(self, config) -> list[str]:
        if config.snr_gamma is not None:
            return [f"snr_gamma={config.snr_gamma} is ignored: min-SNR weights are for noise-prediction "
                    f"models; {self.label} trains on rectified flow"]
        return []

    def training_scheduler(self):
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler

    def noised(self, c: Components, latents, noise, generator) -> Noised:
        from diffusers.training_utils import compute_density_for_timestep_sampling

        sched = c.noise_scheduler
        n = sched.config.num_train_timesteps
        u = compute_density_for_timestep_sampling(self.timestep_sampling, latents.shape[0], logit_mean=0.0,
                                                  logit_std=1.0, generator=generator)
        index = (u * n).long().clamp(0, n - 1)
        timesteps = sched.timesteps[index].to(latents.device)
        sigmas = sched.sigmas[index].to(latents.device, latents.dtype).view(-1, 1, 1, 1)
        return Noised((1 - sigmas) * latents + sigmas * noise, timesteps, noise - latents)

    def t5_embeds(self, tokenizer, encoder, prompts: list[str], device):
        ids = tokenizer(prompts, padding="max_length", max_length=self.prompt_tokens, truncation=True,
                        return_tensors="pt").input_ids
        return encoder(ids.to(device))[0]


@register_family
class StableDiffusion3(FlowFamily):
    name = "sd3"
    label = "SD 3.5"
    pipeline_class = "StableDiffusion3Pipeline"
    text_encoder_count = 3   # CLIP-L, CLIP-G, T5-XXL
    clip_encoders = 2
    timestep_sampling = "logit_normal"
    # train_dreambooth_lora_sd3.py's default targets: the joint attention's projections
    lora_targets = ("attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
                    "attn.to_k", "attn.to_out.0", "attn.to_q", "attn.to_v")

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        out = pipe.encode_prompt(prompt=list(prompts), prompt_2=None, prompt_3=None, device=pipe.text_encoder.device,
                                 num_images_per_prompt=1, do_classifier_free_guidance=True,
                                 max_sequence_length=self.prompt_tokens)
        return dict(zip(("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
                         "negative_pooled_prompt_embeds"), out))

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """As StableDiffusion3Pipeline.encode_prompt: both CLIPs' penultimate states side by side,
        zero-padded to T5's width, followed by T5's states; pooled = both CLIP projections."""
        import torch
        import torch.nn.functional as F

        encoders = text_encoders or c.text_encoders
        device = c.text_device
        hidden, pooled = [], []
        for tokenizer, encoder in zip(c.tokenizers[:2], encoders[:2]):
            out = encoder(tokenize(tokenizer, prompts).to(device), output_hidden_states=True)
            pooled.append(out[0])
            hidden.append(out.hidden_states[-2])
        clip = torch.cat(hidden, dim=-1)
        t5 = self.t5_embeds(c.tokenizers[2], encoders[2], prompts, device)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return torch.cat([clip, t5.to(clip.dtype)], dim=-2), torch.cat(pooled, dim=-1)

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        return denoiser(hidden_states=noised.inputs, timestep=noised.timesteps, encoder_hidden_states=embeds,
                        pooled_projections=pooled, return_dict=False)[0]


@register_family
class Flux(FlowFamily):
    name = "flux"
    label = "Flux.1"
    pipeline_class = "FluxPipeline"
    text_encoder_count = 2   # CLIP-L (pooled only), T5-XXL
    clip_encoders = 1
    prompt_tokens = 512
    # train_dreambooth_lora_flux.py's default targets: attention and feed-forward of the double
    # blocks (the single blocks' to_q/k/v match too)
    lora_targets = ("attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0", "attn.add_k_proj", "attn.add_q_proj",
                    "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                    "ff_context.net.2")

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        embeds, pooled, _ = pipe.encode_prompt(prompt=list(prompts), prompt_2=None, device=pipe.text_encoder.device,
                                               num_images_per_prompt=1, max_sequence_length=self.prompt_tokens)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}   # guidance-distilled: no negative

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """As FluxPipeline.encode_prompt: T5's states; pooled = CLIP's pooled output."""
        encoders = text_encoders or c.text_encoders
        device = c.text_device
        pooled = encoders[0](tokenize(c.tokenizers[0], prompts).to(device), output_hidden_states=False).pooler_output
        return self.t5_embeds(c.tokenizers[1], encoders[1], prompts, device), pooled

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        import torch
        from diffusers import FluxPipeline

        x = noised.inputs
        b, ch, h, w = x.shape
        vae_scale = self.vae_scale_factor(c.vae)
        guidance = (torch.full((b,), FLUX_TRAIN_GUIDANCE, device=x.device)
                    if c.denoiser.config.guidance_embeds else None)
        out = denoiser(hidden_states=FluxPipeline._pack_latents(x, b, ch, h, w), timestep=noised.timesteps / 1000,
                       guidance=guidance, pooled_projections=pooled, encoder_hidden_states=embeds,
                       txt_ids=torch.zeros(embeds.shape[1], 3, device=x.device, dtype=x.dtype),
                       img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, x.device, x.dtype),
                       return_dict=False)[0]
        return FluxPipeline._unpack_latents(out, h * vae_scale, w * vae_scale, vae_scale)


@register_family
class Flux2Klein(FlowFamily):
    """Flux.2 klein (4 B / 9 B): one Qwen3 text encoder, a 32-channel VAE whose latents are 2x2
    patchified and normalised by its batch-norm statistics, 4-D position ids. As diffusers'
    `train_dreambooth_lora_flux2_klein.py`: uniform sigmas, velocity target, the prompt as the
    pipeline encodes it (chat template; hidden states of layers 9, 18 and 27 side by side, 512
    tokens), no guidance input (klein samples with true classifier-free guidance)."""

    name = "flux2"
    label = "Flux.2 klein"
    pipeline_class = "Flux2KleinPipeline"
    text_encoder_count = 1   # Qwen3
    clip_encoders = 0
    language_model = "Qwen3"
    comfy_lycoris_prefix = ""   # ComfyUI's Flux.2 key map was not checked here: the PEFT file only
    prompt_tokens = 512
    text_layers = (9, 18, 27)
    # the script's default: attention of every block, the single blocks' fused projection and output
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0", "to_qkv_mlp_proj")

    def lora_modules(self, denoiser) -> list[str]:
        # the single blocks' attn.to_out is a Linear there but a ModuleList in the double blocks: named one by one
        return [*self.lora_targets, *(f"single_transformer_blocks.{i}.attn.to_out"
                                      for i in range(denoiser.config.num_single_layers))]

    def model_latents(self, c: Components, latents):
        import torch
        from diffusers import Flux2KleinPipeline

        bn = c.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + c.vae.config.batch_norm_eps).to(latents.device,
                                                                                          latents.dtype)
        return (Flux2KleinPipeline._patchify_latents(latents) - mean) / std

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        def encode(texts):
            return pipe.encode_prompt(prompt=texts, device=pipe.text_encoder.device,
                                      max_sequence_length=self.prompt_tokens,
                                      text_encoder_out_layers=self.text_layers)[0]

        # the base model samples with guidance against "" (the pipeline's own negative)
        return {"prompt_embeds": encode(list(prompts)), "negative_prompt_embeds": encode([""] * len(prompts))}

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """As Flux2KleinPipeline.encode_prompt (its own function); no pooled embedding."""
        from diffusers import Flux2KleinPipeline

        return Flux2KleinPipeline._get_qwen3_prompt_embeds(
            text_encoder=(text_encoders or c.text_encoders)[0], tokenizer=c.tokenizers[0], prompt=list(prompts),
            device=c.text_device, max_sequence_length=self.prompt_tokens, hidden_states_layers=self.text_layers), None

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        from diffusers import Flux2KleinPipeline

        x = noised.inputs
        img_ids = Flux2KleinPipeline._prepare_latent_ids(x).to(x.device)
        out = denoiser(hidden_states=Flux2KleinPipeline._pack_latents(x), timestep=noised.timesteps / 1000,
                       guidance=None, encoder_hidden_states=embeds,
                       txt_ids=Flux2KleinPipeline._prepare_text_ids(embeds).to(x.device), img_ids=img_ids,
                       return_dict=False)[0]
        return Flux2KleinPipeline._unpack_latents_with_ids(out[:, :x.shape[2] * x.shape[3]], img_ids)


@register_family
class ZImage(FlowFamily):
    """Z-Image (6 B, Tongyi-MAI): one Qwen3 text encoder, Flux.1's 16-channel VAE (shifted and
    scaled), a single-stream transformer that takes *lists*: one latent per image and one prompt
    state per prompt, each as long as its prompt (the padding masked off), so prompts of different
    lengths batch without padding. As diffusers' `train_dreambooth_lora_z_image.py`: uniform sigmas,
    the input (1 - sigma) * latent + sigma * noise, the model told 1 - sigma (times 1000 / 1000),
    its output negated, the target the velocity noise - latent; LoRA on the attention projections."""

    name = "zimage"
    label = "Z-Image"
    pipeline_class = "ZImagePipeline"
    text_encoder_count = 1   # Qwen3
    clip_encoders = 0
    language_model = "Qwen3"
    prompt_tokens = 512
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0")   # the script's default target_modules

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        embeds, negative = pipe.encode_prompt(prompt=list(prompts), device=pipe.text_encoder.device,
                                              do_classifier_free_guidance=True, max_sequence_length=self.prompt_tokens)
        return {"prompt_embeds": embeds, "negative_prompt_embeds": negative}

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """As ZImagePipeline's own prompt encoding (chat template, second-to-last hidden states, the
        padding dropped): a list with one (tokens, width) tensor per prompt; no pooled embedding."""
        from diffusers import ZImagePipeline

        encoder = (text_encoders or c.text_encoders)[0]
        text_pipe = ZImagePipeline(scheduler=None, vae=None, text_encoder=encoder, tokenizer=c.tokenizers[0],
                                   transformer=None)
        return text_pipe._encode_prompt(list(prompts), device=c.text_device,
                                        max_sequence_length=self.prompt_tokens), None

    def batch_embeds(self, per_prompt: list[Any]):
        return list(per_prompt)   # the transformer takes the list as it is (no padding to one length)

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        import torch

        frames = list(noised.inputs.unsqueeze(2).unbind(0))   # (C, 1, H, W) per image: one frame
        out = denoiser(frames, (1000 - noised.timesteps) / 1000, list(embeds), return_dict=False)[0]
        return -torch.stack(out).squeeze(2)


@register_family
class QwenImage(FlowFamily):
    """Qwen-Image (20 B): one Qwen2.5-VL text encoder read through the pipeline's system prompt (its
    last hidden states, the template's tokens dropped, each prompt as long as it is: padded with
    zeros and masked in a batch), a causal 3-D video VAE that takes an image as a one-frame clip and
    whose latents are normalised by its per-channel statistics, 2x2 latent patches as tokens. As
    diffusers' `train_dreambooth_lora_qwen_image.py`: uniform sigmas (the script loads the schedule
    with shift=3.0, which Qwen-Image's dynamic-shift schedule does not apply to training sigmas), the
    input (1 - sigma) * latent + sigma * noise, timestep / 1000, the velocity target, LoRA on the image
    stream's attention projections."""

    name = "qwenimage"
    label = "Qwen-Image"
    pipeline_class = "QwenImagePipeline"
    text_encoder_count = 1   # Qwen2.5-VL
    clip_encoders = 0
    language_model = "Qwen2.5-VL"
    prompt_tokens = 512      # the pipeline's max_sequence_length default
    vae_frames = True
    lora_targets = ("to_k", "to_q", "to_v", "to_out.0")   # the script's default target_modules
    # Qwen/Qwen-Image's model card: negative_prompt=" " ("an empty string if you do not have specific
    # concept to remove") with the pipeline's true_cfg_scale 4.0; without one the pipeline samples unguided
    negative_prompt = " "

    def vae_scale_factor(self, vae) -> int:
        return 2 ** len(vae.config.temperal_downsample)   # as QwenImagePipeline computes it

    def model_latents(self, c: Components, latents):
        """(batch, z, 1 frame, h, w) from the VAE -> (batch, z, h, w), less the VAE's latent mean and
        over its std per channel (the script's normalisation; the pipeline undoes it to decode)."""
        import torch

        config = c.vae.config
        mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        return (latents[:, :, 0] - mean) / std

    def prompt_call_kwargs(self, pipe, prompts: list[str]) -> dict[str, Any]:
        def encode(texts):
            return pipe.encode_prompt(texts, device=pipe.text_encoder.device, max_sequence_length=self.prompt_tokens)

        embeds, mask = encode(list(prompts))
        negative, negative_mask = encode([self.negative_prompt] * len(prompts))
        return {"prompt_embeds": embeds, "prompt_embeds_mask": mask, "negative_prompt_embeds": negative,
                "negative_prompt_embeds_mask": negative_mask}

    def encode_prompts(self, c: Components, prompts: list[str], text_encoders: list[Any] | None = None):
        """As QwenImagePipeline.encode_prompt (its own code), then each prompt's states without the
        batch's padding; no pooled embedding."""
        from diffusers import QwenImagePipeline

        text_pipe = QwenImagePipeline(scheduler=None, vae=None, text_encoder=(text_encoders or c.text_encoders)[0],
                                      tokenizer=c.tokenizers[0], transformer=None)
        embeds, mask = text_pipe.encode_prompt(list(prompts), device=c.text_device,
                                               max_sequence_length=self.prompt_tokens)
        lengths = [embeds.shape[1]] * len(prompts) if mask is None else mask.sum(dim=1).tolist()
        return [e[:n] for e, n in zip(embeds, lengths)], None

    def batch_embeds(self, per_prompt: list[Any]):
        """(states, mask) as the pipeline batches prompts: zeros after each prompt's states up to the
        longest, a mask of the real tokens; no mask when all are as long (the pipeline drops it then)."""
        import torch
        import torch.nn.functional as F

        n = max(e.shape[0] for e in per_prompt)
        states = torch.stack([F.pad(e, (0, 0, 0, n - e.shape[0])) for e in per_prompt])
        mask = torch.stack([torch.arange(n, device=e.device) < e.shape[0] for e in per_prompt]).long()
        return states, (None if bool(mask.all()) else mask)

    def predict(self, c: Components, denoiser, noised: Noised, embeds, pooled, pixel_size):
        from diffusers import QwenImagePipeline

        states, mask = embeds
        x = noised.inputs
        b, ch, h, w = x.shape
        f = self.vae_scale_factor(c.vae)
        out = denoiser(hidden_states=QwenImagePipeline._pack_latents(x, b, ch, h, w), encoder_hidden_states=states,
                       encoder_hidden_states_mask=mask, timestep=noised.timesteps / 1000,
                       img_shapes=[[(1, h // 2, w // 2)]] * b, return_dict=False)[0]
        return QwenImagePipeline._unpack_latents(out, h * f, w * f, f)[:, :, 0]

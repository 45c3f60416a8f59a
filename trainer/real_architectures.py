"""Every planned base model's real architecture with random weights, built from its published configs.

    python -m trainer make-real-architecture OUT_DIR --base flux1dev [--device cuda] [--dtype bf16]

A model with the released architecture and random weights has the released model's parameters,
layer shapes and prompt lengths, so training it costs the same GPU memory and time as the real
weights (benchmarks/train_throughput.py --real, scripts/device_check.py), and nothing is
downloaded. The configs below are the released config.json values that differ from the classes'
defaults; tests/advisor/test_arch_counts.py counts them against the advisor's cost model
(advisor.recommendation.costs.ARCH), so the two cannot drift apart.

Tokenizers are the tiny models' (trainer.tiny), built here: they only pick ids, while the
embedding tables keep their released size. T5 and Flux.2 klein's Qwen3 pad every prompt to the
pipeline's length, as with the real tokenizers; Z-Image's and Qwen-Image's prompt states are as long
as the prompt, counted in the tiny tokenizer's tokens (a few more than the real one's for the same
words: a few dozen tokens beside the 4,096 of a 1024 px image).

`layers=N` cuts every stack of layers (transformer blocks, text-encoder layers, the vision tower)
to N and the vocabularies to the tokenizer's: the same classes, widths and wiring, small enough to
build, save, load and train on a CPU in a test. The UNet bases and Flux.2 klein (whose pipeline
reads its text encoder's layers 9, 18 and 27) are built whole only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

SHRINKABLE = ("sd35large", "flux1dev", "zimage", "qwenimage")   # the bases `layers=N` builds
REAL_VERSION_FILE = "real_architecture.txt"

# --- runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-base-1.0 -------------------------------------
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1)
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
              down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
              layers_per_block=2, norm_num_groups=32, act_fn="silu")
SD_VAE_SCALING = {"sd15": 0.18215, "sdxl": 0.13025}
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, layer_norm_eps=1e-5)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                 num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
                 layer_norm_eps=1e-5)
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1)

# --- the flow models: transformer/, text_encoder*/, vae/ configs of each hub repository ---------------------------
T5_XXL = dict(vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
              feed_forward_proj="gated-gelu")   # google/t5-v1_1-xxl's encoder (SD 3.5's and Flux.1's text_encoder_3/_2)
SD35_LARGE_TRANSFORMER = dict(    # stabilityai/stable-diffusion-3.5-large
    sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64, num_attention_heads=38,
    joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048, out_channels=16,
    pos_embed_max_size=192, qk_norm="rms_norm")
FLUX1_DEV_TRANSFORMER = dict(     # black-forest-labs/FLUX.1-dev
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
    joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))
KLEIN_4B_TRANSFORMER = dict(      # black-forest-labs/FLUX.2-klein-base-4B: 5 double, 20 single blocks, 3,072 wide
    num_layers=5, num_single_layers=20, attention_head_dim=128, num_attention_heads=24, joint_attention_dim=7680,
    in_channels=128, guidance_embeds=False)
ZIMAGE_TRANSFORMER = dict(        # Tongyi-MAI/Z-Image
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2, n_heads=30,
    n_kv_heads=30, qk_norm=True, cap_feat_dim=2560, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])
QWEN_IMAGE_TRANSFORMER = dict(    # Qwen/Qwen-Image
    patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128, num_attention_heads=24,
    joint_attention_dim=3584, axes_dims_rope=(16, 56, 56))
QWEN3_4B = dict(                   # Qwen3-4B: Flux.2 klein's and Z-Image's text encoder
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)
QWEN25_VL_7B = dict(              # Qwen-Image's text_encoder: Qwen2.5-VL-7B-Instruct
    text_config={"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                 "num_key_value_heads": 4, "vocab_size": 152064, "rope_theta": 1000000.0,
                 "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}},
    vision_config={"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                   "out_hidden_size": 3584}, tie_word_embeddings=False)
FLUX_VAE = dict(                   # Flux.1's and Z-Image's; SD 3.5's too, with its own shift and scale
    latent_channels=16, block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False,
    sample_size=1024)
FLOW_VAE_SHIFT_SCALE = {"sd35large": (0.0609, 1.5305), "flux1dev": (0.1159, 0.3611), "zimage": (0.1159, 0.3611)}
FLUX_SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15, shift=3.0,
                      use_dynamic_shifting=True)

# the config keys that count stacked layers (what `layers=N` cuts)
_LAYER_KEYS = ("num_layers", "num_single_layers", "n_layers", "n_refiner_layers", "num_hidden_layers", "depth")


def _cut(config: dict[str, Any], layers: int | None, vocab: int | None = None) -> dict[str, Any]:
    """`config` with every layer count cut to `layers` and its vocabulary to `vocab` (None: as published)."""
    if layers is None:
        return dict(config)
    out = {k: (min(v, layers) if k in _LAYER_KEYS else v) for k, v in config.items()}
    if vocab is not None and "vocab_size" in out:
        out["vocab_size"] = vocab
    return out


def build_real_pipeline(base: str, *, layers: int | None = None, device: str = "cpu", dtype=None):
    """The pipeline of `base` (one of REAL_BASES) with the published architecture and random
    weights (seeded), built on `device` in `dtype` (default fp32; "meta" builds no weights, to count)."""
    import torch

    if base not in REAL_BASES:
        raise ValueError(f"base={base!r}; pick one of {list(REAL_BASES)}")
    if layers is not None and base not in SHRINKABLE:
        raise ValueError(f"{base} is built whole only (layers=N: {list(SHRINKABLE)})")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.float32)   # built straight in `dtype`: a 20 B model never exists in fp32
    try:
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(0)
            return _BUILDERS[base](base, layers)
    finally:
        torch.set_default_dtype(previous)


def make_real_architecture(out_dir: str | Path, base: str, *, layers: int | None = None, device: str = "cpu",
                           dtype=None) -> Path:
    """`build_real_pipeline` written as a diffusers folder (safetensors) in a new or empty `out_dir`."""
    from .tiny import save_pipeline

    def build():
        return build_real_pipeline(base, layers=layers, device=device, dtype=dtype)

    version = f"{base} layers={layers or 'all'}"
    return save_pipeline(build, out_dir, REAL_VERSION_FILE, version)


# --- one builder per base -------------------------------------------------------------------------------------------
def _clip(config: dict[str, Any], tokenizer, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    # the tiny tokenizer's specials (its eos pools the prompt); the 49,408-row table stays real size
    return cls(CLIPTextConfig(**config, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                              pad_token_id=tokenizer.pad_token_id))


def _unet_pipeline(base: str, layers: int | None):
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)

    from .tiny import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    unet = UNet2DConditionModel(**(SD15_UNET if base == "sd15" else SDXL_UNET))
    vae = AutoencoderKL(**SD_VAE, sample_size=512 if base == "sd15" else 1024, scaling_factor=SD_VAE_SCALING[base])
    te = _clip(CLIP_L, tok, projection=False)
    sched = DDIMScheduler(**SD_SCHEDULER)
    if base == "sd15":
        return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tok2 = make_tiny_tokenizer(pad_token="!")
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=_clip(CLIP_BIGG, tok2, projection=True),
                                     tokenizer=tok, tokenizer_2=tok2, unet=unet, scheduler=sched)


def _flow_vae(base: str):
    from diffusers import AutoencoderKL

    shift, scale = FLOW_VAE_SHIFT_SCALE[base]
    return AutoencoderKL(**FLUX_VAE, shift_factor=shift, scaling_factor=scale)


def _t5(layers: int | None, tokenizer):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(**_cut(T5_XXL, layers, len(tokenizer)), pad_token_id=0, eos_token_id=1,
                                   decoder_start_token_id=0))


def _sd35_pipeline(base: str, layers: int | None):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    from .tiny import make_tiny_t5_tokenizer, make_tiny_tokenizer

    tok_l, tok_g, tok_t5 = make_tiny_tokenizer(), make_tiny_tokenizer(pad_token="!"), make_tiny_t5_tokenizer()
    return StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(**_cut(SD35_LARGE_TRANSFORMER, layers)),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(base),
        text_encoder=_clip(_cut(CLIP_L, layers, len(tok_l)), tok_l, projection=True), tokenizer=tok_l,
        text_encoder_2=_clip(_cut(CLIP_BIGG, layers, len(tok_g)), tok_g, projection=True), tokenizer_2=tok_g,
        text_encoder_3=_t5(layers, tok_t5), tokenizer_3=tok_t5)


def _flux_pipeline(base: str, layers: int | None):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from .tiny import make_tiny_t5_tokenizer, make_tiny_tokenizer

    tok_l, tok_t5 = make_tiny_tokenizer(), make_tiny_t5_tokenizer()
    return FluxPipeline(transformer=FluxTransformer2DModel(**_cut(FLUX1_DEV_TRANSFORMER, layers)),
                        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER), vae=_flow_vae(base),
                        text_encoder=_clip(_cut(CLIP_L, layers, len(tok_l)), tok_l, projection=False), tokenizer=tok_l,
                        text_encoder_2=_t5(layers, tok_t5), tokenizer_2=tok_t5)


def _qwen3(model_class, layers: int | None, tokenizer):
    from transformers import Qwen3Config

    return model_class(Qwen3Config(**_cut(QWEN3_4B, layers, len(tokenizer)), pad_token_id=tokenizer.pad_token_id))


def _klein_pipeline(base: str, layers: int | None):
    from diffusers import (AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline,
                           Flux2Transformer2DModel)
    from transformers import Qwen3ForCausalLM

    from .tiny import make_tiny_qwen_tokenizer

    tok = make_tiny_qwen_tokenizer()
    return Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER), vae=AutoencoderKLFlux2(),
                              text_encoder=_qwen3(Qwen3ForCausalLM, None, tok), tokenizer=tok,
                              transformer=Flux2Transformer2DModel(**KLEIN_4B_TRANSFORMER))


def _zimage_pipeline(base: str, layers: int | None):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Model

    from .tiny import make_tiny_qwen_tokenizer

    tok = make_tiny_qwen_tokenizer()
    transformer = ZImageTransformer2DModel(**_cut(ZIMAGE_TRANSFORMER, layers))
    with torch.no_grad():   # made with torch.empty: given values, so no NaN reaches a padded token
        transformer.x_pad_token.normal_()
        transformer.cap_pad_token.normal_()
    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(base),
                          text_encoder=_qwen3(Qwen3Model, layers, tok), tokenizer=tok, transformer=transformer)


def _qwenimage_pipeline(base: str, layers: int | None):
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline,
                           QwenImageTransformer2DModel)
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from .tiny import QWEN_IMAGE_SCHEDULER, make_tiny_qwen_image_tokenizer

    tok = make_tiny_qwen_image_tokenizer()
    text = _cut(QWEN25_VL_7B["text_config"], layers, len(tok))
    vision = _cut(QWEN25_VL_7B["vision_config"], layers)
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config={**text, "eos_token_id": tok.eos_token_id, "bos_token_id": None}, vision_config=vision,
        tie_word_embeddings=QWEN25_VL_7B["tie_word_embeddings"])).eval()
    return QwenImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(**QWEN_IMAGE_SCHEDULER),
                             vae=AutoencoderKLQwenImage(), text_encoder=text_encoder, tokenizer=tok,
                             transformer=QwenImageTransformer2DModel(**_cut(QWEN_IMAGE_TRANSFORMER, layers)))


# the advisor's base models (trainer.vocabulary.BASE_MODELS) built here: every planned one but SD 2.1
_BUILDERS = {"sd15": _unet_pipeline, "sdxl": _unet_pipeline, "sd35large": _sd35_pipeline, "flux1dev": _flux_pipeline,
             "klein4b": _klein_pipeline, "zimage": _zimage_pipeline, "qwenimage": _qwenimage_pipeline}
REAL_BASES = tuple(_BUILDERS)

"""Cost estimator: GPU memory, wall time and output size of one training run.

A small parametric model, calibrated on the published measurements collected in
shared/research/costs-and-memory.md (cited below as "costs §n"):

    memory  = frozen weights x bytes + trained weights x (weight + grad + optimizer bytes)
              + activations x (resolution / 512)^2 x images per step + a fixed overhead
    time    = optimizer steps x micro-steps x seconds per micro-step / GPU speed
              + class-image generation + validation sampling
    output  = what the method writes (LoRA: rank x sum(in + out) of the adapted layers)

Every constant is either published, derived from published numbers (the arithmetic is
written out in code), or marked "assumed". `tests/test_costs.py` checks that the model
reproduces the published points. Pure stdlib: the advisor's import path stays light.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from trainer.config import DEFAULTS as TRAIN_DEFAULTS
from trainer.config import MIXED_PRECISION
from trainer.memory import text_encoding_device
from trainer.vocabulary import ADAPTERS, ALL_WEIGHT_METHODS, CLASS_IMAGE_METHODS, METHOD_NAMES

from ..gpus import GPU_BY_NAME, card_of
from ..gpus import find_gpu as find_stored_gpu



@dataclass(frozen=True)
class Arch:
    """What the estimator needs to know about a base model."""
    denoiser_b: float                  # UNet / transformer parameters, billions
    text_b: float                      # text encoder(s) parameters, billions
    vae_b: float                       # VAE parameters, billions
    token_dims: tuple[int, ...]        # token-embedding width per CLIP text encoder (TI)
    cross_dim: int                     # cross-attention context width (LoRA to_k / to_v inputs)
    attn_blocks: dict[int, int]        # transformer blocks per channel width (LoRA size)
    te_layers: tuple[tuple[int, int], ...]  # (layers, width) per CLIP text encoder (text-encoder LoRA)
    conv_per_rank: int                 # LoRA parameters per rank on the ResNets' conv1/conv2 (LoCon)
    compute: float                     # training compute per pixel relative to SD1.5
    linear_share: float                # of the denoiser's parameters, those in linear layers (what quantizes)
    denoiser: str = "UNet"             # what the breakdown calls it
    lora_per_rank: int = 0             # a transformer's LoRA parameters per rank, counted; 0: the UNet formula
    activation_scale: float = 1.0      # activations per image relative to SD1.4's at the same pixel count
    sampling_passes: int = 2           # denoiser calls per sampling step: 2 with classifier-free guidance
    forward_s: float = 0.0             # T4 seconds of one denoiser call on a 512 px image; 0: FORWARD_S x compute
    quantized_recipes: bool = False    # published LoRA recipes quantize its frozen base (fit_memory may too)


# Architecture constants are the public model configs (not in the research notes). Check:
# SD1.5 has 0.860 + 0.123 + 0.084 = 1.067 B parameters x 4 bytes = 4.27 GB, the published size
# of the fp32 EMA-only checkpoint (costs §5), so the counts and the file agree (derived).
# conv_per_rank: sum of (in x 3 x 3 + out) over the ResNets' conv1 and conv2 (44 in SD1.x/2.x, 34
# in SDXL), counted on diffusers' UNet2DConditionModel built from each public config (derived; the
# same count gives the attention figure lora_params uses, 199,296 per rank for SD1.5).
# linear_share: the parameters in nn.Linear layers (the ones int8 / NF4 quantize), counted the
# same way (tests/advisor/test_arch_counts.py rebuilds every model on the meta device).
ARCH: dict[str, Arch] = {
    "sd15": Arch(0.860, 0.123, 0.084, (768,), 768, {320: 5, 640: 5, 1280: 6}, ((12, 768),), 489_600, 1.0, 0.314),
    # SD2.1: same UNet layout, OpenCLIP-H text encoder (23 layers used), 768 px (costs §2.2).
    "sd21": Arch(0.865, 0.340, 0.084, (1024,), 1024, {320: 5, 640: 5, 1280: 6}, ((23, 1024),), 489_600, 1.0, 0.348),
    # SDXL: 2.6 B UNet with 70 transformer blocks at 640/1280 channels, two text encoders.
    # compute 1.3 is assumed: 3x the parameters, but most sit at low resolution; no published
    # SDXL it/s exists (costs §4).
    "sdxl": Arch(2.567, 0.817, 0.084, (768, 1280), 2048, {640: 10, 1280: 60}, ((12, 768), (32, 1280)), 327_040, 1.3,
                 0.870),
}
CLIP_VOCAB = 49_408  # CLIP tokenizer size: TI optimises the whole embedding table (trainer/methods)

# --- memory constants, all from the T4 table (costs §1.1, SD1.4 DreamBooth, GB) -------------------
# batch 2 minus batch 1 with checkpointing: activations of one 512 px image.
ACT_CKPT_GB = 10.40 - 9.92
# Without checkpointing, least-squares fit of A in base + A x batch to the rows 11.17 (batch 1)
# and 13.67 (batch 2), base = 9.92 - ACT_CKPT_GB (derived; reproduces both within 3%).
_BASE = 9.92 - ACT_CKPT_GB
ACT_NOCKPT_GB = (1 * (11.17 - _BASE) + 2 * (13.67 - _BASE)) / (1 ** 2 + 2 ** 2)
# CUDA context and allocator slack: what is left of the 9.92 GB reference row after the trained
# UNet (fp32 weight 4 + fp32 grad 4 + 8-bit Adam 2 bytes/param), the frozen fp16 text encoder and
# VAE, and one image of activations (derived).
OVERHEAD_GB = 9.92 - (0.860 * (4 + 4 + 2) + (0.123 + 0.084) * 2) - ACT_CKPT_GB
OPTIMIZER_BYTES = {"adamw": 8, "adamw8bit": 2, "adafactor": 0}  # per trained parameter
# Gradient accumulation keeps an extra gradient buffer: T4 row grad-accum 2 is 11.56 vs 9.92 GB,
# 1.64 GB for 0.86 B parameters, about 2 bytes per trained parameter (derived).
ACCUM_BYTES = 2
EMA_BYTES = 4  # an fp32 shadow copy of the trained weights

# --- speed constants (T4, SD1.4 at 512 px, fp16 + 8-bit Adam, costs §1.1) --------------------------
# Seconds per micro-step = C0 + C1 x images, from the no-checkpointing rows 1.14 it/s (batch 1)
# and 0.82 it/s (batch 2) (derived).
C1_FULL_S = 1 / 0.82 - 1 / 1.14
C0_S = 1 / 1.14 - C1_FULL_S
# LoRA / TI skip the weight gradients of the frozen UNet: about 2/3 of the per-image work
# (forward 1 + input gradients 1 + weight gradients 1) (assumed from backprop arithmetic).
C1_LIGHT_S = C1_FULL_S * 2 / 3
CKPT_SLOWDOWN = 1.14 / 0.93    # checkpointing: 1.14 -> 0.93 it/s, "about 18% speed" (derived)
FP32_SLOWDOWN = 0.93 / 0.42    # no mixed precision: 0.93 -> 0.42 it/s (derived)
TEXT_ENCODER_SLOWDOWN = 1.10   # training the text encoder too: no published figure (assumed)
FORWARD_S = C1_FULL_S / 3      # one UNet forward per image: 1/3 of forward + backward (derived)
SAMPLING_STEPS = 50            # class images use the pipeline default of 50 denoising steps
MIN_CLASS_IMAGES = 100         # autotrain's default, the smallest published count (methods §3)


@dataclass(frozen=True)
class TimedGpu:
    """A card of advisor.gpus.GPUS at one memory size, with a training-speed figure: what the
    estimator times a run on."""
    name: str
    vram_gb: float
    speed: float      # training throughput relative to a T4
    basis: str        # where the speed factor comes from
    precision: str    # the mixed precision runs train in on it (advisor.gpus.Gpu.precision)
    # The user's setup, learned from their run log (advisor.learning.memory): their runs held up
    # to this many times the memory estimate. 1.0 (the table) until a run says more.
    memory_factor: float = 1.0


def _t4_step_s(per_image_s: float, images: int) -> float:
    return C0_S + per_image_s * images


# Training speed relative to a T4, per row of advisor.gpus.GPUS (by its name): (factor, basis,
# the memory sizes the figure is for; empty = the card's usual size). "derived" rows invert a
# published run time through this model; "assumed" rows have no published training
# measurement (costs §4 says so for the A10G).
_A100 = (1 / 1.14) * FP32_SLOWDOWN / (5 * 60 / 1000)
SPEEDS: dict[str, tuple[float, str, tuple[float, ...]]] = {
    "Tesla T4": (1.0, "reference: the T4 table (ShivamShrirao/diffusers)", ()),
    "RTX 2080 Ti": (4 * _t4_step_s(C1_LIGHT_S, 1) / (5 * 3600 / 15000),
                    "derived: captioned LoRA, 15,000 steps at 1x4 in about 5 h (huggingface/blog lora.md)", ()),
    "RTX 3060": (2.5, "assumed: no published training speed", ()),
    "L4": (3.0, "assumed: no published training speed", ()),
    "A10G": (4.0, "assumed: no published training speed (costs §4)", ()),
    "RTX 3090": (_A100 / (1.41 / 1.12), "derived: A100 factor / 1.26 (EveryDream2 user report A100 1.41 vs A6000 "
                 "1.12 it/s); the 3090 is assumed equal to the A6000 (same GA102 chip)", ()),
    "RTX 4090": (_t4_step_s(C1_LIGHT_S, 8) / (4 * 3600 / 49622),
                 "derived: LyCORIS study, LoRA batch 8, 49,622 steps in about 4 h (setup partly unstated)", ()),
    "A100": (_A100, "derived: DreamBooth paper, about 1,000 steps in 5 min, read as fp32 batch 1 (not stated); "
             "the 80GB card as the 40GB", (40, 80)),
    "H100": (2 * _A100, "assumed: twice an A100; no published training speed", ()),
    "H200": (2 * _A100, "assumed: as the H100 (the same Hopper compute, more and faster memory); no published "
             "training speed", ()),
}


# --- quantized frozen weights (TrainConfig.quantize_base), bytes per linear-layer weight ------------
# NF4: 4 bits plus one fp32 absmax per 64-weight block (bitsandbytes' defaults as diffusers'
# BitsAndBytesConfig sets them, no double quantization); int8: torchao's weight-only int8, one byte
# plus one scale per output channel (negligible) (derived from the formats).
QUANT_BYTES = {"int8": 1.0, "nf4": 0.5 + 4 / 64}

# --- Flux.1 dev: a 12 B transformer, calibrated on the Hugging Face "flux-qlora" blog -------------
# (huggingface/blog flux-qlora.md; models-2026.md). Its setup: RTX 4090, LoRA rank 4 on attention
# to_q/k/v/out (4,669,440 parameters), bf16, gradient checkpointing, 8-bit AdamW, batch 1 x 4,
# 512 x 768 px, latents cached and text embeddings precomputed (no VAE or text encoder on the GPU).
# Published: about 26 GB with the base in bf16, about 9 GB in NF4; 700 steps in about 41 min (NF4).
FLUX_BLOG_LORA = 4_669_440
FLUX_BLOG_PIXELS = 512 * 768 / 512 ** 2   # the blog's images, in 512 px squares
_FLUX_B = 11.901  # transformer parameters, counted on the public config (the blog prints 11.906 B with its LoRA)
# One 512 px image's activations with checkpointing: what the bf16 row leaves after the frozen
# weights, the LoRA (fp32 weight, gradient, 8-bit Adam state, accumulation buffer) and the overhead
# (derived); reproduces the NF4 row at 8.9 GB.
_FLUX_ACT_GB = (26 - _FLUX_B * 2 - FLUX_BLOG_LORA / 1e9 * (4 + 4 + 2 + ACCUM_BYTES) - OVERHEAD_GB) / FLUX_BLOG_PIXELS
def _transformer_forward_s(compute: float) -> float:
    """T4 seconds of one transformer call on a 512 px image: half a LoRA micro-step without
    checkpointing (forward + input gradients; assumed). SD's FORWARD_S leaves out the fixed part of a
    step, which the Flux figure the transformers' compute comes from holds."""
    return _t4_step_s(C1_LIGHT_S, 1) * compute / 2


# Compute per pixel against SD1.5: the blog's micro-step (41 min / 700 steps / 4) on the 4090,
# brought to a T4 with the table's 4090 factor (derived). NF4's dequantization is inside it, so a
# bf16 run is estimated no faster (no bf16 time is published for the setup). The blog's "about 4
# hours" on a T4 is 0.7x this model's figure: the 4090 factor (from the LyCORIS study) is high for Flux.
T5_XXL_B = 4.762   # T5-XXL's encoder, SD 3.5's and Flux.1's third / second text encoder (counted)
_FLUX_COMPUTE = ((41 * 60 / 700 / 4) * SPEEDS["RTX 4090"][0]
                 / (_t4_step_s(C1_LIGHT_S, 1) * FLUX_BLOG_PIXELS * CKPT_SLOWDOWN))
# Text encoders: CLIP-L 0.123 B and T5-XXL's encoder 4.762 B (the hub's 9.52 GB bf16 files; the
# embedding table once: it is shared); VAE 0.084 B (16 latent channels).
# LoRA: trainer.families.flow.Flux's targets, 2,801,664 parameters per rank (counted). Sampling:
# guidance-distilled, one transformer call per step.
ARCH["flux1dev"] = Arch(_FLUX_B, 0.123 + T5_XXL_B, 0.084, (768,), 4096, {}, ((12, 768),), 0, _FLUX_COMPUTE, 0.9997,
                        denoiser="transformer", lora_per_rank=2_801_664,
                        activation_scale=_FLUX_ACT_GB / ACT_CKPT_GB, sampling_passes=1, quantized_recipes=True,
                        forward_s=_transformer_forward_s(_FLUX_COMPUTE))

def _scaled_from_flux(denoiser_b: float, image_blocks: int, width: int, text_b: float, cross_dim: int,
                      linear_share: float, lora_per_rank: int, token_dims: tuple[int, ...] = (),
                      te_layers: tuple[tuple[int, int], ...] = ()) -> Arch:
    """A transformer with no published measurement of our setup, scaled from Flux.1 dev (assumed):
    activations by the width x depth of the blocks its image tokens pass (`image_blocks` of `width`
    against Flux's 19 + 38 of 3,072; each sees Flux's 1,024 image tokens at 512 px), compute by the
    transformer's parameters. VAE as Flux's (0.084 B); sampling with classifier-free guidance (two
    calls per step); published LoRA recipes quantize the base."""
    activations_gb = _FLUX_ACT_GB * (image_blocks * width) / ((19 + 38) * 3072)
    compute = _FLUX_COMPUTE * denoiser_b / _FLUX_B
    return Arch(denoiser_b, text_b, 0.084, token_dims, cross_dim, {}, te_layers, 0, compute, linear_share,
                denoiser="transformer", lora_per_rank=lora_per_rank, activation_scale=activations_gb / ACT_CKPT_GB,
                quantized_recipes=True, forward_s=_transformer_forward_s(compute))


# SD 3.5 Large: an 8.1 B MMDiT, 38 joint blocks of 2,432, with no published memory or speed
# measurement (SimpleTuner's SD3 quickstart gives only setups: NF4 at 512 px on a 10-12 GB card,
# "int2 ... about 13.9 GB"). Text encoders: CLIP-L 0.124 B, CLIP-G 0.695 B, T5-XXL's encoder
# 4.762 B. LoRA: trainer.families.flow.StableDiffusion3's targets, 1,473,792 parameters per rank
# (counted).
ARCH["sd35large"] = _scaled_from_flux(8.057, 38, 2432, 0.124 + 0.695 + T5_XXL_B, 4096, 0.9996, 1_473_792,
                                      token_dims=(768, 1280), te_layers=((12, 768), (32, 1280)))
# Z-Image: a 6.2 B single-stream transformer, 2 noise refiners and 30 main layers of 3,840 on the
# image tokens. Checked against what is published (tests/advisor/test_costs.py): its NF4 transformer
# file, 3.4 GB (AcademiaSD's Z-Image-NF4 repo), NF4 LoRAs from 8 GB, a 768 px LoRA on a 12 GB card
# at 2-3 s per step (Tongyi-MAI/Z-Image#36, ai-toolkit). Text encoder: Qwen3-4B, 4.022 B (counted).
# LoRA: trainer.families.flow.ZImage's targets (attention to_q/k/v/out), 1,044,480 per rank (counted).
ARCH["zimage"] = _scaled_from_flux(6.155, 32, 3840, 4.022, 2560, 0.9998, 1_044_480)
# Flux.2 klein 4B: 5 double and 20 single blocks of 3,072 (its 16x VAE and 2x2 patches give Flux's
# token count), 3.876 B parameters: the hub's 7.75 GB bf16 transformer file. Checked against
# SimpleTuner's FLUX2 quickstart (about 12 GB with a bf16 base, 8 GB in int8; its resolution and LoRA
# targets unstated): the estimate runs 13-19 % under those figures. Text encoder: Qwen3-4B as
# Z-Image's; VAE: AutoencoderKLFlux2 (assumed as Flux.1's). LoRA: trainer.families.flow.Flux2Klein's
# targets, 1,044,480 parameters per rank (counted).
ARCH["klein4b"] = _scaled_from_flux(3.876, 25, 3072, 4.022, 7680, 1.0, 1_044_480)

# --- Qwen-Image: a 20.4 B MMDiT, calibrated on musubi-tuner's VRAM table ------------------------
# (kohya-ss/musubi-tuner docs/qwen_image.md: 1024 x 1024, batch 1, bf16, gradient checkpointing,
# latents and text-encoder outputs cached beforehand, LoRA rank 16, 8-bit AdamW). Its rows: 42 GB with
# the base in bf16, 30 GB with an fp8 base. The two disagree with the weights' arithmetic (an 8-bit
# base saves 20 GB of its 41, the table 12), so the activations are calibrated on the fp8 row, the
# regime a LoRA on a 24-48 GB card runs in (derived); the bf16 row then comes out about 20 % high (on
# the safe side). This also reproduces SimpleTuner's and ai-toolkit's "24 GB is the minimum, with
# quantization beyond int8" (NF4 at 1024 px fits 24 GB, int8 does not; 16 GB fits nothing at 768 px
# or more, RES_FLOOR). Compute scaled from Flux by parameters (assumed; no published speed). Text
# encoder: Qwen2.5-VL-7B, 8.292 B; VAE 0.127 B (both counted). LoRA: trainer.families.flow.QwenImage's
# targets, 1,474,560 parameters per rank (counted). Sampling: true classifier-free guidance, two
# calls per step.
QWEN_MUSUBI_RANK = 16
_QWEN_B = 20.430
_QWEN_LINEAR = 0.9997
_QWEN_LORA_PER_RANK = 1_474_560
_QWEN_ACT_GB = (30 - _QWEN_B * (_QWEN_LINEAR * QUANT_BYTES["int8"] + (1 - _QWEN_LINEAR) * 2)
                - _QWEN_LORA_PER_RANK * QWEN_MUSUBI_RANK / 1e9 * (4 + 4 + OPTIMIZER_BYTES["adamw8bit"])
                - OVERHEAD_GB) / 4   # 1024 px = 4 images of 512 px
_QWEN_COMPUTE = _FLUX_COMPUTE * _QWEN_B / _FLUX_B
ARCH["qwenimage"] = Arch(_QWEN_B, 8.292, 0.127, (), 3584, {}, (), 0, _QWEN_COMPUTE, _QWEN_LINEAR, denoiser="transformer",
                         lora_per_rank=_QWEN_LORA_PER_RANK, activation_scale=_QWEN_ACT_GB / ACT_CKPT_GB,
                         quantized_recipes=True, forward_s=_transformer_forward_s(_QWEN_COMPUTE))


def _label(name: str, gb: float, sizes: tuple[float, ...]) -> str:
    """The name an estimate shows: the row's name, with the size when several sizes are timed."""
    return f"{name} {gb:g}GB" if len(sizes) > 1 else name


def _timed_cards() -> dict[str, TimedGpu]:
    """Every (card, memory size) with a speed figure, by the name the estimate shows ("A100 40GB")."""
    out = {}
    for name, (speed, basis, sizes) in SPEEDS.items():
        gpu = GPU_BY_NAME[name]  # a KeyError here is a speed figure for a card the table lacks
        for gb in sizes or (gpu.gb,):
            label = _label(name, gb, sizes)
            out[label] = TimedGpu(label, float(gb), speed, basis, gpu.precision)
    return out


TIMED: dict[str, TimedGpu] = _timed_cards()
T4 = TIMED["Tesla T4"]  # the reference card: estimates without a card are timed for it


def find_gpu(name: str | None) -> TimedGpu | None:
    """The timed card for a stored GPU name ("RTX 4090", "A100 80GB", "t4-small", "free Colab
    (T4)"), or None when the table does not know the name or has no speed figure for it."""
    hit = find_stored_gpu(name)
    if hit is None:
        return None
    row = card_of(hit.gpu)  # a service is timed as the card it gives, at that card's memory
    gb = hit.gb if row is hit.gpu else row.gb
    speed = SPEEDS.get(row.name)
    if speed is None or gb not in (speed[2] or (row.gb,)):
        return None
    return TIMED[_label(row.name, gb, speed[2])]


def typical_gpu(vram_gb: float) -> TimedGpu:
    """For an unnamed card: the slowest timed card with at least `vram_gb` (assumed; the T4 for
    16 GB and below, the largest card's slowest row above the table)."""
    big_enough = [g for g in TIMED.values() if g.vram_gb >= vram_gb]
    if not big_enough:
        top = max(g.vram_gb for g in TIMED.values())
        big_enough = [g for g in TIMED.values() if g.vram_gb == top]
    return min(big_enough, key=lambda g: (g.speed, g.vram_gb))


@dataclass
class Estimate:
    vram_gb: float
    minutes: float
    output_mb: float
    breakdown: list[str] = field(default_factory=list)  # one sentence per part of the estimate
    gpu: str = T4.name                                   # the card the time is for


# Keys the estimator also understands that TrainConfig does not have: they describe published
# setups (kohya's Adafactor) so the calibration can be checked.
_EXTRA = {"optimizer": None}


def _resolve(method: str, base_model: str, hp: dict, n_images: int = 1) -> dict:
    if method not in METHOD_NAMES:
        raise ValueError(f"method={method!r}; pick one of {list(METHOD_NAMES)}")
    if base_model not in ARCH:
        raise ValueError(f"base_model={base_model!r}; pick one of {list(ARCH)}")
    if not isinstance(hp, dict):
        raise ValueError(f"hp must be a dict of hyperparameters, got {type(hp).__name__}")
    unknown = sorted(set(hp) - set(TRAIN_DEFAULTS) - set(_EXTRA))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; use TrainConfig field names")
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images={n_images!r}; must be a whole number >= 1")
    h = {**TRAIN_DEFAULTS, **_EXTRA, **hp}
    for key in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "rank", "resolution"):
        if isinstance(h[key], bool) or not isinstance(h[key], int) or h[key] < 1:
            raise ValueError(f"{key}={h[key]!r}; must be a whole number >= 1")
    if h["mixed_precision"] not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={h['mixed_precision']!r}; pick one of {list(MIXED_PRECISION)}")
    if h["optimizer"] is None:
        h["optimizer"] = "adafactor" if h["use_adafactor"] else "adamw8bit" if h["use_8bit_adam"] else "adamw"
    if h["optimizer"] not in OPTIMIZER_BYTES:
        raise ValueError(f"optimizer={h['optimizer']!r}; pick one of {list(OPTIMIZER_BYTES)}")
    return h


def lora_params(base_model: str, rank: int, text_encoder: bool = False, conv: bool = False) -> int:
    """Parameters of a LoRA on the family's targets (UNet: to_q/to_k/to_v/to_out.0; transformer:
    trainer.families' list, counted), and the CLIP text encoders' q/k/v/out; with `conv`, LoCon,
    the ResNets' convolutions at the same rank."""
    a = ARCH[base_model]
    # Per transformer block of width C: self-attention q,k,v,out are C->C (4 x 2C); cross-attention
    # q and out are C->C (2 x 2C), k and v map the text context to C (2 x (context + C)).
    per_rank = a.lora_per_rank or sum(n * (14 * c + 2 * a.cross_dim) for c, n in a.attn_blocks.items())
    if text_encoder:
        per_rank += sum(layers * 4 * 2 * width for layers, width in a.te_layers)
    if conv:
        per_rank += a.conv_per_rank
    return rank * per_rank


def _text_cacheable(method: str, h: dict) -> bool:
    """Whether the text encoders stay frozen, so their outputs can be cached (TrainConfig's rule)."""
    return not h["train_text_encoder"] and method != "textual_inversion"


def _parts_on_gpu(method: str, base_model: str, h: dict) -> tuple[float, dict[str, float]]:
    """(trained parameters, frozen parameters by component), in billions."""
    a = ARCH[base_model]
    text_cached = h["cache_text_encoder_outputs"] and _text_cacheable(method, h)
    frozen = {a.denoiser: a.denoiser_b, "text encoder": 0.0 if text_cached else a.text_b,
              "VAE": 0.0 if h["cache_latents"] else a.vae_b}
    if method in ALL_WEIGHT_METHODS:
        trained = frozen.pop(a.denoiser)
        if h["train_text_encoder"]:
            trained += a.text_b
            frozen.pop("text encoder")
    elif method in ADAPTERS:
        trained = lora_params(base_model, h["rank"], h["train_text_encoder"], h["conv_lora"]) / 1e9
    else:  # textual inversion: the embedding table trains, the rest of the text encoder is frozen
        trained = CLIP_VOCAB * sum(a.token_dims) / 1e9
        frozen["text encoder"] = a.text_b - trained
    return trained, frozen


def images_per_step(method: str, h: dict) -> int:
    # diffusers DreamBooth puts one class image beside each instance image in the batch.
    prior = h["prior_preservation"] and method in CLASS_IMAGE_METHODS
    return h["train_batch_size"] * (2 if prior else 1)


def memory_gb(method: str, base_model: str, hp: dict) -> tuple[float, list[str]]:
    """Peak GPU memory in GB and one sentence per part."""
    h = _resolve(method, base_model, hp)
    # The T4 table shows fp16 barely changes memory with checkpointing on (10.08 vs 9.92 GB), so
    # precision scales only the frozen weights here; trained weights stay fp32 (master copies).
    wbytes = 4 if h["mixed_precision"] == "no" else 2
    a = ARCH[base_model]
    trained, frozen = _parts_on_gpu(method, base_model, h)
    frozen_gb = sum(frozen.values()) * wbytes
    quantized = h["quantize_base"] != "no" and a.denoiser in frozen
    if quantized:  # the linear layers' weights at the quantized size, the rest (norms, convolutions) as before
        frozen_gb -= frozen[a.denoiser] * a.linear_share * (wbytes - QUANT_BYTES[h["quantize_base"]])
    opt = h["optimizer"]
    train_gb = trained * (4 + 4 + OPTIMIZER_BYTES[opt])
    extra_gb = trained * ((EMA_BYTES if h["use_ema"] else 0)
                          + (ACCUM_BYTES if h["gradient_accumulation_steps"] > 1 else 0))
    images = images_per_step(method, h)
    act_gb = ((ACT_CKPT_GB if h["gradient_checkpointing"] else ACT_NOCKPT_GB) * a.activation_scale
              * (h["resolution"] / 512) ** 2 * images)
    total = frozen_gb + train_gb + extra_gb + act_gb + OVERHEAD_GB
    on_gpu = ", ".join(k for k, v in frozen.items() if v > 0) or "nothing"
    in_quant = f", the {a.denoiser}'s linear layers in {h['quantize_base']}" if quantized else ""
    parts = [
        f"Frozen weights ({on_gpu}) at {wbytes} bytes each{in_quant}: {frozen_gb:.2f} GB.",
        f"Trained weights ({trained * 1e3:.1f} M parameters) with fp32 gradients and {opt} state: {train_gb:.2f} GB.",
        f"Activations for {images} image(s) of {h['resolution']} px"
        f"{' with gradient checkpointing' if h['gradient_checkpointing'] else ''}: {act_gb:.2f} GB.",
        f"CUDA context and slack: {OVERHEAD_GB:.2f} GB (calibrated on the T4 table).",
    ]
    if extra_gb:
        parts.insert(2, f"EMA copy / accumulation buffer: {extra_gb:.2f} GB.")
    return total, parts


def seconds_per_step(method: str, base_model: str, hp: dict, gpu: TimedGpu | None = None) -> float:
    """Wall seconds per optimizer step (all micro-steps of gradient accumulation)."""
    h = _resolve(method, base_model, hp)
    a = ARCH[base_model]
    per_image = C1_FULL_S if method in ALL_WEIGHT_METHODS else C1_LIGHT_S
    micro = _t4_step_s(per_image, images_per_step(method, h))
    micro *= a.compute * (h["resolution"] / 512) ** 2  # compute grows with the pixels (derived)
    micro *= CKPT_SLOWDOWN if h["gradient_checkpointing"] else 1.0
    micro *= FP32_SLOWDOWN if h["mixed_precision"] == "no" else 1.0
    micro *= TEXT_ENCODER_SLOWDOWN if h["train_text_encoder"] else 1.0
    return micro * h["gradient_accumulation_steps"] / (gpu or T4).speed


def _sampling_s(base_model: str, h: dict, images: int, steps: int, gpu: TimedGpu) -> float:
    a = ARCH[base_model]
    per = (a.forward_s or FORWARD_S * a.compute) * a.sampling_passes * (h["resolution"] / 512) ** 2
    per *= FP32_SLOWDOWN if h["mixed_precision"] == "no" else 1.0
    return images * steps * per / gpu.speed


def output_mb(method: str, base_model: str, hp: dict) -> tuple[float, str]:
    h = _resolve(method, base_model, hp)
    a = ARCH[base_model]
    if method in ADAPTERS:
        # fp32 (the trained adapter's dtype): rank 4 on SD1.5 gives 3.19 MB vs the published
        # 3.29 MB of diffusers' example (costs §5). The lab also writes a kohya copy of it.
        n = lora_params(base_model, h["rank"], h["train_text_encoder"], h["conv_lora"])
        kind = "LoCon" if h["conv_lora"] else "LoRA"
        return n * 4 / 1e6, f"{kind} rank {h['rank']}: {n / 1e6:.2f} M parameters x 4 bytes."
    if method == "textual_inversion":
        n = h["num_vectors"] * sum(a.token_dims)
        return n * 4 / 1e6, f"Textual inversion: {h['num_vectors']} vector(s) of {sum(a.token_dims)} numbers x 4 bytes."
    # A whole diffusers folder, fp32 as stored on the hub: SD1.5 gives 4.27 GB (costs §5).
    total = a.denoiser_b + a.text_b + a.vae_b
    return total * 4e3, f"Full diffusers pipeline folder: {total:.2f} B parameters x 4 bytes (fp32)."


def estimate(method: str, base_model: str, hp: dict, n_images: int, *, gpu: TimedGpu | None = None) -> Estimate:
    """Memory, minutes and output size of one run; `gpu` sets the speed (default: a T4)."""
    h = _resolve(method, base_model, hp, n_images)
    gpu = gpu or T4
    vram, breakdown = memory_gb(method, base_model, hp)
    if gpu.memory_factor != 1.0:
        breakdown.append(f"Times {gpu.memory_factor:.2f}: what your logged runs held over their estimates "
                         f"({vram:.1f} -> {vram * gpu.memory_factor:.1f} GB).")
        vram *= gpu.memory_factor
    step_s = seconds_per_step(method, base_model, hp, gpu)
    train_s = h["max_train_steps"] * step_s
    epochs = h["max_train_steps"] * h["train_batch_size"] * h["gradient_accumulation_steps"] / n_images
    breakdown.append(f"Training: {h['max_train_steps']} steps x {step_s:.2f} s on a {gpu.name} = "
                     f"{train_s / 60:.1f} min (~{epochs:.0f} passes over {n_images} images).")
    extra_s = 0.0
    if h["prior_preservation"] and method in CLASS_IMAGE_METHODS:
        s = _sampling_s(base_model, h, h["num_class_images"], SAMPLING_STEPS, gpu)
        extra_s += s
        breakdown.append(f"Generating {h['num_class_images']} class images first: {s / 60:.1f} min.")
    n_prompts = len(h["validation_prompts"]) or 1
    rounds = 1 + (h["max_train_steps"] // h["validation_steps"] if h["validation_steps"] else 0)
    samples = rounds * n_prompts * h["num_validation_images"]
    s = _sampling_s(base_model, h, samples, h["validation_inference_steps"], gpu)
    extra_s += s
    breakdown.append(f"Validation samples ({rounds} rounds x {n_prompts} prompt(s)): {s / 60:.1f} min.")
    out, out_part = output_mb(method, base_model, hp)
    breakdown.append(out_part)
    return Estimate(vram_gb=round(vram, 2), minutes=round((train_s + extra_s) / 60, 1),
                    output_mb=round(out, 3), breakdown=breakdown, gpu=gpu.name)


# --- fitting a configuration to a card ------------------------------------------------------------
MARGIN = 1.10  # aim 10% under the card: the model is calibrated to about 10%
# Below this the base degrades (assumed); Flux's is the published LoRA default (README_flux, flux-qlora),
# SD 3.5's SimpleTuner's lowest-memory setting; Qwen-Image (made at 1328 px) as SDXL's, and below it
# the sources' 24 GB minimum would not hold.
RES_FLOOR = {"sd15": 512, "sd21": 512, "sdxl": 768, "flux1dev": 512, "sd35large": 512, "zimage": 512,
             "klein4b": 512, "qwenimage": 768}


def text_encoding_note(method: str, base_model: str, hp: dict, card_gb: float) -> str:
    """A sentence when a plan's frozen text encoders, cached, are larger than the card: the trainer then
    encodes the prompts on the CPU before training (trainer.memory.text_encoding_device), a slower start
    that the estimate leaves out; "" otherwise."""
    h = _resolve(method, base_model, hp)
    if not (h["cache_text_encoder_outputs"] and _text_cacheable(method, h)):
        return ""
    text_gb = ARCH[base_model].text_b * (4 if h["mixed_precision"] == "no" else 2)
    if text_encoding_device("cuda", text_gb, card_gb) == "cuda":
        return ""
    return (f"The text-encoder weights ({text_gb:.1f} GB) do not fit the {card_gb:g} GB card, so the trainer encodes "
            f"the prompts on the CPU once before training: a slower start (minutes), the same training.")


def memory_problem(estimated_gb: float, card_gb: float) -> str | None:
    """Why a plan that needs `estimated_gb` does not fit a `card_gb` card, or None when it does:
    the estimate is good to about 10%, so a plan within 10% of the card does not fit (MARGIN)."""
    if estimated_gb > card_gb:
        return f"needs about {estimated_gb:.1f} GB of GPU memory, more than your {card_gb:g} GB"
    if estimated_gb * MARGIN > card_gb:
        return (f"needs about {estimated_gb:.1f} GB of GPU memory, within 10% of your {card_gb:g} GB (the estimate "
                "is good to about 10%, so it may run out)")
    return None


def _fits(method, base_model, h, vram_gb, factor: float = 1.0) -> bool:
    return memory_gb(method, base_model, h)[0] * factor * MARGIN <= vram_gb


def _memory_steps(method: str, base_model: str, gpu: TimedGpu | None):
    """The savings in order of their cost to quality and speed: (name, change, sentence)."""
    half = (gpu or T4).precision  # "no": 16-bit breaks on this card (GTX 16xx)
    a = ARCH[base_model]
    quantizable = method in ADAPTERS and a.quantized_recipes
    vae_note = ""
    if base_model == "sdxl" and half == "fp16":
        vae_note = " (the diffusers SDXL recipe pairs fp16 with the fp16-fix VAE)"
    return [
        ("mixed_precision",
         lambda h: h["mixed_precision"] == "no" and half != "no" and {"mixed_precision": half},
         f"Mixed precision ({half}) keeps frozen weights in 16 bits and trains about twice as fast "
         f"(T4 table: 0.42 -> 0.93 it/s){vae_note}"),
        ("gradient_checkpointing", lambda h: not h["gradient_checkpointing"] and {"gradient_checkpointing": True},
         "Gradient checkpointing recomputes activations in the backward pass; it costs about 18% speed "
         "(T4 table: 1.14 -> 0.93 it/s)"),
        ("cache_latents", lambda h: not h["cache_latents"] and not h["random_flip"] and {"cache_latents": True},
         "Latent caching encodes each image once (the VAE is frozen), so the VAE leaves the GPU"),
        ("cache_text_encoder_outputs",
         lambda h: not h["cache_text_encoder_outputs"] and _text_cacheable(method, h)
         and {"cache_text_encoder_outputs": True},
         f"Text-encoder outputs cached: every training prompt is encoded once and the text encoders "
         f"({a.text_b:.1f} B parameters) wait on the CPU (kohya's low-memory SDXL recipe; the flux-qlora blog "
         "precomputes Flux's T5 and CLIP outputs the same way)"),
        ("use_8bit_adam", lambda h: not h["use_8bit_adam"] and h["optimizer"] == "adamw"
         and {"use_8bit_adam": True, "optimizer": "adamw8bit"},
         "8-bit AdamW stores optimizer state in 8 bits (T4 table: 15.79 -> 9.92 GB, no speed cost); "
         "it needs a CUDA GPU and bitsandbytes (pip install '.[gpu]')"),
        ("quantize_base", lambda h: quantizable and h["quantize_base"] == "no" and {"quantize_base": "int8"},
         f"The frozen {a.denoiser}'s weights in int8 (torchao, weight-only): one byte per weight instead of two, the "
         "LoRA trains on top in full precision (SimpleTuner's Flux LoRA: about 30 GB unquantised, 18 GB in int8)"),
        ("quantize_base", lambda h: quantizable and h["quantize_base"] == "int8" and {"quantize_base": "nf4"},
         f"The frozen {a.denoiser}'s weights in NF4, 4 bits (QLoRA, Dettmers et al. 2023; the flux-qlora blog trains "
         "a Flux LoRA in about 9 GB this way, 26 GB with the base in bf16); it needs a CUDA GPU and bitsandbytes "
         "(pip install '.[gpu]')"),
        ("use_adafactor", lambda h: not h["use_adafactor"] and h["optimizer"] in ("adamw", "adamw8bit")
         and {"use_adafactor": True, "use_8bit_adam": False, "optimizer": "adafactor"},
         "Adafactor instead of AdamW keeps almost no optimizer state (factored second moments, no momentum): "
         "kohya's choice for an SDXL full fine-tune in 24 GB"),
        ("use_ema", lambda h: h["use_ema"] and {"use_ema": False},
         "No EMA copy of the UNet; the HF DreamBooth experiments found EMA made little difference"),
        ("train_text_encoder",
         lambda h: h["train_text_encoder"] and {"train_text_encoder": False, "text_encoder_lr": None},
         "The text encoder stays frozen; this gives up its quality gain (largest for faces)"),
        ("prior_preservation", lambda h: h["prior_preservation"] and {"prior_preservation": False, "num_class_images": 0,
                                                                     "class_prompt": ""},
         "No prior preservation: each step trains on half the images (no class image beside each of yours), at the "
         "cost of the class drifting toward your subject; experts drop it before the resolution"),
        ("train_batch_size", lambda h: h["train_batch_size"] > 1 and {
            "train_batch_size": h["train_batch_size"] // 2,
            "gradient_accumulation_steps": h["gradient_accumulation_steps"] * 2},
         "Half the batch with twice the gradient accumulation keeps the effective batch but takes longer"),
        ("resolution", lambda h: h["resolution"] > RES_FLOOR[base_model] and {
            "resolution": max(RES_FLOOR[base_model], h["resolution"] - 256)},
         "Lower training resolution, the last resort: fine detail suffers"),
    ]


def _changed(h: dict, start: dict, hp: dict) -> dict:
    """The caller's hp plus every value the fitting changed (estimator-only keys stay out
    unless the caller gave them, so the result still maps onto TrainConfig)."""
    return {**hp, **{k: v for k, v in h.items() if v != start[k] and (k not in _EXTRA or k in hp)}}


def fit_memory(method: str, base_model: str, hp: dict, vram_gb: float, *,
               gpu: TimedGpu | None = None, keep: frozenset[str] = frozenset()) -> tuple[dict, list[str]]:
    """Apply memory savings, cheapest first, until the estimate is 10% under `vram_gb`; a saving
    that changes a setting in `keep` (one the user named) is never applied.

    Returns the new hyperparameters and one sentence per saving applied (with the GB saved).
    A saving that would not lower the estimate is skipped. When nothing is left to apply the
    configuration is returned as is: the caller compares the estimate with the card.
    """
    h = _resolve(method, base_model, hp)
    start = dict(h)
    if isinstance(vram_gb, bool) or not isinstance(vram_gb, (int, float)) or not vram_gb > 0:
        raise ValueError(f"vram_gb={vram_gb!r}; must be a positive number")
    applied: list[str] = []
    factor = gpu.memory_factor if gpu is not None else 1.0
    for name, change, sentence in _memory_steps(method, base_model, gpu):
        if name in keep:
            continue
        while not _fits(method, base_model, h, vram_gb, factor):
            delta = change(h)
            if not delta:
                break
            before = memory_gb(method, base_model, h)[0] * factor
            after = memory_gb(method, base_model, {**h, **delta})[0] * factor
            if after >= before - 0.05:  # buys nothing worth its cost (e.g. 8-bit Adam for a LoRA)
                break
            h.update(delta)
            applied.append(f"{sentence}: {before:.1f} -> {after:.1f} GB.")
            if name not in ("train_batch_size", "resolution"):  # only these repeat
                break
    return _changed(h, start, hp), applied


def fit_time(method: str, base_model: str, hp: dict, n_images: int, minutes: float, *,
             gpu: TimedGpu | None = None, keep: frozenset[str] = frozenset()) -> tuple[dict, list[str]]:
    """Shorten a run to fit `minutes`: mixed precision, fewer class images, validation only at
    the end, then fewer steps down to half of the given count (not when the user named the steps:
    `keep` holds the settings they named). Returns (hp, changes)."""
    h = _resolve(method, base_model, hp, n_images)
    start = dict(h)
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise ValueError(f"minutes={minutes!r}; must be a positive number")
    changes: list[str] = []

    def over() -> bool:
        return estimate(method, base_model, h, n_images, gpu=gpu).minutes > minutes

    half = (gpu or T4).precision
    if over() and h["mixed_precision"] == "no" and half != "no":
        h["mixed_precision"] = half
        changes.append(f"Mixed precision ({h['mixed_precision']}) roughly halves the run time "
                       "(T4 table: 0.42 -> 0.93 it/s).")
    if over() and h["prior_preservation"] and method in CLASS_IMAGE_METHODS and h["num_class_images"] > MIN_CLASS_IMAGES:
        changes.append(f"{MIN_CLASS_IMAGES} class images instead of {h['num_class_images']} "
                       "(autotrain's default; diffusers suggests 200-300).")
        h["num_class_images"] = MIN_CLASS_IMAGES
    if over() and h["validation_steps"]:
        h["validation_steps"] = 0
        changes.append("Validation samples only at the end of the run, not during it.")
    floor = max(50, h["max_train_steps"] // 2)  # below half the recipe, little is learned (assumed)
    if over() and h["max_train_steps"] > floor and "max_train_steps" not in keep:
        new = max(floor, min(h["max_train_steps"], steps_within(method, base_model, h, n_images, minutes, gpu=gpu)))
        if new < h["max_train_steps"]:
            changes.append(f"{new} steps instead of {h['max_train_steps']} to fit {minutes:g} minutes; "
                           "watch for underfitting.")
            h["max_train_steps"] = new
    return _changed(h, start, hp), changes


def steps_within(method: str, base_model: str, hp: dict, n_images: int, minutes: float, *,
                 gpu: TimedGpu | None = None) -> int:
    """How many steps (a multiple of 50, maybe 0) fit `minutes` after the fixed overheads
    (class images, validation samples) of `hp`."""
    per_step = seconds_per_step(method, base_model, hp, gpu) / 60
    fixed = estimate(method, base_model, {**hp, "max_train_steps": 1}, n_images, gpu=gpu).minutes - per_step
    return max(0, int((minutes - fixed) / per_step) // 50 * 50)


def fit_output(method: str, base_model: str, hp: dict, max_mb: float | None, *,
               keep: frozenset[str] = frozenset()) -> tuple[dict, list[str]]:
    """Halve a LoRA's rank until the file fits `max_mb` (other methods have no such knob; a rank
    the user named, in `keep`, stays)."""
    h = _resolve(method, base_model, hp)
    start = dict(h)
    changes: list[str] = []
    if max_mb is not None and method in ADAPTERS and "rank" not in keep:
        while h["rank"] > 1 and output_mb(method, base_model, h)[0] > max_mb:
            h["rank"] //= 2
            h["lora_alpha"] = float(h["rank"])
        if h["rank"] != start["rank"]:
            changes.append(f"LoRA rank {h['rank']} instead of {start['rank']} to keep the file under {max_mb:g} MB.")
    return _changed(h, start, hp), changes


def cheapest_gpu(method: str, base_model: str, hp: dict, n_images: int, minutes: float, *,
                 min_vram_gb: float = 0, faster_than: TimedGpu | None = None) -> tuple[TimedGpu, Estimate] | None:
    """The smallest, then slowest, card in the table that runs `hp` within memory and time,
    with at least `min_vram_gb` and faster than `faster_than` (the card the user has)."""
    floor = (faster_than or T4).speed
    factor = faster_than.memory_factor if faster_than is not None else 1.0  # the user's setup goes with them
    for gpu in sorted(TIMED.values(), key=lambda g: (g.vram_gb, g.speed)):
        if gpu.vram_gb < min_vram_gb or (gpu.speed <= floor and gpu.vram_gb <= min_vram_gb):
            continue
        gpu = replace(gpu, memory_factor=factor)
        est = estimate(method, base_model, hp, n_images, gpu=gpu)
        if est.vram_gb * MARGIN <= gpu.vram_gb and est.minutes <= minutes:
            return gpu, est
    return None

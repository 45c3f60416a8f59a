"""The shapes demo model: Stable Diffusion's architecture, small, pretrained on the shapes world.

Unlike the random tiny model (`trainer.tiny`), this one draws what it is asked: "a large red
circle on a blue background at the top left". It never saw the held-out concepts
(`world.HELD_OUT`: the star, outline drawings), so a fine-tune has something visible to teach.

The weights ship in the repo (`demo_weights.safetensors`, float16, a few MB), written by
`python -m trainer.shapes.pretrain` from a seed. `make_demo_model(out)` assembles a normal
diffusers folder from them (configs and tokenizer are built here), which every part of the
project loads like a user's checkpoint; `ensure_demo_model` caches one under the cache root.

Architecture (each part a stock diffusers / transformers class):
- VAE: AutoencoderKL, three blocks (4x down), so 64 px images <-> 16 px latents;
- UNet2DConditionModel: (32, 64, 64) channels, cross-attention in the two lower blocks;
- CLIPTextModel: 2 layers, width 64, over a CLIP BPE tokenizer learned from the world's words.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..tiny import DEMO_MODEL, build_cached, default_cache_root, make_tiny_tokenizer, save_pipeline
from .world import PALETTE, PATTERNS, SHAPES, SIZES, STYLES, position_words

DEMO_RESOLUTION = 64
LATENT_SIDE = DEMO_RESOLUTION // 4
LATENT_CHANNELS = 8            # more than SD 1.x's 4 (as SD3 and Flux have 16): a tiny VAE keeps the shapes sharp
TOKENS = 32                   # the tokenizer's (and text encoder's) length; the longest caption is ~20
WEIGHTS = Path(__file__).with_name("demo_weights.safetensors")
PARTS = ("unet", "vae", "text_encoder")   # key prefixes in the weights file
_VERSION_FILE = "demo_model_version.txt"
SAMPLE_STEPS = 20            # DDIM steps when drawing
GUIDANCE = 4.0               # classifier-free guidance scale when drawing

# Every word a caption of the world can hold (so each is one token), plus the usual fine-tune
# trigger and template words. Words never in pretraining captions ("star", "outline") still get
# ids; their embeddings stay as initialised until a fine-tune teaches them.
CORPUS = " ".join([*PALETTE, *SHAPES, *SIZES, *PATTERNS, *STYLES, "drawing", "a an on the in at of",
                   "background", *(position_words((c, r)) for c in range(3) for r in range(3)),
                   "sks shape style photo picture image of a thing object", "in the style of"])


def demo_tokenizer():
    return make_tiny_tokenizer(corpus=CORPUS, max_length=TOKENS)


def text_config(tokenizer):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=TOKENS, layer_norm_eps=1e-5, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=64)


def new_vae(scaling_factor: float = 1.0):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=(32, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=16, sample_size=DEMO_RESOLUTION, scaling_factor=scaling_factor)


def new_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIDE, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, layers_per_block=1,
        block_out_channels=(32, 64, 64), norm_num_groups=32, cross_attention_dim=64, attention_head_dim=8,
        # cross-attention at 8 and 4 latent pixels only (SD has it at its finer levels): tried SD's
        # layout (2026-12-06, 2000 steps warm-started, 31 min): it drew the world as well (shape 0.95)
        # at twice the cost per step, and a LoRA taught the star no better (1 in 12 against 3)
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))


def new_scheduler(prediction_type: str = "v_prediction"):
    from diffusers import DDIMScheduler

    # Stable Diffusion's noise schedule (trainer.tiny._scheduler), with SD 2.x's v-prediction: at
    # high noise an epsilon model learns almost nothing about the prompt (its target is nearly the
    # noisy input itself), so a small model trained from scratch drew the layout from the noise.
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type=prediction_type)


def assemble(unet, vae, text_encoder, tokenizer, prediction_type: str = "v_prediction"):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=new_scheduler(prediction_type), safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)


def draw(pipe, prompts: list[str], seed: int, steps: int = SAMPLE_STEPS, guidance: float = GUIDANCE, batch: int = 32):
    """PIL images for `prompts`, one per prompt; prompt i is drawn with seed `seed + i`."""
    import torch

    pipe.set_progress_bar_config(disable=True)
    images = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        generators = [torch.Generator().manual_seed(seed + i + j) for j in range(len(chunk))]
        with torch.no_grad():
            out = pipe(chunk, num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                       height=DEMO_RESOLUTION, width=DEMO_RESOLUTION, output_type="pil")
        images.extend(out.images)
    return images


def weights_digest(path: Path = WEIGHTS) -> str:
    """A short hash of the weights file (read again only when its size or modification time changes)."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_weights(weights: Path = WEIGHTS) -> tuple[dict, dict[str, str]]:
    """(float32 tensors by key, metadata) of a demo weights file."""
    from safetensors import safe_open

    if not Path(weights).is_file():
        raise FileNotFoundError(f"demo model weights '{weights}' are missing; "
                                "make them with: python -m trainer.shapes.pretrain")
    with safe_open(str(weights), framework="pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}, (f.metadata() or {})


def part_state(name: str, tensors: dict) -> dict:
    """The tensors of one part ("unet", "vae", "text_encoder"), without the part's key prefix."""
    return {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}


def load_part(name: str, tensors: dict, meta: dict[str, str], tokenizer=None):
    """One part of the demo model from `read_weights`, in eval mode (`tokenizer`: the demo
    tokenizer when already built, for the text encoder's vocabulary size)."""
    from transformers import CLIPTextModel

    make = {"unet": new_unet, "vae": lambda: new_vae(float(meta.get("scaling_factor", "1.0"))),
            "text_encoder": lambda: CLIPTextModel(text_config(tokenizer or demo_tokenizer()))}[name]
    module = make()
    module.load_state_dict(part_state(name, tensors), strict=True)
    return module.eval()


def build_demo_pipeline(weights: Path = WEIGHTS):
    """The pretrained demo pipeline in memory, in float32. The global torch RNG is left as it was:
    the parts' random init (overwritten by the weights) would otherwise shift what a run seeded
    before it draws next, so a fine-tune that first builds the cached folder would start from
    another LoRA init than every later one."""
    import torch

    tensors, meta = read_weights(weights)
    tokenizer = demo_tokenizer()
    with torch.random.fork_rng(devices=[]):
        parts = {name: load_part(name, tensors, meta, tokenizer) for name in PARTS}
    return assemble(parts["unet"], parts["vae"], parts["text_encoder"], tokenizer,
                    meta.get("prediction_type", "epsilon"))


def save_weights(path: Path, unet, vae, text_encoder, metadata: dict[str, str]) -> None:
    """All three parts' weights in one float16 safetensors file (keys prefixed by part)."""
    from safetensors.torch import save_file

    tensors = {}
    for name, module in zip(PARTS, (unet, vae, text_encoder)):
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").half().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    tmp.replace(path)


def make_demo_model(out_dir: str | Path, weights: Path = WEIGHTS) -> Path:
    """Write the demo pipeline as a diffusers folder (safetensors) to `out_dir`; return the path.

    `out_dir` may exist but must not hold files, so a typo cannot overwrite a real model.
    """
    return save_pipeline(build_demo_pipeline, out_dir, _VERSION_FILE, weights_digest(weights), weights)


def ensure_demo_model(cache_root: str | Path | None = None) -> Path:
    """`<cache_root>/shapes-demo`, built once from the shipped weights (rebuilt when they change)."""
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    digest = weights_digest()
    return build_cached(root / DEMO_MODEL, lambda folder: _is_current(folder, digest), make_demo_model)


def _is_current(folder: Path, digest: str) -> bool:
    try:
        return (folder / "model_index.json").is_file() and (folder / _VERSION_FILE).read_text().strip() == digest
    except OSError:
        return False

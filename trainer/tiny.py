"""The built-in tiny models, one per model family: random weights, built from configs, no download.

Tests, demos and benchmarks need a real diffusers pipeline folder that loads through the same
`from_pretrained(dir, local_files_only=True)` path a user's checkpoint takes, but this project
cannot reach a model hub. So we build one: small enough that a training step at 64 px runs in a
fraction of a second on CPU, large enough that LoRA targets (`to_q`, `to_k`, `to_v`, `to_out.0`)
exist and that changed weights visibly change the image.

The sizes follow diffusers' own pipeline tests (`get_dummy_components`, the (32, 64) variant).
The tokenizer is a real byte-level CLIP BPE whose merges are learned here from a small built-in
corpus, so every prompt tokenizes (no `<unk>`) and different prompts give different ids.

Everything is seeded and built inside `torch.random.fork_rng`, so the same arch gives
byte-identical weight files and the caller's RNG state is untouched. Archs: "sd15", "sdxl",
"sd3" (SD 3.5's layout: two CLIPs, T5, a joint transformer), "flux" (Flux.1's: CLIP, T5, a
double/single-stream transformer), "flux2" (Flux.2 klein's: a Qwen3 text encoder with a chat
template, a 2x2-patchified batch-normalised VAE), "zimage" (Z-Image's: a Qwen3 text encoder, a
single-stream transformer over lists of latents and prompt states) and "qwenimage" (Qwen-Image's: a
Qwen2.5-VL text encoder, a causal 3-D video VAE, a double-stream transformer), built in as base
models "tiny", "tiny-sdxl", "tiny-sd3", "tiny-flux", "tiny-flux2", "tiny-zimage" and "tiny-qwenimage".
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

TINY_RESOLUTION = 64          # pixel side the tiny model generates and trains at
TINY_SEED = 0                 # seed of every component's random init
TINY_VERSION = "2"            # bump when the recipe changes, so cached copies are rebuilt
ARCHS = ("sd15", "sdxl", "sd3", "flux", "flux2", "zimage", "qwenimage")
# base_model names that mean "the built-in tiny model" -> its arch
TINY_MODELS = {"tiny": "sd15", "tiny-sdxl": "sdxl", "tiny-sd3": "sd3", "tiny-flux": "flux", "tiny-flux2": "flux2",
               "tiny-zimage": "zimage", "tiny-qwenimage": "qwenimage"}
# the pretrained shapes demo model (trainer.shapes.demo_model): small like these, but it draws
DEMO_MODEL = "shapes-demo"
BUILTIN_MODELS = (*TINY_MODELS, DEMO_MODEL)   # every base model that is built here and runs on a CPU

TINY_VERSION_FILE = "tiny_model_version.txt"
_VOCAB_SIZE = 1000            # 256 bytes + 256 bytes</w> + 486 merges + 2 specials
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"

# Text the BPE merges are learned from: the words people put in Stable Diffusion prompts.
# Any text tokenizes (byte fallback); this only decides which words get short ids.
PROMPT_CORPUS = """
a photo of sks dog. a photo of a dog. a photo of a cat. a photo of a person. a portrait of a man.
a portrait of a woman. a painting of a house in the style of van gogh. a watercolor painting of a
mountain landscape at sunset. an oil painting of a city street at night with neon lights.
a close up photo of a red car on the road. a cute puppy sitting on the grass in the park.
a dog wearing a hat and sunglasses on the beach. a cat sleeping on a sofa next to the window.
a digital illustration of a castle in the clouds, highly detailed, sharp focus, trending art.
a pencil sketch of an old tree in the forest. a black and white photograph of a bridge over a river.
a toy robot standing on a wooden table. a backpack on a chair. a vase with flowers on a kitchen table.
a teapot, a cup, a bottle, a clock, a shoe, a bag, a book, a lamp, a plant, a car, a bike, a boat.
a man with a beard smiling, a young woman with long hair, a child playing with a ball, an old man.
cinematic lighting, soft light, studio photo, professional photography, 4k, 8k, high resolution,
best quality, masterpiece, bokeh, depth of field, film grain, anime style, cartoon, 3d render,
pixel art, concept art, fantasy, science fiction, cyberpunk, steampunk, minimalist, abstract, logo,
icon, sticker, poster, comic book, studio ghibli, pop art, impressionism, cubism, surrealism.
blue sky, green field, white snow, yellow sun, orange fire, purple flower, pink dress, brown bear,
gray wall, golden hour, blue hour, rainy day, foggy morning, winter, summer, spring, autumn.
in the snow, in the water, under the sea, in space, on the moon, in a garden, in a room, at home.
front view, side view, back view, top view, full body, upper body, face, eyes, hands, smile.
"""


# --- tokenizer ---------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP table mapping each byte to a printable unicode character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def learn_bpe_merges(text: str, n_merges: int) -> list[tuple[str, str]]:
    """Learn up to `n_merges` CLIP-style BPE merges from `text` (words end in `</w>`).

    Plain BPE: repeatedly merge the most frequent adjacent pair; ties break on the pair itself
    so the result is deterministic. Stops early when every word is a single symbol.
    """
    byte_map = _bytes_to_unicode()
    # the same word split CLIP uses, restricted to what matters for a learned vocab
    words = Counter(re.findall(r"[^\W\d_]+|\d|[^\s\w]+", text.lower()))
    splits: dict[tuple[str, ...], int] = {}
    for word, freq in words.items():
        chars = [byte_map[b] for b in word.encode("utf-8")]
        chars[-1] += "</w>"
        splits[tuple(chars)] = splits.get(tuple(chars), 0) + freq
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter = Counter()
        for symbols, freq in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: dict[tuple[str, ...], int] = {}
        for symbols, freq in splits.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + freq
        splits = merged
    return merges


def build_clip_vocab(n_merges: int = _VOCAB_SIZE - 514, corpus: str = PROMPT_CORPUS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) in CLIP's layout: bytes, bytes+</w>, merges, then the two specials last.

    Merges are learned from `corpus` (by default prompt words); fewer than `n_merges` when every
    word of it is already one token."""
    merges = list(_corpus_merges(n_merges, corpus))
    tokens = list(_bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m) for m in merges]
    tokens += [_BOS, _EOS]
    if len(set(tokens)) != len(tokens):  # a merge equal to a byte token would shift every id
        raise RuntimeError("tiny tokenizer vocab has duplicate tokens")
    return {t: i for i, t in enumerate(tokens)}, merges


@functools.lru_cache(maxsize=4)
def _corpus_merges(n_merges: int, corpus: str) -> tuple[tuple[str, str], ...]:
    # learning takes a few hundred ms of pure Python; SDXL and tests ask for it repeatedly
    return tuple(learn_bpe_merges(corpus, n_merges))


def make_tiny_tokenizer(pad_token: str = _EOS, corpus: str = PROMPT_CORPUS, max_length: int = 77):
    """A CLIPTokenizer over a locally learned vocab, `max_length` tokens (77 like every SD text encoder).

    SD 1.x pads with `<|endoftext|>`; SDXL's second tokenizer pads with `!` (pass `pad_token="!"`).
    """
    from transformers import CLIPTokenizer

    vocab, merges = build_clip_vocab(corpus=corpus)
    return CLIPTokenizer(vocab=vocab, merges=merges, unk_token=_EOS, bos_token=_BOS, eos_token=_EOS,
                         pad_token=pad_token, model_max_length=max_length)


# --- model components --------------------------------------------------------------------
def clip_text_config(tokenizer, projection: bool):
    from transformers import CLIPTextConfig

    # Real eos id (not the legacy eos_token_id=2): transformers then pools at the first eos,
    # which stays right when textual inversion appends tokens after the specials.
    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, layer_norm_eps=1e-5, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=32 if projection else 512)


def _vae():
    from diffusers import AutoencoderKL

    # Two blocks: one 2x downsample, so 64 px images <-> 32 px latents.
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=32, sample_size=TINY_RESOLUTION)


def _unet(arch: str):
    from diffusers import UNet2DConditionModel

    common = dict(
        sample_size=TINY_RESOLUTION // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    if arch == "sd15":
        return UNet2DConditionModel(cross_attention_dim=32, attention_head_dim=8, **common)
    # SDXL: cross-attention sees both encoders' hidden states concatenated (32 + 32); the added
    # "text_time" embedding takes 6 size/crop ids (8 dims each) plus the 32-dim pooled projection.
    return UNet2DConditionModel(
        cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
        transformer_layers_per_block=(1, 2), addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32, **common)


def _scheduler():
    from diffusers import DDIMScheduler

    # SD 1.x noise schedule. Training code loads DDPMScheduler from this same config; DDIM makes
    # 2-25 step validation samples meaningful. steps_offset=1 avoids diffusers' FutureWarning.
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type="epsilon")


# --- SD 3.5 and Flux.1 -------------------------------------------------------------------
# Sizes follow diffusers' own pipeline tests (`get_dummy_components` of the SD3 and Flux tests),
# with two changes for a project that cannot download: the CLIP tokenizers are the local BPE
# above, and T5's tokenizer is a small unigram model learned here from the same corpus
# (diffusers' tests download `hf-internal-testing/tiny-random-t5`). The text widths fit
# together as in the real models: SD3 concatenates CLIP-L and CLIP-G (32 + 32) and pads them to
# T5's width (64, the transformer's `joint_attention_dim`); Flux reads CLIP-L's pooled output
# and T5's states.

T5_WIDTH = 64
T5_MAX_LENGTH = 32            # T5 tokens per prompt (the real pipelines use 256-512)
_T5_VOCAB = 300


def make_tiny_t5_tokenizer(corpus: str = PROMPT_CORPUS):
    """A T5TokenizerFast over a unigram vocabulary learned here (pad 0, eos 1, unk 2 as in T5)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator([line for line in corpus.splitlines() if line.strip()],
                            trainers.UnigramTrainer(vocab_size=_T5_VOCAB, special_tokens=["<pad>", "</s>", "<unk>"],
                                                    unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                           extra_ids=0, model_max_length=T5_MAX_LENGTH)


def _t5(tokenizer):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=T5_WIDTH, d_kv=16, d_ff=37, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                                   decoder_start_token_id=0))


def _flow_vae(latent_channels: int):
    from diffusers import AutoencoderKL

    # One 2x downsample (64 px <-> 32 px latents); shift and scale as SD3's and Flux's VAEs have.
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=8, sample_size=TINY_RESOLUTION,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)


_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen's chat template, as far as the Flux.2 klein pipeline uses it (one user turn, then the
# assistant's turn opened)
_QWEN_CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                       "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tiny_qwen_tokenizer(corpus: str = PROMPT_CORPUS):
    """A byte-level BPE Qwen2 tokenizer learned here, with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([line for line in corpus.splitlines() if line.strip()],
                            trainers.BpeTrainer(vocab_size=_VOCAB_SIZE, special_tokens=list(_QWEN_SPECIALS),
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    qwen = Qwen2TokenizerFast(tokenizer_object=tok, unk_token=None, bos_token=None, eos_token="<|im_end|>",
                              pad_token="<|endoftext|>", model_max_length=512)
    qwen.chat_template = _QWEN_CHAT_TEMPLATE
    return qwen


def _tiny_qwen3(model_class, tokenizer, layers: int):
    """A 16-wide Qwen3 text encoder of `layers` layers over the tiny tokenizer (seeded)."""
    import torch
    from transformers import Qwen3Config

    torch.manual_seed(TINY_SEED)
    return model_class(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=16, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id))


def _klein_pipeline():
    """The tiny Flux.2 klein pipeline (call inside fork_rng): 28 Qwen3 layers so the pipeline's
    default hidden-state layers (9, 18, 27) exist, each 16 wide (48 = 3 x 16 joint width)."""
    import torch
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3ForCausalLM

    tokenizer = make_tiny_qwen_tokenizer()
    text_encoder = _tiny_qwen3(Qwen3ForCausalLM, tokenizer, layers=28)
    torch.manual_seed(TINY_SEED)
    # 4 latent channels patchified 2x2 -> 16 transformer inputs (Flux.2's VAE: 32 -> 128)
    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                          attention_head_dim=16, num_attention_heads=2, joint_attention_dim=48,
                                          timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4],
                                          guidance_embeds=False)
    # Its AdaLN modulation at diffusers' random init gives gates near zero, so neither the prompt nor a
    # LoRA reaches the image; 10x opens them as training opens a real model's (the prompt then moves
    # the tiny image as much as the other families' prompts move theirs).
    with torch.no_grad():
        for name, module in transformer.named_modules():
            if name.endswith("modulation") or "modulation." in name:
                for p in module.parameters():
                    p.mul_(10.0)
    torch.manual_seed(TINY_SEED)
    vae = AutoencoderKLFlux2(sample_size=TINY_RESOLUTION, down_block_types=("DownEncoderBlock2D",) * 2,
                             up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                             latent_channels=4, norm_num_groups=8, use_quant_conv=False, use_post_quant_conv=False)
    return Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, transformer=transformer)


def _zimage_pipeline():
    """The tiny Z-Image pipeline (call inside fork_rng), sized as diffusers' own Z-Image pipeline
    test: a 2-layer Qwen3 whose second-to-last hidden states (16 wide) are the prompt features, a
    32-wide transformer (2 main layers, 1 noise and 1 context refiner), Flux.1's 16-channel VAE layout."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Model

    tokenizer = make_tiny_qwen_tokenizer()
    text_encoder = _tiny_qwen3(Qwen3Model, tokenizer, layers=2)
    torch.manual_seed(TINY_SEED)
    transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32,
                                           n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2, qk_norm=True,
                                           cap_feat_dim=16, axes_dims=[8, 4, 4], axes_lens=[1024, 32, 32])
    with torch.no_grad():   # the pad tokens are made with torch.empty: fixed, so the files are reproducible
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
    torch.manual_seed(TINY_SEED)
    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flow_vae(16), text_encoder=text_encoder,
                          tokenizer=tokenizer, transformer=transformer)


# QwenImagePipeline's system prompt (its prompt_template_encode), which the pipeline drops from the
# prompt states by position: its first 34 tokens, the template's length in Qwen's own tokenizer. The
# tiny tokenizer learns these words whole, so here too the 34 tokens dropped are the template's.
QWEN_IMAGE_SYSTEM_PROMPT = ("Describe the image by detailing the color, shape, size, texture, quantity, text, spatial "
                            "relationships of the objects and background:")


# Qwen-Image's scheduler_config.json: the shift depends on the image's size (dynamic shifting)
QWEN_IMAGE_SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9,
                            shift_terminal=0.02, time_shift_type="exponential", use_dynamic_shifting=True)


def make_tiny_qwen_image_tokenizer():
    """The tiny Qwen tokenizer with QwenImagePipeline's system prompt learned whole (see above)."""
    return make_tiny_qwen_tokenizer(PROMPT_CORPUS + ("\nsystem\nuser\nassistant\n" + QWEN_IMAGE_SYSTEM_PROMPT) * 3)


def _qwenimage_pipeline():
    """The tiny Qwen-Image pipeline (call inside fork_rng), sized as diffusers' own Qwen-Image
    pipeline test: a 2-layer Qwen2.5-VL (its vision tower 2 blocks), a causal 3-D VAE with one 2x
    downsample and 16 latent channels (identity latent statistics), a 2-layer transformer, and
    Qwen-Image's own dynamic-shift schedule."""
    import torch
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline,
                           QwenImageTransformer2DModel)
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = make_tiny_qwen_image_tokenizer()
    vocab = len(tokenizer)
    torch.manual_seed(TINY_SEED)
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": vocab, "rope_theta": 1000000.0,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=vocab, vision_start_token_id=vocab - 3, vision_end_token_id=vocab - 2,
        vision_token_id=vocab - 1)).eval()
    torch.manual_seed(TINY_SEED)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=2,
                                              attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                              guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    # At diffusers' random init the image tokens take almost nothing from the prompt's (measured: the
    # transformer's output moved 0.1 % between two prompts, the image 0.02 of 255): each block's
    # modulation (its gates) and the prompt stream's value projection opened 10x, the prompt moves
    # the tiny image about as much as the other families' prompts move theirs (1.3 of 255).
    with torch.no_grad():
        for name, module in transformer.named_modules():
            if name.endswith(("img_mod", "txt_mod", "attn.add_v_proj")):
                for p in module.parameters():
                    p.mul_(10.0)
    torch.manual_seed(TINY_SEED)
    vae = AutoencoderKLQwenImage(base_dim=16, z_dim=16, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[False],
                                 latents_mean=[0.0] * 16, latents_std=[1.0] * 16)
    return QwenImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(**QWEN_IMAGE_SCHEDULER), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                             transformer=transformer)


def _flow_pipeline(arch: str):
    """The tiny SD 3.5 or Flux.1 pipeline (call inside fork_rng)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    clip_tokenizer, t5_tokenizer = make_tiny_tokenizer(), make_tiny_t5_tokenizer()
    torch.manual_seed(TINY_SEED)
    t5 = _t5(t5_tokenizer)
    if arch == "sd3":
        from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
        from transformers import CLIPTextModelWithProjection

        clip_g_tokenizer = make_tiny_tokenizer(pad_token="!")
        torch.manual_seed(TINY_SEED)
        clip_l = CLIPTextModelWithProjection(clip_text_config(clip_tokenizer, projection=True))
        torch.manual_seed(TINY_SEED + 1)
        clip_g = CLIPTextModelWithProjection(clip_text_config(clip_g_tokenizer, projection=True))
        torch.manual_seed(TINY_SEED)
        transformer = SD3Transformer2DModel(
            sample_size=TINY_RESOLUTION // 2, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
            attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
            joint_attention_dim=T5_WIDTH, pooled_projection_dim=32 + 32, pos_embed_max_size=32)
        torch.manual_seed(TINY_SEED)
        return StableDiffusion3Pipeline(
            transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(16),
            text_encoder=clip_l, tokenizer=clip_tokenizer, text_encoder_2=clip_g, tokenizer_2=clip_g_tokenizer,
            text_encoder_3=t5, tokenizer_3=t5_tokenizer)
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(TINY_SEED)
    clip_l = CLIPTextModel(clip_text_config(clip_tokenizer, projection=False))
    torch.manual_seed(TINY_SEED)
    # 16 latent channels packed 2x2 -> 64 transformer inputs, as Flux.1 packs its latents
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=T5_WIDTH,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    torch.manual_seed(TINY_SEED)
    return FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_flow_vae(16),
                        text_encoder=clip_l, tokenizer=clip_tokenizer, text_encoder_2=t5, tokenizer_2=t5_tokenizer)


def build_tiny_pipeline(arch: str = "sd15"):
    """The tiny pipeline in memory (seeded; the global torch RNG is left as it was)."""
    import torch

    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}; pick one of {list(ARCHS)}")
    with torch.random.fork_rng(devices=[]):
        if arch in ("sd3", "flux"):
            return _flow_pipeline(arch)
        if arch == "flux2":
            return _klein_pipeline()
        if arch == "zimage":
            return _zimage_pipeline()
        if arch == "qwenimage":
            return _qwenimage_pipeline()
        torch.manual_seed(TINY_SEED)
        unet = _unet(arch)
        torch.manual_seed(TINY_SEED)
        vae = _vae()
        tokenizer = make_tiny_tokenizer()
        if arch == "sd15":
            from diffusers import StableDiffusionPipeline
            from transformers import CLIPTextModel

            torch.manual_seed(TINY_SEED)
            text_encoder = CLIPTextModel(clip_text_config(tokenizer, projection=False))
            return StableDiffusionPipeline(
                vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=_scheduler(),
                safety_checker=None, feature_extractor=None, image_encoder=None,
                requires_safety_checker=False)
        from diffusers import StableDiffusionXLPipeline
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        tokenizer_2 = make_tiny_tokenizer(pad_token="!")
        torch.manual_seed(TINY_SEED)
        text_encoder = CLIPTextModel(clip_text_config(tokenizer, projection=False))
        torch.manual_seed(TINY_SEED + 1)  # the two encoders must differ, as in real SDXL
        text_encoder_2 = CLIPTextModelWithProjection(clip_text_config(tokenizer_2, projection=True))
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, scheduler=_scheduler(), image_encoder=None,
            feature_extractor=None)


def make_tiny_model(out_dir: str | Path, arch: str = "sd15") -> Path:
    """Write the tiny pipeline as a diffusers folder (safetensors) to `out_dir`; return the path.

    Same arch -> byte-identical weight files. `out_dir` may exist but must not hold files,
    so a typo cannot overwrite a real model.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}; pick one of {list(ARCHS)}")
    return save_pipeline(build_tiny_pipeline, out_dir, TINY_VERSION_FILE, f"{arch} {TINY_VERSION}", arch)


def save_pipeline(build, out_dir: str | Path, version_file: str, version: str, *args) -> Path:
    """`build(*args)` saved as a diffusers folder (safetensors) in `out_dir`, with `version` in
    `version_file`. `out_dir` may exist but must not hold files: a typo cannot overwrite a model.
    The folder is checked before anything is built."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir '{out}' is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"out_dir '{out}' is not empty; give a new or empty folder")
    pipe = build(*args)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    (out / version_file).write_text(version + "\n")
    return out


def default_cache_root() -> Path:
    """$FTA_CACHE_DIR, else ~/.cache/finetune-advisor."""
    env = os.environ.get("FTA_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "finetune-advisor"


def ensure_tiny_model(cache_root: str | Path | None = None, arch: str = "sd15") -> Path:
    """Return `<cache_root>/tiny-<arch>`, building it once.

    Built in a temporary sibling folder and renamed into place, so a reader never sees half a
    model and concurrent callers (e.g. several `accelerate launch` processes) are safe: the
    first rename wins and the others discard their copy. A copy from an older recipe is replaced.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}; pick one of {list(ARCHS)}")
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    return build_cached(root / f"tiny-{arch}", lambda folder: _is_current(folder, arch),
                        lambda tmp: make_tiny_model(tmp, arch=arch))


def build_cached(final: Path, is_current, make) -> Path:
    """`final`, made by `make(folder)` unless `is_current(final)` already holds.

    Made in a temporary sibling folder and renamed into place, so a reader never sees half a
    model and concurrent callers are safe: the first rename wins and the others discard their
    copy. An out-of-date copy is moved aside and removed first."""
    if is_current(final):
        return final
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        make(tmp)
        if final.exists() and not is_current(final):
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{final.name}-", dir=root))
            try:
                final.rename(stale / "old")
            except OSError:
                pass  # another process moved it first
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(final)
        except OSError:
            if not is_current(final):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _is_current(folder: Path, arch: str) -> bool:
    marker = folder / TINY_VERSION_FILE
    try:
        return (folder / "model_index.json").is_file() and marker.read_text().strip() == f"{arch} {TINY_VERSION}"
    except OSError:
        return False


def resolve_tiny(base_model: str, cache_root: str | Path | None = None) -> Path | None:
    """The folder of the built-in model when `base_model` names it ("tiny", "tiny-sdxl"), else None."""
    arch = TINY_MODELS.get(base_model)
    return None if arch is None else ensure_tiny_model(cache_root, arch=arch)

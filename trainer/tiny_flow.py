"""Tiny flow-matching transformer pipelines (SD 3.5, Flux.1): random weights, built from configs,
no download - the first step of issue 12 (every family trains, samples and reloads in the CPU
test suite). The trainer does not train these families yet; `make-tiny-model --arch sd3|flux`
writes them so that work can start from real pipeline folders.

Sizes follow diffusers' own pipeline tests (`get_dummy_components` of the SD3 and Flux tests),
with two changes for a project that cannot download: the CLIP tokenizers are the local BPE of
`trainer.tiny`, and T5's tokenizer is a small unigram model learned here from the same corpus
(diffusers' tests download `hf-internal-testing/tiny-random-t5`). The text widths fit together
as in the real models: SD3 concatenates CLIP-L and CLIP-G (32 + 32) and pads them to T5's width
(64, the transformer's `joint_attention_dim`); Flux reads CLIP-L's pooled output and T5's states.

Seeded and built inside `torch.random.fork_rng`, like `trainer.tiny`.
"""
from __future__ import annotations

from .tiny import (PROMPT_CORPUS, TINY_RESOLUTION, TINY_SEED, TINY_VERSION_FILE, clip_text_config, make_tiny_tokenizer,
                   save_pipeline)

FLOW_ARCHS = ("sd3", "flux")
TINY_FLOW_VERSION = "1"       # bump when the recipe changes
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


def _vae(latent_channels: int):
    from diffusers import AutoencoderKL

    # One 2x downsample (64 px <-> 32 px latents); shift and scale as SD3's and Flux's VAEs have.
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=8, sample_size=TINY_RESOLUTION,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)


def build_tiny_flow_pipeline(arch: str):
    """The tiny SD 3.5 or Flux.1 pipeline in memory (seeded; the global torch RNG is left as it was)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    if arch not in FLOW_ARCHS:
        raise ValueError(f"arch={arch!r}; pick one of {list(FLOW_ARCHS)}")
    with torch.random.fork_rng(devices=[]):
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
                transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_vae(16),
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
        return FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(16),
                            text_encoder=clip_l, tokenizer=clip_tokenizer, text_encoder_2=t5, tokenizer_2=t5_tokenizer)


def make_tiny_flow_model(out_dir, arch: str):
    """Write the tiny SD 3.5 or Flux.1 pipeline as a diffusers folder (safetensors); return the path.
    `out_dir` may exist but must not hold files (as `trainer.tiny.make_tiny_model`)."""
    if arch not in FLOW_ARCHS:
        raise ValueError(f"arch={arch!r}; pick one of {list(FLOW_ARCHS)}")
    return save_pipeline(build_tiny_flow_pipeline, out_dir, TINY_VERSION_FILE, f"{arch} {TINY_FLOW_VERSION}", arch)

"""The cost model's architecture constants (advisor.recommendation.costs.ARCH) are counts on the
real architectures: each model is built from its public config on the meta device (no weights,
no download) and counted here, so a typo in a constant or a change of the trainer's LoRA targets
fails a test instead of skewing every estimate."""
import pytest
import torch

from advisor.recommendation import costs

accelerate = pytest.importorskip("accelerate")


def _unet(base):
    from diffusers import UNet2DConditionModel

    configs = {  # the published unet/config.json values that differ from diffusers' defaults
        "sd15": dict(cross_attention_dim=768, attention_head_dim=8),
        "sd21": dict(cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20], use_linear_projection=True),
        "sdxl": dict(cross_attention_dim=2048, attention_head_dim=[5, 10, 20], block_out_channels=(320, 640, 1280),
                     down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                     up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                     transformer_layers_per_block=[1, 2, 10], addition_embed_type="text_time",
                     addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                     use_linear_projection=True),
    }
    with accelerate.init_empty_weights():
        return UNet2DConditionModel(**configs[base])


def _flux():
    from diffusers import FluxTransformer2DModel

    with accelerate.init_empty_weights():  # black-forest-labs/FLUX.1-dev transformer/config.json
        return FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                                      attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                                      pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _linear_share(model) -> float:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)) / _count(model)


def _lora_per_rank(model, targets) -> int:
    """rank x (in + out) summed over the linear layers peft's target_modules suffixes match."""
    return sum(m.in_features + m.out_features for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in targets))


@pytest.mark.parametrize("base", ["sd15", "sd21", "sdxl"])
def test_unet_counts(base):
    unet, arch = _unet(base), costs.ARCH[base]
    assert _count(unet) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert _linear_share(unet) == pytest.approx(arch.linear_share, abs=0.001)
    from trainer.families.unet import StableDiffusion

    assert _lora_per_rank(unet, StableDiffusion.lora_targets) == costs.lora_params(base, 1)


def test_flux_counts_and_the_blogs_lora():
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from trainer.families.flow import Flux

    flux, arch = _flux(), costs.ARCH["flux1dev"]
    assert _count(flux) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert _linear_share(flux) == pytest.approx(arch.linear_share, abs=0.0001)
    assert _lora_per_rank(flux, Flux.lora_targets) == arch.lora_per_rank == costs.lora_params("flux1dev", 1)
    # the blog's "trainable params: 4,669,440" for rank 4 on attention only
    assert 4 * _lora_per_rank(flux, ("to_k", "to_q", "to_v", "to_out.0")) == costs.FLUX_BLOG_LORA
    with accelerate.init_empty_weights():
        t5 = T5EncoderModel(T5Config(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
                                     vocab_size=32128, feed_forward_proj="gated-gelu"))
        clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, projection_dim=768))
        vae = AutoencoderKL(latent_channels=16, block_out_channels=(128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False)
    assert (_count(t5) + _count(clip)) / 1e9 == pytest.approx(arch.text_b, abs=0.001)
    assert _count(vae) / 1e9 == pytest.approx(arch.vae_b, abs=0.001)


def test_sd35_large_counts():
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from trainer.families.flow import StableDiffusion3

    arch = costs.ARCH["sd35large"]
    with accelerate.init_empty_weights():  # stabilityai/stable-diffusion-3.5-large transformer/config.json
        mmdit = SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64,
                                      num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                                      pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192,
                                      qk_norm="rms_norm")
        clip_l = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                            num_attention_heads=12, projection_dim=768))
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120,
                                                            num_hidden_layers=32, num_attention_heads=20,
                                                            projection_dim=1280))
    assert _count(mmdit) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert _linear_share(mmdit) == pytest.approx(arch.linear_share, abs=0.0001)
    assert _lora_per_rank(mmdit, StableDiffusion3.lora_targets) == arch.lora_per_rank
    assert (_count(clip_l) + _count(clip_g)) / 1e9 + 4.894 == pytest.approx(arch.text_b, abs=0.002)


def test_z_image_counts():
    from diffusers import ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from trainer.families.flow import ZImage

    arch = costs.ARCH["zimage"]
    with accelerate.init_empty_weights():  # Tongyi-MAI/Z-Image transformer/config.json, text_encoder/config.json
        transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840,
                                               n_layers=30, n_refiner_layers=2, n_heads=30, n_kv_heads=30,
                                               qk_norm=True, cap_feat_dim=2560, axes_dims=[32, 48, 48],
                                               axes_lens=[1536, 512, 512])
        qwen3_4b = Qwen3Model(Qwen3Config(vocab_size=151936, hidden_size=2560, intermediate_size=9728,
                                          num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
                                          head_dim=128, tie_word_embeddings=True))
    assert _count(transformer) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert _linear_share(transformer) == pytest.approx(arch.linear_share, abs=0.0001)
    assert _lora_per_rank(transformer, ZImage.lora_targets) == arch.lora_per_rank
    assert _count(qwen3_4b) / 1e9 == pytest.approx(arch.text_b, abs=0.001)


def test_flux2_klein_4b_counts():
    from diffusers import Flux2Transformer2DModel

    from trainer.families.flow import Flux2Klein

    arch = costs.ARCH["klein4b"]
    with accelerate.init_empty_weights():  # black-forest-labs/FLUX.2-klein-base-4B: 5 double, 20 single blocks, 3,072 wide
        transformer = Flux2Transformer2DModel(num_layers=5, num_single_layers=20, attention_head_dim=128,
                                              num_attention_heads=24, joint_attention_dim=7680, in_channels=128,
                                              guidance_embeds=False)
    # the hub's bf16 transformer file is 7.75 GB: 3.875 B parameters
    assert _count(transformer) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001) == pytest.approx(7.75 / 2, abs=0.002)
    assert _linear_share(transformer) == pytest.approx(arch.linear_share, abs=0.0001)
    assert _lora_per_rank(transformer, Flux2Klein().lora_modules(transformer)) == arch.lora_per_rank


def test_qwen_image_counts():
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from trainer.families.flow import QwenImage

    arch = costs.ARCH["qwenimage"]
    with accelerate.init_empty_weights():  # Qwen/Qwen-Image transformer/, text_encoder/ (Qwen2.5-VL-7B), vae/ configs
        transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=60,
                                                  attention_head_dim=128, num_attention_heads=24,
                                                  joint_attention_dim=3584, axes_dims_rope=(16, 56, 56))
        text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
            text_config={"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                         "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064},
            vision_config={"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                           "out_hidden_size": 3584}, tie_word_embeddings=False))
        vae = AutoencoderKLQwenImage()
    assert _count(transformer) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert _linear_share(transformer) == pytest.approx(arch.linear_share, abs=0.0001)
    assert _lora_per_rank(transformer, QwenImage.lora_targets) == arch.lora_per_rank
    assert _count(text_encoder) / 1e9 == pytest.approx(arch.text_b, abs=0.001)
    assert _count(vae) / 1e9 == pytest.approx(arch.vae_b, abs=0.001)

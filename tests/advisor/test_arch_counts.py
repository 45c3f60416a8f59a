"""The cost model's architecture constants (advisor.recommendation.costs.ARCH) are counts on the
real architectures: each planned base model is built from its published configs on the meta device
(trainer.real_architectures: no weights, no download; the same builder the GPU benchmarks fill with
random weights) and counted here, so a typo in a constant or a change of the trainer's LoRA targets
fails a test instead of skewing every estimate."""
import pytest
import torch

from advisor.recommendation import costs
from trainer.real_architectures import REAL_BASES, build_real_pipeline

accelerate = pytest.importorskip("accelerate")


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _linear_share(model) -> float:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)) / _count(model)


def _lora_per_rank(model, targets) -> int:
    """rank x (in + out) summed over the linear layers peft's target_modules suffixes match."""
    return sum(m.in_features + m.out_features for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in targets))


def _parts(base: str):
    """(pipeline, its family, denoiser, text encoders) of `base` built on the meta device."""
    from trainer.families.base import FAMILIES, text_encoder_names
    from trainer.vocabulary import BASE_MODELS

    pipe = build_real_pipeline(base, device="meta")
    family = FAMILIES[BASE_MODELS[base].family]
    assert type(pipe).__name__ == family.pipeline_class
    encoders = [getattr(pipe, n) for n in text_encoder_names(family.text_encoder_count)]
    return pipe, family, getattr(pipe, family.denoiser), encoders


@pytest.mark.parametrize("base", list(REAL_BASES))
def test_every_planned_base_is_counted_as_the_cost_model_says(base):
    pipe, family, denoiser, encoders = _parts(base)
    arch = costs.ARCH[base]
    assert _count(denoiser) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert sum(_count(te) for te in encoders) / 1e9 == pytest.approx(arch.text_b, abs=0.001)
    assert _count(pipe.vae) / 1e9 == pytest.approx(arch.vae_b, abs=0.001)
    assert _linear_share(denoiser) == pytest.approx(arch.linear_share, abs=0.001 if family.denoiser == "unet" else 1e-4)
    assert _lora_per_rank(denoiser, family.lora_modules(denoiser)) == costs.lora_params(base, 1)


def test_sd21_unet_counts():
    """SD 2.1 is planned but trained as the "sd" family from a user's files: its UNet counted alone."""
    from diffusers import UNet2DConditionModel

    from trainer.families.unet import StableDiffusion

    with accelerate.init_empty_weights():  # stabilityai/stable-diffusion-2-1 unet/config.json
        unet = UNet2DConditionModel(cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                                    use_linear_projection=True)
    arch = costs.ARCH["sd21"]
    assert _count(unet) / 1e9 == pytest.approx(arch.denoiser_b, abs=0.001)
    assert _linear_share(unet) == pytest.approx(arch.linear_share, abs=0.001)
    assert _lora_per_rank(unet, StableDiffusion.lora_targets) == costs.lora_params("sd21", 1)


def test_flux_lora_is_the_blogs_and_t5_is_the_hubs_file():
    _, _, flux, (_, t5) = _parts("flux1dev")
    # the blog's "trainable params: 4,669,440" for rank 4 on attention only
    assert 4 * _lora_per_rank(flux, ("to_k", "to_q", "to_v", "to_out.0")) == costs.FLUX_BLOG_LORA
    # FLUX.1-dev's text_encoder_2 is 9.52 GB of bf16 (two files, 4.99 + 4.53 GB): 4.76 B, the embedding once
    assert _count(t5) / 1e9 == pytest.approx(9.52 / 2, abs=0.005)


def test_klein_4b_is_the_hubs_file():
    _, _, transformer, _ = _parts("klein4b")
    # the hub's bf16 transformer file is 7.75 GB: 3.875 B parameters
    assert _count(transformer) / 1e9 == pytest.approx(7.75 / 2, abs=0.002)

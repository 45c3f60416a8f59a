"""Every method trains on the tiny model, logs a finite loss, and its output loads back into a
diffusers pipeline and changes the image; plus each method's own promises."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import METHOD_OVERRIDES, METHOD_PROMPT, fast_config, generate, steps_logged
from trainer.config import ConfigError
from trainer.vocabulary import METHOD_NAMES
from trainer.events import read_events, run_status
from trainer.loop import TrainingRun, train
from trainer.methods.registry import METHODS, Method, load_trained_pipeline, register
from trainer.models import load_pipeline


def test_registry_matches_config_and_rejects_duplicates():
    assert set(METHODS) == set(METHOD_NAMES)
    assert all(issubclass(cls, Method) and cls.name == name for name, cls in METHODS.items())
    with pytest.raises(KeyError, match="registered twice"):
        register("lora")(type("Again", (Method,), {}))
    assert METHODS["lora"].__name__ == "LoRA"


@pytest.fixture(scope="module")
def base_images(tiny_sd15):
    pipe = load_pipeline(tiny_sd15)
    return {p: generate(pipe, p) for p in ("a photo of sks dog", "a photo of <sks>")}


@pytest.mark.parametrize("method", sorted(METHOD_NAMES))
def test_method_trains_and_output_changes_the_image(method, tiny_sd15, images, tmp_path, base_images):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", method=method, **METHOD_OVERRIDES[method])
    assert train(cfg, progress=False) == "completed"
    events = read_events(cfg.output_dir)
    steps = steps_logged(events)
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) and e["lr"] > 0 and e["sec_per_step"] > 0 for e in steps)
    end = events[-1]
    assert end["kind"] == "end" and end["status"] == "completed" and run_status(cfg.output_dir) == "completed"
    assert end["outputs"] and all((tmp_path / "run" / p).exists() for p in end["outputs"])
    weights = list((tmp_path / "run" / "output").rglob("*.safetensors"))
    assert weights and not list((tmp_path / "run" / "output").rglob("*.bin"))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == method

    prompt = METHOD_PROMPT.get(method, "a photo of sks dog")
    tuned = generate(load_trained_pipeline(tmp_path / "run"), prompt)
    assert np.abs(tuned - base_images[prompt]).mean() > 1e-3


def test_lora_files_diffusers_and_kohya_agree(tiny_sd15, images, tmp_path):
    from safetensors import safe_open

    cfg = fast_config(tiny_sd15, images, tmp_path / "myrun", method="lora", rank=4, lora_alpha=2.0,
                      train_text_encoder=True, text_encoder_lr=5e-3)
    train(cfg, progress=False)
    out = tmp_path / "myrun" / "output"
    kohya = out / "myrun_kohya.safetensors"
    with safe_open(str(kohya), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        alpha = f.get_tensor(next(k for k in keys if k.endswith(".alpha")))
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in keys)
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in keys)  # SD1 naming: lora_te_
    assert float(alpha) == 2.0
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_num_train_images"] == "4"
    assert meta["ss_text_encoder_lr"] == "0.005" and json.loads(meta["finetune_lab_config"])["rank"] == 4

    a = load_pipeline(tiny_sd15)
    a.load_lora_weights(str(out))
    b = load_pipeline(tiny_sd15)
    b.load_lora_weights(str(out), weight_name=kohya.name)
    assert any("lora" in n for n, _ in a.text_encoder.named_parameters())
    assert np.allclose(generate(a), generate(b), atol=1e-5)


def test_conv_lora_adapts_the_resnet_convolutions_and_both_files_load(tiny_sd15, images, tmp_path):
    from safetensors import safe_open

    cfg = fast_config(tiny_sd15, images, tmp_path / "conv", method="lora", rank=4, conv_lora=True)
    assert train(cfg, progress=False) == "completed"
    out = tmp_path / "conv" / "output"
    kohya = out / "conv_kohya.safetensors"
    with safe_open(str(out / "pytorch_lora_weights.safetensors"), "pt") as f:
        conv = [k for k in f.keys() if ".conv1.lora_A" in k or ".conv2.lora_A" in k]
        assert conv and all(f.get_tensor(k).dim() == 4 for k in conv)     # 3x3 down-projections
    with safe_open(str(kohya), "pt") as f:
        assert any("_resnets_0_conv1.lora_down.weight" in k for k in f.keys())   # kohya's LoCon names
    a = load_pipeline(tiny_sd15)
    a.load_lora_weights(str(out))
    b = load_pipeline(tiny_sd15)
    b.load_lora_weights(str(out), weight_name=kohya.name)
    adapted = [n for n, _ in a.unet.named_parameters() if "lora_A" in n]
    assert any(".conv1." in n for n in adapted) and any(".to_q." in n for n in adapted)
    assert np.allclose(generate(a), generate(b), atol=1e-5)
    assert np.abs(generate(a) - generate(load_pipeline(tiny_sd15))).mean() > 1e-4


def test_conv_lora_is_refused_for_methods_without_an_adapter(tiny_sd15, images, tmp_path):
    with pytest.raises(ConfigError, match="conv_lora=True applies to lora and dreambooth_lora, not 'full_finetune'"):
        fast_config(tiny_sd15, images, tmp_path / "x", method="full_finetune", conv_lora=True)


def test_textual_inversion_embedding_format(tiny_sd15, images, tmp_path):
    from safetensors.torch import load_file

    cfg = fast_config(tiny_sd15, images, tmp_path / "run", method="textual_inversion", num_vectors=2,
                      **METHOD_OVERRIDES["textual_inversion"])
    run = TrainingRun(cfg, progress=False)
    run.run()
    state = load_file(str(tmp_path / "run" / "output" / "learned_embeds.safetensors"))
    assert list(state) == ["<sks>"] and tuple(state["<sks>"].shape) == (2, 32)
    # only the new rows trained: every other row of the vocabulary is as loaded
    te = run.setup.components.text_encoders[0]
    weight = te.get_input_embeddings().weight.detach()
    base = load_pipeline(tiny_sd15).text_encoder.get_input_embeddings().weight.detach()
    assert torch_equal(weight[: base.shape[0]], base)
    dog = run.setup.components.tokenizers[0].encode("dog", add_special_tokens=False)[0]
    assert not torch_equal(weight[base.shape[0]:], base[[dog] * 2])
    pipe = load_trained_pipeline(tmp_path / "run")
    assert pipe.tokenizer.convert_tokens_to_ids("<sks>_1") != pipe.tokenizer.unk_token_id


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a.float(), b.float()))


def test_textual_inversion_prompts_need_the_token(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", method="textual_inversion",
                      instance_prompt="a photo of sks dog")
    with pytest.raises(ConfigError, match="lack placeholder_token '<sks>'"):
        train(cfg, progress=False)
    assert read_events(tmp_path / "run")[-1]["status"] == "failed"


def test_textual_inversion_initializer_must_be_one_token(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", method="textual_inversion",
                      instance_prompt="a <sks>", initializer_token="zqxjv")
    with pytest.raises(ConfigError, match="initializer_token='zqxjv' is .* tokens"):
        train(cfg, progress=False)


def test_full_finetune_with_captions_and_ema_saves_the_ema_weights(tiny_sd15, tmp_path):
    import torch
    from diffusers import UNet2DConditionModel

    from helpers import make_images

    make_images(tmp_path / "data", 3, captions=True)
    cfg = fast_config(tiny_sd15, tmp_path / "data", tmp_path / "run", method="full_finetune", use_ema=True,
                      learning_rate=1e-3)
    run = TrainingRun(cfg, progress=False)
    run.run()
    assert run.setup.dataset.prompts[0] == "a photo of pattern 0"  # sidecar captions are used
    saved = UNet2DConditionModel.from_pretrained(tmp_path / "run" / "output", subfolder="unet")
    shadow = run.setup.method.ema.shadow_params
    live = list(run.setup.components.denoiser.parameters())
    assert all(torch.allclose(s, p) for s, p in zip(shadow, saved.parameters()))
    assert any(not torch.allclose(s, p) for s, p in zip(shadow, live))  # EMA differs from the live UNet


def test_dreambooth_uses_the_instance_prompt_not_captions(tiny_sd15, tmp_path):
    from helpers import make_images

    make_images(tmp_path / "data", 2, captions=True)
    cfg = fast_config(tiny_sd15, tmp_path / "data", tmp_path / "run", method="dreambooth_lora", max_train_steps=1)
    run = TrainingRun(cfg, progress=False)
    run.run()
    assert run.setup.dataset.prompts == [cfg.instance_prompt] * 2
    warnings = [e["message"] for e in read_events(tmp_path / "run") if e.get("warning")]
    assert any("2 caption(s) are not used" in w for w in warnings)


def test_samples_are_written_at_validation_steps(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=4, validation_steps=2,
                      validation_prompts=["a photo of sks dog", "a cat"], num_validation_images=2)
    train(cfg, progress=False)
    samples = [e for e in read_events(tmp_path / "run") if e["kind"] == "sample"]
    assert [e["step"] for e in samples] == [2, 4]
    assert samples[0]["paths"] == [f"samples/step-000002/{i}.png" for i in range(4)]
    assert samples[0]["prompts"] == ["a photo of sks dog"] * 2 + ["a cat"] * 2
    from PIL import Image

    first = np.asarray(Image.open(tmp_path / "run" / samples[0]["paths"][0]))
    assert first.shape == (64, 64, 3)
    later = np.asarray(Image.open(tmp_path / "run" / samples[1]["paths"][0]))
    assert np.abs(first.astype(float) - later).mean() > 0  # training moved between samples


def test_speed_and_memory_options_together(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=4, gradient_accumulation_steps=2,
                      train_batch_size=2, cache_latents=True, gradient_checkpointing=True, snr_gamma=5.0,
                      noise_offset=0.05, lr_scheduler="cosine", lr_warmup_steps=1, mixed_precision="bf16",
                      crop="bucket")
    run = TrainingRun(cfg, progress=False)
    assert run.run() == "completed"
    steps = steps_logged(read_events(tmp_path / "run"))
    assert len(steps) == 4 and all(np.isfinite(e["loss"]) for e in steps)
    assert steps[0]["lr"] == pytest.approx(cfg.learning_rate / 2)  # warm-up
    assert len(run.setup.vae_cache) == 4  # each image went through the VAE once
    assert run.setup.components.denoiser.is_gradient_checkpointing


def test_cached_vae_moments_draw_what_encoding_again_draws(tiny_sd15, images, tmp_path):
    import torch

    from trainer.training_utils import step_generator

    run = TrainingRun(fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=1), progress=False)
    run.run()
    assert len(run.setup.vae_cache) == 1  # deterministic preprocessing: the posterior was kept
    ds = run.setup.dataset
    pairs = [(str(ds.items[i].path), lambda i=i: ds[i]["pixel_values"]) for i in range(len(ds))]
    cached = run._latents(pairs, step_generator(7, 3))
    assert len(run.setup.vae_cache) == len(ds)
    run.setup.vae_cache = None  # encode every image again
    again = run._latents(pairs, step_generator(7, 3))
    assert torch.allclose(cached, again, atol=1e-5)  # equal up to the rounding of batched convolutions
    assert not torch.allclose(cached, run._latents(pairs, step_generator(7, 4)), atol=1e-2)  # a new draw per step


@pytest.mark.parametrize("method", ["lora", "textual_inversion", "dreambooth"])
def test_sdxl_methods(method, tiny_sdxl, images, tmp_path):
    base = load_pipeline(tiny_sdxl)
    prompt = METHOD_PROMPT.get(method, "a photo of sks dog")
    cfg = fast_config(tiny_sdxl, images, tmp_path / "run", method=method, **METHOD_OVERRIDES[method])
    assert train(cfg, progress=False) == "completed"
    assert np.abs(generate(load_trained_pipeline(tmp_path / "run"), prompt) - generate(base, prompt)).mean() > 1e-4

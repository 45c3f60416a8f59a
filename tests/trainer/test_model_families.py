"""Every model family trains on its tiny model through the one loop: the family is read from the
model's own files, LoRA and DreamBooth-LoRA (with class images the family's pipeline draws) train
and change the images, the output loads back into the family's pipeline (a resumed run matching an
uninterrupted one: test_trainer_resume.py, for every family), and what a family cannot do is one clear line before any weight loads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import fast_config, steps_logged
from trainer.config import ConfigError, TrainConfig
from trainer.events import read_events
from trainer.families.base import FAMILIES, ModelError, detect_family
from trainer.loop import train
from trainer.methods.registry import load_trained_pipeline
from trainer.models import load_components, load_pipeline
from trainer.tiny import TINY_MODELS
from trainer.vocabulary import FAMILY_NAMES

# tiny arch -> (family, pipeline class)
ARCH_FAMILY = {"sd15": ("sd", "StableDiffusionPipeline"), "sdxl": ("sdxl", "StableDiffusionXLPipeline"),
               "sd3": ("sd3", "StableDiffusion3Pipeline"), "flux": ("flux", "FluxPipeline"),
               "flux2": ("flux2", "Flux2KleinPipeline"), "zimage": ("zimage", "ZImagePipeline"),
               "qwenimage": ("qwenimage", "QwenImagePipeline")}
PROMPT = "a photo of sks dog"


def _draw(pipe, prompt=PROMPT, seed=0):
    import torch

    from trainer.models import sampling_kwargs

    return pipe(prompt=prompt, num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(seed), **sampling_kwargs(pipe, 1)).images


def test_every_family_is_registered_once_and_has_a_tiny_model():
    assert set(FAMILIES) == set(FAMILY_NAMES)
    assert {family for family, _ in ARCH_FAMILY.values()} == set(FAMILY_NAMES)
    assert set(ARCH_FAMILY) <= set(TINY_MODELS.values())


@pytest.mark.parametrize("arch", sorted(ARCH_FAMILY))
def test_the_family_is_read_from_the_model_files_and_a_wrong_name_is_refused(arch, tiny_model):
    folder = tiny_model(arch)
    family, pipeline = ARCH_FAMILY[arch]
    assert detect_family(folder).name == family
    assert type(load_pipeline(folder)).__name__ == pipeline
    other = "sdxl" if family != "sdxl" else "sd"
    with pytest.raises(ModelError, match=f"not family='{other}'"):
        load_components(folder, other)


@pytest.mark.parametrize("arch", sorted(ARCH_FAMILY))
def test_lora_trains_every_family_and_the_output_loads_back_and_changes_the_image(arch, tiny_model, images, tmp_path):
    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "run", method="lora", learning_rate=1e-2,
                      validation_prompts=[PROMPT])
    assert train(cfg, progress=False) == "completed"
    events = read_events(cfg.output_dir)
    assert [e["step"] for e in steps_logged(events)] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) for e in steps_logged(events))
    loading = [e for e in events if e["kind"] == "status" and e["phase"] == "loading_model"]
    assert loading[0]["family"] == ARCH_FAMILY[arch][0]
    assert (tmp_path / "run" / "samples" / "step-000003" / "0.png").is_file()
    out = tmp_path / "run" / "output"
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    # the diffusers file loads through the family's own pipeline and moves the image
    base, tuned = _draw(load_pipeline(folder)), _draw(load_trained_pipeline(tmp_path / "run"))
    assert np.abs(tuned - base).mean() > 1e-3


@pytest.mark.parametrize("arch", ["sd3", "flux", "flux2", "zimage", "qwenimage"])
def test_dreambooth_lora_with_class_images_drawn_by_the_family_pipeline(arch, tiny_model, images, tmp_path):
    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "run", method="dreambooth_lora", prior_preservation=True,
                      class_prompt="a photo of a dog", num_class_images=2, train_batch_size=2)
    assert train(cfg, progress=False) == "completed"
    assert (tmp_path / "run" / "output" / "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.parametrize("arch", ["sd3", "zimage", "qwenimage"])
def test_a_full_fine_tune_of_a_transformer_saves_a_pipeline_that_loads(arch, tiny_model, images, tmp_path):
    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "run", method="full_finetune", learning_rate=1e-3,
                      max_train_steps=2)
    assert train(cfg, progress=False) == "completed"
    pipe = load_trained_pipeline(tmp_path / "run")
    assert type(pipe).__name__ == ARCH_FAMILY[arch][1]
    assert np.abs(_draw(pipe) - _draw(load_pipeline(folder))).mean() > 1e-4


@pytest.mark.parametrize("arch, overrides, message", [
    ("flux", {"method": "textual_inversion", "instance_prompt": "a photo of <sks>", "initializer_token": "dog"},
     "method 'textual_inversion' is not trained on Flux.1"),
    ("sd3", {"conv_lora": True}, "SD 3.5 has none to adapt"),
    ("flux", {"resolution": 72}, "needs a multiple of 16"),
    ("flux2", {"train_text_encoder": True}, "Flux.2 klein's text encoder is a Qwen3 language model"),
    ("zimage", {"train_text_encoder": True}, "Z-Image's text encoder is a Qwen3 language model"),
    ("zimage", {"method": "textual_inversion", "instance_prompt": "a photo of <sks>", "initializer_token": "dog"},
     "method 'textual_inversion' is not trained on Z-Image"),
    ("qwenimage", {"train_text_encoder": True}, "Qwen-Image's text encoder is a Qwen2.5-VL language model"),
])
def test_what_a_family_cannot_do_is_refused_in_one_line(arch, overrides, message, tiny_model, images, tmp_path):
    cfg = fast_config(tiny_model(arch), images, tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=message) as caught:
        train(cfg, progress=False)
    assert "\n" not in str(caught.value)


def test_min_snr_is_said_to_be_ignored_on_a_flow_model(tiny_model, images, tmp_path):
    cfg = fast_config(tiny_model("flux"), images, tmp_path / "run", snr_gamma=5.0, max_train_steps=1)
    assert train(cfg, progress=False) == "completed"
    warnings = [e for e in read_events(cfg.output_dir) if e["kind"] == "status" and e["phase"] == "config_warning"]
    assert warnings and "snr_gamma=5.0 is ignored" in warnings[0]["message"]


def test_the_family_field_is_checked_and_a_pipeline_no_family_claims_is_named(tmp_path):
    with pytest.raises(ConfigError, match="family='hidream'"):
        TrainConfig(family="hidream")
    folder = tmp_path / "hidream"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "HiDreamImagePipeline",
                                                         "transformer": ["diffusers", "HiDreamImageTransformer2DModel"]}))
    with pytest.raises(ModelError, match="is a HiDreamImagePipeline; this trainer trains SD 1.x / 2.x, SDXL, SD 3.5, "
                                         "Flux.1, Flux.2 klein, Z-Image, Qwen-Image"):
        detect_family(folder)


@pytest.mark.parametrize("arch", ["sd3", "flux", "flux2", "zimage", "qwenimage"])
def test_a_flow_lora_is_in_the_key_format_comfyui_reads_for_the_family(arch, tiny_model, images, tmp_path):
    """ComfyUI (comfy/lora.py, model_lora_keys_unet) maps 'transformer.<diffusers module>' LoRA keys
    for SD3 and Flux ("regular diffusers sd3 lora format"), Qwen-Image ("transformer prefix format") and,
    through comfy.utils.z_image_to_diffusers in its Lumina2 branch, Z-Image, with lora_A / lora_B
    weights: every key of our file names a linear layer of the family's transformer that way."""
    from safetensors.torch import load_file

    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "run", max_train_steps=1)
    train(cfg, progress=False)
    keys = load_file(str(tmp_path / "run" / "output" / "pytorch_lora_weights.safetensors")).keys()
    linear = {name for name, m in load_components(folder).denoiser.named_modules() if type(m).__name__ == "Linear"}
    assert keys
    for key in keys:
        prefix, _, rest = key.partition(".")
        module, _, weight = rest.rpartition(".lora_")
        assert prefix == "transformer" and weight in ("A.weight", "B.weight") and module in linear, key


@pytest.mark.parametrize("arch, adapted", [("sd3", ["text_encoder", "text_encoder_2"]), ("flux", ["text_encoder"])])
def test_the_clip_encoders_train_with_the_lora_and_t5_stays_frozen(arch, adapted, tiny_model, images, tmp_path):
    cfg = fast_config(tiny_model(arch), images, tmp_path / "run", train_text_encoder=True, text_encoder_lr=1e-2)
    assert train(cfg, progress=False) == "completed"
    pipe = load_trained_pipeline(tmp_path / "run")
    with_lora = [n for n in ("text_encoder", "text_encoder_2", "text_encoder_3")
                 if getattr(pipe, n, None) is not None and any("lora" in k for k, _ in getattr(pipe, n).named_parameters())]
    assert with_lora == adapted

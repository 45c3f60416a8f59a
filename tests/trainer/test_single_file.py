"""Single-file checkpoints: the file a model site hands out trains like a diffusers folder; its
family and prediction type are read from the file; what we write reads back through diffusers'
own single-file loader; a wrong file is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import fast_config
from trainer.families.base import ModelError
from trainer.loop import train
from trainer.methods.registry import load_trained_pipeline
from trainer.models import load_components, load_pipeline, resolve_base_model
from trainer.single_file import checkpoint_info, write_single_file


def _draw(pipe):
    import torch

    return pipe("a photo of sks dog", num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(0)).images


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_a_written_file_reads_back_the_same_through_diffusers_own_loader(arch, tiny_model, tmp_path):
    """An independent check of the key maps: diffusers' from_single_file reads our file into the
    very weights it was written from (SDXL's two CLIPs have the same width in the tiny model, which
    diffusers' loader cannot tell apart, so the OpenCLIP half goes through its converter directly)."""
    import diffusers
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from safetensors.torch import load_file

    folder = tiny_model(arch)
    path = write_single_file(folder, tmp_path / "model.safetensors")
    ours = load_pipeline(folder)
    theirs = getattr(diffusers, type(ours).__name__).from_single_file(str(path), config=str(folder),
                                                                      local_files_only=True)
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(ours, part).state_dict(), getattr(theirs, part).state_dict()
        assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), part
    if arch == "sdxl":
        a = ours.text_encoder_2.state_dict()
        b = convert_open_clip_checkpoint(ours.text_encoder_2, load_file(str(path)), prefix="conditioner.embedders.1.model.")
        assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_a_single_file_sdxl_checkpoint_trains_and_its_lora_loads_back(tiny_model, images, tmp_path):
    path = write_single_file(tiny_model("sdxl"), tmp_path / "illustrious-like.safetensors")
    info = checkpoint_info(path)
    assert (info.family, info.prediction_type, info.zero_terminal_snr) == ("sdxl", "epsilon", False)
    cfg = fast_config(path, images, tmp_path / "run", method="lora", learning_rate=1e-2)
    assert cfg.base_model == str(path)          # the config keeps the user's own name for the model
    assert train(cfg, progress=False) == "completed"
    folder = resolve_base_model(str(path))
    assert json.loads((folder / "single_file_source.json").read_text())["family"] == "sdxl"
    assert resolve_base_model(str(path)) == folder   # read once, then reused
    tuned, base = _draw(load_trained_pipeline(tmp_path / "run")), _draw(load_pipeline(folder))
    assert np.abs(tuned - base).mean() > 1e-3


def test_a_v_prediction_checkpoint_is_detected_and_trains_on_velocity(tiny_model, images, tmp_path):
    path = write_single_file(tiny_model("sdxl"), tmp_path / "noobai-vpred-like.safetensors", v_prediction=True,
                             zero_terminal_snr=True)
    info = checkpoint_info(path)
    assert (info.prediction_type, info.zero_terminal_snr) == ("v_prediction", True)
    c = load_components(resolve_base_model(str(path)))
    assert c.noise_scheduler.config.prediction_type == "v_prediction"
    assert c.noise_scheduler.config.rescale_betas_zero_snr is True
    assert float(c.noise_scheduler.alphas_cumprod[-1]) < 1e-6     # zero terminal SNR, as the file says
    cfg = fast_config(path, images, tmp_path / "run", method="lora", max_train_steps=2)
    assert train(cfg, progress=False) == "completed"


def test_kohyas_modelspec_metadata_also_says_v_prediction(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    path = write_single_file(tiny_model("sd15"), tmp_path / "a.safetensors")
    save_file(load_file(str(path)), str(tmp_path / "b.safetensors"), metadata={"modelspec.prediction_type": "v"})
    assert checkpoint_info(path).prediction_type == "epsilon"
    assert checkpoint_info(tmp_path / "b.safetensors").prediction_type == "v_prediction"


@pytest.mark.parametrize("name, content, message", [
    ("model.ckpt", b"PK\x03\x04 pickle", "not a .safetensors file"),
    ("broken.safetensors", b"\x00\x01 not a header", "not a readable safetensors file"),
    ("lora.safetensors", {"lora_unet_down_blocks_0.lora_down.weight": (4, 8)}, "holds no model weights"),
    ("flux.safetensors", {"double_blocks.0.img_attn.qkv.weight": (6, 2)}, "is a Flux transformer file"),
])
def test_a_file_that_is_not_a_checkpoint_we_read_is_one_line(name, content, message, tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        save_file({k: torch.zeros(shape) for k, shape in content.items()}, str(path))
    with pytest.raises(ModelError, match=message) as caught:
        resolve_base_model(str(path))
    assert "\n" not in str(caught.value)


def test_a_file_of_another_layout_offline_says_what_it_needs(tiny_model, tmp_path, monkeypatch):
    """An SDXL file that does not fit the tiny layout needs SDXL's published configs; offline and
    without them in the hub cache, that is said in one line."""
    from safetensors.torch import load_file, save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_single_file(tiny_model("sdxl"), tmp_path / "a.safetensors")
    state = load_file(str(path))
    state["model.diffusion_model.input_blocks.0.0.weight"] = state["model.diffusion_model.input_blocks.0.0.weight"][:16]
    save_file(state, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="needs SDXL 1.0's config files .* hub is offline") as caught:
        resolve_base_model(str(tmp_path / "other.safetensors"))
    assert "\n" not in str(caught.value)


def test_a_full_fine_tune_is_also_one_file_that_reads_back_as_the_trained_model(tiny_model, images, tmp_path):
    from safetensors.torch import load_file

    from lab.results import downloads

    cfg = fast_config(tiny_model("sdxl"), images, tmp_path / "myrun", method="full_finetune", learning_rate=1e-3,
                      max_train_steps=2)
    assert train(cfg, progress=False) == "completed"
    single = tmp_path / "myrun" / "output" / "myrun.safetensors"
    assert checkpoint_info(single).family == "sdxl"
    assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float16"
               for v in load_file(str(single)).values())                       # shared in fp16
    folder = resolve_base_model(str(single))
    trained = load_file(str(tmp_path / "myrun" / "output" / "unet" / "diffusion_pytorch_model.safetensors"))
    read = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    assert trained.keys() == read.keys()
    assert all(np.allclose(trained[k].float().numpy(), read[k].float().numpy(), atol=2e-3) for k in trained)
    offered = downloads(tmp_path / "myrun")
    assert str(single) in offered
    import zipfile

    with zipfile.ZipFile(next(p for p in offered if p.endswith(".zip"))) as zf:
        assert not any(n.endswith("myrun.safetensors") for n in zf.namelist())   # not twice

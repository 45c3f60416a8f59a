"""DoRA, LoHa and LoKr through peft: each trains on a UNet and a transformer family, starts from
the base model exactly, and its saved file loads back into the base pipeline as the very model
that drew the run's last samples. DoRA's kohya copy carries `dora_scale` and draws what the
diffusers file draws."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import fast_config, generate
from trainer.config import ConfigError
from trainer.loop import train
from trainer.methods.registry import load_trained_pipeline
from trainer.models import load_pipeline

PROMPT = "a photo of sks dog"


def _last_sample(run) -> np.ndarray:
    folder = max((run / "samples").iterdir())
    with Image.open(folder / "0.png") as im:
        return np.asarray(im, dtype=np.float32)


def _redraw(pipe, cfg) -> np.ndarray:
    import torch

    from trainer.models import sampling_kwargs

    image = pipe(PROMPT, num_inference_steps=cfg.validation_inference_steps, height=cfg.resolution,
                 width=cfg.resolution, generator=torch.Generator("cpu").manual_seed(cfg.seed),
                 **sampling_kwargs(pipe, 1)).images[0]
    return np.asarray(image, dtype=np.float32)


@pytest.mark.parametrize("arch", ["sd15", "flux", "zimage", "qwenimage"])
@pytest.mark.parametrize("adapter", ["dora", "loha", "lokr"])
def test_each_adapter_kind_trains_and_its_file_is_the_trained_model(adapter, arch, tiny_model, images, tmp_path):
    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "run", adapter=adapter, learning_rate=1e-2,
                      validation_prompts=[PROMPT], train_text_encoder=arch == "sd15")
    assert train(cfg, progress=False) == "completed"
    tuned = load_trained_pipeline(tmp_path / "run")
    drawn = _redraw(tuned, cfg)
    assert np.abs(drawn - _last_sample(tmp_path / "run")).mean() < 1.0        # the model the run ended with
    assert np.abs(drawn - _redraw(load_pipeline(folder), cfg)).max() >= 1.0    # and not the base model


@pytest.mark.parametrize("adapter", ["loha", "lokr"])
def test_lycoris_kinds_start_from_the_base_model(adapter, tiny_model, images, tmp_path):
    from trainer.loop import TrainingRun

    cfg = fast_config(tiny_model("sd15"), images, tmp_path / "run", adapter=adapter, max_train_steps=1)
    run = TrainingRun(cfg, progress=False)
    from trainer.training_utils import make_accelerator

    run.accelerator = make_accelerator(cfg.mixed_precision, 1)
    c = run._set_up().components
    adapted = generate(c.family.pipeline(c))
    base = generate(load_pipeline(tiny_model("sd15")))
    assert np.allclose(adapted, base, atol=1e-6)


def test_dora_kohya_copy_carries_dora_scale_that_rebuilds_the_trained_weights(tiny_sd15, images, tmp_path):
    """The kohya copy of a DoRA run, read the way ComfyUI applies DoRA (comfy weight_decompose: a
    `dora_scale` of shape (out, 1) rescales each output row of W + up @ down * alpha / rank to its
    length), gives the weights the diffusers file gives once merged into the base."""
    import torch
    from safetensors.torch import load_file

    cfg = fast_config(tiny_sd15, images, tmp_path / "myrun", adapter="dora", learning_rate=1e-2)
    train(cfg, progress=False)
    out = tmp_path / "myrun" / "output"
    kohya = load_file(str(out / "myrun_kohya.safetensors"))
    pipe = load_pipeline(tiny_sd15)
    base = {n: p.detach().clone() for n, p in pipe.unet.named_parameters()}
    pipe.load_lora_weights(str(out))
    pipe.fuse_lora()
    merged = dict(pipe.unet.named_parameters())
    checked = 0
    for key in [k for k in kohya if k.endswith(".dora_scale")]:
        stem = key[:-len(".dora_scale")]
        module = stem[len("lora_unet_"):]
        name = next(n for n in base if n.replace(".", "_") == f"{module}_weight")
        down, up, alpha = kohya[f"{stem}.lora_down.weight"], kohya[f"{stem}.lora_up.weight"], kohya[f"{stem}.alpha"]
        assert kohya[key].shape == (up.shape[0], 1)
        w = base[name] + up @ down * (float(alpha) / down.shape[0])
        rebuilt = w * (kohya[key] / w.norm(dim=1, keepdim=True))
        fused = merged[name[:-len(".weight")] + ".base_layer.weight"]      # peft keeps the layer, fused
        assert torch.allclose(rebuilt, fused, atol=1e-5), name
        checked += 1
    assert checked >= 8


def test_an_adapter_kind_needs_an_adapter_method():
    with pytest.raises(ConfigError, match="adapter='loha' applies to lora and dreambooth_lora"):
        fast_config("m", "d", "o", method="full_finetune", adapter="loha")
    with pytest.raises(ConfigError, match="adapter='ia3'; pick one of"):
        fast_config("m", "d", "o", adapter="ia3")


@pytest.mark.parametrize("adapter", ["loha", "lokr"])
def test_lycoris_kohya_copy_rebuilds_the_trained_weights_as_comfyui_applies_them(adapter, tiny_sd15, images, tmp_path):
    """The kohya copy of a LoHa / LoKr run, read as ComfyUI's weight adapters read it (LoHa:
    (w1a @ w1b) * (w2a @ w2b) * alpha / rank; LoKr: kron(w1, w2) with each split factor multiplied
    out, times alpha / rank where a factor is split, else 1), gives the weights peft merges."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import load_file

    from trainer.export import load_lycoris

    cfg = fast_config(tiny_sd15, images, tmp_path / "myrun", adapter=adapter, learning_rate=1e-2, rank=4,
                      lora_alpha=2.0, train_text_encoder=True)
    train(cfg, progress=False)
    out = tmp_path / "myrun" / "output"
    kohya = load_file(str(out / "myrun_kohya.safetensors"))
    def kohya_name(prefix: str, module: str) -> str:
        if prefix == "lora_te_" and not module.startswith("text_model."):
            module = f"text_model.{module}"   # transformers 5 flattened CLIPTextModel; kohya names keep the level
        return prefix + module.replace(".", "_")

    pipe = load_pipeline(tiny_sd15)
    models = (("lora_unet_", pipe.unet), ("lora_te_", pipe.text_encoder))
    base = {kohya_name(prefix, name): module.weight.detach().clone()
            for prefix, model in models for name, module in model.named_modules() if hasattr(module, "weight")
            and isinstance(module.weight, torch.Tensor)}
    load_lycoris(pipe, out)
    merged = {}
    for prefix, model in models:
        for name, module in model.named_modules():
            if isinstance(module, BaseTunerLayer):
                module.merge()
                merged[kohya_name(prefix, name)] = module.get_base_layer().weight.detach()
    names = {k.rsplit(".", 1)[0] for k in kohya}
    assert any(n.startswith("lora_te_text_model_encoder_layers_") for n in names) and names == set(merged)
    checked = _check_as_comfyui_applies(kohya, names, adapter, base, merged)
    assert checked == len(names) >= 8


def _check_as_comfyui_applies(tensors, names, adapter, base, merged) -> int:
    """Each named module's weight as ComfyUI's LoHa / LoKr weight adapter rebuilds it from the file's
    tensors, against the weight peft merges."""
    import torch

    for name in names:
        t = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.rsplit(".", 1)[0] == name}
        if adapter == "loha":
            scale = float(t["alpha"]) / t["hada_w1_b"].shape[0]
            delta = (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"]) * scale
        else:
            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            w2 = t["lokr_w2"] if "lokr_w2" in t else t["lokr_w2_a"] @ t["lokr_w2_b"]
            dim = t["lokr_w2_b"].shape[0] if "lokr_w2_b" in t else t["lokr_w1_b"].shape[0] if "lokr_w1_b" in t else None
            scale = float(t["alpha"]) / dim if "alpha" in t and dim else 1.0
            delta = torch.kron(w1, w2) * scale
        assert torch.allclose(base[name] + delta.reshape(base[name].shape), merged[name], atol=1e-5), name
    return len(names)


@pytest.mark.parametrize("arch, adapter", [("sd3", "lokr"), ("flux", "loha"), ("zimage", "lokr"), ("qwenimage", "loha")])
def test_a_flow_lycoris_has_a_copy_in_the_names_comfyui_reads_that_rebuilds_the_weights(arch, adapter, tiny_model,
                                                                                         images, tmp_path):
    """comfy/lora.py maps 'lycoris_<diffusers module, dots as underscores>' (SimpleTuner's LyCORIS
    names) for SD3, Flux, Lumina2 / Z-Image and Qwen-Image: every module of the copy is a layer of
    the family's transformer under that name, and its tensors rebuild the weights peft merges."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import load_file

    from trainer.export import load_lycoris

    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "myrun", adapter=adapter, learning_rate=1e-2, rank=4, lora_alpha=2.0)
    train(cfg, progress=False)
    out = tmp_path / "myrun" / "output"
    comfy = load_file(str(out / "myrun_comfyui.safetensors"))
    assert not (out / "myrun_kohya.safetensors").exists()
    pipe = load_pipeline(folder)
    base = {"lycoris_" + n.replace(".", "_"): m.weight.detach().clone() for n, m in pipe.transformer.named_modules()
            if type(m).__name__ == "Linear"}
    load_lycoris(pipe, out)
    merged = {}
    for name, module in pipe.transformer.named_modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
            merged["lycoris_" + name.replace(".", "_")] = module.get_base_layer().weight.detach()
    names = {k.rsplit(".", 1)[0] for k in comfy}
    assert names == set(merged) and names <= set(base)
    assert _check_as_comfyui_applies(comfy, names, adapter, base, merged) >= 4

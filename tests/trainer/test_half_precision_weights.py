"""Base models saved in fp16, as most published checkpoints are, train, sample, generate class
images and score on the CPU (which has no fp16 matrix multiply): every path casts up to fp32.

The tiny model is saved in fp32, so without this file no test would load fp16 weights; the
evaluation once failed on a real-architecture SD 1.5 saved in fp16 ("mat1 and mat2 must have
the same dtype, but got Half and Float") while training on it worked.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import METHOD_OVERRIDES, fast_config
from trainer.vocabulary import METHOD_NAMES
from trainer.events import read_events
from trainer.loop import TrainingRun


def _save_half(folder: Path, out: Path) -> Path:
    import torch
    from safetensors import safe_open

    from trainer.models import load_pipeline

    if not (out / "model_index.json").is_file():
        load_pipeline(folder).to(torch.float16).save_pretrained(out, safe_serialization=True)
    unet_file = next((out / "unet").glob("*.safetensors"))
    with safe_open(str(unet_file), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16  # really fp16 on disk
    return out


@pytest.fixture(scope="module")
def half_sd15(tiny_sd15, tmp_path_factory) -> Path:
    return _save_half(tiny_sd15, tmp_path_factory.mktemp("half") / "sd15-fp16")


@pytest.fixture(scope="module")
def half_sdxl(tiny_sdxl, tmp_path_factory) -> Path:
    return _save_half(tiny_sdxl, tmp_path_factory.mktemp("half") / "sdxl-fp16")


def _trained_dtypes(run: TrainingRun) -> set:
    modules = run.setup.components.modules()
    return {p.dtype for name in run.setup.trained for p in modules[name].parameters() if p.requires_grad}


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_trains_in_fp32_from_fp16_weights(method, half_sd15, images, tmp_path):
    import torch

    cfg = fast_config(half_sd15, images, tmp_path / "run", method=method, max_train_steps=2,
                      validation_prompts=["a photo of sks dog"], validation_steps=2, **METHOD_OVERRIDES[method])
    run = TrainingRun(cfg, progress=False)
    assert run.run() == "completed"
    assert _trained_dtypes(run) == {torch.float32}
    modules = run.setup.components.modules().values()
    frozen = {p.dtype for m in modules for p in m.parameters() if not p.requires_grad}
    assert frozen <= {torch.float32}  # mixed_precision="no": the fp16 weights were cast up, not kept
    events = read_events(tmp_path / "run")
    assert [e["kind"] for e in events if e["kind"] in ("sample", "end")] == ["sample", "end"]
    assert all(e["loss"] == e["loss"] for e in events if e["kind"] == "step")  # no NaN


def test_fp16_base_is_scored_on_the_cpu(half_sd15, images, tmp_path):
    from trainer.evaluate import evaluate_run
    from trainer.vocabulary import FACTORS

    cfg = fast_config(half_sd15, images, tmp_path / "run", method="lora", max_train_steps=2)
    assert TrainingRun(cfg, progress=False).run() == "completed"
    metrics = evaluate_run(tmp_path / "run", clip="none", dino="none", num_images=1, steps=2, num_templates=2,
                           device="cpu")
    assert all(1.0 <= metrics[f]["score"] <= 5.0 for f in FACTORS)


def test_lab_compares_base_and_fine_tuned_from_an_fp16_base(half_sd15, images, tmp_path):
    from PIL import Image

    from lab.results import compare_images

    cfg = fast_config(half_sd15, images, tmp_path / "run", method="lora", max_train_steps=2)
    assert TrainingRun(cfg, progress=False).run() == "completed"
    pairs = compare_images(tmp_path / "run", ["a photo of sks dog"], seeds=(0,), steps=2)
    assert [caption.split(" · ")[0] for _, caption in pairs] == ["base", "fine-tuned"]
    assert all(Image.open(path).size == (64, 64) for path, _ in pairs)


def test_inference_dtype_is_fp32_on_the_cpu_and_half_on_a_gpu():
    import torch

    from trainer.models import inference_dtype

    assert inference_dtype("cpu", "fp16") == torch.float32
    assert inference_dtype("cuda", "no") == torch.float16
    assert inference_dtype("cuda:0", "bf16") == torch.bfloat16


def test_class_images_come_from_an_fp16_base_on_the_cpu(half_sd15, images, tmp_path):
    from trainer.prior import class_images_dir, existing_class_images

    cfg = fast_config(half_sd15, images, tmp_path / "run", method="dreambooth_lora", prior_preservation=True,
                      class_prompt="a photo of a dog", num_class_images=2, max_train_steps=2)
    assert TrainingRun(cfg, progress=False).run() == "completed"
    assert len(existing_class_images(class_images_dir("", half_sd15, "a photo of a dog", 64))) == 2


def test_sdxl_fp16_base_trains_and_scores(half_sdxl, images, tmp_path):
    from trainer.evaluate import evaluate_run

    cfg = fast_config(half_sdxl, images, tmp_path / "run", method="lora", max_train_steps=2)
    assert TrainingRun(cfg, progress=False).run() == "completed"
    assert evaluate_run(tmp_path / "run", clip="none", dino="none", num_images=1, steps=2, num_templates=2,
                        device="cpu")["accuracy"]["score"] >= 1.0


def test_fp32_modules_are_held_in_fp32_whatever_they_were_saved_in():
    import torch

    from trainer.training_utils import cast_weights

    vae, unet = torch.nn.Linear(2, 2).half(), torch.nn.Linear(2, 2).half()
    lora = torch.nn.Linear(2, 2).half()
    lora.weight.requires_grad_(True)
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    lora.bias.requires_grad_(False)
    cast_weights({"vae": vae, "unet": unet, "lora": lora}, "cpu", torch.bfloat16, fp32_modules=["vae"])
    assert vae.weight.dtype == torch.float32            # SDXL's VAE under fp16: fp32 whole
    assert unet.weight.dtype == torch.bfloat16          # frozen: the mixed-precision dtype
    assert lora.weight.dtype == torch.float32 and lora.bias.dtype == torch.bfloat16  # trained: fp32


def test_fp32_size_counts_fp16_files_twice(tiny_sd15, half_sd15):
    from trainer.memory import fp32_weights_gb

    assert fp32_weights_gb(half_sd15) == pytest.approx(fp32_weights_gb(tiny_sd15), rel=0.02)


def test_sampling_that_would_not_fit_in_memory_is_refused_in_one_line(half_sd15, images, tmp_path, monkeypatch):
    """The kernel kills a process that runs out of host memory without a word (scoring SDXL in fp32
    on a 24 GB machine did): evaluation and the lab's comparison say so first instead."""
    from lab.page import finished_view
    from lab.results import compare_images
    from trainer import memory
    from trainer.evaluate import EvalError, evaluate_run

    cfg = fast_config(half_sd15, images, tmp_path / "run", method="lora", max_train_steps=1)
    assert TrainingRun(cfg, progress=False).run() == "completed"
    monkeypatch.setattr(memory, "available_host_gb", lambda: 0.001)
    with pytest.raises(EvalError, match=r"Scoring on the CPU needs about \d+ GB of memory .* 0 GB are free"):
        evaluate_run(tmp_path / "run", clip="none", dino="none", device="cpu")
    with pytest.raises(ValueError, match="Drawing the comparison images on the CPU needs about"):
        compare_images(tmp_path / "run")
    shown = finished_view(tmp_path / "run")  # the page shows the rest and says why there are no images
    assert shown["compare"] == [] and "Drawing the comparison images on the CPU needs" in shown["scores_md"]
    assert shown["downloads"]

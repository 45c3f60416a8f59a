"""quantize_base: the frozen denoiser's linear layers in int8 (torchao, on the CPU too) or NF4
(bitsandbytes, CUDA) while a LoRA trains on top, the QLoRA recipe. The int8 path trains here;
the adapter loads onto the unquantized base; what cannot work is one line before any weight loads."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import fast_config, steps_logged
from trainer.config import ConfigError
from trainer.events import read_events
from trainer.loop import TrainingRun, train
from trainer.methods.registry import load_trained_pipeline
from trainer.models import load_pipeline

pytest.importorskip("torchao")


def _draw(pipe):
    import torch

    from trainer.models import sampling_kwargs

    return pipe("a photo of sks dog", num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(0), **sampling_kwargs(pipe, 1)).images


@pytest.mark.parametrize("arch", ["sd15", "flux", "zimage", "qwenimage"])
def test_an_int8_base_trains_a_lora_that_loads_onto_the_full_precision_base(arch, tiny_model, images, tmp_path):
    folder = tiny_model(arch)
    cfg = fast_config(folder, images, tmp_path / "run", quantize_base="int8", learning_rate=1e-2)
    assert train(cfg, progress=False) == "completed"
    events = read_events(tmp_path / "run")
    assert all(np.isfinite(e["loss"]) for e in steps_logged(events))
    memory = [e for e in events if e["kind"] == "status" and e.get("phase") == "memory"]
    assert memory[0]["savings"] == ["int8 base weights (torchao)"]
    assert np.abs(_draw(load_trained_pipeline(tmp_path / "run")) - _draw(load_pipeline(folder))).mean() > 1e-3


def test_the_quantized_layers_hold_int8_weights_and_the_adapter_trains_in_fp32(tiny_model, images, tmp_path):
    import torch

    from trainer.training_utils import make_accelerator

    cfg = fast_config(tiny_model("flux"), images, tmp_path / "run", quantize_base="int8")
    run = TrainingRun(cfg, progress=False)
    run.accelerator = make_accelerator(cfg.mixed_precision, 1)
    c = run._set_up().components
    layer = c.denoiser.transformer_blocks[0].attn.to_q
    assert type(layer.base_layer.weight).__name__ == "Int8Tensor"
    trained = [p for p in c.denoiser.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)


@pytest.mark.parametrize("overrides, message", [
    ({"method": "full_finetune", "quantize_base": "int8"}, "quantize_base='int8' applies to lora and dreambooth_lora"),
    ({"quantize_base": "int4"}, "quantize_base='int4'; pick one of"),
])
def test_a_quantized_base_needs_an_adapter_method(overrides, message):
    with pytest.raises(ConfigError, match=message):
        fast_config("m", "d", "o", **overrides)


def test_nf4_without_a_gpu_is_one_line_before_loading(tiny_model, images, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = fast_config(tiny_model("flux"), images, tmp_path / "run", quantize_base="nf4")
    with pytest.raises(ConfigError, match="quantize_base='nf4' needs a CUDA GPU") as caught:
        train(cfg, progress=False)
    assert "\n" not in str(caught.value)

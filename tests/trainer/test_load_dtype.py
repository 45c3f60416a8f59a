"""Frozen parts load straight in the dtype training holds them in (half the host memory a large
model passes through on its way to the GPU); parts whose own weights train load as saved; and a
run trains as it did when everything loaded in fp32 and was cast after: the same first loss, then
within 1e-4 (peft now draws LoRA's A in the base layer's bf16 before it is held in fp32, as in
diffusers' scripts, which also cast the model before adding the adapter)."""
from __future__ import annotations

import pytest
import torch

from helpers import fast_config
from trainer.config import TrainConfig
from trainer.events import read_events
from trainer.loop import train
from trainer.methods.registry import get_method
from trainer.models import load_components


def _dtypes(module) -> set:
    return {p.dtype for p in module.parameters()}


def test_frozen_parts_load_in_the_frozen_dtype_and_the_named_parts_as_saved(tiny_model):
    c = load_components(tiny_model("flux"), frozen_dtype=torch.bfloat16, as_saved=("transformer",))
    assert _dtypes(c.denoiser) == {torch.float32}
    assert _dtypes(c.vae) == {torch.bfloat16}
    assert all(_dtypes(te) == {torch.bfloat16} for te in c.text_encoders)


@pytest.mark.parametrize("method, train_text_encoder, whole", [
    ("lora", False, ()),
    ("lora", True, ("text_encoder", "text_encoder_2")),           # kept as saved when it trains at all
    ("dreambooth", False, ("transformer",)),
    ("full_finetune", True, ("transformer", "text_encoder", "text_encoder_2")),
])
def test_the_method_names_the_parts_whose_own_weights_train(method, train_text_encoder, whole, tmp_path):
    from trainer.families.base import FAMILIES

    cfg = TrainConfig(base_model="tiny-flux", method=method, data_dir=str(tmp_path), output_dir=str(tmp_path / "r"),
                      train_text_encoder=train_text_encoder)
    assert get_method(cfg).parts_trained_whole(FAMILIES["flux"]) == whole


def test_textual_inversion_keeps_the_text_encoder_as_saved(tmp_path):
    from trainer.families.base import FAMILIES

    cfg = TrainConfig(base_model="tiny", method="textual_inversion", data_dir=str(tmp_path),
                      output_dir=str(tmp_path / "r"), instance_prompt="a photo of <sks>", initializer_token="dog")
    assert get_method(cfg).parts_trained_whole(FAMILIES["sd"]) == ("text_encoder",)


def test_a_bf16_run_trains_as_when_everything_loaded_in_fp32(tiny_model, images, tmp_path, monkeypatch):
    import trainer.loop as loop

    def losses(run):
        cfg = fast_config(tiny_model("flux"), images, tmp_path / run, mixed_precision="bf16", max_train_steps=3)
        assert train(cfg, progress=False) == "completed"
        return [e["loss"] for e in read_events(tmp_path / run) if e["kind"] == "step"]

    in_bf16 = losses("bf16-load")
    monkeypatch.setattr(loop, "load_dtype", lambda mixed_precision: None)   # the old way: fp32, cast after
    in_fp32 = losses("fp32-load")
    assert in_fp32[0] == in_bf16[0]
    assert in_fp32 == pytest.approx(in_bf16, rel=1e-4)

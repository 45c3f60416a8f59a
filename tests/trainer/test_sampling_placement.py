"""A run's own sampling pipelines (comparison images, scores, the base images of checkpoint scoring)
load the denoiser as the run trained it, and a pipeline that does not fit the free GPU memory is
offloaded instead of running out of memory: Flux.1 trained as a QLoRA on a 16-24 GB card is drawn
on the quantized base it trained on, its parts taking turns on the GPU."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import fast_config
from trainer.loop import train
from trainer.memory import SAMPLING_SLACK_GB, pipeline_placement
from trainer.methods.registry import load_trained_pipeline
from trainer.models import load_pipeline, place_pipeline, sampling_kwargs, sampling_quantize

PROMPT = "a photo of sks dog"


def test_a_pipeline_goes_whole_in_turns_or_layer_by_layer_as_the_free_memory_allows():
    flux_int8 = {"transformer": 12.1, "text_encoder_2": 8.9, "text_encoder": 0.2, "vae": 0.2}
    assert pipeline_placement(flux_int8, None) == "device"                      # off CUDA
    assert pipeline_placement(flux_int8, 79.0) == "device"                      # an H100
    assert pipeline_placement(flux_int8, 23.0) == "offload"                     # a 4090: each part fits alone
    assert pipeline_placement({**flux_int8, "transformer": 22.2}, 23.0) == "sequential"   # bf16 Flux on a 4090
    assert pipeline_placement({"unet": 1.6}, 1.6 + SAMPLING_SLACK_GB) == "device"


def test_nf4_is_drawn_quantized_only_on_cuda():
    assert sampling_quantize("nf4", "cuda") == "nf4" and sampling_quantize("nf4", "cpu") == "no"
    assert sampling_quantize("int8", "cpu") == "int8" and sampling_quantize("no", "cuda") == "no"


@pytest.mark.slow
def test_an_int8_run_is_drawn_on_its_int8_base_as_its_samples_were(tiny_model, images, tmp_path):
    import torch

    pytest.importorskip("torchao")
    folder = tiny_model("flux")
    cfg = fast_config(folder, images, tmp_path / "run", quantize_base="int8", learning_rate=1e-2,
                      validation_prompts=[PROMPT])
    assert train(cfg, progress=False) == "completed"
    with Image.open(max((tmp_path / "run" / "samples").iterdir()) / "0.png") as im:
        last_sample = np.asarray(im, dtype=np.float32)

    def draw(pipe):
        pipe = place_pipeline(pipe, "cpu", torch.float32)
        return np.asarray(pipe(PROMPT, num_inference_steps=cfg.validation_inference_steps, height=64, width=64,
                               generator=torch.Generator("cpu").manual_seed(cfg.seed),
                               **sampling_kwargs(pipe, 1)).images[0], dtype=np.float32)

    quantize = sampling_quantize(cfg.quantize_base, "cpu")
    tuned = load_trained_pipeline(tmp_path / "run", quantize=quantize)
    assert type(tuned.transformer.transformer_blocks[0].attn.to_q.base_layer.weight).__name__ == "Int8Tensor"
    # the model the run's samples came from (on the full-precision base the same LoRA draws 0.14 away)
    assert np.abs(draw(tuned) - last_sample).mean() < 0.01
    base = load_pipeline(folder, quantize=quantize)
    assert type(base.transformer.transformer_blocks[0].attn.to_q.weight).__name__ == "Int8Tensor"
    assert np.abs(draw(base) - last_sample).max() >= 1.0              # and the base beside it is the base

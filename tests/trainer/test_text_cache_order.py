"""cache_text_encoder_outputs as the advisor's estimate counts it: the prompts (the training ones and
the samples') are encoded before the denoiser is placed on the device, the encoders then wait on the
CPU, and samples are drawn from the cached embeddings without bringing them back; the samples are
the ones an uncached run draws."""
from __future__ import annotations

import numpy as np
from PIL import Image

from helpers import fast_config
from trainer.events import read_events
from trainer.loop import train

PROMPTS = ["a photo of sks dog on the moon"]


def _samples(run) -> list[np.ndarray]:
    folder = max((run / "samples").iterdir())
    out = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as im:
            out.append(np.asarray(im, dtype=np.float32))
    return out


def test_prompts_are_encoded_before_the_denoiser_is_placed_and_samples_leave_the_encoders_away(
        tiny_model, images, tmp_path, monkeypatch):
    import trainer.families.flow as flow
    import trainer.methods.registry as registry
    import trainer.samples as samples

    order: list[str] = []
    brought: list[bool] = []

    def spy(owner, name, note):
        original = getattr(owner, name)

        def call(*args, **kwargs):
            note(kwargs)
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, call)

    spy(flow.Flux, "encode_prompts", lambda kw: order.append("encode_prompts"))
    spy(flow.Flux, "prompt_call_kwargs", lambda kw: order.append("prompt_call_kwargs"))
    spy(registry, "set_up_method", lambda kw: order.append("placed"))
    spy(samples, "inference_pipeline", lambda kw: brought.append(kw.get("text_encoders", True)))

    cfg = fast_config(tiny_model("flux"), images, tmp_path / "cached", cache_text_encoder_outputs=True,
                      validation_prompts=PROMPTS, validation_steps=2, max_train_steps=2)
    assert train(cfg, progress=False) == "completed"
    assert order == ["encode_prompts", "prompt_call_kwargs", "placed"]   # nothing encoded once placed
    assert brought and not any(brought)   # every sample (step 2 and the end) from the cached embeddings
    assert any(e.get("kind") == "status" and "wait on the CPU" in e.get("message", "")
               for e in read_events(tmp_path / "cached"))

    monkeypatch.undo()
    plain = fast_config(tiny_model("flux"), images, tmp_path / "plain", validation_prompts=PROMPTS,
                        validation_steps=2, max_train_steps=2)
    assert train(plain, progress=False) == "completed"
    for a, b in zip(_samples(tmp_path / "cached"), _samples(tmp_path / "plain"), strict=True):
        assert np.abs(a - b).max() <= 1.0   # the same pictures, to a rounding of the last 8-bit level


def test_text_outputs_are_made_on_the_cpu_when_the_encoders_do_not_fit_the_free_gpu_memory():
    from trainer.memory import TEXT_ENCODING_SLACK_GB, text_encoding_device

    assert text_encoding_device("cuda:0", 8.04, 20.0) == "cuda:0"     # Z-Image's Qwen3-4B on a 24 GB card
    assert text_encoding_device("cuda:0", 8.04, 7.6) == "cpu"         # ... on an 8 GB card
    assert text_encoding_device("cuda:0", 8.04, 8.04 + TEXT_ENCODING_SLACK_GB) == "cuda:0"
    assert text_encoding_device("cpu", 100.0, None) == "cpu"          # off CUDA: where the run is

"""Memory savings are fields, and the run's events say which were on. cache_text_encoder_outputs
encodes every prompt a step can ask for before the first step, then sends the text encoders off
the device: the steps train exactly as with the encoders at hand."""
from __future__ import annotations

import pytest

from helpers import fast_config, steps_logged
from trainer.config import ConfigError
from trainer.events import read_events
from trainer.loop import train


def _status(run_dir, phase):
    return [e for e in read_events(run_dir) if e["kind"] == "status" and e.get("phase") == phase]


@pytest.mark.parametrize("arch", ["sd15", "flux", "flux2", "zimage", "qwenimage"])
def test_cached_text_encoder_outputs_train_as_the_encoders_would(arch, tiny_model, images, tmp_path):
    folder = tiny_model(arch)
    plain = fast_config(folder, images, tmp_path / "plain", max_train_steps=3)
    cached = fast_config(folder, images, tmp_path / "cached", max_train_steps=3, cache_text_encoder_outputs=True,
                         validation_prompts=["a dog on the moon"])
    train(plain, progress=False)
    assert train(cached, progress=False) == "completed"
    a = [e["loss"] for e in steps_logged(read_events(tmp_path / "plain"))]
    b = [e["loss"] for e in steps_logged(read_events(tmp_path / "cached"))]
    assert b == pytest.approx(a, rel=1e-5)
    cache = _status(tmp_path / "cached", "text_cache")
    assert cache and cache[0]["prompts"] == 1 and cache[0]["text_encoders_mb"] > 0   # one instance prompt
    assert (tmp_path / "cached" / "samples" / "step-000003" / "0.png").is_file()      # a new prompt still draws
    savings = _status(tmp_path / "cached", "memory")[0]["savings"]
    assert "cached text-encoder outputs" in savings
    assert _status(tmp_path / "plain", "memory")[0]["savings"] == []


def test_class_prompts_are_cached_too(tiny_model, images, tmp_path):
    cfg = fast_config(tiny_model("sd15"), images, tmp_path / "run", method="dreambooth_lora", prior_preservation=True,
                      class_prompt="a photo of a dog", num_class_images=2, cache_text_encoder_outputs=True,
                      gradient_checkpointing=True)
    assert train(cfg, progress=False) == "completed"
    assert _status(tmp_path / "run", "text_cache")[0]["prompts"] == 2
    assert _status(tmp_path / "run", "memory")[0]["savings"] == ["gradient checkpointing", "cached text-encoder outputs"]


def test_caching_needs_frozen_text_encoders():
    with pytest.raises(ConfigError, match="train_text_encoder=True trains them"):
        fast_config("m", "d", "o", cache_text_encoder_outputs=True, train_text_encoder=True)
    with pytest.raises(ConfigError, match="textual_inversion trains them"):
        fast_config("m", "d", "o", cache_text_encoder_outputs=True, method="textual_inversion")


def test_a_prompt_that_was_not_cached_is_an_error_not_a_silent_encode():
    from types import SimpleNamespace

    from trainer.prompt_embeddings import PromptEmbeddings

    method = SimpleNamespace(trains_text_encoder=lambda: False, training_prompt=lambda p: p)
    text = PromptEmbeddings(components=None, method=method, wrapped={})
    text.sealed = True
    with pytest.raises(RuntimeError, match="was not cached"):
        text(["a photo of sks dog"])

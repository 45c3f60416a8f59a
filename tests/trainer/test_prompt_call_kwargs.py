"""Family.prompt_call_kwargs: a pipeline called with the embeddings of a prompt (and of what it
guides against) draws what it draws from the prompt (to 1e-5 of a pixel's range), so samples
during training need no text encoder on the device once text outputs are cached (what a 24 GB
plan for Qwen-Image relies on: its 16.6 GB text encoder never returns beside the training state)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.models import load_pipeline, sampling_kwargs
from trainer.tiny import ARCHS

PROMPT = "a photo of sks dog on the beach"


def _draw(pipe, **kw):
    return pipe(num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(0), **kw).images


@pytest.mark.parametrize("arch", ARCHS)
def test_the_embeddings_draw_what_the_prompt_draws(arch, tiny_model):
    from trainer.families.base import family_of_pipeline

    pipe = load_pipeline(tiny_model(arch))
    kwargs = family_of_pipeline(pipe).prompt_call_kwargs(pipe, [PROMPT])
    assert "prompt" not in kwargs and kwargs["prompt_embeds"] is not None
    from_prompt = _draw(pipe, prompt=PROMPT, **sampling_kwargs(pipe, 1))
    pipe.text_encoder = None  # the pipeline cannot encode now: every input it needs is in kwargs
    for name in ("text_encoder_2", "text_encoder_3"):
        if hasattr(pipe, name):
            setattr(pipe, name, None)
    # the same image: SD 3.5 and Flux differ in the last float bits (T5 run on its own, not in the call's batch)
    np.testing.assert_allclose(_draw(pipe, **kwargs), from_prompt, rtol=0, atol=1e-5)

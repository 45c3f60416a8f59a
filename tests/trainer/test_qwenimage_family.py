"""Qwen-Image's differences from the other flow families, checked against diffusers' own code: its
prompt states (the system template dropped by position, each prompt as long as it is) batch padded
with a mask as the pipeline batches them; its video VAE takes an image as a one-frame clip and its
latents are normalised per channel; the tiny tokenizer drops exactly the template, as Qwen's does
(training itself: test_model_families.py)."""
from __future__ import annotations

import torch

from trainer.models import load_components, load_pipeline
from trainer.tiny import QWEN_IMAGE_SYSTEM_PROMPT

SHORT, LONG = "a dog", "a watercolor painting of a dog on the beach at sunset"


def test_the_pipeline_drops_exactly_the_system_template_from_the_tiny_tokenizer_s_ids(tiny_model):
    pipe = load_pipeline(tiny_model("qwenimage"))
    template = pipe.prompt_template_encode
    assert QWEN_IMAGE_SYSTEM_PROMPT in template
    prefix = template[:template.index("{}")]
    assert len(pipe.tokenizer(prefix).input_ids) == pipe.prompt_template_encode_start_idx == 34
    ids = pipe.tokenizer(template.format(SHORT)).input_ids[34:]
    assert pipe.tokenizer.decode(ids).startswith(SHORT)


def test_prompt_states_are_the_pipelines_own_and_batch_with_its_padding_and_mask(tiny_model):
    folder = tiny_model("qwenimage")
    c = load_components(folder)
    per_prompt, pooled = c.family.encode_prompts(c, [SHORT, LONG])
    assert pooled is None and per_prompt[0].shape[0] < per_prompt[1].shape[0]
    states, mask = c.family.batch_embeds(per_prompt)
    expected, expected_mask = load_pipeline(folder).encode_prompt([SHORT, LONG], device="cpu")
    assert torch.equal(states, expected) and torch.equal(mask, expected_mask)
    alone, no_mask = c.family.batch_embeds([per_prompt[1], per_prompt[1]])
    assert no_mask is None and torch.equal(alone[0], per_prompt[1])   # all as long: no mask, as the pipeline


def test_an_image_is_a_one_frame_clip_and_its_latents_are_normalised_per_channel(tiny_model):
    from trainer.training_utils import vae_latents

    c = load_components(tiny_model("qwenimage"))
    pixels = torch.rand(3, 64, 64) * 2 - 1
    raw = vae_latents(c.vae, [("a", lambda: pixels)], torch.Generator().manual_seed(0), None, True, frames=True)
    assert raw.shape == (1, 16, 1, 32, 32)
    c.vae.register_to_config(latents_mean=[0.5] * 16, latents_std=[2.0] * 16)
    assert torch.allclose(c.family.model_latents(c, raw), (raw[:, :, 0] - 0.5) / 2.0)


def test_samples_run_the_model_cards_true_cfg_for_every_prompt_of_a_batch(tiny_model):
    """Qwen-Image's card samples with negative_prompt=" " (true CFG 4.0); without one the pipeline
    samples unguided and warns at every image. Every sampling path passes it, one per prompt."""
    from trainer.evaluate import generate
    from trainer.models import sampling_kwargs

    pipe = load_pipeline(tiny_model("qwenimage"))
    assert sampling_kwargs(pipe, 2) == {"negative_prompt": [" ", " "]}
    calls = []
    hook = pipe.transformer.register_forward_hook(lambda module, args, out: calls.append(1))
    try:
        images = generate(pipe, [SHORT, LONG], seeds=[0], steps=2, resolution=64, batch_size=2)
    finally:
        hook.remove()
    assert len(calls) == 2 * 2   # 2 steps x (the prompts + the negative prompt)
    assert [len(row) for row in images] == [1, 1]


def test_families_without_a_negative_prompt_get_nothing_extra(tiny_model):
    from trainer.models import sampling_kwargs

    assert sampling_kwargs(load_pipeline(tiny_model("flux")), 3) == {}
    assert sampling_kwargs(object(), 1) == {}   # no family's pipeline (e.g. the shapes demo model's)

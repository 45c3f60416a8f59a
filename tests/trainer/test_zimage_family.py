"""Z-Image's two differences from the other flow families, checked against diffusers' own code:
its prompt states are a list of unpadded tensors (one per prompt, each as long as its prompt),
which batch as a list; and its transformer is told 1 - sigma and predicts the negated velocity,
as `train_dreambooth_lora_z_image.py` trains it (training itself: test_model_families.py)."""
from __future__ import annotations

import torch

from trainer.families.base import Noised
from trainer.models import load_components, load_pipeline

SHORT, LONG = "a dog", "a watercolor painting of a dog on the beach at sunset"


def test_prompt_states_are_the_pipelines_own_unpadded_list(tiny_model):
    folder = tiny_model("zimage")
    c = load_components(folder)
    embeds, pooled = c.family.encode_prompts(c, [SHORT, LONG])
    expected, _ = load_pipeline(folder).encode_prompt([SHORT, LONG], device="cpu", do_classifier_free_guidance=False)
    assert pooled is None and isinstance(embeds, list) and len(embeds) == 2
    assert embeds[0].shape[0] < embeds[1].shape[0]          # each as long as its prompt, no padding
    assert all(torch.equal(a, b) for a, b in zip(embeds, expected))
    batch = c.family.batch_embeds([embeds[1], embeds[0], embeds[1]])
    assert isinstance(batch, list) and [e.shape for e in batch] == [embeds[1].shape, embeds[0].shape, embeds[1].shape]


def test_the_prediction_is_the_negated_output_at_one_minus_sigma(tiny_model):
    c = load_components(tiny_model("zimage"))
    g = torch.Generator().manual_seed(0)
    latents, noise = torch.randn(2, 16, 8, 8, generator=g), torch.randn(2, 16, 8, 8, generator=g)
    noised = c.family.noised(c, latents, noise, g)
    assert torch.allclose(noised.target, noise - latents)
    embeds, _ = c.family.encode_prompts(c, [SHORT, LONG])
    with torch.no_grad():
        pred = c.family.predict(c, c.denoiser, noised, embeds, None, (64, 64))
        # the script's call, written out: a list of (C, 1, H, W) frames, t = (1000 - timestep) / 1000
        frames = list(noised.inputs.unsqueeze(2).unbind(0))
        out = c.denoiser(frames, (1000 - noised.timesteps) / 1000, embeds, return_dict=False)[0]
    assert pred.shape == latents.shape
    assert torch.allclose(pred, -torch.stack(out).squeeze(2))
    # and the time the model is told matters: sigma itself instead of 1 - sigma gives another output
    with torch.no_grad():
        other = c.family.predict(c, c.denoiser, Noised(noised.inputs, 1000 - noised.timesteps, noised.target),
                                 embeds, None, (64, 64))
    assert not torch.allclose(pred, other)

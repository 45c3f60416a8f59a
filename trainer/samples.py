"""Validation samples: the model being trained draws fixed prompts at fixed seeds.

Image k of every prompt uses seed `seed + k` on a CPU generator, so the samples of two steps
(or two runs) differ only by what training changed. The method's `inference_weights` decides
what the pipeline sees (e.g. EMA weights); trained modules go back to train mode afterwards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


def write_samples(folder: Path, components, method, accelerator, *, prompts: Iterable[str], num_images: int,
                  inference_steps: int, resolution: int, seed: int, trained: Iterable[str]) -> list[tuple[Path, str]]:
    """Draw `num_images` images per prompt into `folder` as 0.png, 1.png, ...; return (path, prompt) pairs."""
    import torch

    from .models import make_pipeline

    folder.mkdir(parents=True, exist_ok=True)
    trained = set(trained)
    made: list[tuple[Path, str]] = []
    for module in components.modules().values():
        module.eval()
    try:
        with torch.no_grad(), method.inference_weights(components), accelerator.autocast():
            pipe = make_pipeline(components)
            for prompt in prompts:
                for k in range(num_images):
                    image = pipe(prompt, num_inference_steps=inference_steps, height=resolution, width=resolution,
                                 generator=torch.Generator("cpu").manual_seed(seed + k)).images[0]
                    path = folder / f"{len(made)}.png"
                    image.save(path)
                    made.append((path, prompt))
    finally:
        for name, module in components.modules().items():
            module.train(name in trained)
    return made


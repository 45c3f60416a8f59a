"""Validation samples: the model being trained draws fixed prompts at fixed seeds.

Image k of every prompt uses seed `seed + k` on a CPU generator, so the samples of two steps
(or two runs) differ only by what training changed. `inference_pipeline` is the one way a
model being trained (or one loaded from a checkpoint) draws: the method's `inference_weights`
decides what the pipeline sees (e.g. EMA weights), and trained modules go back to train mode
afterwards. trainer.checkpoint_eval draws through it too.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable, Iterator


@contextlib.contextmanager
def inference_pipeline(components, method, autocast, trained: Iterable[str], *,
                       text_encoders: bool = True) -> Iterator[Any]:
    """A pipeline over `components` (nothing copied) with the method's inference weights, every
    module in eval mode and `autocast` (a context manager) on; the `trained` modules go back to
    train mode on the way out. Text encoders waiting on the CPU (cache_text_encoder_outputs) come
    to the denoiser's device for the drawing and go back after, unless `text_encoders` is False
    (every prompt comes as embeddings: Family.prompt_call_kwargs)."""
    import torch

    trained = set(trained)
    for module in components.modules().values():
        module.eval()
    device = components.denoiser.device
    away = [te for te in components.text_encoders if te.device != device] if text_encoders else []
    try:
        for te in away:
            te.to(device)
        with torch.no_grad(), method.inference_weights(components), autocast:
            from .models import make_pipeline

            yield make_pipeline(components)
    finally:
        for te in away:
            te.to("cpu")
        for name, module in components.modules().items():
            module.train(name in trained)


def write_samples(folder: Path, components, method, accelerator, *, prompts: Iterable[str], num_images: int,
                  inference_steps: int, resolution: int, seed: int, trained: Iterable[str],
                  prompt_calls: dict[tuple, dict[str, Any]] | None = None) -> list[tuple[Path, str]]:
    """Draw `num_images` images per prompt into `folder` as 0.png, 1.png, ...; return (path, prompt)
    pairs. `prompt_calls`: each prompt's call arguments under the key `(prompt,)` (cached text
    outputs, trainer.prompt_embeddings), so the text encoders stay where they wait when every prompt
    is there."""
    import torch

    from .models import sampling_kwargs

    prompts = list(prompts)
    cached = {key[0]: call for key, call in (prompt_calls or {}).items() if len(key) == 1}
    from_embeddings = bool(prompts) and all(p in cached for p in prompts)
    folder.mkdir(parents=True, exist_ok=True)
    made: list[tuple[Path, str]] = []
    with inference_pipeline(components, method, accelerator.autocast(), trained,
                            text_encoders=not from_embeddings) as pipe:
        for prompt in prompts:
            call = cached[prompt] if from_embeddings else {"prompt": prompt, **sampling_kwargs(pipe, 1)}
            for k in range(num_images):
                image = pipe(num_inference_steps=inference_steps, height=resolution, width=resolution,
                             generator=torch.Generator("cpu").manual_seed(seed + k), **call).images[0]
                path = folder / f"{len(made)}.png"
                image.save(path)
                made.append((path, prompt))
    return made

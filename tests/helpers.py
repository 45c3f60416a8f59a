"""Plain functions the tests import: real image files, the tiny model, fast training configs.

Fixtures live in the conftest.py files (the shared ones in tests/conftest.py); these are plain
functions so any fixture or test can use them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent  # the repository
_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}


def pattern_image(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    """An RGB image of random coloured blocks over a random gradient, distinct per seed.

    Blocks (not per-pixel noise) so the picture survives JPEG/WebP compression and downsizing
    recognisably: duplicate detection must not confuse two seeds, nor miss one seed saved twice.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(blocks, "RGB").resize((w, h), Image.Resampling.NEAREST), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1)) * 60.0
    img = np.clip(img * 0.75 + ramp[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(img, "RGB")


def make_images(folder: str | Path, n: int, size: tuple[int, int] = (64, 64), fmt: str = "png",
                captions: bool = False, seed: int = 0) -> list[Path]:
    """Write `n` distinct images `img_000.<fmt>`... to `folder` (created); return their paths.

    `captions=True` also writes a sidecar `img_000.txt` ("a photo of pattern 0") per image.
    Image i uses seed `seed + i`, so two calls with different seeds give different pictures.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in _FORMATS:
        raise ValueError(f"fmt={fmt!r}; pick one of {sorted(_FORMATS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:03d}.{fmt}"
        pattern_image(size, seed + i).save(path, _FORMATS[fmt], **({"quality": 95} if fmt != "png" else {}))
        if captions:
            path.with_suffix(".txt").write_text(f"a photo of pattern {seed + i}\n", encoding="utf-8")
        paths.append(path)
    return paths


def build_tiny_model(path: str | Path, arch: str = "sd15") -> Path:
    """Write the built-in tiny pipeline (see trainer.tiny) to `path`; return it."""
    from trainer.tiny import make_tiny_model

    return make_tiny_model(path, arch=arch)


def tiny_model_dir(tmp_path_factory, arch: str = "sd15") -> Path:
    """For a session-scoped fixture: build the tiny model once under pytest's temp root."""
    return build_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}") / "model", arch=arch)


def fast_config(model: Path, data: Path, out: Path, **overrides):
    """A TrainConfig that trains in a second on the tiny model (64 px, batch 1, 3 steps)."""
    from trainer.config import TrainConfig

    values = dict(base_model=str(model), data_dir=str(data), output_dir=str(out), resolution=64,
                  max_train_steps=3, learning_rate=1e-2, checkpointing_steps=0, validation_inference_steps=2,
                  validation_steps=0)
    values.update(overrides)
    return TrainConfig(**values)


# Per method: what makes a 3-step run visibly change the tiny model's image.
METHOD_OVERRIDES = {
    "lora": {"learning_rate": 1e-2},
    "dreambooth_lora": {"learning_rate": 1e-2},
    "dreambooth": {"learning_rate": 1e-3},
    "full_finetune": {"learning_rate": 1e-3},
    "textual_inversion": {"learning_rate": 1e-1, "instance_prompt": "a photo of <sks>",
                          "initializer_token": "dog"},
}
METHOD_PROMPT = {"textual_inversion": "a photo of <sks>"}


def generate(pipe, prompt: str = "a photo of sks dog", seed: int = 0) -> np.ndarray:
    import torch

    from trainer.models import sampling_kwargs

    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(seed),
                output_type="np", **sampling_kwargs(pipe, 1)).images


def steps_logged(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] == "step"]


def run_cli(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m trainer ...` in a subprocess, from the repository root."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)

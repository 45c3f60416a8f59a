"""Helpers other tests import: real image files and the tiny model, built on the spot.

Fixtures stay in conftest.py (the lead's); these are plain functions so any fixture can use them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

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

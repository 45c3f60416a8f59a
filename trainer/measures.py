"""Weight-free image measures: SSIM, colour histograms and prompt sensitivity, on numpy only.

They score a run when CLIP or DINO cannot be loaded (see trainer.calibration.PROXY_ANCHORS) and
measure base-vs-fine-tuned drift (SSIM) in every evaluation.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

SSIM_SIDE = 256               # images are compared at most this large (SSIM, histograms)


def to_array(image, side: int | None = None, gray: bool = True) -> np.ndarray:
    """PIL image -> float array in [0, 1]; `side` centre-crops to a square of that side first."""
    from PIL import Image

    img = image.convert("RGB")
    if side is not None:
        s = min(img.size)
        left, top = (img.width - s) // 2, (img.height - s) // 2
        img = img.crop((left, top, left + s, top + s)).resize((side, side), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float64) / 255.0
    return arr @ np.array([0.299, 0.587, 0.114]) if gray else arr  # ITU-R 601 luma


def _gaussian_filter(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of a 2-D array (no padding: edges do not bias the mean)."""
    view = np.lib.stride_tricks.sliding_window_view
    return view(view(x, window.size, axis=0) @ window, window.size, axis=1) @ window


def _gray_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape:
            raise ValueError(f"ssim needs arrays of one shape, got {a.shape} and {b.shape}")
        return a, b
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        raise ValueError("ssim takes two PIL images or two arrays, not one of each")
    if a.size == b.size and max(a.size) <= SSIM_SIDE:
        return to_array(a), to_array(b)
    side = min(SSIM_SIDE, *a.size, *b.size)
    return to_array(a, side), to_array(b, side)


def ssim(a, b, *, size: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004) of two images on grayscale, Gaussian window.

    `a`, `b`: PIL images or 2-D arrays in [0, 1]. Images of different sizes are compared as
    centred squares at the smaller side (at most SSIM_SIDE px). 1.0 means identical.
    """
    a, b = _gray_pair(a, b)
    if a.ndim != 2 or min(a.shape) < size:
        raise ValueError(f"ssim needs grayscale images of at least {size}x{size} px, got shape {a.shape}")
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
    g /= g.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2  # K1, K2 of the paper, dynamic range 1
    mu_a, mu_b = _gaussian_filter(a, g), _gaussian_filter(b, g)
    var_a = _gaussian_filter(a * a, g) - mu_a ** 2
    var_b = _gaussian_filter(b * b, g) - mu_b ** 2
    cov = _gaussian_filter(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def color_histogram(image, bins: int = 8) -> np.ndarray:
    """Normalised joint RGB histogram (bins^3 cells) of the image's centred square."""
    arr = to_array(image, min(SSIM_SIDE, *image.size), gray=False).reshape(-1, 3)
    h, _ = np.histogramdd(arr, bins=bins, range=[(0, 1)] * 3)
    return h.ravel() / h.sum()


def color_histogram_similarity(a, b, bins: int = 8) -> float:
    """Histogram intersection of two images' colours: 1.0 = the same colour distribution."""
    return float(np.minimum(color_histogram(a, bins), color_histogram(b, bins)).sum())


def proxy_similarity(generated: Sequence[Any], train: Sequence[Any]) -> dict[str, float]:
    """Weight-free accuracy proxy: mean pairwise colour-histogram intersection and SSIM of
    generated vs training images (each image converted once, compared as centred squares)."""
    side = min(SSIM_SIDE, *(min(img.size) for img in [*generated, *train]))
    gray_g, gray_t = [to_array(g, side) for g in generated], [to_array(t, side) for t in train]
    hist_g, hist_t = [color_histogram(g) for g in generated], [color_histogram(t) for t in train]
    return {"color_hist": float(np.mean([np.minimum(a, b).sum() for a in hist_g for b in hist_t])),
            "ssim_to_train": float(np.mean([ssim(a, b) for a in gray_g for b in gray_t]))}


def prompt_sensitivity(images_by_prompt: Sequence[Sequence[Any]]) -> float:
    """Mean 1 - SSIM between images of different prompts at the same seed: 0 = prompts ignored."""
    diffs = [1.0 - ssim(images_by_prompt[p][s], images_by_prompt[q][s])
             for s in range(len(images_by_prompt[0]))
             for p in range(len(images_by_prompt)) for q in range(p + 1, len(images_by_prompt))]
    if not diffs:
        raise ValueError("prompt sensitivity needs images of at least two prompts")
    return float(np.mean(diffs))

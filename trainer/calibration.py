"""Calibration: raw evaluation numbers -> 1-5 scores, through piecewise-linear maps anchored on
published reference values.

`ANCHORS` hold paper numbers (DreamBooth's DreamBench tables; see knowledge/evaluation-calibration.md);
`PROXY_ANCHORS` map the weight-free measures of trainer.measures and are NOT calibrated against
papers: their reference points are measured on scikit-learn's sample photos
(`REFERENCE_MEASUREMENTS`, re-measured by tests/test_evaluate.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

CALIBRATION_CARD = "knowledge/evaluation-calibration.md"


@dataclass(frozen=True)
class Anchor:
    value: float    # raw metric
    score: float    # the 1-5 score it maps to
    source: str     # where the value comes from


DREAMBOOTH_PAPER = "arXiv 2208.12242"  # DreamBooth (Ruiz et al., CVPR 2023), DreamBench numbers
_DB = DREAMBOOTH_PAPER
ANCHORS: dict[str, tuple[Anchor, ...]] = {
    "dino": (Anchor(0.303, 1.0, f"{_DB} Table 4: DreamBooth trained with no class noun"),
             Anchor(0.454, 2.0, f"{_DB} Table 4: wrong class noun"),
             Anchor(0.569, 3.0, f"{_DB} Table 1: textual inversion (SD)"),
             Anchor(0.668, 4.0, f"{_DB} Table 1: DreamBooth (SD)"),
             Anchor(0.774, 5.0, f"{_DB} Table 1: real images (upper bound)")),
    "clip_i": (Anchor(0.607, 1.0, f"{_DB} Table 4: no class noun"),
               Anchor(0.728, 2.0, f"{_DB} Table 4: wrong class noun"),
               Anchor(0.780, 3.0, f"{_DB} Table 1: textual inversion (SD)"),
               Anchor(0.803, 4.0, f"{_DB} Table 1: DreamBooth (SD)"),
               Anchor(0.885, 5.0, f"{_DB} Table 1: real images (upper bound)")),
    "clip_t": (Anchor(0.205, 1.0, "extrapolated below textual inversion at the TI -> DreamBooth slope"),
               Anchor(0.255, 2.5, f"{_DB} Table 1: textual inversion (SD)"),
               Anchor(0.305, 4.0, f"{_DB} Table 1: DreamBooth (SD)"),
               Anchor(0.338, 5.0, "extrapolated above DreamBooth at the same slope")),
    # PRES: lower is better. The score counts points lost relative to the base model (below).
    "pres": (Anchor(0.379, 5.0, "extrapolated below 'with prior' at the with/without slope"),
             Anchor(0.493, 4.0, f"{_DB} Table 3: DreamBooth with prior preservation"),
             Anchor(0.664, 2.5, f"{_DB} Table 3: DreamBooth without prior preservation"),
             Anchor(0.774, 1.0, f"{_DB} Table 1: real images: class images as close as the subject's own photos")),
    # Base vs fine-tuned, same prompt and seed: published CLIP-I levels as yardsticks of change.
    "clip_base_vs_tuned": (Anchor(0.728, 1.0, f"{_DB} Table 4: CLIP-I of a wrong-class subject (a different thing)"),
                           Anchor(0.803, 2.0, f"{_DB} Table 1: DreamBooth images vs real photos of the subject"),
                           Anchor(0.885, 3.0, f"{_DB} Table 1: two real photos of one subject"),
                           Anchor(1.000, 5.0, "identical images")),
}
# Weight-free measures: NOT calibrated against papers. Reference points are measured on
# scikit-learn's two sample photos (sklearn/datasets/images: china.jpg, flower.jpg), compared as
# 256 px centred squares; tests/test_evaluate.py re-measures them (REFERENCE_MEASUREMENTS).
_SK = "measured on scikit-learn's sample photos"
REFERENCE_MEASUREMENTS = {   # name -> value, for the anchors below
    "ssim_unrelated": 0.15,        # SSIM china.jpg vs flower.jpg
    "ssim_shifted": 0.40,          # SSIM china.jpg vs itself cropped by 40x20 px and resized back
    "ssim_blurred": 0.76,          # SSIM china.jpg vs itself with a radius-2 Gaussian blur
    "hist_unrelated": 0.16,        # colour-histogram intersection china.jpg vs flower.jpg
    "hist_shifted": 0.94,          # colour-histogram intersection china.jpg vs its shifted crop
}
PROXY_ANCHORS: dict[str, tuple[Anchor, ...]] = {
    "ssim_base_vs_tuned": (Anchor(0.15, 1.0, f"unrelated photos ({_SK})"),
                           Anchor(0.40, 2.0, f"the same photo, shifted ({_SK})"),
                           Anchor(0.76, 3.0, f"the same photo, blurred ({_SK})"),
                           Anchor(0.95, 4.0, "uncalibrated: near-identical to the eye"),
                           Anchor(1.00, 5.0, "identical images")),
    "color_hist": (Anchor(0.16, 1.0, f"unrelated photos ({_SK})"),
                   Anchor(0.94, 5.0, f"the same photo, shifted: same palette ({_SK})")),
    "ssim_to_train": (Anchor(0.15, 1.0, f"unrelated photos ({_SK})"),
                      Anchor(0.40, 4.0, f"the same photo, shifted ({_SK})"),
                      Anchor(1.00, 5.0, "a copy of a training image")),
    "prompt_sensitivity": (Anchor(0.0, 1.0, "every prompt gives the same image (1 - SSIM = 0)"),
                           Anchor(0.85, 5.0, f"as different as unrelated photos (1 - 0.15, {_SK})")),
}


def score_from_anchors(value: float, anchors: Sequence[Anchor | tuple[float, float]]) -> float:
    """Piecewise-linear map through (value, score) anchors, flat beyond the ends."""
    points = sorted((float(a.value), float(a.score)) if isinstance(a, Anchor) else (float(a[0]), float(a[1]))
                    for a in anchors)
    if len(points) < 2 or len({v for v, _ in points}) != len(points):
        raise ValueError("anchors need at least two points with distinct values")
    if value is None or not math.isfinite(value):
        raise ValueError(f"value={value!r}; a score needs a finite number")
    return float(np.interp(value, [v for v, _ in points], [s for _, s in points]))


def pres_score(pres: float, pres_base: float) -> float:
    """Points lost on the published PRES scale relative to the base model: an untouched model
    keeps 5, a class that drifted from the base's 0.493 to 0.664 loses 1.5."""
    lost = score_from_anchors(pres_base, ANCHORS["pres"]) - score_from_anchors(pres, ANCHORS["pres"])
    return float(min(5.0, max(1.0, 5.0 - max(0.0, lost))))

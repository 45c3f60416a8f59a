"""Scoring a finished run on accuracy, flexibility and preservation (1-5 each, plus raw numbers).

    images = generate(pipe, prompts, seeds, steps)          # fine-tuned, then base, same seeds
    metrics = compute_metrics(EvalImages(...), prompts, training_images, encoders, notes)

- accuracy: CLIP-I and DINO similarity of the generated subject images to the training images
  (DreamBooth's metrics, scored over every prompt that names the subject, as DreamBench does);
- flexibility: CLIP-T (prompt-image cosine) on prompts that put the subject somewhere new;
- preservation: base vs fine-tuned at the same seeds on unrelated and class prompts (CLIP image
  similarity and SSIM), and PRES: do class images ("a photo of a dog") now look like the subject?

Raw numbers become 1-5 scores through piecewise-linear maps anchored on published reference
values (`ANCHORS`, sources inline; see knowledge/evaluation-calibration.md). Where CLIP or DINO
cannot be loaded (no hub, no cache), the factor falls back to a weight-free proxy with its own,
uncalibrated map (`PROXY_ANCHORS`) and says so in metrics.json. `evaluate_run` wires it to a run
folder: metrics.json (written atomically), image grids under eval/, and an `eval` event.
No training state is used: the run's config.json and output/ are all it reads.
"""
from __future__ import annotations

import gc
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .encoders import (Encoder, clip_image_similarity, clip_text_similarity, dino_similarity, load_encoders,
                       self_similarity)
from .events import emit, last_event, read_events, run_status
from .prompts import EvalPrompts, build_prompts

METRICS_FILE = "metrics.json"
EVAL_DIR = "eval"
CALIBRATION_CARD = "knowledge/evaluation-calibration.md"
FACTORS = ("accuracy", "flexibility", "preservation")
DEFAULT_NUM_IMAGES = 2        # seeds per prompt
DEFAULT_STEPS = 25            # denoising steps for real models
SMALL_MODEL_STEPS = 10        # for models generating at <= 128 px (the tiny test model)
MAX_TRAIN_IMAGES = 32         # training images compared against (evenly picked from larger sets)
TRAIN_SIDE = 512              # training images are shrunk to this short side once, on loading
GEN_BATCH = 4                 # images per pipeline call: faster than one by one, fits any card
SSIM_SIDE = 256               # images are compared at most this large (SSIM, histograms)


class EvalError(ValueError):
    """The run folder cannot be evaluated; the message says why in one line."""


# --- calibration: raw number -> 1-5 score -----------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    value: float    # raw metric
    score: float    # the 1-5 score it maps to
    source: str     # where the value comes from


_DB = "arXiv 2208.12242"  # DreamBooth (Ruiz et al., CVPR 2023), DreamBench numbers
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


# --- weight-free image measures ----------------------------------------------------------------------
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


# --- generation --------------------------------------------------------------------------------------
def default_steps(resolution: int) -> int:
    return SMALL_MODEL_STEPS if resolution <= 128 else DEFAULT_STEPS


def generate(pipe, prompts: Sequence[str], seeds: Sequence[int], steps: int, *,
             resolution: int | None = None, batch_size: int = GEN_BATCH) -> list[list[Any]]:
    """images[i][j]: prompt i at seed j.

    Every image has its own CPU generator, so seed j starts from the same noise for every
    prompt and every pipeline; (prompt, seed) pairs go through the pipeline `batch_size` at a
    time, in a fixed order, so two pipelines given the same lists see the same batches.
    """
    import torch

    pipe.set_progress_bar_config(disable=True)
    pairs = [(p, int(s)) for p in prompts for s in seeds]
    flat: list[Any] = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        with torch.no_grad():
            out = pipe([p for p, _ in chunk], num_inference_steps=steps, height=resolution, width=resolution,
                       generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk])
        flat.extend(out.images)
    n = len(seeds)
    return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]


@dataclass
class EvalImages:
    """Generated images, each as [prompt][seed]."""
    subject: list[list[Any]]        # fine-tuned, prompts.subject
    flexibility: list[list[Any]]    # fine-tuned, prompts.flexibility
    tuned: list[list[Any]]          # fine-tuned, prompts.base_prompts
    base: list[list[Any]]           # base model, prompts.base_prompts

    @property
    def count(self) -> int:
        return sum(len(row) for group in (self.subject, self.flexibility, self.tuned, self.base) for row in group)


# --- metrics -----------------------------------------------------------------------------------------
def _flat(rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [img for row in rows for img in row]


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def _combine(parts: dict[str, float]) -> float:
    return round(min(5.0, max(1.0, float(np.mean(list(parts.values()))))), 1)


def accuracy_metrics(images: EvalImages, prompts: EvalPrompts, train: list[Any],
                     clip: Encoder | None, dino: Encoder | None, notes: dict[str, str]) -> dict[str, Any]:
    named = [row for p, row in zip(prompts.flexibility, images.flexibility) if prompts.info.identifier in p]
    generated = _flat(images.subject) + _flat(named)   # every image that names the subject
    subject_only = _flat(images.subject)
    raw: dict[str, Any] = {}
    scores: dict[str, float] = {}
    for name, enc, fn in (("dino", dino, dino_similarity), ("clip_i", clip, clip_image_similarity)):
        if enc is None:
            continue
        raw[name] = fn(enc, generated, train)
        raw[f"{name}_subject_prompt"] = fn(enc, subject_only, train)
        raw[f"{name}_train_self"] = self_similarity(enc.embed_images(train))   # the "real images" ceiling
        scores[name] = score_from_anchors(raw[name], ANCHORS[name])
    proxy = proxy_similarity(generated, train)
    if scores:
        method, basis = "+".join(sorted(scores)), (
            f"{' and '.join(n.upper().replace('_', '-') for n in scores)} similarity of {len(generated)} generated "
            f"images of the subject to {len(train)} training images, on anchors from {_DB}")
    else:
        scores = {k: score_from_anchors(v, PROXY_ANCHORS[k]) for k, v in proxy.items()}
        method, basis = "weight-free proxy", (
            f"colour-histogram and SSIM similarity of {len(generated)} generated images to {len(train)} "
            "training images; uncalibrated against papers")
    encoder = _encoder_note(notes, [k for k, e in (("dino", dino), ("clip", clip)) if e is not None])
    return _factor(scores, raw, proxy, method, encoder, basis, n_generated=len(generated), n_train=len(train))


def flexibility_metrics(images: EvalImages, prompts: EvalPrompts, clip: Encoder | None,
                        notes: dict[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    scores: dict[str, float] = {}
    proxy = {"prompt_sensitivity": prompt_sensitivity(images.flexibility)}
    if clip is not None and clip.tokenizer is not None:
        texts = [prompts.clip_text[p] for p, row in zip(prompts.flexibility, images.flexibility) for _ in row]
        raw["clip_t"] = clip_text_similarity(clip, _flat(images.flexibility), texts)
        scores["clip_t"] = score_from_anchors(raw["clip_t"], ANCHORS["clip_t"])
        method, encoder = "clip_t", notes["clip"]
        basis = (f"CLIP-T (prompt-image cosine, identifier removed) on {len(prompts.flexibility)} prompts that put "
                 f"the subject somewhere new, on anchors from {_DB}")
    else:
        scores = {"prompt_sensitivity": score_from_anchors(proxy["prompt_sensitivity"],
                                                           PROXY_ANCHORS["prompt_sensitivity"])}
        method, encoder = "weight-free proxy", _encoder_note(notes, [], only=["clip"])
        basis = (f"prompt sensitivity (mean 1 - SSIM between same-seed images of {len(prompts.flexibility)} "
                 "different prompts; a model that ignores prompts scores low); uncalibrated against papers")
    return _factor(scores, raw, proxy, method, encoder, basis, n_prompts=len(prompts.flexibility))


def preservation_metrics(images: EvalImages, prompts: EvalPrompts, train: list[Any],
                         clip: Encoder | None, dino: Encoder | None, notes: dict[str, str]) -> dict[str, Any]:
    tuned, base = _flat(images.tuned), _flat(images.base)
    raw: dict[str, Any] = {"ssim_base_vs_tuned": float(np.mean([ssim(a, b) for a, b in zip(base, tuned)]))}
    scores = {"ssim_base_vs_tuned": score_from_anchors(raw["ssim_base_vs_tuned"], PROXY_ANCHORS["ssim_base_vs_tuned"])}
    parts = ["SSIM base vs fine-tuned (uncalibrated)"]
    if clip is not None:
        raw["clip_base_vs_tuned"] = clip_image_similarity(clip, base, tuned, paired=True)
        scores["clip_base_vs_tuned"] = score_from_anchors(raw["clip_base_vs_tuned"], ANCHORS["clip_base_vs_tuned"])
        parts.insert(0, "CLIP image similarity base vs fine-tuned")
    n_class = len(prompts.classes)
    if dino is not None and n_class:
        k = len(prompts.preservation)  # base_prompts = unrelated prompts, then class prompts
        raw["pres"] = dino_similarity(dino, _flat(images.tuned[k:]), train)
        raw["pres_base"] = dino_similarity(dino, _flat(images.base[k:]), train)
        scores["pres"] = pres_score(raw["pres"], raw["pres_base"])
        parts.append(f"PRES (DINO similarity of class-prompt images to the training images, {_DB} Table 3, "
                     "scored as points lost relative to the base model)")
    method = "weight-free proxy" if len(scores) == 1 else "+".join(sorted(scores))
    encoder = _encoder_note(notes, [k for k, m in (("clip", "clip_base_vs_tuned"), ("dino", "pres")) if m in scores])
    basis = (f"{', '.join(parts)} on {len(prompts.base_prompts)} prompts x {len(images.base[0])} seeds "
             f"({len(prompts.preservation)} unrelated, {n_class} class)")
    return _factor(scores, raw, {"ssim_base_vs_tuned": raw["ssim_base_vs_tuned"]}, method, encoder, basis)


def _encoder_note(notes: dict[str, str], used: list[str], only: list[str] | None = None) -> str:
    """What a factor was measured with: the encoders used, or "none: <why each is missing>"."""
    if used:
        return " + ".join(notes[k] for k in used)
    return "none: " + "; ".join(f"{k}: {notes[k].removeprefix('none: ')}" for k in (only or sorted(notes)))


def _factor(scores: dict[str, float], raw: dict[str, Any], proxy: dict[str, float], method: str, encoder: str,
            basis: str, **counts: int) -> dict[str, Any]:
    return {"score": _combine(scores), **{k: _r(v) for k, v in raw.items()},
            "scores": {k: round(v, 2) for k, v in scores.items()}, "method": method, "encoder": encoder,
            "proxy": {k: _r(v) for k, v in proxy.items()}, "basis": basis, **counts}


def compute_metrics(images: EvalImages, prompts: EvalPrompts, train: list[Any],
                    encoders: dict[str, Encoder | None], notes: dict[str, str]) -> dict[str, Any]:
    """The three factor dicts ({"score", raw numbers, "scores", "method", "encoder", "basis"})."""
    if not train:
        raise ValueError("training images: none given; accuracy compares against them")
    clip, dino = encoders.get("clip"), encoders.get("dino")
    return {"accuracy": accuracy_metrics(images, prompts, train, clip, dino, notes),
            "flexibility": flexibility_metrics(images, prompts, clip, notes),
            "preservation": preservation_metrics(images, prompts, train, clip, dino, notes)}


# --- the run folder ----------------------------------------------------------------------------------
def check_run(run_dir: str | Path):
    """The run's TrainConfig, or EvalError when the folder is not a finished run."""
    from .config import ConfigError, TrainConfig

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvalError(f"run folder '{run_dir}' does not exist")
    if not (run_dir / "config.json").is_file():
        raise EvalError(f"'{run_dir}' has no config.json; give a run folder written by `python -m trainer train`")
    try:
        config = TrainConfig.load(run_dir / "config.json")
    except ConfigError as e:
        raise EvalError(f"'{run_dir}/config.json' is not a valid config: {e}") from None
    status = run_status(run_dir)
    output = run_dir / "output"
    if status in ("running", "failed", "stopped"):
        raise EvalError(f"run '{run_dir}' is {status}, not finished; evaluate a completed run")
    if not output.is_dir() or not any(output.iterdir()):
        raise EvalError(f"run '{run_dir}' has no outputs in output/ (status: {status}); evaluate a completed run")
    return config


def load_training_images(data_dir: str | Path, limit: int = MAX_TRAIN_IMAGES) -> list[Any]:
    """Up to `limit` training images (evenly spread over the sorted folder), as RGB PIL images."""
    from PIL import Image

    from .data import DataError, load_image, scan_dataset

    try:
        report = scan_dataset(data_dir, skip_bad=True)
    except DataError as e:
        raise EvalError(f"training images: {e}") from None
    items = report.images
    if len(items) > limit:
        items = [items[round(i * (len(items) - 1) / (limit - 1))] for i in range(limit)]
    images = []
    for it in items:  # the encoders see 224 px and SSIM 256 px: keep 512 px, not 12 megapixels
        img = load_image(it.path, draft_size=(TRAIN_SIDE, TRAIN_SIDE))
        if min(img.size) > TRAIN_SIDE:
            scale = TRAIN_SIDE / min(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        images.append(img)
    return images


def save_grids(run_dir: Path, images: EvalImages, prompts: EvalPrompts, train: list[Any]) -> dict[str, str]:
    """Labelled PNG grids under <run>/eval/; returns {name: path relative to the run folder}."""
    folder = run_dir / EVAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pres_rows = []
    for prompt, b, t in zip(prompts.base_prompts, images.base, images.tuned):
        pres_rows += [(f"base: {prompt}", b), (f"fine-tuned: {prompt}", t)]
    grids = {"subject": [("training images", train[:8])] + list(zip(prompts.subject, images.subject)),
             "flexibility": list(zip(prompts.flexibility, images.flexibility)),
             "preservation": pres_rows}
    paths = {}
    for name, rows in grids.items():
        path = folder / f"{name}.png"
        make_grid(rows).save(path)
        paths[name] = f"{EVAL_DIR}/{name}.png"
    return paths


def make_grid(rows: Sequence[tuple[str, Sequence[Any]]], cell: int = 128, label_width: int = 220):
    """One labelled row per (label, images): label on the left, images as cell x cell squares."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    cols = max(len(imgs) for _, imgs in rows)
    grid = Image.new("RGB", (label_width + cols * cell, len(rows) * cell), "white")
    draw = ImageDraw.Draw(grid)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    for r, (label, imgs) in enumerate(rows):
        draw.multiline_text((6, r * cell + 6), "\n".join(textwrap.wrap(label, 30)[:7]), fill="black", font=font)
        for c, img in enumerate(imgs):
            s = min(img.size)
            square = img.convert("RGB").crop(((img.width - s) // 2, (img.height - s) // 2,
                                              (img.width + s) // 2, (img.height + s) // 2))
            grid.paste(square.resize((cell, cell), Image.Resampling.BICUBIC), (label_width + c * cell, r * cell))
    return grid


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Temp file in the same folder, then os.replace: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _place(pipe, device: str, dtype):
    # fp32 pipelines only move (a dtype cast of fp32 weights is a no-op that diffusers warns about)
    return pipe.to(device) if str(dtype) == "torch.float32" else pipe.to(device, dtype)


def _release(pipe) -> None:
    import torch

    del pipe
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_run(run_dir: str | Path, *, clip: str | None = None, dino: str | None = None,
                 num_images: int = DEFAULT_NUM_IMAGES, steps: int | None = None, device: str | None = None,
                 num_templates: int = 3, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Score a finished run; write <run>/metrics.json and eval/*.png, emit an `eval` event.

    `clip`/`dino`: hub name or local folder (None: the defaults; "none": off). `num_images`
    seeds per prompt; `steps` denoising steps (None: 25, or 10 for models at <= 128 px).
    """
    import torch

    from .methods import load_trained_pipeline
    from .models import load_pipeline, resolve_base_model

    started = time.time()
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise EvalError(f"num_images={num_images!r}; must be an integer >= 1")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise EvalError(f"steps={steps!r}; must be an integer >= 1")
    run_dir = Path(run_dir)
    config = check_run(run_dir)
    train = load_training_images(config.data_dir)
    prompts = build_prompts(config.instance_prompt, class_prompt=config.class_prompt,
                            validation_prompts=config.validation_prompts, method=config.method,
                            placeholder_token=config.placeholder_token, initializer_token=config.initializer_token,
                            num_templates=num_templates)
    seeds = list(seeds) if seeds is not None else list(range(num_images))
    steps = steps or default_steps(config.resolution)
    device = _device(device)
    dtype = torch.float32 if device == "cpu" else (torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16)

    def gen(pipe, prompt_list):
        return generate(pipe, prompt_list, seeds, steps, resolution=config.resolution)

    # One pipeline in memory at a time: fine-tuned first, then the base.
    pipe = _place(load_trained_pipeline(run_dir), device, dtype)
    subject, flexibility, tuned = gen(pipe, prompts.subject), gen(pipe, prompts.flexibility), \
        gen(pipe, prompts.base_prompts)
    _release(pipe)
    pipe = _place(load_pipeline(resolve_base_model(config.base_model)), device, dtype)
    base = gen(pipe, prompts.base_prompts)
    _release(pipe)
    images = EvalImages(subject=subject, flexibility=flexibility, tuned=tuned, base=base)

    encoders, notes = load_encoders(clip, dino, device=device)
    metrics = compute_metrics(images, prompts, train, encoders, notes)
    end = last_event(read_events(run_dir), "end")
    result = {**metrics, "encoders": notes, "prompts": prompts.to_dict(), "seeds": seeds, "steps": steps,
              "n_images": images.count, "n_train_images": len(train), "resolution": config.resolution,
              "device": device, "method": config.method, "base_model": config.base_model,
              "calibration": CALIBRATION_CARD, "grids": save_grids(run_dir, images, prompts, train),
              "evaluated_at": round(time.time(), 3)}
    result["seconds"] = round(time.time() - started, 2)
    write_json_atomic(run_dir / METRICS_FILE, result)
    emit(run_dir, "eval", int(end["step"]) if end else config.max_train_steps,
         metrics={f: result[f]["score"] for f in FACTORS}, path=METRICS_FILE)
    return result

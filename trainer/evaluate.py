"""Scoring a finished run on accuracy, flexibility and preservation (1-5 each, plus raw numbers).

    images = generate(pipe, prompts, seeds, steps)          # fine-tuned, then base, same seeds
    metrics = compute_metrics(EvalImages(...), prompts, training_images, encoders, notes)

- accuracy: CLIP-I and DINO similarity of the generated subject images to the training images
  (DreamBooth's metrics, scored over every prompt that names the subject, as DreamBench does);
- flexibility: CLIP-T (prompt-image cosine) on prompts that put the subject somewhere new;
- preservation: base vs fine-tuned at the same seeds on unrelated and class prompts (CLIP image
  similarity and SSIM), and PRES: do class images ("a photo of a dog") now look like the subject?

Raw numbers become 1-5 scores through piecewise-linear maps anchored on published reference
values (trainer.calibration: `ANCHORS`, sources inline; see knowledge/evaluation-calibration.md).
Where CLIP or DINO cannot be loaded (no hub, no cache), the factor falls back to a weight-free
proxy (trainer.measures) with its own, uncalibrated map (`PROXY_ANCHORS`) and says so in
metrics.json. `evaluate_run` wires it to a run folder: metrics.json (its shape and writer live in
trainer.metrics), image grids under eval/, and an `eval` event; `evaluate_after_training` is what
a run with `evaluate_after_training` calls when it completes (a failure there is an `eval` event,
not an error).
No training state is used: the run's config.json and output/ are all it reads.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .calibration import ANCHORS, CALIBRATION_CARD, DREAMBOOTH_PAPER, PROXY_ANCHORS, pres_score, score_from_anchors
from .encoders import (Encoder, clip_image_similarity, clip_text_similarity, dino_similarity, load_encoders,
                       self_similarity)
from .events import emit, error_line, last_event, read_events, run_status
from .measures import prompt_sensitivity, proxy_similarity, ssim
from .metrics import METRICS_FILE, PROXY_METHOD, write_metrics
from .prompts import EvalPrompts, build_prompts
from .vocabulary import FACTORS
_DB = DREAMBOOTH_PAPER  # cited in the `basis` lines below

EVAL_DIR = "eval"
DEFAULT_NUM_IMAGES = 2        # seeds per prompt
DEFAULT_STEPS = 25            # denoising steps for real models
SMALL_MODEL_STEPS = 10        # for models generating at <= 128 px (the tiny test model)
MAX_TRAIN_IMAGES = 32         # training images compared against (evenly picked from larger sets)
TRAIN_SIDE = 512              # training images are shrunk to this short side once, on loading
GEN_BATCH = 4                 # images per pipeline call: faster than one by one, fits any card
UNCHANGED_SSIM = 0.995        # base and fine-tuned this alike at every seed: training changed nothing visible


class EvalError(ValueError):
    """The run folder cannot be evaluated; the message says why in one line."""


# --- generation --------------------------------------------------------------------------------------
def default_steps(resolution: int) -> int:
    return SMALL_MODEL_STEPS if resolution <= 128 else DEFAULT_STEPS


def batches(prompts: Sequence[str], seeds: Sequence[int], batch_size: int = GEN_BATCH) -> list[list[tuple[str, int]]]:
    """The (prompt, seed) pairs `generate` draws, in its order, `batch_size` per pipeline call."""
    pairs = [(p, int(s)) for p in prompts for s in seeds]
    return [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]


def call_keys(prompts: Sequence[str], seeds: Sequence[int], batch_size: int = GEN_BATCH) -> list[tuple[str, ...]]:
    """The prompts of each pipeline call `generate` makes (what cached calls are found by)."""
    return [tuple(p for p, _ in chunk) for chunk in batches(prompts, seeds, batch_size)]


def generate(pipe, prompts: Sequence[str], seeds: Sequence[int], steps: int, *,
             resolution: int | None = None, batch_size: int = GEN_BATCH,
             prompt_calls: dict[tuple, dict[str, Any]] | None = None) -> list[list[Any]]:
    """images[i][j]: prompt i at seed j.

    Every image has its own CPU generator, so seed j starts from the same noise for every
    prompt and every pipeline; (prompt, seed) pairs go through the pipeline `batch_size` at a
    time, in a fixed order, so two pipelines given the same lists see the same batches. A call
    whose prompts are in `prompt_calls` (trainer.prompt_embeddings) passes their embeddings.
    """
    import torch

    from .models import sampling_kwargs

    pipe.set_progress_bar_config(disable=True)
    flat: list[Any] = []
    for chunk in batches(prompts, seeds, batch_size):
        key = tuple(p for p, _ in chunk)
        call = (prompt_calls or {}).get(key) or {"prompt": list(key), **sampling_kwargs(pipe, len(chunk))}
        with torch.no_grad():
            out = pipe(num_inference_steps=steps, height=resolution, width=resolution,
                       generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk], **call)
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
        method, basis = PROXY_METHOD, (
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
        method, encoder = PROXY_METHOD, _encoder_note(notes, [], only=["clip"])
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
    method = PROXY_METHOD if len(scores) == 1 else "+".join(sorted(scores))
    encoder = _encoder_note(notes, [k for k, m in (("clip", "clip_base_vs_tuned"), ("dino", "pres")) if m in scores])
    basis = (f"{', '.join(parts)} on {len(prompts.base_prompts)} prompts x {len(images.base[0])} seeds "
             f"({len(prompts.preservation)} unrelated, {n_class} class)")
    result = _factor(scores, raw, {"ssim_base_vs_tuned": raw["ssim_base_vs_tuned"]}, method, encoder, basis)
    # a perfect preservation score from an untouched model is no achievement: say so (the page does)
    result["unchanged"] = bool(raw["ssim_base_vs_tuned"] >= UNCHANGED_SSIM)
    return result


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


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def evaluate_run(run_dir: str | Path, *, clip: str | None = None, dino: str | None = None,
                 num_images: int = DEFAULT_NUM_IMAGES, steps: int | None = None, device: str | None = None,
                 num_templates: int = 3, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Score a finished run; write <run>/metrics.json and eval/*.png, emit an `eval` event.

    `clip`/`dino`: hub name or local folder (None: the defaults; "none": off). `num_images`
    seeds per prompt; `steps` denoising steps (None: 25, or 10 for models at <= 128 px).
    """
    from .methods.registry import load_trained_pipeline
    from .memory import host_memory_problem
    from .models import (load_pipeline, place_pipeline, resolve_base_model, sampling_dtypes, sampling_quantize,
                         with_pipeline)

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
    load_as, dtype = sampling_dtypes(device, config.mixed_precision)
    base_folder = resolve_base_model(config.base_model)
    # on the CPU: refuse what would not fit (a killed process says nothing)
    problem = host_memory_problem(base_folder, "Scoring") if device == "cpu" else None
    if problem:
        raise EvalError(problem)

    def gen(pipe, prompt_list):
        return generate(pipe, prompt_list, seeds, steps, resolution=config.resolution)

    # One pipeline in memory at a time: fine-tuned first, then the base.
    quantize = sampling_quantize(config.quantize_base, device)
    subject, flexibility, tuned = with_pipeline(
        lambda: place_pipeline(load_trained_pipeline(run_dir, load_as, quantize), device, dtype),
        lambda pipe: (gen(pipe, prompts.subject), gen(pipe, prompts.flexibility), gen(pipe, prompts.base_prompts)))
    base = with_pipeline(lambda: place_pipeline(load_pipeline(base_folder, load_as, quantize), device, dtype),
                          lambda pipe: gen(pipe, prompts.base_prompts))
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
    write_metrics(run_dir, result)
    emit(run_dir, "eval", int(end["step"]) if end else config.max_train_steps,
         metrics={f: result[f]["score"] for f in FACTORS}, path=METRICS_FILE)
    return result


def evaluate_after_training(run_dir: str | Path) -> dict[str, Any] | None:
    """Score a run that has just completed, in the process that trained it: `evaluate_run` with
    the defaults, after freeing what training left behind. A scoring failure is recorded as an
    `eval` event with `error` and None is returned: the run itself stays completed."""
    import gc

    gc.collect()  # the training components are unreachable now; free them before loading pipelines
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return evaluate_run(run_dir)
    except Exception as e:
        step = (last_event(read_events(run_dir), "end") or {}).get("step", 0)
        emit(run_dir, "eval", step, error=error_line(e))
        return None

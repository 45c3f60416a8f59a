"""Scoring every saved checkpoint of a run on the three factors, and exporting the one to keep.

    scorer = CheckpointScorer(run_dir, config)     # prompts, seeds, training images, encoders: once
    scorer.score(step, pipe)                       # one checkpoint -> checkpoint_scores.json + an event
    score_saved_checkpoints(run_dir)               # after the run: each checkpoint not scored yet
    export_checkpoint(run_dir, step, weights)      # the kept one, in the method's output formats

Every checkpoint is drawn with the same prompts and seeds (trainer.prompts' sets, a smaller
count than the final evaluation's) and measured by trainer.evaluate's `compute_metrics`, so
scores along a run compare with each other; the base model's images are drawn once per scorer.
During training (`score_checkpoints="during"`) the loop hands its own modules in: nothing is
reloaded, and the base images come from the model before its first step. After training, the
base model is set up once as the run set it up, its images drawn before any checkpoint is
loaded (a new LoRA starts at exactly the base), and each checkpoint's trained weights are then
copied in: one model in memory, whatever the number of checkpoints.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .checkpoint_scores import (CheckpointScore, KeptCheckpoint, choose_checkpoint, normalised_weights,
                                read_checkpoint_scores, write_checkpoint_scores, write_kept)
from .events import emit, error_line, last_event, read_events
from .evaluate import (EVAL_DIR, EvalError, EvalImages, call_keys, compute_metrics, default_steps, generate,
                       load_training_images, make_grid)
from .prompts import build_prompts
from .vocabulary import FACTORS

GRID_DIR = f"{EVAL_DIR}/checkpoints"   # step-000300.png per checkpoint, base.png once
EXPORTS_DIR = "exports"                 # exports/checkpoint-<step>/
SCORING_SEEDS = 2                       # seeds per prompt
SCORING_TEMPLATES = 2                   # DreamBench templates among the flexibility prompts
SCORING_USER_PROMPTS = 2                # the user's own dream prompts scored at each checkpoint
SCORING_UNRELATED = 2                   # unrelated prompts (preservation)


def _autocast(device: str, dtype):
    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def scoring_prompts(config):
    """The prompt sets every checkpoint of a run is drawn with (trainer.prompts)."""
    return build_prompts(config.instance_prompt, class_prompt=config.class_prompt,
                         validation_prompts=config.validation_prompts, method=config.method,
                         placeholder_token=config.placeholder_token, initializer_token=config.initializer_token,
                         num_templates=SCORING_TEMPLATES, max_user_prompts=SCORING_USER_PROMPTS,
                         num_unrelated=SCORING_UNRELATED)


def scoring_call_keys(config, num_images: int | None = None) -> list[tuple[str, ...]]:
    """The prompts of every pipeline call a CheckpointScorer makes (trainer.evaluate.call_keys)."""
    p, seeds = scoring_prompts(config), range(num_images or SCORING_SEEDS)
    return [key for prompts in (p.subject, p.flexibility, p.base_prompts) for key in call_keys(prompts, seeds)]


class CheckpointScorer:
    """Scores checkpoints of one run with fixed prompts and seeds; keeps what it scored in
    `results` (step -> CheckpointScore) and in <run>/checkpoint_scores.json."""

    def __init__(self, run_dir: str | Path, config, *, device: str = "cpu", clip: str | None = None,
                 dino: str | None = None, num_images: int | None = None, steps: int | None = None):
        from .encoders import load_encoders

        self.run_dir = Path(run_dir)
        self.config = config
        self.device = str(device)
        self.train = load_training_images(config.data_dir)
        self.prompts = scoring_prompts(config)
        self.seeds = list(range(num_images or SCORING_SEEDS))
        # cached text outputs: each drawing call's prompt embeddings (scoring_call_keys), made while the
        # text encoders were on the device; the model's pipeline then draws without them
        self.prompt_calls: dict[tuple, dict[str, Any]] = {}
        self.steps = steps or default_steps(config.resolution)
        self.encoders, self.notes = load_encoders(clip, dino, device=self.device)
        self.base: list[list[Any]] | None = None
        self.results: dict[int, CheckpointScore] = {}
        self.info = {"max_train_steps": config.max_train_steps, "encoders": self.notes,
                     "prompts": self.prompts.to_dict(), "seeds": self.seeds, "steps": self.steps,
                     "base_grid": f"{GRID_DIR}/base.png"}
        old, info = read_checkpoint_scores(self.run_dir)
        if info.get("prompts") == self.info["prompts"] and info.get("seeds") == self.seeds \
                and info.get("steps") == self.steps and info.get("encoders") == self.notes:
            self.results = {s.step: s for s in old}   # a resumed run keeps what was scored alike

    def _draw(self, pipe, prompts: Sequence[str]) -> list[list[Any]]:
        return generate(pipe, prompts, self.seeds, self.steps, resolution=self.config.resolution,
                        prompt_calls=self.prompt_calls)

    def set_base(self, pipe) -> None:
        """Draw the base model's images (preservation's reference) with `pipe`, once."""
        self.base = self._draw(pipe, self.prompts.base_prompts)
        folder = self.run_dir / GRID_DIR
        folder.mkdir(parents=True, exist_ok=True)
        make_grid([(f"base: {p}", row) for p, row in zip(self.prompts.base_prompts, self.base)]).save(
            folder / "base.png")

    def load_base(self) -> None:
        """The base images from the base model itself (a resumed run: the live model moved on)."""
        from .models import (load_pipeline, place_pipeline, resolve_base_model, sampling_dtypes, sampling_quantize,
                             with_pipeline)

        load_as, dtype = sampling_dtypes(self.device, self.config.mixed_precision)
        base = resolve_base_model(self.config.base_model)
        quantize = sampling_quantize(self.config.quantize_base, self.device)
        with_pipeline(lambda: place_pipeline(load_pipeline(base, load_as, quantize), self.device, dtype), self.set_base)

    def score(self, step: int, pipe) -> CheckpointScore:
        """Score the model `pipe` draws with as checkpoint `step`; write the file and the event."""
        started = time.time()
        if self.base is None:
            self.load_base()
        p = self.prompts
        subject, flexibility, tuned = self._draw(pipe, p.subject), self._draw(pipe, p.flexibility), \
            self._draw(pipe, p.base_prompts)
        images = EvalImages(subject=subject, flexibility=flexibility, tuned=tuned, base=self.base)
        metrics = compute_metrics(images, p, self.train, self.encoders, self.notes)
        grid = f"{GRID_DIR}/step-{step:06d}.png"
        rows = [(f"step {step}: {prompt}", row) for prompt, row in
                zip((*p.subject, *p.flexibility, *p.classes), (*subject, *flexibility, *tuned[len(p.preservation):]))]
        (self.run_dir / GRID_DIR).mkdir(parents=True, exist_ok=True)
        make_grid(rows).save(self.run_dir / grid)
        raw = {f: {"method": metrics[f]["method"], **metrics[f]["proxy"],
                   **{k: v for k, v in metrics[f].items() if isinstance(v, float) and k != "score"}} for f in FACTORS}
        result = CheckpointScore(step, {f: metrics[f]["score"] for f in FACTORS}, grid, raw,
                                 round(time.time() - started, 2))
        self.results[step] = result
        write_checkpoint_scores(self.run_dir, list(self.results.values()), self.info)
        emit(self.run_dir, "checkpoint_eval", step, metrics=result.scores, grid=grid, seconds=result.seconds)
        return result


# --- a checkpoint folder as a model ---------------------------------------------------------------------
class CheckpointModel:
    """The run's base model set up as the run set it up, into which checkpoints load one by one.
    A run that cached its text outputs is drawn as it trained: the prompts of `call_keys` encoded
    first, then the text encoders wait on the CPU (`prompt_calls` holds the scorer's embeddings)."""

    def __init__(self, config, device: str, call_keys: Sequence[tuple[str, ...]] = ()):
        import torch

        from .checkpoints import CheckpointParts, trained_parameters
        from .families.base import detect_family, text_encoder_names
        from .methods.registry import get_method, set_up_method
        from .models import inference_dtype, load_components, resolve_base_model
        from .prompt_embeddings import encoders_on_device, prompt_calls

        self.config = config
        self.device = device
        self.dtype = inference_dtype(device, config.mixed_precision)
        self.method = get_method(config)
        base = resolve_base_model(config.base_model)
        frozen = None if self.dtype == torch.float32 else self.dtype
        self.components = c = load_components(base, config.family, config.quantize_base, frozen_dtype=frozen,
                                              as_saved=self.method.parts_trained_whole(detect_family(base)))
        self.prompt_calls: dict[tuple, dict[str, Any]] = {}
        on_cpu: list[str] = []
        if config.cache_text_encoder_outputs and call_keys and not self.method.trains_text_encoder():
            with encoders_on_device(c, device, self.dtype):
                self.prompt_calls = prompt_calls(c, call_keys, device)
            on_cpu = text_encoder_names(len(c.text_encoders))
        _, self.trained = set_up_method(self.method, c, device, self.dtype, on_cpu=on_cpu)
        self.parts = CheckpointParts(lambda: trained_parameters(c.modules(), self.trained), None,
                                     self.method.checkpoint_objects())
        self.step: int | None = None   # the checkpoint loaded; None: the base model

    def load(self, folder: Path) -> int:
        from .checkpoints import load_trained_weights

        self.step = load_trained_weights(self.parts, folder)
        return self.step

    def pipeline(self):
        """A context giving a pipeline over the model as loaded now."""
        from .samples import inference_pipeline

        return inference_pipeline(self.components, self.method, _autocast(self.device, self.dtype), (),
                                  text_encoders=not self.prompt_calls)


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _run_config(run_dir: Path):
    from .config import ConfigError, TrainConfig

    if not (run_dir / "config.json").is_file():
        raise EvalError(f"'{run_dir}' has no config.json; give a run folder written by `python -m trainer train`")
    try:
        return TrainConfig.load(run_dir / "config.json")
    except ConfigError as e:
        raise EvalError(f"'{run_dir}/config.json' is not a valid config: {e}") from None


def score_saved_checkpoints(run_dir: str | Path, *, device: str | None = None, clip: str | None = None,
                            dino: str | None = None, num_images: int | None = None, steps: int | None = None,
                            status: Callable[[str], None] | None = None) -> list[CheckpointScore]:
    """Score each complete checkpoint of a run that is not scored yet (all of them, the first
    time); return every checkpoint's scores by step. `status(message)` hears the progress."""
    from .checkpoints import checkpoint_dirs

    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    found = checkpoint_dirs(run_dir / "checkpoints")
    if not found:
        raise EvalError(f"run '{run_dir}' has no complete checkpoints to score")
    device = _device(device)
    scorer = CheckpointScorer(run_dir, config, device=device, clip=clip, dino=dino, num_images=num_images,
                              steps=steps)
    todo = [(s, path) for s, path in found if s not in scorer.results]
    if todo:
        model = CheckpointModel(config, device, scoring_call_keys(config, num_images))
        scorer.prompt_calls = model.prompt_calls
        with model.pipeline() as pipe:   # nothing loaded yet: the base model, as the run began
            scorer.set_base(pipe)
        for i, (step, path) in enumerate(todo, 1):
            if status:
                status(f"scoring checkpoint {i} of {len(todo)} (step {step})")
            model.load(path)
            with model.pipeline() as pipe:
                scorer.score(step, pipe)
    return [scorer.results[s] for s in sorted(scorer.results)]


def score_after_training(run_dir: str | Path) -> list[CheckpointScore] | None:
    """What `train` calls on a completed run with score_checkpoints="after": a failure becomes a
    `checkpoint_eval` event with `error` (the run stays completed) and None."""
    run_dir = Path(run_dir)
    end = last_event(read_events(run_dir), "end") or {}

    def status(message: str) -> None:
        emit(run_dir, "status", end.get("step", 0), phase="scoring_checkpoints", message=message)

    try:
        return score_saved_checkpoints(run_dir, status=status)
    except Exception as e:
        emit(run_dir, "checkpoint_eval", end.get("step", 0), error=error_line(e))
        return None


def _count_images(data_dir: str) -> int:
    from .data import DataError, scan_dataset

    try:
        return len(scan_dataset(data_dir, skip_bad=True).images)
    except DataError:
        return 0


# --- the kept checkpoint ---------------------------------------------------------------------------------
def export_checkpoint(run_dir: str | Path, step: int, weights: dict[str, float] | None = None, *,
                      device: str | None = None) -> KeptCheckpoint:
    """Write checkpoint `step` of a run in the method's output formats (a LoRA: diffusers and
    kohya/ComfyUI files) under exports/checkpoint-<step>/, and record it as the kept checkpoint
    (kept_checkpoint.json, read by the run log and the advisor)."""
    from .checkpoints import checkpoint_dirs

    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    folders = dict(checkpoint_dirs(run_dir / "checkpoints"))
    if isinstance(step, bool) or not isinstance(step, int) or step not in folders:
        have = ", ".join(map(str, sorted(folders))) or "none"
        raise EvalError(f"run '{run_dir.name}' has no checkpoint at step {step!r} (checkpoints: {have})")
    model = CheckpointModel(config, "cpu" if device is None else device)
    model.load(folders[step])
    scores, _ = read_checkpoint_scores(run_dir)
    scored = {s.step: s for s in scores}
    end = last_event(read_events(run_dir), "end") or {}
    steps_done = max(int(end.get("step") or 0), max(folders))
    out = run_dir / EXPORTS_DIR / f"checkpoint-{step}"
    info = {"config": config.to_dict(), "steps": step, "family": model.components.family.name,
            "base_model_version": model.components.family.kohya_version(model.components),
            "output_name": f"{run_dir.name}-step{step}", "num_train_images": _count_images(config.data_dir)}
    paths = model.method.save(model.components, out, info)   # the method applies its inference weights
    best = choose_checkpoint(scores, weights)
    reason = (best.reason if best and best.step == step else
              f"You kept step {step}" + (f"; by your weights the best is step {best.step}" if best else "") + ".")
    kept = KeptCheckpoint(step=step, steps_done=steps_done, max_train_steps=config.max_train_steps,
                          scores=dict(scored[step].scores) if step in scored else {},
                          weights=normalised_weights(weights), reason=reason,
                          export_dir=str(out.relative_to(run_dir)),
                          outputs=[str(Path(p).relative_to(run_dir)) for p in paths])
    write_kept(run_dir, kept)
    emit(run_dir, "kept", step, export_dir=kept.export_dir, outputs=kept.outputs)
    return kept

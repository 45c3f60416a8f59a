"""A finished run, inline: base vs fine-tuned images, its scores, its files, and the user's rating.

Images load through the trainer's own functions (`trainer.models.load_pipeline` for the base,
`trainer.methods.registry.load_trained_pipeline` for the result), the same code a user's script
would run; torch is imported only inside `compare_images`. Everything written goes inside the run
folder (`compare/`, `downloads/`) and is reused while still current.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

from trainer.config import TrainConfig
from trainer.metrics import factor_scores, read_metrics
from trainer.vocabulary import FACTORS

MAX_PROMPTS = 4
MAX_NOTE_CHARS = 4000
_STORED = (".safetensors", ".bin", ".ckpt", ".png", ".jpg", ".webp")  # already compressed or incompressible


# --- base vs fine-tuned ---------------------------------------------------------------------------------
def compare_images(run_dir: str | Path, prompts: list[str] | None = None, seeds=(0, 1), *,
                   steps: int | None = None) -> list[tuple[str, str]]:
    """(path, caption) pairs: for each prompt and seed the base model's image, then the fine-tuned one.

    Both use the same seed (a CPU generator, so the starting noise is the same on any device),
    the run's resolution and `steps` denoising steps (default: the run's validation steps).
    Prompts default to the run's validation prompts, else its instance prompt. PNGs are written
    to `<run>/compare/` under names derived from all of that (and, for the fine-tuned side, from
    the outputs' modification times), so a second call only reads files.
    """
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir / "config.json")
    output = run_dir / "output"
    if not output.is_dir() or not any(output.iterdir()):
        raise ValueError(f"run '{run_dir.name}' has no outputs yet; compare after it completes")
    prompts = _prompts(config, prompts)
    seeds = _seeds(seeds)
    steps = config.validation_inference_steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; must be an integer >= 1")
    folder = run_dir / "compare"
    base_key = [config.base_model, config.resolution, steps]
    tuned_key = base_key + [_stamp(output)]
    plan = []
    for prompt in prompts:
        for seed in seeds:
            plan.append((prompt, seed, folder / f"base-{_key(base_key, prompt, seed)}.png",
                         folder / f"tuned-{_key(tuned_key, prompt, seed)}.png"))
    todo_base = [(p, s, b) for p, s, b, _ in plan if not b.is_file()]
    todo_tuned = [(p, s, t) for p, s, _, t in plan if not t.is_file()]
    if todo_base or todo_tuned:
        folder.mkdir(exist_ok=True)
        _generate(config, run_dir, todo_base, todo_tuned, steps)
    out = []
    for prompt, seed, base, tuned in plan:
        out.append((str(base), f"base · seed {seed} · {prompt}"))
        out.append((str(tuned), f"fine-tuned · seed {seed} · {prompt}"))
    return out


def _prompts(config: TrainConfig, prompts: list[str] | None) -> list[str]:
    if prompts is None:
        prompts = config.validation_prompts or [config.instance_prompt]
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = [p.strip() for p in prompts if isinstance(p, str) and p.strip()]
    if not prompts:
        raise ValueError("prompts is empty; give at least one prompt to compare")
    return prompts[:MAX_PROMPTS]


def _seeds(seeds) -> list[int]:
    seeds = list(seeds) if not isinstance(seeds, int) else [seeds]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds={seeds!r}; must be one or more integers >= 0")
    return seeds


def _key(parts: list[Any], prompt: str, seed: int) -> str:
    return hashlib.sha1(json.dumps(parts + [prompt, seed]).encode()).hexdigest()[:12]


def _stamp(folder: Path) -> list[Any]:
    return sorted([str(p.relative_to(folder)), p.stat().st_mtime_ns] for p in folder.rglob("*") if p.is_file())


def _generate(config: TrainConfig, run_dir: Path, todo_base, todo_tuned, steps: int) -> None:
    """Render what is missing, one pipeline in memory at a time."""
    import torch

    from trainer.methods.registry import load_trained_pipeline
    from trainer.memory import host_memory_problem
    from trainer.models import (load_pipeline, place_pipeline, resolve_base_model, sampling_dtypes, sampling_kwargs,
                                sampling_quantize, with_pipeline)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    load_as, dtype = sampling_dtypes(device, config.mixed_precision)
    base_folder = resolve_base_model(config.base_model)
    problem = host_memory_problem(base_folder, "Drawing the comparison images") if device == "cpu" else None
    if problem:  # the kernel would kill the app itself
        raise ValueError(problem)

    def render(pipe, todo) -> None:
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            for prompt, seed, path in todo:
                image = pipe(prompt=prompt, num_inference_steps=steps, height=config.resolution,
                             width=config.resolution, generator=torch.Generator("cpu").manual_seed(seed),
                             **sampling_kwargs(pipe, 1)).images[0]
                tmp = path.with_suffix(".tmp.png")
                image.save(tmp)
                os.replace(tmp, path)  # a half-written PNG is never taken for a cached one

    quantize = sampling_quantize(config.quantize_base, device)
    for todo, load in ((todo_base, lambda: load_pipeline(base_folder, load_as, quantize)),
                       (todo_tuned, lambda: load_trained_pipeline(run_dir, load_as, quantize))):
        if todo:  # one pipeline in memory at a time
            with_pipeline(lambda: place_pipeline(load(), device, dtype), lambda pipe: render(pipe, todo))


# --- scores ----------------------------------------------------------------------------------------------
def scores(run_dir: str | Path) -> dict[str, Any]:
    """{"scores": {factor: 1-5 or None} or None, "metrics": metrics.json or None, "message": str},
    from trainer.metrics.read_metrics."""
    read = read_metrics(run_dir)
    if read.missing:
        return {"scores": None, "metrics": None,
                "message": "Not scored yet: run the evaluation to score accuracy, flexibility and preservation."}
    if read.raw is None:
        return {"scores": None, "metrics": None,
                "message": f"The scores cannot be read: {read.problem}; evaluate again."}
    found = {f: read.scores.get(f) for f in FACTORS}
    missing = [f for f, v in found.items() if v is None]
    message = "Automatic scores from 1 (poor) to 5 (excellent)."
    if missing:
        message += f" Not scored: {', '.join(missing)}."
    return {"scores": found, "metrics": read.raw, "message": message}


def default_evaluator() -> tuple[Callable[[Path], Any] | None, str | None]:
    """(trainer.evaluate.evaluate_run, None), or (None, why) when this install cannot score runs."""
    try:
        from trainer.evaluate import evaluate_run
    except ImportError as e:
        return None, str(e)
    return evaluate_run, None


def evaluate(run_dir: str | Path, *, evaluator: Callable[[Path], Any] | None = None) -> dict[str, Any]:
    """Score the run (writes metrics.json) and return `scores(run_dir)`.

    `evaluator(run_dir)` defaults to trainer.evaluate.evaluate_run; when that is missing or fails,
    the result says so in its message instead of raising, so the page can still show the rest.
    """
    run_dir = Path(run_dir)
    if evaluator is None:
        evaluator, why = default_evaluator()
        if evaluator is None:
            return {"scores": None, "metrics": None,
                    "message": f"Automatic scoring is not available here ({why}); rate the run yourself below."}
    try:
        evaluator(run_dir)
    except Exception as e:  # a scoring failure must not hide the images and downloads
        from trainer.events import error_line

        return {**scores(run_dir), "message": f"Evaluation failed: {error_line(e)}"}
    return scores(run_dir)


def scores_chart_frame(result: dict[str, Any] | None):
    """DataFrame(factor, score) for a bar chart, from `scores()`'s result, a metrics dict or
    {factor: score}; factors without a score are left out."""
    import pandas as pd

    values = (result or {}).get("scores", result) if isinstance(result, dict) else None
    rows = list(factor_scores(values or {})[0].items())
    return pd.DataFrame({"factor": pd.Series([f for f, _ in rows], dtype="object"),
                         "score": pd.Series([s for _, s in rows], dtype="float64")})


# --- downloads -------------------------------------------------------------------------------------------
def downloads(run_dir: str | Path) -> list[str]:
    """The files to offer: the output .safetensors (diffusers and kohya LoRA, embeddings, the single-file
    checkpoint of a DreamBooth / full fine-tune), a zip of the diffusers pipeline folder (DreamBooth,
    full fine-tune; made on first call, remade when the outputs change), and config.json (the exact
    recipe). [] before the run has outputs."""
    run_dir = Path(run_dir)
    files = folder_downloads(run_dir / "output", run_dir / "downloads" / f"{run_dir.name}-diffusers.zip", run_dir.name)
    if files and (run_dir / "config.json").is_file():
        files.append(str(run_dir / "config.json"))
    return files


def folder_downloads(folder: Path, zip_target: Path, arc_root: str) -> list[str]:
    """The .safetensors files of an output folder, with a zip of it first when it is a diffusers
    pipeline folder; [] when there is no folder."""
    if not folder.is_dir():
        return []
    files = sorted(str(p) for p in folder.glob("*.safetensors") if p.is_file() and not p.is_symlink())
    if (folder / "model_index.json").is_file():
        files.insert(0, str(_zip_folder(folder, zip_target, arc_root=arc_root)))
    return files


def inside(run_dir: Path, rel: Any) -> bool:
    """Whether `rel` (a path read from a run's own files) names a file inside the run folder."""
    if not isinstance(rel, str) or not rel:
        return False
    path = (run_dir / rel).resolve()
    return path.is_relative_to(run_dir.resolve()) and path.is_file()


def _zip_folder(folder: Path, target: Path, arc_root: str) -> Path:
    """The diffusers folder zipped; a single-file checkpoint beside it (top level) is its own download."""
    members = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                     and not (p.parent == folder and p.suffix == ".safetensors"))
    newest = max((p.stat().st_mtime for p in members), default=0.0)
    if target.is_file() and target.stat().st_mtime >= newest:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for p in members:
            kind = zipfile.ZIP_STORED if p.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
            zf.write(p, f"{arc_root}/{p.relative_to(folder).as_posix()}", compress_type=kind)
    os.replace(tmp, target)
    return target


# --- the user's rating -----------------------------------------------------------------------------------
def _rating(name: str, value: Any) -> int:
    """A 1-5 rating from a slider (int/float) or a radio button (text)."""
    v = value
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
        raise ValueError(f"{name}={value!r}; rate it with a whole number from 1 to 5")
    return v


def save_rating(run_dir: str | Path, accuracy: Any, flexibility: Any, preservation: Any, note: str | None = "",
                runlog: Any = None) -> dict[str, Any]:
    """Index the run folder in the run log, then store the user's 1-5 ratings and note.

    `runlog` is an open advisor.runlog.RunLog, a path to one, or None for the default log
    ($FTA_RUNLOG). Returns the run's `runs list --json` summary. Bad ratings raise ValueError
    naming the factor, before anything is written.
    """
    values = {"accuracy": _rating("accuracy", accuracy), "flexibility": _rating("flexibility", flexibility),
              "preservation": _rating("preservation", preservation)}
    if note is not None and not isinstance(note, str):
        raise ValueError(f"note={note!r}; must be text")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"note is {len(note)} characters; keep it under {MAX_NOTE_CHARS}")
    with open_runlog(runlog) as log:
        record = log.ingest_run_dir(_run_folder(run_dir))
        return log.rate(record.run_id, note=note, **values).summary()


def record_run(run_dir: str | Path, runlog: Any = None) -> dict[str, Any]:
    """Index a finished run (completed, stopped or failed) in the run log, so the next
    recommendation learns from it at once: its scores, its minutes, and the GPU memory it held
    or ran out of. Returns its `runs list --json` summary. `runlog` as in save_rating."""
    with open_runlog(runlog) as log:
        return log.ingest_run_dir(_run_folder(run_dir)).summary()


def _run_folder(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder '{run_dir}' does not exist")
    return run_dir


@contextlib.contextmanager
def open_runlog(runlog: Any):
    """An open advisor.runlog.RunLog as given, or the one at a path (None: the default log),
    closed again on the way out."""
    from advisor.runlog.store import RunLog

    own = runlog is None or isinstance(runlog, (str, Path))
    log = RunLog(runlog) if own else runlog
    try:
        yield log
    finally:
        if own:
            log.close()

"""The shapes world (issue 15): the whole loop on a CPU, against the ground truth.

    python benchmarks/shapes_world.py --quick     # under 10 minutes on two cores
    python benchmarks/shapes_world.py             # every candidate of the advisor; about half an hour
    python benchmarks/shapes_world.py --checker   # only the checker's own accuracy on renders

Prints, in order:
1. how well the checker reads renders (per field, clean and blurred + noisy) - `--checker` stops here;
2. what the pretrained demo model draws: the checker's reading of fresh prompts of the world;
3. every fine-tune of the advisor's plans for one profile (lab.shapes_study), trained for real on
   renders of the held-out star: ground truth and our own scores side by side. The full run
   trains every candidate plan first (two at a time on two cores), then what the advisor picks;
   --quick only what the advisor picks;
4. the advisor's ground-truth regret after 0, 10, 20, 40 logged runs (quick: 0, 3, 6) beside
   the rules-only regret;
5. the rank correlation (Spearman) per factor of our scores with the ground truth, over every run;
6. last line: `demo fine-tune: ground-truth accuracy base A -> tuned B`, the demo model's own
   LoRA recipe (trainer.shapes.experiment) on the star.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # a tiny model: one thread per process runs fastest here

import argparse
import multiprocessing
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from trainer.shapes.checker import measure  # noqa: E402
from trainer.shapes.world import SUBJECT, render, sample_scenes  # noqa: E402

FIELDS = ("shape", "color", "background", "cell", "style")
# --quick: the learner after 0, 3 and 6 logged runs (each a real fine-tune of ~1-3 minutes on one
# core; 8 runs went over the 10 minutes the quick run has)
QUICK_COUNTS = (0, 3, 6)


def degrade(image: Image.Image, seed: int, sigma: float, blur: float) -> Image.Image:
    a = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)) if blur else image, dtype=np.float32)
    a = a + np.random.default_rng(seed).normal(0.0, sigma, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


def checker_table(n: int, seed: int) -> None:
    print(f"## 1. The checker on renders: {n} scenes per row (held-out star and outline included)")
    print("| px | scenes | degradation | " + " | ".join(FIELDS) + " | all | ms/measure |")
    print("|---|---|---|" + "---|" * (len(FIELDS) + 2))
    for px in (64, 32):
        for which, exclude in (("world", None), ("with held-out", ())):
            scenes = sample_scenes(n, seed) if exclude is None else sample_scenes(n, seed, exclude=exclude)
            for label, sigma, blur in (("none", 0, 0), ("blur+noise", 10.0, 0.8 * px / 64)):
                images = [render(s, px) for s in scenes]
                images = [degrade(im, i, sigma, blur) for i, im in enumerate(images)] if sigma else images
                t = time.perf_counter()
                measured = [measure(im) for im in images]
                ms = (time.perf_counter() - t) / len(images) * 1000
                right = {f: np.mean([getattr(m, f) == getattr(s, f) for m, s in zip(measured, scenes)]) for f in FIELDS}
                every = np.mean([all(getattr(m, f) == getattr(s, f) for f in FIELDS) for m, s in zip(measured, scenes)])
                print(f"| {px} | {which} | {label} | " + " | ".join(f"{right[f]:.3f}" for f in FIELDS)
                      + f" | {every:.3f} | {ms:.1f} |")


def save_figure(path: Path, data_dir: Path, base, tuned, n: int = 8) -> None:
    """Rows: the training renders; the base model and the fine-tuned one on new star prompts (same seeds)."""
    from trainer.shapes import experiment
    from trainer.shapes.demo_model import draw

    train = [Image.open(p).convert("RGB") for p in sorted(data_dir.glob("*.png"))[:n]]
    prompts = [experiment.prompt(s, SUBJECT) for s in experiment.concept_scenes(SUBJECT, n)]
    rows = [train, draw(base, prompts, experiment.DRAW_SEED), draw(tuned, prompts, experiment.DRAW_SEED)]
    side = 128
    sheet = Image.new("RGB", (side * n, side * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            sheet.paste(im.resize((side, side), Image.Resampling.NEAREST), (c * side, r * side))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"figure: {path} (rows: training images; base model; fine-tuned, on {n} new star prompts)")


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts, only the runs the advisor picks, 0/3/6 logged runs")
    parser.add_argument("--checker", action="store_true", help="only the checker table")
    parser.add_argument("--n", type=int, default=200, help="scenes per row of the checker table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-scale", type=float, default=None,
                        help="the plans' learning rates times this on the demo model (default: lab.shapes_study.DemoScale)")
    parser.add_argument("--step-scale", type=float, default=None,
                        help="the plans' steps times this on the demo model (default: lab.shapes_study.DemoScale)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="fine-tunes of the candidates trained at once, one process (one thread) each")
    parser.add_argument("--rated", type=float, default=None,
                        help="share of logged runs the simulated user rates from the truth (default: lab.shapes_study.P_RATED)")
    parser.add_argument("--work", type=Path, default=None, help="keep run folders here (default: a temporary folder)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="save training images / base / fine-tuned on the same prompts and seeds as a PNG")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"shapes world benchmark, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    checker_table(60 if args.quick else args.n, args.seed)
    if args.checker:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        os.environ.setdefault("FTA_CACHE_DIR", str(work / "cache"))
        return _loop(work, args, started)


def _loop(work: Path, args, started: float) -> int:
    import torch

    from lab import shapes_study as study
    from trainer.shapes import experiment
    from trainer.shapes.pretrain import world_accuracy

    torch.set_num_threads(1)
    n_prompts = 12 if args.quick else experiment.N_PROMPTS
    scale = study.DemoScale(**{k: v for k, v in (("learning_rate", args.lr_scale), ("steps", args.step_scale))
                               if v is not None})
    world = study.World(work, n_prompts, scale=scale)
    right = world_accuracy(world.base, 24 if args.quick else 96, seed=args.seed + 7)
    print(f"\n## 2. The pretrained demo model draws fresh prompts of the world ({24 if args.quick else 96}); "
          "the checker reads back: " + ", ".join(f"{k} {v:.2f}" for k, v in right.items()))

    # the demo model's own LoRA recipe on the star, in a second process beside the study
    side = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    world.data_dir("lora")   # written here, read by the side process and the study's workers
    demo = side.submit(demo_fine_tune, work, n_prompts, world.data, args.figure)

    candidates = [] if args.quick else study.candidate_runs()
    print(f"\n## 3. Fine-tunes of the advisor's plans for one profile (object, {study.PROFILE.n_images} images, "
          f"SD 1.5 architecture), trained on the held-out star: "
          + (f"every one of its {len(candidates)} candidates, then " if candidates else "")
          + "what the advisor picks as the run log grows (section 4). "
          f"Ground truth over {n_prompts} prompts per factor; ours = the project's scores (offline: stand-ins); "
          f"plans at the demo model's scale: learning rate x{scale.learning_rate:g}, steps x{scale.steps:g}, "
          "batch x accumulation as one batch")
    print("| run | truth acc | truth flex | truth pres | our acc | our flex | our pres | s |")
    print("|---|---|---|---|---|---|---|---|")
    results: dict = {}

    def row(r):
        print(f"| {r.candidate.label()} | {r.truth.accuracy:.2f} | {r.truth.flexibility:.2f} | {r.truth.preservation:.2f} | "
              + " | ".join(_fmt(r.ours.get(f)) for f in ("accuracy", "flexibility", "preservation"))
              + f" | {r.seconds:.0f} |", flush=True)
        return r

    def run(c):
        return row(world.run(c, f"c{len(results):02d}"))

    jobs = [(c, f"c{i:02d}") for i, c in enumerate(candidates)]
    for r in world.run_many(jobs, workers=args.workers):
        results[r.candidate] = row(r)

    counts = QUICK_COUNTS if args.quick else study.COUNTS
    p_rated = study.P_RATED if args.rated is None else args.rated
    learned = study.learner_regret(results, run, counts=counts, seed=args.seed, p_rated=p_rated)
    print(f"\n## 4. The advisor's ground-truth regret (utility points, 1-5 scale; against the best of the "
          f"{learned['trained']} plans trained) by logged runs, the user rating {p_rated:.0%} of them; rules only: {learned['rules']:.2f} "
          f"({learned['rules_pick']}); best: {learned['best_pick']}")
    print("| logged runs | regret | rules only | pick |")
    print("|---|---|---|---|")
    for n, r in learned["learned"].items():
        print(f"| {n} | {r:.2f} | {learned['rules']:.2f} | {learned['picks'][n]} |")

    rho = study.rank_correlation(list(results.values()))
    print(f"\n## 5. Rank correlation (Spearman) of our scores with the ground truth over {len(results)} runs: "
          + ", ".join(f"{f} {_fmt(v)}" for f, v in rho.items()))

    before, after = demo.result()
    side.shutdown()
    print(f"\n{len(results) + 1} fine-tunes in {(time.perf_counter() - started) / 60:.1f} min")
    print(f"demo fine-tune: ground-truth accuracy base {before:.2f} -> tuned {after:.2f}")
    return 0


def demo_fine_tune(work: Path, n_prompts: int, data: dict, figure: Path | None) -> tuple[float, float]:
    """The demo model's LoRA recipe (trainer.shapes.experiment) on the star, in the study's World
    (`data`: the training folders the study already wrote): ground-truth accuracy of the base and of
    the fine-tuned model; the figure saved when asked."""
    import torch

    from lab.shapes_study import World
    from trainer.shapes import experiment

    torch.set_num_threads(1)
    world = World(work, n_prompts, data=data)
    data_dir = world.data_dir("lora")
    tuned = experiment.load_tuned(experiment.fine_tune(
        experiment.fine_tune_config(data_dir, work / "runs" / "demo", SUBJECT, "lora")))
    after = experiment.ground_truth(tuned, world.base_other, SUBJECT, n_prompts)
    if figure:
        save_figure(figure, data_dir, world.base, tuned)
    return world.base_truth().accuracy, after.accuracy


if __name__ == "__main__":
    sys.exit(main())

"""The shapes world (issue 15): the whole loop on a CPU, against the ground truth.

    python benchmarks/shapes_world.py --quick     # under 10 minutes on two cores
    python benchmarks/shapes_world.py             # every candidate of the advisor; about half an hour
    python benchmarks/shapes_world.py --checker   # only the checker's own accuracy on renders

Prints, in order:
1. how well the checker reads renders (per field, clean and blurred + noisy) - `--checker` stops here;
2. what the pretrained demo model draws: the checker's reading of fresh prompts of the world;
3. every fine-tune of the advisor's candidates for one profile (lab.shapes_study), trained for
   real on renders of the held-out star: ground truth and our own scores side by side;
4. the rank correlation (Spearman) per factor of our scores with the ground truth;
5. the advisor's ground-truth regret after 0, 10, 20, 40 logged runs (quick: 0, 4, 8) beside
   the rules-only regret;
6. last line: `demo fine-tune: ground-truth accuracy base A -> tuned B`, the demo model's own
   LoRA recipe (trainer.shapes.experiment) on the star.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # a tiny model: one thread per process runs fastest here

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from trainer.shapes.checker import measure  # noqa: E402
from trainer.shapes.world import SUBJECT, render, sample_scenes  # noqa: E402

FIELDS = ("shape", "color", "background", "cell", "style")


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


def study_lr_scale() -> float:
    from lab.shapes_study import LR_SCALE

    return LR_SCALE


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts, the LoRA candidates only, 0/4/8 logged runs")
    parser.add_argument("--checker", action="store_true", help="only the checker table")
    parser.add_argument("--n", type=int, default=200, help="scenes per row of the checker table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-scale", type=float, default=study_lr_scale(),
                        help="the candidates' learning rates times this (the demo model is ~1000x smaller than SD 1.5)")
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
    world = study.World(work, n_prompts, lr_scale=args.lr_scale)
    right = world_accuracy(world.base, 24 if args.quick else 96, seed=args.seed + 7)
    print(f"\n## 2. The pretrained demo model draws fresh prompts of the world ({24 if args.quick else 96}); "
          "the checker reads back: " + ", ".join(f"{k} {v:.2f}" for k, v in right.items()))

    candidates = study.candidate_runs()
    if args.quick:
        candidates = [c for c in candidates if c.method == "lora"]
    print(f"\n## 3. Fine-tunes of the advisor's {len(candidates)} candidates for one profile "
          f"(object, {study.PROFILE.n_images} images, SD 1.5 architecture), trained on the held-out star; "
          f"ground truth over {n_prompts} prompts per factor; ours = the project's scores (offline: stand-ins); "
          f"learning rates x{args.lr_scale:g}")
    print("| run | truth acc | truth flex | truth pres | our acc | our flex | our pres | s |")
    print("|---|---|---|---|---|---|---|---|")
    results: dict = {}

    def run(c):
        r = world.run(c, f"c{len(results):02d}")
        print(f"| {c.label()} | {r.truth.accuracy:.2f} | {r.truth.flexibility:.2f} | {r.truth.preservation:.2f} | "
              + " | ".join(_fmt(r.ours.get(f)) for f in ("accuracy", "flexibility", "preservation"))
              + f" | {r.seconds:.0f} |", flush=True)
        return r

    for c in candidates:
        results[c] = run(c)
    rho = study.rank_correlation(list(results.values()))
    print(f"\n## 4. Rank correlation (Spearman) of our scores with the ground truth over {len(results)} runs: "
          + ", ".join(f"{f} {_fmt(v)}" for f, v in rho.items()))

    counts = (0, 4, 8) if args.quick else study.COUNTS
    learned = study.learner_regret(results, run, counts=counts, seed=args.seed)
    print(f"\n## 5. The advisor's ground-truth regret (utility points, 1-5 scale) by logged runs; "
          f"rules only: {learned['rules']:.2f} ({learned['rules_pick']}); best: {learned['best_pick']}")
    print("| logged runs | regret | rules only | pick |")
    print("|---|---|---|---|")
    for n, r in learned["learned"].items():
        print(f"| {n} | {r:.2f} | {learned['rules']:.2f} | {learned['picks'][n]} |")

    demo_run = experiment.fine_tune(experiment.fine_tune_config(world.data_dir("lora"), work / "runs" / "demo", SUBJECT, "lora"))
    before = world.base_truth()
    tuned = experiment.load_tuned(demo_run)
    after = experiment.ground_truth(tuned, world.base_other, SUBJECT, n_prompts)
    if args.figure:
        save_figure(args.figure, world.data_dir("lora"), world.base, tuned)
    print(f"\n{len(results) + 1} fine-tunes in {(time.perf_counter() - started) / 60:.1f} min")
    print(f"demo fine-tune: ground-truth accuracy base {before.accuracy:.2f} -> tuned {after.accuracy:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

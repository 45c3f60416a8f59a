"""The shapes world (issue 15), what exists so far: how well the ground-truth checker reads renders.

    python benchmarks/shapes_world.py [--n 200] [--seed 0]

Prints a Markdown table: per resolution and degradation, the fraction of scenes whose shape,
colour, background, cell and style the checker measures right, and ms per measurement. The
pretrained demo model, fine-tuning and the score-agreement and learner figures are still to come.
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trainer.shapes.checker import measure  # noqa: E402
from trainer.shapes.world import sample_scenes, render  # noqa: E402

FIELDS = ("shape", "color", "background", "cell", "style")


def degrade(image: Image.Image, seed: int, sigma: float, blur: float) -> Image.Image:
    a = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)) if blur else image, dtype=np.float32)
    a = a + np.random.default_rng(seed).normal(0.0, sigma, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"checker accuracy, {args.n} scenes per row (held-out star and outline included), {platform.processor() or platform.machine()}")
    print("| px | scenes | degradation | " + " | ".join(FIELDS) + " | all | ms/measure |")
    print("|---|---|---|" + "---|" * (len(FIELDS) + 2))
    for px in (64, 32):
        for which, exclude in (("world", None), ("with held-out", ())):
            scenes = sample_scenes(args.n, args.seed) if exclude is None else sample_scenes(args.n, args.seed, exclude=exclude)
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


if __name__ == "__main__":
    main()

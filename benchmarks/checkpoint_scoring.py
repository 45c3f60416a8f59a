"""What scoring a checkpoint costs, against the training time it covers: a script that prints a table.

    python benchmarks/checkpoint_scoring.py              # CPU: the tiny model (about two minutes)
    python benchmarks/checkpoint_scoring.py --steps 40 --every 10

For each model: one LoRA run trains `--steps` steps with a checkpoint every `--every`, scoring
off (its steps/s is the reference); the same run again with score_checkpoints="during"; then
`score_saved_checkpoints` scores the first run's checkpoints after the fact. Printed per model:
seconds per training step, the training time one checkpoint covers (`--every` steps), seconds
to score one checkpoint (median; the defaults of trainer.checkpoint_eval: 2 seeds, the
evaluation's denoising steps), the one-time cost (model set-up and the base images), and the
ratios scoring / training covered and wall time during / wall time off, all from the same run.
With a CUDA GPU it adds a model with Stable Diffusion 1.5's exact architecture and random
weights (the same memory and time as the real one) at 512 px.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _images(folder: Path, n: int, size: int) -> Path:
    from train_throughput import write_images

    return write_images(folder, n, size)


def _train(model: Path, data: Path, out: Path, *, steps: int, every: int, resolution: int, scoring: str,
           mixed_precision: str) -> tuple[float, float]:
    """(wall seconds of train(), median seconds per training step from the step events)."""
    from trainer.config import TrainConfig
    from trainer.events import read_events
    from trainer.loop import train

    cfg = TrainConfig(base_model=str(model), data_dir=str(data), output_dir=str(out), method="lora", resolution=resolution,
                      max_train_steps=steps, checkpointing_steps=every, checkpoints_total_limit=0,
                      validation_steps=0, score_checkpoints=scoring, mixed_precision=mixed_precision,
                      instance_prompt="a photo of sks dog", class_prompt="a photo of a dog",
                      validation_prompts=["a sks dog on the beach"])
    started = time.perf_counter()
    assert train(cfg, progress=False) == "completed"
    wall = time.perf_counter() - started
    times = [e["t"] for e in read_events(out) if e["kind"] == "step"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # a step event after a checkpoint also carries the save (and, during, the scoring): the median skips them
    return wall, statistics.median(gaps) if gaps else float("nan")


def measure(name: str, model: Path, work: Path, *, steps: int, every: int, resolution: int,
            mixed_precision: str) -> dict:
    from trainer.checkpoint_eval import score_saved_checkpoints

    data = _images(work / f"{name}-data", 8, resolution)
    wall_off, sec_per_step = _train(model, data, work / f"{name}-off", steps=steps, every=every,
                                    resolution=resolution, scoring="off", mixed_precision=mixed_precision)
    wall_during, _ = _train(model, data, work / f"{name}-during", steps=steps, every=every,
                            resolution=resolution, scoring="during", mixed_precision=mixed_precision)
    started = time.perf_counter()
    scored = score_saved_checkpoints(work / f"{name}-off")
    after = time.perf_counter() - started
    per_checkpoint = statistics.median(s.seconds for s in scored)
    return {"model": name, "sec_per_step": sec_per_step, "covered": every * sec_per_step,
            "per_checkpoint": per_checkpoint, "one_time": after - sum(s.seconds for s in scored),
            "n": len(scored), "wall_off": wall_off, "wall_during": wall_during}


def print_table(rows: list[dict], every: int) -> None:
    print(f"| model | s / training step | training covered by one checkpoint ({every} steps) | "
          "scoring one checkpoint | scoring / training covered | one-time set-up | "
          "wall time, scoring during / off |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['sec_per_step']:.3f} s | {r['covered']:.1f} s | {r['per_checkpoint']:.1f} s | "
              f"**{r['per_checkpoint'] / r['covered']:.2f}x** | {r['one_time']:.1f} s | "
              f"{r['wall_during']:.0f} s / {r['wall_off']:.0f} s = **{r['wall_during'] / r['wall_off']:.2f}x** |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default 40)")
    parser.add_argument("--every", type=int, default=10, help="steps between checkpoints (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from trainer.tiny import ensure_tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fta-ckbench-") as tmp:
        work = Path(tmp)
        tiny = ensure_tiny_model(work / "models", arch="sd15")
        rows.append(measure("tiny (CPU, 64 px)", tiny, work, steps=args.steps, every=args.every, resolution=64,
                            mixed_precision="no"))
        if torch.cuda.is_available():
            from train_throughput import build_real_architecture

            real = build_real_architecture("sd15", work / "models")
            rows.append(measure(f"SD 1.5 architecture ({torch.cuda.get_device_name(0)}, 512 px, fp16)", real, work,
                                steps=args.steps, every=args.every, resolution=512, mixed_precision="fp16"))
        else:
            print("no CUDA GPU here: the SD 1.5 architecture row needs one (it runs when a GPU is present)\n")
    print_table(rows, args.every)


if __name__ == "__main__":
    main()

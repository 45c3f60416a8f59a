"""Real architectures on the CPU: train, sample and score random weights with Stable Diffusion 1.5's
(and, with --sdxl, SDXL's) exact architecture through `python -m trainer`, and print a table.

    python benchmarks/real_architecture_cpu.py                 # SD 1.5 at 128 px, four scenarios
    python benchmarks/real_architecture_cpu.py --only lora --sdxl --keep /tmp/real

What the tiny model cannot show: full-size modules, weights saved in fp16 (as published checkpoints
are) loaded on a CPU, the advisor's output-size estimate against the files a run writes, and how
much memory each step takes. Each scenario runs `python -m trainer train` and then `python -m
trainer evaluate --num-images 1 --steps 2` in fresh processes, timed with their peak resident
memory. Slow: about 20 minutes for the SD 1.5 set on 2 cores; SDXL needs about 16 GB to train and
more than 24 GB to score in fp32 (evaluation then refuses in one line, which the table shows).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

COMMON = dict(train_batch_size=1, max_train_steps=3, checkpointing_steps=0, seed=0,
              instance_prompt="a photo of sks dog", validation_prompts=["a photo of sks dog on the moon"],
              num_validation_images=1, validation_steps=0, validation_inference_steps=2)
SCENARIOS = {  # name: (arch, resolution, TrainConfig fields)
    "lora": ("sd15", 128, dict(method="lora", learning_rate=1e-4)),
    "dreambooth_lora+prior+te": ("sd15", 128, dict(method="dreambooth_lora", learning_rate=1e-4,
                                                   prior_preservation=True, class_prompt="a photo of a dog",
                                                   num_class_images=2, train_text_encoder=True)),
    "textual_inversion": ("sd15", 128, dict(method="textual_inversion", learning_rate=5e-4,
                                            instance_prompt="a photo of <sks>", initializer_token="dog")),
    "lora bf16+ckpt+cache": ("sd15", 128, dict(method="lora", learning_rate=1e-4, mixed_precision="bf16",
                                               gradient_checkpointing=True, cache_latents=True)),
    "sdxl lora+ckpt": ("sdxl", 256, dict(method="lora", learning_rate=1e-4, gradient_checkpointing=True,
                                         max_train_steps=2)),
}


# `python -m trainer ARGS` that prints its own peak resident set on the way out, however it exits
_MEASURED = ("import resource, runpy, sys\n"
             "sys.argv = ['trainer'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('trainer', run_name='__main__')\n"
             "finally:\n    print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def run(args: list[str], env: dict[str, str]) -> tuple[int, float, float | None, str]:
    """`python -m trainer ARGS`: (exit code, seconds, its peak RSS in GiB or None, last line of output)."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    seconds = time.time() - start
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip() and "it/s]" not in ln]
    peaks = [int(ln.split()[1]) for ln in lines if ln.startswith("PEAK_RSS_KB ")]
    text = [ln for ln in lines if not ln.startswith("PEAK_RSS_KB ")]
    return proc.returncode, seconds, (peaks[-1] / 2**20 if peaks else None), (text[-1] if text else "")[:160]


def gib(x: float | None) -> str:
    return "killed" if x is None else f"{x:.1f} GiB"


def output_mb(run_dir: Path) -> str:
    files = sorted((run_dir / "output").glob("*.safetensors"))
    return ", ".join(f"{f.stat().st_size / 1e6:.3f}" for f in files) or "-"


def estimated_mb(cfg: dict, arch: str) -> float:
    from advisor.recommendation import costs

    hp = {k: cfg[k] for k in ("rank", "train_text_encoder", "num_vectors") if k in cfg}
    return costs.output_mb(cfg["method"], arch, hp)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: the SD 1.5 ones)")
    parser.add_argument("--sdxl", action="store_true", help="add SDXL (needs about 16 GB to train)")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (models are reused)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or \
        [n for n, (arch, _, _) in SCENARIOS.items() if arch == "sd15" or args.sdxl]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; pick from {sorted(SCENARIOS)}")

    import torch
    import train_throughput as tt

    work = args.keep or Path(tempfile.mkdtemp(prefix="real-arch-"))
    env = {**os.environ, "FTA_ALLOW_CPU_TRAINING": "1", "HF_HUB_OFFLINE": "1", "FTA_CACHE_DIR": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"# Real architectures on the CPU ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; random weights saved in fp16)\n")
    print("| scenario | px | train s/step | train peak RSS | outputs MB (estimated) | scoring | scoring peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        arch, resolution, fields = SCENARIOS[name]
        model = tt.build_real_architecture(arch, work / f"{arch}-random")
        data = work / f"images-{resolution}"
        if not data.is_dir():
            tt.write_images(data, 4, resolution)
        run_dir = work / f"run-{name.replace(' ', '_').replace('+', '-')}"
        cfg = {**COMMON, **fields, "base_model": str(model), "data_dir": str(data), "output_dir": str(run_dir),
               "resolution": resolution}
        if run_dir.exists():
            shutil.rmtree(run_dir)
        config_path = work / f"{run_dir.name}.json"
        config_path.write_text(json.dumps(cfg))
        code, _, train_rss, last = run(["train", "--config", str(config_path), "--no-progress"], env)
        steps = [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines()
                 if '"kind": "step"' in ln] if (run_dir / "events.jsonl").is_file() else []
        per_step = f"{steps[-1]['sec_per_step']:.1f}" if steps else "-"
        if code != 0:
            print(f"| {name} | {resolution} | failed: {last} | {gib(train_rss)} | | | |", flush=True)
            continue
        code, seconds, eval_rss, last = run(["evaluate", str(run_dir), "--num-images", "1", "--steps", "2"], env)
        scoring = f"{seconds:.0f} s" if code == 0 else f"refused/failed: {last}"
        print(f"| {name} | {resolution} | {per_step} | {gib(train_rss)} | {output_mb(run_dir)} "
              f"({estimated_mb(cfg, arch):.3f}) | {scoring} | {gib(eval_rss)} |", flush=True)
    if args.keep is None:
        print(f"\n(work folder {work} can be removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput and peak memory per method: a script that prints Markdown tables.

    python benchmarks/train_throughput.py                      # CPU: the tiny model, every method
    python benchmarks/train_throughput.py --reference PATH/train_dreambooth_lora.py
    python benchmarks/train_throughput.py --steps 20 --methods lora,dreambooth
    python benchmarks/train_throughput.py --families-only     # every model family's tiny model, LoRA

Every scenario runs `trainer.loop` (the real loop, outputs and checkpoints skipped) in its own
subprocess, so each peak-memory figure is that scenario's alone. Steps per second are measured
from the `step` events after `--warmup` steps.

- CPU: the built-in tiny model at 64 px, batch 1, every method. Peak memory is the process's
  peak resident set (imports included).
- Families (CPU): LoRA on every model family's tiny model (trainer.families; "tiny", "tiny-sdxl",
  "tiny-sd3", "tiny-flux", "tiny-flux2", "tiny-zimage", "tiny-qwenimage") at 64 px: ms per step and peak memory, beside the advisor's estimate
  table row for that family's real model (LoRA at its native resolution, mixed precision,
  gradient checkpointing), or "no row yet" where the advisor has none.
- `--reference`: diffusers' `examples/dreambooth/train_dreambooth_lora.py`, run on the same
  model folder and images with the same settings, timed per optimizer step by wrapping its tqdm
  bar; printed beside our dreambooth_lora with the ratio (target: >= 1.25x).
- CUDA (only when a GPU is present): randomly initialised models with Stable Diffusion 1.5's
  and SDXL's exact architectures (same parameter counts, so the same memory and time as the
  real weights), batch 1, 512 / 1024 px. Peak memory is torch.cuda.max_memory_allocated (the
  targets), with max_memory_reserved beside it (what the run log records).
- `--real` (CUDA): every planned base model's released architecture with random weights
  (trainer.real_architectures: SD 1.5, SDXL, SD 3.5 Large, Flux.1 dev, Flux.2 klein 4B, Z-Image,
  Qwen-Image), LoRA rank 16 at its native resolution in bf16 with gradient checkpointing and
  cached text-encoder outputs, one at a time (built, trained, removed): peak GB and steps/s beside
  the advisor's estimate for the same settings, as a ratio (the bar: within 15 %). `--bases`
  picks some; `--layers 1` runs the same path on a CPU with every stack cut to one layer.

    python benchmarks/train_throughput.py --real --steps 10 --warmup 3            # a GPU machine
    python benchmarks/train_throughput.py --real --layers 1 --bases zimage --steps 1 --warmup 1
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METHODS = ["lora", "dreambooth_lora", "dreambooth", "textual_inversion", "full_finetune"]
LEARNING_RATES = {"lora": 1e-4, "dreambooth_lora": 1e-4, "dreambooth": 5e-6, "full_finetune": 1e-5,
                  "textual_inversion": 5e-4}
THREADS: int | None = None  # --threads, passed to every worker
TARGETS_GB = {("sd15", "lora"): 6.0, ("sd15", "dreambooth"): 10.0, ("sdxl", "lora"): 12.0}
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
# --real: LoRA with the savings every published low-memory recipe shares, no quantization (a bare GPU
# machine may lack bitsandbytes and torchao), rank 16, batch 1, the base's native resolution
REAL_OPTIONS = {"mixed_precision": "bf16", "gradient_checkpointing": True, "cache_text_encoder_outputs": True,
                "rank": 16}
WITHIN = 0.15   # the bar: measured peak and speed within 15 % of the advisor's estimate


@dataclass
class Scenario:
    model: str                  # a built-in tiny model ("tiny", "tiny-flux", ...) or a base model ("sd15", ...)
    method: str
    resolution: int
    batch: int = 1
    options: dict = field(default_factory=dict)   # extra TrainConfig fields (memory options)

    @property
    def options_label(self) -> str:
        o = self.options
        parts = [o.get("mixed_precision", "no") if o.get("mixed_precision", "no") != "no" else "fp32"]
        parts += [label for key, label in (("gradient_checkpointing", "grad-ckpt"), ("use_8bit_adam", "8-bit Adam"),
                                           ("cache_latents", "cached latents")) if o.get(key)]
        return ", ".join(parts)


def cpu_scenarios(methods: list[str]) -> list[Scenario]:
    rows = [Scenario("tiny", m, 64) for m in methods]
    if "dreambooth_lora" in methods:
        rows.append(Scenario("tiny", "dreambooth_lora", 64, options={"cache_latents": True}))
    return rows


# model family -> the built-in tiny model of that family, and the advisor's base model for it (None: no row yet)
FAMILY_MODELS = {"sd": ("tiny", "sd15"), "sdxl": ("tiny-sdxl", "sdxl"), "sd3": ("tiny-sd3", "sd35large"),
                 "flux": ("tiny-flux", "flux1dev"), "flux2": ("tiny-flux2", "klein4b"),
                 "zimage": ("tiny-zimage", "zimage"), "qwenimage": ("tiny-qwenimage", "qwenimage")}


def family_scenarios() -> list[Scenario]:
    return [Scenario(tiny, "lora", 64) for tiny, _ in FAMILY_MODELS.values()]


def estimate_row(base_model: str | None) -> str:
    """The advisor's estimate for a LoRA on the family's real model at its native size on a 24 GB
    RTX 4090, after the memory savings the advisor would apply there: what a plan would print."""
    if base_model is None:
        return "no row yet"
    from advisor.recommendation.costs import TIMED, estimate, fit_memory
    from trainer.vocabulary import BASE_MODELS

    gpu = TIMED["RTX 4090"]
    hp = {"resolution": BASE_MODELS[base_model].resolution, "max_train_steps": 1000, "mixed_precision": gpu.precision}
    hp, _ = fit_memory("lora", base_model, hp, gpu.vram_gb, gpu=gpu)
    e = estimate("lora", base_model, hp, n_images=10, gpu=gpu)
    saved = [k for k in ("gradient_checkpointing", "cache_text_encoder_outputs") if hp.get(k)]
    saved += [f"{hp['quantize_base']} base"] if hp.get("quantize_base", "no") != "no" else []
    return (f"{BASE_MODELS[base_model].short} at {hp['resolution']} px, {hp['mixed_precision']}"
            f"{''.join(', ' + s for s in saved)}: {e.vram_gb:.1f} GB, {e.minutes:.0f} min / 1000 steps on a {e.gpu}")


def print_family_table(rows: list[dict]) -> None:
    print("| family | tiny model | ms/step | steps per CPU-s | peak memory | advisor's estimate for the real model |")
    print("|---|---|---|---|---|---|")
    for (family, (tiny, base)), row in zip(FAMILY_MODELS.items(), rows):
        if "error" in row:
            result = f"failed: {row['error']} | | "
        else:
            result = f"{1000 / row['steps_per_s']:.0f} | {_cpu_rate(row)} | {row['peak_gb']:.2f} {row['memory_kind']}"
        print(f"| {family} | {tiny} | {result} | {estimate_row(base)} |")


def real_scenario(base: str, layers: int | None) -> Scenario:
    """LoRA on `base`'s released architecture at its native resolution (64 px for a --layers copy)."""
    from trainer.vocabulary import BASE_MODELS

    return Scenario(base, "lora", BASE_MODELS[base].resolution if layers is None else 64, options=dict(REAL_OPTIONS))


def real_estimate(s: Scenario, device: str) -> dict:
    """The advisor's figures for the scenario's settings: peak GB, and steps/s on `device` when the
    advisor times that card (advisor.recommendation.costs.find_gpu reads names like torch's)."""
    from advisor.recommendation.costs import find_gpu, memory_gb, seconds_per_step

    hp = {"resolution": s.resolution, **s.options}
    gpu = find_gpu(device)
    return {"vram_gb": memory_gb("lora", s.model, hp)[0], "gpu": gpu.name if gpu else None,
            "steps_per_s": 1 / seconds_per_step("lora", s.model, hp, gpu=gpu) if gpu else None}


def run_real(bases: list[str], layers: int | None, work: Path, args) -> list[dict]:
    """Each base built (build_real_architecture, bf16), trained, measured and removed before the next
    (Qwen-Image's folder alone is 57 GB)."""
    import torch

    rows = []
    for base in bases:
        folder = work / "models" / f"{base}-real"
        scenario = real_scenario(base, layers)
        print(f"... building {base}{f' cut to {layers} layer(s)' if layers else ''}", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            with contextlib.redirect_stdout(sys.stderr):
                build_real_architecture(base, folder, dtype="bf16", layers=layers)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception as e:  # one base failing to build is a row, not the end of the table
            rows.append({"scenario": scenario, "error": f"build: {type(e).__name__}: {e}"[:200]})
            continue
        row = {"scenario": scenario, "build_s": time.time() - t0}
        row.update(run_scenarios([scenario], {base: folder}, work, args)[0])
        rows.append(row)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def print_real_table(rows: list[dict], layers: int | None) -> None:
    print("| base | px | settings | peak (reserved) | estimate | measured / estimate | steps/s | "
          "estimate (card) | measured / estimate | build s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        s = row["scenario"]
        settings = f"LoRA rank {s.options['rank']}, bf16, grad-ckpt, cached text"
        if "error" in row:
            print(f"| {s.model} | {s.resolution} | {settings} | failed: {row['error']} | | | | | | |")
            continue
        est = real_estimate(s, row["device"])
        gb = 2**30 / 1e9   # GiB -> GB, the advisor's unit
        held = f" ({row['reserved_gb'] * gb:.1f})" if row.get("reserved_gb") else ""
        mem = row["peak_gb"] * gb
        kind = row["memory_kind"].replace("GiB ", "")
        speed = "no figure for this card" if est["steps_per_s"] is None else f"{est['steps_per_s']:.3f} ({est['gpu']})"
        mem_ratio = "-" if layers else _ratio(mem / est["vram_gb"])
        speed_ratio = "-" if layers or est["steps_per_s"] is None else _ratio(row["steps_per_s"] / est["steps_per_s"])
        print(f"| {s.model} | {s.resolution} | {settings} | {mem:.1f} GB{held} {kind} | {est['vram_gb']:.1f} GB | "
              f"{mem_ratio} | {row['steps_per_s']:.3f} | {speed} | {speed_ratio} | {row['build_s']:.0f} |")
    if layers:
        print(f"\nEvery stack cut to {layers} layer(s): the path checked, not the released model's memory or time.")


def _ratio(ratio: float) -> str:
    return f"{ratio:.2f} " + ("ok" if abs(ratio - 1) <= WITHIN else "**off**")


def cuda_scenarios(methods: list[str]) -> list[Scenario]:
    fp16 = {"mixed_precision": "fp16"}
    rows = [
        Scenario("sd15", "lora", 512, options=fp16),
        Scenario("sd15", "lora", 512, options={**fp16, "gradient_checkpointing": True}),
        Scenario("sd15", "dreambooth", 512, options={**fp16, "gradient_checkpointing": True, "use_8bit_adam": True}),
        Scenario("sd15", "textual_inversion", 512, options=fp16),
        Scenario("sd15", "full_finetune", 512, options={**fp16, "gradient_checkpointing": True,
                                                        "use_8bit_adam": True}),
        Scenario("sdxl", "lora", 1024, options={**fp16, "gradient_checkpointing": True}),
        Scenario("sdxl", "lora", 1024, options=fp16),
        Scenario("sdxl", "dreambooth", 1024, options={**fp16, "gradient_checkpointing": True, "use_8bit_adam": True}),
    ]
    return [s for s in rows if s.method in methods]


# --- building the models the scenarios train ---------------------------------------------
def build_real_architecture(arch: str, out_dir: Path, dtype: str = "fp16", layers: int | None = None) -> Path:
    """A planned base model's released architecture with random weights (trainer.real_architectures;
    `layers`: every stack cut to that many), made on the GPU when there is one and saved in `dtype`
    (the loop loads and casts as for real weights); an existing folder is reused."""
    import torch

    from trainer.real_architectures import make_real_architecture

    if (out_dir / "model_index.json").is_file():
        return out_dir
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return make_real_architecture(out_dir, arch, layers=layers, device=device, dtype=getattr(torch, DTYPES[dtype]))


def write_images(folder: Path, n: int, size: int) -> Path:
    """n distinct pictures (coloured blocks over a gradient), size x size px."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        blocks = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.NEAREST)
        blocks.save(folder / f"img_{i:03d}.png")
    return folder


# --- one scenario, in a worker subprocess ------------------------------------------------
def steps_per_second(step_end_times: list[float], warmup: int) -> float:
    """1 / median step time after warm-up: the median shrugs off the odd step slowed by another
    process on a shared machine, where a mean would not."""
    import statistics

    times = step_end_times[max(warmup - 1, 0):]
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return 1.0 / statistics.median(gaps) if gaps else float("nan")


def run_worker(spec: dict) -> dict:
    """Train `steps + warmup` steps with the real loop (no outputs/checkpoints); measure."""
    import torch

    from trainer.config import TrainConfig
    from trainer.events import read_events
    from trainer.loop import TrainingRun

    cpu_stamps: list[float] = []

    class MeasureOnly(TrainingRun):
        def _finish(self):  # samples, checkpoint and outputs are not part of step throughput
            pass

        def log(self, kind, step, **fields):
            if kind == "step":
                cpu_stamps.append(time.process_time())
            super().log(kind, step, **fields)

    values = dict(base_model=spec["model_dir"], method=spec["method"], data_dir=spec["data_dir"],
                  output_dir=spec["run_dir"], resolution=spec["resolution"], train_batch_size=spec["batch"],
                  max_train_steps=spec["warmup"] + spec["steps"], learning_rate=LEARNING_RATES[spec["method"]],
                  checkpointing_steps=10**9, seed=0)
    if spec["method"] == "textual_inversion":
        values.update(instance_prompt="a photo of <sks>", initializer_token="dog")
    values.update(spec["options"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    MeasureOnly(TrainConfig(**values), progress=False).run()
    rate = steps_per_second([e["t"] for e in read_events(spec["run_dir"]) if e["kind"] == "step"], spec["warmup"])
    cpu_rate = steps_per_second(cpu_stamps, spec["warmup"])
    reserved = None
    if torch.cuda.is_available():
        peak, kind = torch.cuda.max_memory_allocated() / 2**30, "GiB VRAM"
        reserved = torch.cuda.max_memory_reserved() / 2**30  # what the run log records (trainer.memory)
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "GiB RSS"
    return {"steps_per_s": rate, "steps_per_cpu_s": cpu_rate, "peak_gb": peak, "memory_kind": kind,
            "reserved_gb": reserved, "device": device_name()}


def run_reference_worker(spec: dict) -> dict:
    """Run diffusers' script in this process (runpy), timing each optimizer step via its tqdm bar."""
    import runpy

    from tqdm import auto as tqdm_auto

    stamps: list[float] = []
    cpu_stamps: list[float] = []
    original = tqdm_auto.tqdm.update

    def update(self, n=1):  # the script calls progress_bar.update(1) once per optimizer step
        if getattr(self, "desc", "") == "Steps":
            stamps.append(time.time())
            cpu_stamps.append(time.process_time())
        return original(self, n)

    tqdm_auto.tqdm.update = update
    import diffusers.training_utils  # noqa: F401  (settle their optional-package checks first)
    import transformers  # noqa: F401

    note = _ensure_torchvision()
    sys.argv = [spec["script"], *spec["args"]]
    runpy.run_path(spec["script"], run_name="__main__")
    rate = steps_per_second(stamps, spec["warmup"])
    return {"steps_per_s": rate, "steps_per_cpu_s": steps_per_second(cpu_stamps, spec["warmup"]), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "memory_kind": "GiB RSS", "note": note, "device": device_name()}


def _ensure_torchvision() -> str:
    """The reference script imports torchvision for five image transforms. Where torchvision
    cannot be installed (e.g. a CPU-only torch build), provide those five with PIL + torch."""
    try:
        import torchvision  # noqa: F401
        return ""
    except Exception:
        pass
    import random
    import types

    import numpy as np
    import torch
    from PIL import Image

    class InterpolationMode:
        BILINEAR = Image.BILINEAR

    class Compose:
        def __init__(self, fns):
            self.fns = fns

        def __call__(self, x):
            for fn in self.fns:
                x = fn(x)
            return x

    class Resize:
        def __init__(self, size, interpolation=Image.BILINEAR):
            self.size, self.interpolation = size, interpolation

        def __call__(self, img):
            w, h = img.size
            s = self.size / min(w, h)
            return img.resize((max(self.size, round(w * s)), max(self.size, round(h * s))), self.interpolation)

    class CenterCrop:
        def __init__(self, size):
            self.size = size

        def __call__(self, img):
            w, h = img.size
            left, top = (w - self.size) // 2, (h - self.size) // 2
            return img.crop((left, top, left + self.size, top + self.size))

    class RandomCrop(CenterCrop):
        def __call__(self, img):
            w, h = img.size
            left, top = random.randint(0, w - self.size), random.randint(0, h - self.size)
            return img.crop((left, top, left + self.size, top + self.size))

    class ToTensor:
        def __call__(self, img):
            return torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean[0], std[0]

        def __call__(self, x):
            return (x - self.mean) / self.std

    transforms = types.ModuleType("torchvision.transforms")
    for obj in (InterpolationMode, Compose, Resize, CenterCrop, RandomCrop, ToTensor, Normalize):
        setattr(transforms, obj.__name__, obj)
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = package, transforms
    return "torchvision is not importable here; its 5 image transforms were stood in by PIL + torch"


def best_of(kind: str, spec: dict, timeout: float, repeat: int) -> dict:
    """The fastest of `repeat` runs (as timeit does: slower runs measure other processes too)."""
    results = []
    for _ in range(max(1, repeat)):
        if "run_dir" in spec:
            shutil.rmtree(spec["run_dir"], ignore_errors=True)  # a fresh events.jsonl each time
        results.append(in_subprocess(kind, spec, timeout))
    good = [r for r in results if "error" not in r]
    if not good:
        return results[-1]
    best = max(good, key=lambda r: r["steps_per_s"])
    return {**best, "steps_per_cpu_s": max(r["steps_per_cpu_s"] for r in good),
            "peak_gb": max(r["peak_gb"] for r in good)}


def in_subprocess(kind: str, spec: dict, timeout: float) -> dict:
    """Run one worker in a fresh Python; its last stdout line is the result as JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    if THREADS:  # the same CPU thread count for ours and the reference
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(THREADS)
    out = subprocess.run([sys.executable, __file__, kind, json.dumps(spec)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0][:200]}
    return json.loads(lines[-1][len("RESULT "):])


# --- the parent: scenarios -> table ---------------------------------------------------------
def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} (torch threads {torch.get_num_threads()})"


def run_scenarios(scenarios: list[Scenario], model_dirs: dict[str, Path], work: Path, args) -> list[dict]:
    rows = []
    for i, s in enumerate(scenarios):
        data = work / f"images-{s.resolution}"
        if not data.is_dir():
            write_images(data, 4, s.resolution)
        spec = {"model_dir": str(model_dirs[s.model]), "data_dir": str(data), "run_dir": str(work / f"run-{i}"),
                "method": s.method, "resolution": s.resolution, "batch": s.batch, "options": s.options,
                "steps": args.steps, "warmup": args.warmup}
        print(f"... {s.model} {s.method} {s.resolution}px [{s.options_label}]", file=sys.stderr, flush=True)
        rows.append({"scenario": s, **best_of("--worker", spec, args.timeout, args.repeat)})
    return rows


def print_table(rows: list[dict]) -> None:
    print("| model | method | resolution | batch | memory options | steps/s | steps per CPU-s | peak memory | device |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        s = row["scenario"]
        if "error" in row:
            result = f"failed: {row['error']} | | |"
        else:
            target = TARGETS_GB.get((s.model, s.method))
            mark = "" if target is None else (" (target <= %.0f GB: %s)" % (target, "met" if row["peak_gb"] <= target
                                                                             else "missed"))
            held = f" ({row['reserved_gb']:.2f} reserved)" if row.get("reserved_gb") else ""
            result = (f"{row['steps_per_s']:.2f} | {_cpu_rate(row)} | {row['peak_gb']:.2f} {row['memory_kind']}{held}"
                      f"{mark}")
        print(f"| {s.model} | {s.method} | {s.resolution} | {s.batch} | {s.options_label} | {result} | "
              f"{row.get('device', '')} |")


def _cpu_rate(row: dict) -> str:
    """Steps per second of process CPU time: with one thread, what a quiet machine would show
    (on a shared machine wall time also counts other processes' turns). Not for CUDA runs."""
    return "-" if "VRAM" in row["memory_kind"] else f"{row['steps_per_cpu_s']:.2f}"


def compare_with_reference(script: Path, model_dir: Path, work: Path, args, ours: list[tuple[str, dict]]) -> None:
    data = work / "images-64"
    if not data.is_dir():
        write_images(data, 4, 64)
    flags = ["--pretrained_model_name_or_path", str(model_dir), "--instance_data_dir", str(data),
             "--instance_prompt", "a photo of sks dog", "--output_dir", str(work / "reference-out"),
             "--resolution", "64", "--train_batch_size", "1", "--max_train_steps", str(args.warmup + args.steps),
             "--learning_rate", "1e-4", "--lr_scheduler", "constant", "--lr_warmup_steps", "0", "--rank", "4",
             "--seed", "0", "--checkpointing_steps", str(10**9), "--mixed_precision", "no", "--report_to", "all"]
    shutil.rmtree(work / "reference-out", ignore_errors=True)
    ref = best_of("--reference-worker", {"script": str(script), "args": flags, "warmup": args.warmup},
                  args.timeout, args.repeat)
    print("\nReference: diffusers examples/dreambooth/train_dreambooth_lora.py vs our dreambooth_lora "
          "(same tiny model folder, images, 64 px, batch 1, rank 4, fp32)\n")
    print("| trainer | steps/s | steps per CPU-s | peak memory | device |")
    print("|---|---|---|---|---|")
    for name, row in [*ours, (f"diffusers {script.name}", ref)]:
        if row is None or "error" in row:
            print(f"| {name} | failed: {(row or {}).get('error', 'not run')} | | | |")
        else:
            print(f"| {name} | {row['steps_per_s']:.2f} | {_cpu_rate(row)} | {row['peak_gb']:.2f} {row['memory_kind']} "
                  f"| {row['device']} |")
    if "error" in ref:
        return
    print()
    for name, row in ours:
        if row is not None and "error" not in row:
            print(f"ratio, {name}: {row['steps_per_s'] / ref['steps_per_s']:.2f}x the reference's steps/s, "
                  f"{row['steps_per_cpu_s'] / ref['steps_per_cpu_s']:.2f}x per CPU-second (target >= 1.25x)")
    if ref.get("note"):
        print(f"note: {ref['note']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="measured steps per scenario (after warm-up)")
    parser.add_argument("--warmup", type=int, default=5, help="steps run before measuring")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--reference", type=Path, default=None, help="path to diffusers' train_dreambooth_lora.py")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per scenario")
    parser.add_argument("--work-dir", type=Path, default=None, help="where models, images and runs go (default: temp)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the fastest is reported")
    parser.add_argument("--families-only", action="store_true",
                        help="only the per-family table (LoRA on each family's tiny model)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per run (OMP_NUM_THREADS); default: torch's own choice")
    parser.add_argument("--real", action="store_true",
                        help="only every planned base's released architecture (random weights), LoRA at its native "
                             "resolution, against the advisor's estimate (a CUDA GPU; --layers N checks the path "
                             "on a CPU)")
    parser.add_argument("--bases", default=None, help="with --real: comma-separated base models (default: all)")
    parser.add_argument("--layers", type=int, default=None,
                        help="with --real: cut every stack of layers to N (sd35large, flux1dev, zimage, qwenimage)")
    args = parser.parse_args(argv)
    global THREADS
    THREADS = args.threads
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; pick from {METHODS}")
    if args.reference is not None and not args.reference.is_file():
        parser.error(f"--reference {args.reference} is not a file")

    import torch

    from trainer.real_architectures import REAL_BASES
    from trainer.tiny import resolve_tiny

    bases = [b.strip() for b in (args.bases or ",".join(REAL_BASES)).split(",") if b.strip()]
    if set(bases) - set(REAL_BASES):
        parser.error(f"unknown base(s) {sorted(set(bases) - set(REAL_BASES))}; pick from {list(REAL_BASES)}")
    if args.real and args.layers is None and not torch.cuda.is_available():
        parser.error("--real needs a CUDA GPU (or --layers N, to check the path on the CPU)")

    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"# Training throughput ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
              f"{platform.machine()} x{os.cpu_count()} CPUs, CUDA: {torch.cuda.is_available()})\n")
        if args.real:
            print(f"Released architectures with random weights (trainer.real_architectures) on {device_name()}, "
                  f"{args.warmup} + {args.steps} steps each, against the advisor's estimate for the same settings "
                  f"(ok: within {WITHIN:.0%}):\n")
            print_real_table(run_real(bases, args.layers, work, args), args.layers)
            return
        with contextlib.redirect_stdout(sys.stderr):   # building prints progress lines; the tables go to stdout
            models = {tiny: resolve_tiny(tiny, work / "models") for tiny, _ in FAMILY_MODELS.values()}
        print("Every model family (trainer.families), LoRA on its tiny model, 64 px, batch 1:\n")
        print_family_table(run_scenarios(family_scenarios(), models, work, args))
        if args.families_only:
            return
        print()
        cpu_rows = run_scenarios(cpu_scenarios(methods), models, work, args)
        print("Tiny model (trainer.tiny), 64 px, every method:\n")
        print_table(cpu_rows)
        if args.reference is not None:
            ours = [(f"this trainer (dreambooth_lora, {r['scenario'].options_label})", r) for r in cpu_rows
                    if r["scenario"].method == "dreambooth_lora"]
            compare_with_reference(args.reference.resolve(), models["tiny"], work, args, ours)
        if not torch.cuda.is_available():
            print("\nCUDA scenarios skipped: no CUDA GPU (SD 1.5 at 512 px and SDXL at 1024 px need one).")
            return
        for arch in ("sd15", "sdxl"):
            print(f"... building random {arch} with the real architecture", file=sys.stderr, flush=True)
            models[arch] = build_real_architecture(arch, work / "models" / f"{arch}-random")
        print("\nCUDA, random weights with the exact SD 1.5 / SDXL architectures, batch 1:\n")
        print_table(run_scenarios(cuda_scenarios(methods), models, work, args))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--worker", "--reference-worker"):
        worker = run_worker if sys.argv[1] == "--worker" else run_reference_worker
        result = worker(json.loads(sys.argv[2]))
        print("RESULT " + json.dumps(result), flush=True)
    else:
        main()

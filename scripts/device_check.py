"""One command that walks the app's whole path on a real machine and prints the figures.

    python scripts/device_check.py              # CUDA: SD 1.5's architecture at 512 px, 100 steps
    python scripts/device_check.py --tiny       # CPU: the built-in tiny model at 64 px, 4 steps
    python scripts/device_check.py --steps 50 --out /tmp/check

"I want a LoRA of my dog" to a trained, scored, rated run, through the same functions the
app's buttons call (app.py is not imported: it needs gradio, and a bare GPU machine has none):

1. Advisor: `advisor.chat` sessions, the user's message and quick-reply answers until the
   recommendation; its train_config and its estimate (GPU memory, minutes, output size).
2. Base model and data: on CUDA, random weights with Stable Diffusion 1.5's exact architecture
   (benchmarks/train_throughput.py `build_real_architecture`: same parameter count, so the same
   memory and time as the real weights) and 5 generated pictures; with --tiny the built-in tiny
   model. The folder goes through the "folder on the server" button (`dataset_from_folder`,
   `dataset_report`).
3. Train: "Train this recommendation" (`lab.page.train_this`, `check_config_text`),
   then "Start training" (`lab.page.start_training`: the job queue), polled as the page's timer
   does (`page.job_view`, `lab.views.progress`).
4. Results: the page's end-of-run step (`lab.page.run_ended`: the run log, then the Results
   panel), `lab.results.compare_images`, `scores`, `downloads`, `save_rating` (4/4/4, note
   "device_check"), and the run's row as the Runs tab lists it (`lab.page.runs_view`).
5. A Markdown summary (device, versions, steps/s, minutes and peak VRAM against the advisor's
   estimate, output sizes, scores, rating, run-log row), also written with summary.json, a
   base-vs-fine-tuned sheet, the loss curve, the last sample and the end of the job's log
   into --out (flat, 6 files).

Models, images, runs and the run log go into a scratch folder (--work, kept; default a new
temporary one, removed at the end unless --keep-work), never the user's run log or runs folder,
and not into --out, whose few files are meant to be carried back from a remote machine. Nothing
is downloaded (HF_HUB_OFFLINE=1). With --tiny, torch uses one CPU thread (OMP_NUM_THREADS=1
unless set): on a small shared CPU, two threads fighting other processes ran it 7x slower.
On a GPU machine without diffusers, install the wheels `bash scripts/device_wheels.sh` put in
.whl/ first (see the README, "On a machine with a CUDA GPU").
Exit 0 when every stage passed, 1 with one line per failed stage, 2 for bad arguments or
(without --tiny) no CUDA GPU.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MESSAGE = "I want a LoRA of my dog, 5 photos, 24GB card"
N_IMAGES = 5
# quick replies a newcomer would click, by the slot the advisor asks about; anything else: "You decide"
# (the middle answers: a plain LoRA without class images, which fits the GPU machine's time budget)
ANSWERS = {"accuracy": "accuracy 3", "flexibility": "flexibility 3", "preservation": "preservation 3"}
MAX_TURNS = 8
RATING = (4, 4, 4)
NOTE = "device_check"
CUDA_STEPS, TINY_STEPS = 100, 4
CUDA_RESOLUTION, TINY_RESOLUTION = 512, 64
SESSION_PREFIX = "device-check-"
OUT_FILES = ("summary.md", "summary.json", "compare.png", "loss.png", "sample.png", "train-log.txt")


class Check:
    """The stages' findings: facts for the summary and one line per failure."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.failures: list[str] = []
        self.t0 = time.time()

    def fail(self, stage: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        line = f"{stage}: {' '.join(str(text).split())[:400]}"
        self.failures.append(line)
        say(f"FAILED {line}")
        if not isinstance(error, str):  # the traceback too, on stderr: one run should tell the most
            traceback.print_exception(error, limit=-4, file=sys.stderr)


def say(text: str) -> None:
    print(text, flush=True)


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_benchmark():
    """benchmarks/train_throughput.py, imported by path (benchmarks/ is not a package)."""
    path = ROOT / "benchmarks" / "train_throughput.py"
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- 1. advisor
def advise(check: Check) -> tuple[Any, Any] | None:
    """The chat, as the Advisor tab plays it: the message, then quick replies until a recommendation."""
    from advisor import chat

    session, reply = chat.new_session()
    say(f"> {MESSAGE}")
    session, reply = chat.send(session, MESSAGE)
    turns = 1
    while session.recommendation is None and turns < MAX_TURNS:
        values = [o["value"] for o in reply.options]
        answer = next((a for a in ANSWERS.values() if a in values), "You decide")
        say(f"  advisor asks: {_last_line(reply.text)}")
        say(f"> {answer}")
        session, reply = chat.send(session, answer)
        turns += 1
    rec = session.recommendation
    if rec is None:
        check.fail("advisor", f"no recommendation after {turns} turns; last reply: {_last_line(reply.text)}")
        return None
    est = rec.estimates
    check.facts["advisor"] = {"turns": turns, "method": rec.method, "base_model": rec.base_model,
                              "estimate": {k: getattr(est, k) for k in ("vram_gb", "minutes", "output_mb", "fits")},
                              "fits_reason": est.fits_reason,
                              "recommended_steps": rec.train_config.max_train_steps}
    say(f"  recommendation after {turns} turn(s): {rec.method} on {rec.base_model}, "
        f"{rec.train_config.max_train_steps} steps; estimate {est.vram_gb} GB, {est.minutes} min, "
        f"{est.output_mb} MB output ({est.fits_reason})")
    return session, rec


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


# --------------------------------------------------------------------------- 2. model and data
def base_model(check: Check, tiny: bool, arch: str, work: Path) -> str | None:
    if tiny:
        check.facts["base_model"] = "tiny (built-in, random weights)"
        return "tiny"  # what lab_config(demo=True) puts in; the trainer builds it on first use
    try:
        import torch

        started = time.time()
        folder = load_benchmark().build_real_architecture(arch, work / f"{arch}-random")
        torch.cuda.empty_cache()  # the parent keeps only its CUDA context while the job trains
    except Exception as e:
        check.fail("base model", e)
        return None
    check.facts["base_model"] = f"random weights, {arch} architecture ({folder.name}, fp16 safetensors)"
    say(f"  built {arch} with random weights in {time.time() - started:.0f} s: {folder}")
    return str(folder)


def dataset(check: Check, work: Path, resolution: int, session, rec) -> str | None:
    """5 pictures, then the Lab's "…or a folder on the server" (allowed roots, the dataset report)."""
    from advisor.chat import stated_profile
    from lab.datasets import dataset_report
    from lab.uploads import dataset_from_folder

    try:
        folder = load_benchmark().write_images(work / "data" / "my-dog", N_IMAGES, resolution)
        path = dataset_from_folder(str(folder))
        report = dataset_report(path, resolution=resolution, goal_profile=stated_profile(session.interview).to_dict(),
                                recommendation=rec)
    except Exception as e:
        check.fail("dataset", e)
        return None
    if not report.get("ok"):
        check.fail("dataset", report.get("error") or "the dataset report says the folder cannot be used")
        return None
    check.facts["dataset"] = {"images": report["count"], "resolution": resolution, "verdict": report.get("verdict"),
                              "opinion": report.get("opinion", [])}
    say(f"  dataset: {report['count']} images at {resolution} px, verdict {report.get('verdict')!r}: "
        f"{(report.get('opinion') or [''])[0]}")
    return str(path)


# --------------------------------------------------------------------------- 3. training
def lab_settings(rec, *, tiny: bool, model: str, data_dir: str, steps: int, resolution: int) -> str:
    """"Train this recommendation" with the demo box as the machine sets it, then the edits a user
    makes in the settings box: the base model, the step count and intervals that fit in it."""
    from lab import page

    cfg = json.loads(page.train_this(rec, None, demo=tiny, lab=page.LabState(data_dir=data_dir))["text"])
    cfg.update(base_model=model, max_train_steps=steps, resolution=resolution, evaluate_after_training=True)
    for key in ("validation_steps", "checkpointing_steps"):
        cfg[key] = min(int(cfg.get(key) or 0), steps) or steps
    cfg["lr_warmup_steps"] = min(int(cfg.get("lr_warmup_steps") or 0), steps // 4)
    return page.config_text(cfg)


def train(check: Check, text: str, profile: dict[str, Any], timeout: float, every: float) -> Path | None:
    """"Start training", then the page's timer: pump the queue, show the progress, until the job ends."""
    from lab import page
    from lab.jobs import JobQueue
    from advisor.runlog.paths import default_runs_dir

    cfg, error = page.check_config_text(text)
    if cfg is None:
        check.fail("settings", error)
        return None
    say(f"  {page.config_message(cfg, error)}")
    queue = JobQueue(default_runs_dir())
    started = time.time()
    job_id, message = page.start_training(queue, text, session_id=SESSION_PREFIX + secrets.token_hex(6),
                                          profile=profile)
    if job_id is None:
        check.fail("submit", message)
        return None
    status = queue.status(job_id)
    run_dir = Path(status.run_dir)
    say(f"  job {job_id} submitted: {status.state}, {status.message}")
    last_print, last_line = 0.0, ""
    while True:
        queue.pump()
        status = queue.status(job_id)
        view = page.job_view(queue, status)
        if view["finished"] or status.state in ("cancelled", "unknown"):
            break
        now = time.time()
        if now - started > timeout:
            check.fail("training", f"did not finish within {timeout:.0f} s; stopping it (checkpoint saved)")
            status = queue.stop(job_id, wait=True, timeout=60)
            break
        line = _progress_line(run_dir, status)
        if now - last_print >= every and line != last_line:
            say(f"  [{now - started:5.0f} s] {line}")
            last_print, last_line = now, line
        time.sleep(0.5)
    wall = time.time() - started
    line = _progress_line(run_dir, status)
    if line != last_line:  # the last step may land between two polls: show where the run ended
        say(f"  [{wall:5.0f} s] {line}")
    check.facts["job"] = {"job_id": job_id, "state": status.state, "message": status.message,
                          "wall_s": round(wall, 1), "demo": status.demo}
    detail = f" ({status.message})" if status.message and status.message != status.state else ""
    say(f"  job ended: {status.state}{detail} after {wall:.0f} s")
    if status.state != "completed":
        from lab.views import log_tail

        tail = log_tail(run_dir, n=30) if run_dir.is_dir() else ""
        say("  last lines of train.log:\n" + "\n".join(f"    {ln}" for ln in tail.splitlines()))
        check.fail("training", f"ended {status.state}: {status.message}")
    return run_dir if run_dir.is_dir() else None


def _progress_line(run_dir: Path, status) -> str:
    from lab.views import progress
    from trainer.events import last_event, read_events

    prog = progress(run_dir)
    step = last_event(read_events(run_dir), "step") or {}
    vram = f" · {step['vram_gb']:.1f} GiB" if isinstance(step.get("vram_gb"), (int, float)) else ""
    scoring = "; scoring the run (evaluate_after_training)" if prog["status"] == "completed" else ""
    return f"{status.state} · {prog['message']}{vram}{scoring}"


# --------------------------------------------------------------------------- 4. results
def results(check: Check, run_dir: Path, out: Path) -> None:
    from advisor.runlog.store import RunLog
    from advisor.runlog.paths import default_db_path
    from lab import page, results as lab_results
    from trainer.vocabulary import FACTORS
    from advisor.runlog.paths import default_runs_dir

    try:  # what the page does once when the run ends: into the run log, then the Results panel
        shown = page.run_ended(run_dir, runlog=default_db_path())
        check.facts["results_panel"] = {"compare": len(shown["compare"]), "downloads": len(shown["downloads"])}
    except Exception as e:
        check.fail("results panel", e)
    try:  # the Results panel's images: base vs fine-tuned at the same seeds (cached by the step above)
        pairs = lab_results.compare_images(run_dir)
        check.facts["compare_images"] = len(pairs)
        contact_sheet(pairs, out / "compare.png")
        say(f"  compare: {len(pairs)} images (base and fine-tuned) -> {out / 'compare.png'}")
    except Exception as e:
        check.fail("compare images", e)
    from trainer.events import last_event, read_events

    evaluated = last_event(read_events(run_dir), "eval") or {}
    if evaluated.get("error"):
        check.fail("evaluation after training", evaluated["error"])
    try:  # the scores; evaluated here when the run has none yet, as the page does
        scored = lab_results.scores(run_dir)
        if scored["scores"] is None and (run_dir / "output").is_dir():
            check.fail("scores", f"the run wrote no metrics.json after training ({scored['message']}); "
                                 "scoring it from the lab instead")
            scored = lab_results.evaluate(run_dir)
        metrics = scored.get("metrics") or {}
        check.facts["scores"] = scored["scores"]
        check.facts["score_basis"] = {f: (metrics.get(f) or {}).get("basis") for f in FACTORS
                                      if isinstance(metrics.get(f), dict)}
        if not scored["scores"] or any(v is None for v in scored["scores"].values()):
            check.fail("scores", scored["message"])
    except Exception as e:
        check.fail("scores", e)
    try:
        files = lab_results.downloads(run_dir)
        check.facts["downloads"] = {Path(f).name: os.path.getsize(f) for f in files}
        if not files:
            check.fail("downloads", "the run offers no files to download")
    except Exception as e:
        check.fail("downloads", e)
    try:  # "Save my rating"
        with RunLog(default_db_path()) as log:
            saved = lab_results.save_rating(run_dir, *RATING, NOTE, runlog=log)
        rating = saved.get("rating") or {}
        ok = [rating.get(f) for f in FACTORS] == list(RATING)
        check.facts["rating_saved"] = ok
        if not ok:
            check.fail("rating", f"save_rating returned rating {rating!r}")
    except Exception as e:
        check.facts["rating_saved"] = False
        check.fail("rating", e)
    try:  # the Runs tab: sync the runs folder, list, find this run with its rating
        frame, _, _ = page.runs_view(default_db_path(), default_runs_dir(), run_dir.name)
        with RunLog(default_db_path()) as log:
            runs = log.list_runs()
        row = frame[frame["id"] == run_dir.name]
        found = len(row) == 1 and row.iloc[0]["rating"] == "/".join(map(str, RATING)) and row.iloc[0]["note"] == NOTE
        summary = next((r for r in runs if r.get("id") == run_dir.name), {})
        check.facts["runlog_row_found"] = bool(found)
        check.facts["runlog_row"] = {k: summary.get(k) for k in ("id", "status", "method", "steps_done",
                                                                 "peak_vram_gb", "scores", "rating")}
        if not found:
            check.fail("run log", f"no row for {run_dir.name} with rating 4/4/4 and note {NOTE!r} "
                                  f"among {len(runs)} run(s)")
    except Exception as e:
        check.facts["runlog_row_found"] = False
        check.fail("run log", e)


def contact_sheet(pairs: list[tuple[str, str]], path: Path, cell: int = 256) -> None:
    """One PNG: a row per (prompt, seed), base on the left, fine-tuned on the right."""
    from PIL import Image, ImageDraw

    rows = [pairs[i:i + 2] for i in range(0, len(pairs), 2)]
    label = 18
    sheet = Image.new("RGB", (2 * cell, len(rows) * (cell + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = r * (cell + label)
        for c, (image_path, _) in enumerate(row):
            with Image.open(image_path) as im:
                sheet.paste(im.convert("RGB").resize((cell, cell)), (c * cell, y + label))
        caption = row[0][1].removeprefix("base · ")  # "seed N · prompt"
        draw.text((4, y + 3), f"base | fine-tuned · {caption}"[:2 * cell // 6], fill="black")
    sheet.save(path)


def loss_image(run_dir: Path, path: Path, size=(640, 320)) -> bool:
    """The loss curve (PIL only: matplotlib may be absent on a bare GPU machine)."""
    from PIL import Image, ImageDraw

    from lab.views import loss_frame

    frame = loss_frame(run_dir)
    if len(frame) < 2:
        return False
    w, h, pad = size[0], size[1], 30
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    lo, hi = float(frame["loss"].min()), float(frame["loss"].max())
    span_x = max(1, int(frame["step"].max() - frame["step"].min()))
    span_y = (hi - lo) or 1.0

    def xy(step, value):
        return (pad + (step - frame["step"].min()) / span_x * (w - 2 * pad),
                h - pad - (value - lo) / span_y * (h - 2 * pad))

    draw.rectangle([pad, pad, w - pad, h - pad], outline="#999999")
    for column, colour in (("loss", "#9ecae1"), ("smoothed", "#08519c")):
        draw.line([xy(s, v) for s, v in zip(frame["step"], frame[column])], fill=colour, width=2)
    draw.text((pad, 8), f"loss per step ({run_dir.name}); min {lo:.4f}, max {hi:.4f}", fill="black")
    draw.text((pad, h - pad + 8), f"step {int(frame['step'].min())} .. {int(frame['step'].max())}", fill="black")
    image.save(path)
    return True


def write_log(run_dir: Path, path: Path, lines: int = 300) -> bool:
    """The end of the job's train.log, and error.log (the traceback) if the run crashed."""
    from lab.views import log_tail

    text = log_tail(run_dir, n=lines)
    error = run_dir / "error.log"
    if error.is_file():
        text += "\n\n--- error.log ---\n" + error.read_text(errors="replace")[-20000:]
    if not text.strip():
        return False
    path.write_text(text + "\n")
    return True


# --------------------------------------------------------------------------- 5. figures
def figures(check: Check, run_dir: Path, base_model: str, device: str, gpu_memory_gb: float | None) -> None:
    """steps/s, minutes and peak VRAM from the run's events; output sizes; the advisor's estimate
    re-run for this card and these settings (the headline estimate is for the user's card)."""
    from trainer.config import TrainConfig
    from trainer.events import last_event, read_events

    events = read_events(run_dir)
    steps = [e for e in events if e.get("kind") == "step"]
    start, end = last_event(events, "start") or {}, last_event(events, "end") or {}
    times = [e["t"] for e in steps]
    gaps = [b - a for a, b in zip(times[1:], times[2:]) if b > a]  # the first step warms up
    config = TrainConfig.load(run_dir / "config.json")
    step_vram = [e["vram_gb"] for e in steps if isinstance(e.get("vram_gb"), (int, float))]
    fig = {
        "steps_done": steps[-1]["step"] if steps else 0,
        "max_train_steps": config.max_train_steps,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "resolution": config.resolution, "mixed_precision": config.mixed_precision,
        "steps_per_s": round(1 / statistics.median(gaps), 3) if gaps else None,
        "steps_per_s_mean": (round((len(times) - 1) / (times[-1] - times[0]), 3)
                             if len(times) > 1 and times[-1] > times[0] else None),
        "train_minutes": round((end["t"] - start["t"]) / 60, 2) if start.get("t") and end.get("t") else None,
        "peak_vram_gb": end.get("peak_vram_gb"),
        "step_vram_gb_max": max(step_vram) if step_vram else None,
        "train_device": start.get("device"),
    }
    out_dir = run_dir / "output"
    fig["outputs"] = ({p.name: p.stat().st_size for p in sorted(out_dir.glob("*")) if p.is_file()}
                      if out_dir.is_dir() else {})
    check.facts["figures"] = fig
    if gpu_memory_gb is None:  # the tiny model on a CPU: the estimator models real architectures on GPUs
        check.facts["estimate_here"] = None
        return
    try:
        from advisor.recommendation import costs

        hp = {k: v for k, v in config.to_dict().items() if k not in ("base_model", "method", "data_dir",
                                                                     "output_dir")}
        gpu = costs.find_gpu(device)
        stand_in = gpu or costs.typical_gpu(gpu_memory_gb)
        est = costs.estimate(config.method, base_model, hp, N_IMAGES, gpu=stand_in)
        check.facts["estimate_here"] = {"gpu": est.gpu if gpu else f"{est.gpu}; {device} is not in the table",
                                        "gpu_in_table": gpu is not None, "vram_gb": est.vram_gb,
                                        "minutes": est.minutes, "output_mb": est.output_mb}
    except Exception as e:
        check.fail("estimate", e)


# --------------------------------------------------------------------------- summary
def summary_markdown(check: Check, args, device: str) -> str:
    f = check.facts
    adv = f.get("advisor") or {}
    est = adv.get("estimate") or {}
    here = f.get("estimate_here")
    fig = f.get("figures") or {}
    job = f.get("job") or {}
    scores = f.get("scores") or {}
    versions = f.get("versions", {})
    status = job.get("state", "not run")
    message = job.get("message")
    status_text = f"**{status}**" + (f" ({message})" if message and message != status else "")

    def num(v, fmt="{:.2f}", none="not recorded"):
        return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else none

    lines = [f"# Device check: {'PASSED' if not check.failures else 'FAILED'} ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"- device: **{device}**" + (" (tiny model, CPU demonstration)" if args.tiny else ""),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             f"- advisor: \"{MESSAGE}\" -> {adv.get('method')} on {adv.get('base_model')} after {adv.get('turns')} "
             f"turn(s); recommended {adv.get('recommended_steps')} steps",
             f"- advisor's estimate: {adv.get('fits_reason')}",
             f"- base model: {f.get('base_model')}; data: {(f.get('dataset') or {}).get('images')} images at "
             f"{(f.get('dataset') or {}).get('resolution')} px",
             f"- run: `{job.get('job_id')}` {status_text}; job wall time "
             f"{num(job.get('wall_s'), '{:.0f} s')}", "",
             "| figure | measured | advisor's estimate (the user's card, recommended steps) | estimator, for this card and "
             "these settings |",
             "|---|---|---|---|"]
    steps_cell = (f"{fig.get('steps_done')} of {fig.get('max_train_steps')} (x{fig.get('gradient_accumulation_steps')} "
                  f"accumulation, {fig.get('resolution')} px, precision {fig.get('mixed_precision')})")
    lines.append(f"| steps | {steps_cell} | {adv.get('recommended_steps')} | {fig.get('max_train_steps')} |")
    lines.append(f"| steps/s | {num(fig.get('steps_per_s'), '{:.3f}')} (median; mean "
                 f"{num(fig.get('steps_per_s_mean'), '{:.3f}')}) | | |")
    lines.append(f"| training minutes (start to end event) | {num(fig.get('train_minutes'))} | "
                 f"{num(est.get('minutes'), '{:g}', '-')} | {num((here or {}).get('minutes'), '{:g}', '-')}"
                 f"{' (' + here['gpu'] + ')' if here else ''} |")
    lines.append(f"| peak VRAM, GiB (max_memory_reserved) | {num(fig.get('peak_vram_gb'))} (steps: "
                 f"{num(fig.get('step_vram_gb_max'))}) | {num(est.get('vram_gb'), '{:g}', '-')} | "
                 f"{num((here or {}).get('vram_gb'), '{:g}', '-')} |")
    outputs = fig.get("outputs") or {}
    out_cell = "; ".join(f"{name} {size / 1e6:.3f} MB" for name, size in outputs.items()) or "none"
    lines.append(f"| output files | {out_cell} | {num(est.get('output_mb'), '{:g} MB', '-')} | "
                 f"{num((here or {}).get('output_mb'), '{:g} MB', '-')} |")
    lines += ["", "| score (1-5) | accuracy | flexibility | preservation |", "|---|---|---|---|",
              "| automatic | " + " | ".join(num(scores.get(k), "{:g}", "-") for k in ("accuracy", "flexibility",
                                                                                       "preservation")) + " |",
              "", f"- rating 4/4/4 \"{NOTE}\" saved: **{'yes' if f.get('rating_saved') else 'no'}**",
              f"- run-log row found (Runs tab): **{'yes' if f.get('runlog_row_found') else 'no'}**"]
    basis = f.get("score_basis") or {}
    if basis:
        lines.append("- score basis: " + "; ".join(f"{k}: {v}" for k, v in basis.items() if v))
    if check.failures:
        lines += ["", "## Failures", *[f"- {x}" for x in check.failures]]
    lines += ["", f"Total wall time {time.time() - check.t0:.0f} s. Files: {', '.join(f.get('files', []))}."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="the built-in tiny model at 64 px (CPU is enough)")
    ap.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {CUDA_STEPS}, "
                                                            f"{TINY_STEPS} with --tiny)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where summary.md/json and images go (default $OUT, else ./device-check-out)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder: models, data, runs, run log "
                                                           "(default: a new temporary folder)")
    ap.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds to wait for the training job (default 360, 300 with --tiny)")
    ap.add_argument("--every", type=float, default=None, help="seconds between progress lines (default 5, 1 with --tiny)")
    args = ap.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps {args.steps}; must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tiny:  # one thread is plenty for the tiny model; on a busy small CPU it is several times faster
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads, here and in the training job
    steps = args.steps or (TINY_STEPS if args.tiny else CUDA_STEPS)
    resolution = TINY_RESOLUTION if args.tiny else CUDA_RESOLUTION
    out = (args.out or Path(os.environ.get("OUT") or "device-check-out")).resolve()
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("error: no CUDA GPU here. The full check trains Stable Diffusion 1.5's architecture at 512 px, "
              "which needs one; run with --tiny for the same path on the built-in tiny model on the CPU.",
              file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"CPU {platform.machine()} x{os.cpu_count()}"
    gpu_memory_gb = torch.cuda.get_device_properties(0).total_memory / 1e9 if cuda else None
    out.mkdir(parents=True, exist_ok=True)
    for name in OUT_FILES:  # an earlier check's files must not pass for this one's
        (out / name).unlink(missing_ok=True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="device-check-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # the app's folders, all inside the scratch folder: the user's log and runs stay untouched
    os.environ.update(FTA_RUNLOG=str(work / "runlog.sqlite"), FTA_RUNS_DIR=str(work / "runs"),
                      FTA_UPLOADS_DIR=str(work / "uploads"), FTA_DATA_ROOTS=str(work / "data"))
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                       ("FTA_EMBEDDER", "none")):
        os.environ.setdefault(key, value)  # nothing is downloaded: a GPU machine here may have no network

    check = Check()
    check.facts["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                               **{d: version(d) for d in ("diffusers", "transformers", "peft", "accelerate",
                                                          "huggingface_hub")},
                               "cuda": torch.version.cuda or "none"}
    say(f"# device check on {device}: {steps} steps at {resolution} px; work folder {work}; out {out}")
    say("versions: " + ", ".join(f"{k} {v}" for k, v in check.facts["versions"].items()))
    for module in ("diffusers", "peft", "accelerate", "transformers"):  # say at once what cannot load
        try:
            importlib.import_module(module)
        except Exception as e:
            check.fail(f"import {module}", e)
    run_dir = rec = None
    try:
        say("## 1. advisor")
        advised = advise(check)
        if advised is not None:
            session, rec = advised
            arch = "sdxl" if rec.base_model == "sdxl" else "sd15"
            say("## 2. base model and data")
            model = base_model(check, args.tiny, arch, work)
            data_dir = dataset(check, work, resolution, session, rec)
            if model and data_dir:
                say("## 3. training (Train this recommendation -> Start training)")
                from advisor.chat import stated_profile

                text = lab_settings(rec, tiny=args.tiny, model=model, data_dir=data_dir, steps=steps,
                                    resolution=resolution)
                run_dir = train(check, text, stated_profile(session.interview).to_dict(),
                                timeout=args.timeout or (300 if args.tiny else 360),
                                every=args.every if args.every is not None else (1 if args.tiny else 5))
        if run_dir is not None:
            say("## 4. results")
            results(check, run_dir, out)
            figures(check, run_dir, rec.base_model, device, None if args.tiny else gpu_memory_gb)
            if loss_image(run_dir, out / "loss.png"):
                check.facts.setdefault("files", []).append("loss.png")
            from lab.views import samples

            shots = samples(run_dir)
            if shots:
                shutil.copyfile(shots[0][0], out / "sample.png")  # the newest sample
                check.facts.setdefault("files", []).append("sample.png")
        if run_dir is not None and write_log(run_dir, out / "train-log.txt"):
            check.facts.setdefault("files", []).append("train-log.txt")
    except Exception as e:  # a bug in this script: still write what is known
        check.fail("device check", e)
    if (out / "compare.png").is_file():
        check.facts.setdefault("files", []).insert(0, "compare.png")
    check.facts["files"] = ["summary.md", "summary.json", *check.facts.get("files", [])]
    text = summary_markdown(check, args, device)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({
        "passed": not check.failures, "status": (check.facts.get("job") or {}).get("state", "not run"),
        "device": device, "tiny": args.tiny, "steps": steps, "resolution": resolution,
        "failures": check.failures, **check.facts,
        "work_dir": str(work) if args.keep_work or args.work else None}, indent=1, default=str) + "\n")
    say("")
    say(text)
    if not args.keep_work and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    if check.failures:
        for line in check.failures:
            print(f"failed: {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""lab.views and lab.results on a finished tiny-model run (launched like the app launches it) and
on hand-written event logs: progress, loss curve, samples, log tail, summary; base vs fine-tuned
images, scores, downloads, and the rating written to a run log."""
from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_images
from lab.results import compare_images, downloads, evaluate, save_rating, scores, scores_chart_frame
from lab.views import clean_log, log_tail, loss_frame, progress, run_summary, samples
from trainer.events import emit
PROMPT = "a photo of sks dog"


@pytest.fixture(scope="module")
def finished_run(tiny_sd15, tmp_path_factory):
    """A 4-step LoRA run on the tiny model through trainer.launch, samples at steps 2 and 4."""
    from trainer.config import TrainConfig
    from trainer.launch import launch

    root = tmp_path_factory.mktemp("views")
    make_images(root / "data", 4)
    cfg = TrainConfig(base_model=str(tiny_sd15), data_dir=str(root / "data"), output_dir=str(root / "run"),
                      resolution=64, max_train_steps=4, learning_rate=1e-2, checkpointing_steps=0,
                      validation_steps=2, validation_prompts=[PROMPT], validation_inference_steps=2)
    job = launch(cfg, gpus=0)
    code = job.wait(timeout=400)
    assert code == 0, (root / "run" / "train.log").read_text()[-3000:]
    return root / "run"


# --- views on a finished run --------------------------------------------------------------------------------
@pytest.mark.slow
def test_progress_loss_samples_log_and_summary(finished_run):
    p = progress(finished_run)
    assert p["status"] == "completed" and p["fraction"] == 1.0
    assert p["step"] == 4 and p["max_steps"] == 4 and p["eta_s"] == 0.0 and p["sec_per_step"] > 0
    assert p["message"] == "completed: 4 steps"

    df = loss_frame(finished_run)
    assert list(df.columns) == ["step", "loss", "smoothed"]
    assert df["step"].tolist() == [1, 2, 3, 4] and np.isfinite(df["loss"]).all()
    assert df["smoothed"].iloc[0] == df["loss"].iloc[0]

    shots = samples(finished_run)
    assert [c for _, c in shots] == [f"step 4: {PROMPT}", f"step 2: {PROMPT}"]  # newest first
    for path, _ in shots:
        assert Path(path).is_file() and Path(path).is_relative_to((finished_run / "samples").resolve())

    tail = log_tail(finished_run, n=40)
    assert tail and "\r" not in tail and "\x1b" not in tail
    assert "completed: " in tail  # the CLI's last words
    assert any(line.startswith("lora: 100%") for line in tail.splitlines())  # tqdm's final state only
    assert len(log_tail(finished_run, n=2).splitlines()) == 2

    s = run_summary(finished_run)
    assert s["status"] == "completed" and s["method"] == "lora" and s["steps_done"] == 4 and s["max_steps"] == 4
    assert s["demo"] and s["device"] == "cpu" and s["samples"] == 2 and s["attempts"] == 1
    assert "output/pytorch_lora_weights.safetensors" in s["outputs"] and s["final_loss"] > 0
    assert s["duration_s"] > 0 and s["error"] is None


# --- results on a finished run ------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_images_base_vs_fine_tuned_same_seeds_cached(finished_run):
    pairs = compare_images(finished_run, seeds=(0, 1))
    assert [c for _, c in pairs] == [f"base · seed 0 · {PROMPT}", f"fine-tuned · seed 0 · {PROMPT}",
                                     f"base · seed 1 · {PROMPT}", f"fine-tuned · seed 1 · {PROMPT}"]
    arrays = []
    for path, _ in pairs:
        p = Path(path)
        assert p.parent == finished_run / "compare" and p.suffix == ".png"
        with Image.open(p) as im:
            assert im.size == (64, 64)
            arrays.append(np.asarray(im, dtype=np.float32))
    base0, tuned0, base1, _ = arrays
    assert np.abs(base0 - base1).mean() > 1.0   # another seed, another picture
    assert np.abs(base0 - tuned0).mean() > 0.5  # the LoRA changed the model's output
    mtimes = [Path(p).stat().st_mtime_ns for p, _ in pairs]
    assert compare_images(finished_run, seeds=(0, 1)) == pairs
    assert [Path(p).stat().st_mtime_ns for p, _ in pairs] == mtimes  # read from the cache, not redrawn
    other = compare_images(finished_run, prompts=["a dog on the moon"], seeds=[0])
    assert len(other) == 2 and other[0][0] not in {p for p, _ in pairs}
    with pytest.raises(ValueError, match="seeds"):
        compare_images(finished_run, seeds=(-1,))
    with pytest.raises(ValueError, match="prompts is empty"):
        compare_images(finished_run, prompts=["  "])


@pytest.mark.slow
def test_downloads_and_rating_of_a_lora_run(finished_run, tmp_path):
    files = [Path(f) for f in downloads(finished_run)]
    names = [f.name for f in files]
    assert names == ["pytorch_lora_weights.safetensors", "run_kohya.safetensors", "config.json"]
    assert all(f.is_file() and f.is_relative_to(finished_run) for f in files)

    from advisor.runlog.store import RunLog

    with RunLog(tmp_path / "log.sqlite") as log:
        with pytest.raises(ValueError, match="flexibility"):
            save_rating(finished_run, 4, 6, 3, runlog=log)
        assert len(log) == 0  # a bad rating writes nothing
        summary = save_rating(finished_run, "4", 3.0, 5, note="  looks like my dog  ", runlog=log)
        assert summary["id"] == "run" and summary["status"] == "completed" and summary["method"] == "lora"
        assert summary["rating"] == {"accuracy": 4, "flexibility": 3, "preservation": 5, "note": "looks like my dog"}
        record = log.get("run")
        assert record.rating_accuracy == 4 and record.steps_done == 4
    # a path to a log works too, and the rating can be changed
    summary = save_rating(finished_run, 2, 2, 2, runlog=tmp_path / "log.sqlite")
    assert summary["rating"]["accuracy"] == 2 and summary["rating"]["note"] == "looks like my dog"


def test_compare_needs_outputs(tmp_path):
    from trainer.config import TrainConfig

    TrainConfig(output_dir=str(tmp_path)).save(tmp_path / "config.json")
    with pytest.raises(ValueError, match="no outputs yet"):
        compare_images(tmp_path)


# --- scores ----------------------------------------------------------------------------------------------------
def test_scores_and_evaluation_degrade_gracefully(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    missing = scores(run)
    assert missing["scores"] is None and "Not scored yet" in missing["message"]
    assert scores_chart_frame(missing).empty

    def fake_evaluate_run(run_dir):
        metrics = {"accuracy": {"score": 3.5, "dino": 0.61}, "flexibility": {"score": 4},
                   "preservation": {"score": 7}}  # out of range: not shown as a score
        (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    got = evaluate(run, evaluator=fake_evaluate_run)
    assert got["scores"] == {"accuracy": 3.5, "flexibility": 4.0, "preservation": None}
    assert got["metrics"]["accuracy"]["dino"] == 0.61 and "Not scored: preservation" in got["message"]
    frame = scores_chart_frame(got)
    assert frame["factor"].tolist() == ["accuracy", "flexibility"] and frame["score"].tolist() == [3.5, 4.0]
    bare = scores_chart_frame({"accuracy": 2, "preservation": {"score": 5}})
    assert bare["factor"].tolist() == ["accuracy", "preservation"]

    def broken(run_dir):
        raise RuntimeError("CUDA out of memory")

    failed = evaluate(run, evaluator=broken)
    assert failed["message"] == "Evaluation failed: RuntimeError: CUDA out of memory"
    assert failed["scores"]["accuracy"] == 3.5  # the earlier scores are still shown

    monkeypatch.setitem(sys.modules, "trainer.evaluate", None)  # as if the module were not installed
    absent = evaluate(run)
    assert "Automatic scoring is not available here" in absent["message"]

    (run / "metrics.json").write_text("{broken")
    assert scores(run)["scores"] is None and "cannot be read" in scores(run)["message"]


# --- downloads of a pipeline folder ----------------------------------------------------------------------------
def test_downloads_zip_a_pipeline_folder_lazily(tmp_path):
    run = tmp_path / "db-run"
    out = run / "output"
    (out / "unet").mkdir(parents=True)
    (out / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (out / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(os.urandom(2048))
    (run / "config.json").write_text("{}")
    assert downloads(tmp_path / "nothing") == []
    files = downloads(run)
    zpath = Path(files[0])
    assert zpath == run / "downloads" / "db-run-diffusers.zip" and files[1:] == [str(run / "config.json")]
    with zipfile.ZipFile(zpath) as zf:
        assert sorted(zf.namelist()) == ["db-run/model_index.json", "db-run/unet/diffusion_pytorch_model.safetensors"]
        assert zf.getinfo("db-run/unet/diffusion_pytorch_model.safetensors").compress_type == zipfile.ZIP_STORED
        assert zf.read("db-run/unet/diffusion_pytorch_model.safetensors") == \
            (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    made = zpath.stat().st_mtime_ns
    assert downloads(run) == files and zpath.stat().st_mtime_ns == made  # not zipped again
    time.sleep(0.05)
    (out / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(os.urandom(4096))  # outputs changed
    downloads(run)
    with zipfile.ZipFile(zpath) as zf:
        assert zf.getinfo("db-run/unet/diffusion_pytorch_model.safetensors").file_size == 4096
    assert not list(run.rglob("*.tmp"))


# --- views on hand-written event logs ---------------------------------------------------------------------------
def test_progress_while_running_and_after_a_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert progress(run)["status"] == "waiting" and progress(run)["fraction"] == 0.0
    (run / "queued").write_text("{}")
    assert progress(run)["status"] == "queued"
    (run / "queued").unlink()  # the lab removes it when it launches the run
    emit(run, "start", 0, pid=os.getpid(), max_train_steps=10)
    emit(run, "status", 0, phase="loading_model", message="loading tiny")
    p = progress(run)
    assert p["status"] == "running" and p["message"] == "loading tiny" and p["eta_s"] is None
    emit(run, "step", 1, loss=0.5, sec_per_step=2.0, eta_s=18.0)
    emit(run, "step", 2, loss=0.4, sec_per_step=2.0, eta_s=16.0)
    p = progress(run)
    assert p["step"] == 2 and p["fraction"] == 0.2 and p["eta_s"] == 16.0
    assert p["message"] == "step 2/10, loss 0.4000, about 16 s left"
    emit(run, "checkpoint", 2, path="checkpoints/checkpoint-2", reason="stop")
    emit(run, "end", 2, status="stopped")
    assert progress(run)["message"] == "stopped at step 2; a checkpoint was saved"
    (run / "queued").write_text("{}")  # waiting to be resumed
    assert progress(run)["status"] == "queued" and progress(run)["step"] == 2
    (run / "queued").unlink()
    time.sleep(0.01)
    (run / "job.json").write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))  # relaunched
    p = progress(run)
    assert p["status"] == "running" and p["message"] == "starting" and p["eta_s"] is None and p["step"] == 2
    # resumed: before its first step the bar stays at the checkpoint, not at zero
    emit(run, "start", 0, pid=os.getpid(), max_train_steps=10, resume="latest")
    emit(run, "status", 2, phase="resume", message="resumed from checkpoint-2 at step 2")
    p = progress(run)
    assert p["status"] == "running" and p["step"] == 2 and p["message"] == "resumed from checkpoint-2 at step 2"
    emit(run, "step", 3, loss=float("nan"), sec_per_step=2.0, eta_s=14.0)
    emit(run, "end", 3, status="failed", error="loss became nan at step 3")
    p = progress(run)
    assert p["status"] == "failed" and p["message"] == "failed at step 3: loss became nan at step 3"
    df = loss_frame(run)
    assert df["step"].tolist() == [1, 2] and df["loss"].tolist() == [0.5, 0.4]  # NaN left out


def test_loss_frame_keeps_the_newest_value_per_step(tmp_path):
    for step, loss in [(1, 1.0), (2, 0.8), (3, 0.6), (2, 0.7), (3, 0.5), (4, 0.4)]:  # resumed from step 1
        emit(tmp_path, "step", step, loss=loss)
    df = loss_frame(tmp_path)
    assert df["step"].tolist() == [1, 2, 3, 4] and df["loss"].tolist() == [1.0, 0.7, 0.5, 0.4]
    assert df["smoothed"].is_monotonic_decreasing
    empty = loss_frame(tmp_path / "nothing")
    assert empty.empty and list(empty.columns) == ["step", "loss", "smoothed"]


def test_samples_never_leave_the_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "samples" / "step-000002").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(run / "samples" / "step-000002" / "0.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    (run / "samples" / "step-000005").mkdir()
    Image.new("RGB", (8, 8)).save(run / "samples" / "step-000005" / "0.png")  # no event: still shown
    emit(run, "sample", 2, paths=["samples/step-000002/0.png", "../secret.png", "/etc/passwd",
                                  "samples/../../secret.png", "samples/step-000002/missing.png"],
         prompts=["p0", "p1", "p2", "p3", "p4"])
    got = samples(run)
    assert [Path(p).name for p, _ in got] == ["0.png", "0.png"]
    assert [c for _, c in got] == ["step 2: p0", "step 5"]
    assert all(Path(p).is_relative_to((run / "samples").resolve()) for p, _ in got)


def test_log_cleaning_and_tail(tmp_path):
    raw = ("plain line\n"
           "\x1b[31mred text\x1b[0m\n"
           "lora:   0%|   | 0/3\rlora:  33%|#  | 1/3\rlora: 100%|###| 3/3\n"
           "\x1b]0;window title\x07title gone\n"
           "bell\x07 and nul\x00 removed\r\n")
    assert clean_log(raw).splitlines() == ["plain line", "red text", "lora: 100%|###| 3/3", "title gone",
                                           "bell and nul removed"]
    (tmp_path / "train.log").write_text(raw + "\n\n")
    assert log_tail(tmp_path, n=2) == "title gone\nbell and nul removed"
    assert log_tail(tmp_path / "none") == ""
    with pytest.raises(ValueError, match="n="):
        log_tail(tmp_path, n=0)
    big = "x" * 100 + "\n" + "".join(f"line {i}\n" for i in range(20000))
    (tmp_path / "train.log").write_text(big)
    assert log_tail(tmp_path, n=3) == "line 19997\nline 19998\nline 19999"


# --- import hygiene --------------------------------------------------------------------------------------------
def test_lab_imports_neither_torch_nor_gradio():
    import subprocess

    root = Path(__file__).resolve().parents[2]
    code = ("import sys; import lab, lab.paths, lab.uploads, lab.datasets, lab.jobs, lab.views, lab.results; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'gradio') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for path in (root / "lab").rglob("*.py"):  # not even inside a function: the lab is UI-free
        assert "gradio" not in _imported(path), path
    for package in ("advisor", "trainer"):   # and the dependency points one way only
        for path in (root / package).rglob("*.py"):
            assert "lab" not in _imported(path), path


def _imported(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names

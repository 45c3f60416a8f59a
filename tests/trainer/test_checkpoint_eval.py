"""Scores along a run on the tiny model: every checkpoint scored after the run or during it, the
early stop on a planted score curve, the reloaded checkpoint drawing what the training model drew,
and the export of the kept checkpoint in the method's output formats."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

import trainer.checkpoint_eval as checkpoint_eval
from helpers import fast_config, make_images, run_cli
from trainer.checkpoint_eval import CheckpointModel, export_checkpoint, score_saved_checkpoints
from trainer.checkpoint_scores import CHECKPOINT_SCORES_FILE, read_checkpoint_scores, read_kept
from trainer.checkpoints import checkpoint_dirs
from trainer.config import ConfigError
from trainer.evaluate import EvalError
from trainer.events import read_events
from trainer.loop import train
from trainer.vocabulary import FACTORS


@pytest.fixture
def cheap_scoring(monkeypatch):
    """One seed and two denoising steps per image: the same code path, a fraction of the time."""
    monkeypatch.setattr(checkpoint_eval, "SCORING_SEEDS", 1)
    monkeypatch.setattr(checkpoint_eval, "default_steps", lambda resolution: 2)


def _config(model, root: Path, **overrides):
    make_images(root / "data", 3)
    values = dict(max_train_steps=4, checkpointing_steps=2, checkpoints_total_limit=0,
                  validation_prompts=["a sks dog on the moon"], class_prompt="a photo of a dog")
    values.update(overrides)
    return fast_config(model, root / "data", root / "run", **values)


def test_every_checkpoint_is_scored_after_the_run(tiny_sd15, tmp_path, cheap_scoring):
    cfg = _config(tiny_sd15, tmp_path, score_checkpoints="after")
    assert train(cfg, progress=False) == "completed"
    run = Path(cfg.output_dir)
    scores, info = read_checkpoint_scores(run)
    assert [s.step for s in scores] == [2, 4] == [s for s, _ in checkpoint_dirs(run / "checkpoints")]
    for s in scores:
        assert set(s.scores) == set(FACTORS) and all(1 <= v <= 5 for v in s.scores.values())
        assert s.raw["preservation"]["ssim_base_vs_tuned"] is not None and s.seconds > 0
        with Image.open(run / s.grid) as grid:   # subject, 3 flexibility, 2 class prompts: one row each
            assert grid.format == "PNG" and grid.height == 6 * 128
    assert (run / info["base_grid"]).is_file() and info["seeds"] == [0] and info["steps"] == 2
    events = read_events(run)
    kinds = [e["kind"] for e in events]
    end = kinds.index("end")
    assert [e["step"] for e in events[end:] if e["kind"] == "checkpoint_eval"] == [2, 4]   # after the run
    assert [e["message"] for e in events[end:] if e["kind"] == "status"] == [
        "scoring checkpoint 1 of 2 (step 2)", "scoring checkpoint 2 of 2 (step 4)"]
    # scoring again scores nothing new: the file already holds both, made with the same prompts
    before = (run / CHECKPOINT_SCORES_FILE).read_text()
    assert [s.step for s in score_saved_checkpoints(run)] == [2, 4]
    assert (run / CHECKPOINT_SCORES_FILE).read_text() == before


def _planted(monkeypatch, accuracy, preservation):
    """compute_metrics returns the next planted scores at each call, as the real one shapes them."""
    calls = iter(zip(accuracy, preservation))

    def planted(images, prompts, train_images, encoders, notes):
        a, p = next(calls)
        return {f: {"score": v, "method": "planted", "proxy": {}} for f, v in
                (("accuracy", a), ("flexibility", 3.0), ("preservation", p))}
    monkeypatch.setattr(checkpoint_eval, "compute_metrics", planted)


def test_early_stop_on_a_planted_curve_stops_when_accuracy_stalls_and_preservation_falls(
        tiny_sd15, tmp_path, cheap_scoring, monkeypatch):
    _planted(monkeypatch, accuracy=[3.0, 3.1, 3.0, 3.2, 3.2], preservation=[4.5, 4.0, 3.5, 3.0, 2.5])
    cfg = _config(tiny_sd15, tmp_path, max_train_steps=10, score_checkpoints="during", early_stop_patience=2)
    assert train(cfg, progress=False) == "completed"
    events = read_events(cfg.output_dir)
    end = [e for e in events if e["kind"] == "end"][-1]
    assert end["step"] == 6 and end["status"] == "completed"
    assert "since step 2" in end["early_stop"] and "preservation fell from 4.5 to 3.5" in end["early_stop"]
    assert [e["step"] for e in events if e["kind"] == "checkpoint_eval"] == [2, 4, 6]
    assert any(e.get("phase") == "early_stop" for e in events)
    assert (Path(cfg.output_dir) / "output" / "pytorch_lora_weights.safetensors").is_file()


def test_early_stop_does_not_fire_while_accuracy_rises(tiny_sd15, tmp_path, cheap_scoring, monkeypatch):
    _planted(monkeypatch, accuracy=[2.0, 2.5, 3.0, 3.5, 4.0], preservation=[4.5, 4.0, 3.5, 3.0, 2.5])
    cfg = _config(tiny_sd15, tmp_path, max_train_steps=10, score_checkpoints="during", early_stop_patience=2)
    assert train(cfg, progress=False) == "completed"
    events = read_events(cfg.output_dir)
    end = [e for e in events if e["kind"] == "end"][-1]
    assert end["step"] == 10 and "early_stop" not in end
    assert [e["step"] for e in events if e["kind"] == "checkpoint_eval"] == [2, 4, 6, 8, 10]


def test_a_scoring_failure_during_training_ends_scoring_not_training(tiny_sd15, tmp_path, cheap_scoring, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")
    monkeypatch.setattr(checkpoint_eval, "compute_metrics", broken)
    cfg = _config(tiny_sd15, tmp_path, score_checkpoints="during")
    assert train(cfg, progress=False) == "completed"
    failed = [e for e in read_events(cfg.output_dir) if e["kind"] == "checkpoint_eval"]
    assert len(failed) == 1 and "encoder exploded" in failed[0]["error"]


@pytest.mark.slow
@pytest.mark.parametrize("method,overrides", [
    ("lora", {"train_text_encoder": True}),
    ("lora", {"cache_text_encoder_outputs": True}),   # both drawn from embeddings, the text encoders away
    ("full_finetune", {"use_ema": True, "learning_rate": 1e-3}),
    ("textual_inversion", {"instance_prompt": "a photo of <sks>", "learning_rate": 1e-1, "class_prompt": ""}),
])
def test_a_reloaded_checkpoint_scores_as_the_training_model_did(tiny_sd15, tmp_path, cheap_scoring, method, overrides):
    """Scored during the run from the live modules, then again from the checkpoint folders on the
    base model set up afresh: the same numbers, so both paths score the same weights."""
    cfg = _config(tiny_sd15, tmp_path, method=method, score_checkpoints="during", **overrides)
    assert train(cfg, progress=False) == "completed"
    during, _ = read_checkpoint_scores(cfg.output_dir)
    again = tmp_path / "again"
    shutil.copytree(cfg.output_dir, again)
    (again / CHECKPOINT_SCORES_FILE).unlink()
    after = score_saved_checkpoints(again)
    assert [s.step for s in after] == [s.step for s in during] == [2, 4]
    for a, b in zip(during, after):
        assert a.scores == b.scores
        for factor in FACTORS:
            for key, value in a.raw[factor].items():
                assert b.raw[factor][key] == pytest.approx(value, abs=2e-3), (factor, key)


def test_export_writes_the_methods_formats_and_records_the_kept_step(tiny_sd15, tmp_path, cheap_scoring):
    from safetensors.torch import load_file

    cfg = _config(tiny_sd15, tmp_path, score_checkpoints="after")
    assert train(cfg, progress=False) == "completed"
    run = Path(cfg.output_dir)
    kept = export_checkpoint(run, 2, {"accuracy": 1, "flexibility": 1, "preservation": 5})
    assert kept.step == 2 and kept.steps_done == 4 and kept.export_dir == "exports/checkpoint-2"
    names = sorted(Path(p).name for p in kept.outputs)
    assert names == ["pytorch_lora_weights.safetensors", "run-step2_kohya.safetensors"]
    assert read_kept(run) == kept and kept.weights["preservation"] > kept.weights["accuracy"]
    assert [e["step"] for e in read_events(run) if e["kind"] == "kept"] == [2]
    # the last checkpoint exported is the run's own output, tensor for tensor
    last = export_checkpoint(run, 4)
    exported = load_file(str(run / "exports" / "checkpoint-4" / "pytorch_lora_weights.safetensors"))
    output = load_file(str(run / "output" / "pytorch_lora_weights.safetensors"))
    assert exported.keys() == output.keys() and all((exported[k] == output[k]).all() for k in output)
    early = load_file(str(run / "exports" / "checkpoint-2" / "pytorch_lora_weights.safetensors"))
    assert any(not (early[k] == output[k]).all() for k in output)
    assert read_kept(run).step == 4 == last.step
    with pytest.raises(EvalError, match=r"no checkpoint at step 3 \(checkpoints: 2, 4\)"):
        export_checkpoint(run, 3)


def test_a_checkpoint_holding_a_pickle_is_refused(tiny_sd15, tmp_path):
    cfg = _config(tiny_sd15, tmp_path, max_train_steps=2)
    assert train(cfg, progress=False) == "completed"
    folder = checkpoint_dirs(Path(cfg.output_dir) / "checkpoints")[-1][1]
    (folder / "custom_checkpoint_0.pkl").write_bytes(b"\x80\x04K\x01.")
    model = CheckpointModel(cfg, "cpu")
    with pytest.raises(ConfigError, match="pickle files"):
        model.load(folder)


@pytest.mark.slow
def test_cli_scores_and_exports_with_one_line_errors(tiny_sd15, tmp_path):
    cfg = _config(tiny_sd15, tmp_path, max_train_steps=2)
    assert train(cfg, progress=False) == "completed"
    run = cfg.output_dir
    scored = run_cli("score-checkpoints", run, "--num-images", "1", "--steps", "2", "--encoders", "clip=none,dino=none")
    assert scored.returncode == 0, scored.stderr
    assert "step 2: accuracy" in scored.stdout and json.loads(Path(run, CHECKPOINT_SCORES_FILE).read_text())
    exported = run_cli("export-checkpoint", run, "--weights", "accuracy=5,preservation=1")
    assert exported.returncode == 0, exported.stderr
    assert "Step 2 scores best" in exported.stderr and "pytorch_lora_weights.safetensors" in exported.stdout
    for args, message in ((("export-checkpoint", run, "7"), "no checkpoint at step 7"),
                          (("export-checkpoint", run, "--weights", "beauty=3"), "'beauty' is not one of"),
                          (("score-checkpoints", str(tmp_path / "nothing")), "has no config.json")):
        bad = run_cli(*args)
        assert bad.returncode == 2 and message in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_cached_text_outputs_are_scored_without_the_text_encoders(tiny_sd15, tmp_path, cheap_scoring, monkeypatch):
    """A run that cached its text outputs is scored as it trained: every scoring call (the base images
    and each checkpoint, during the run and after it) draws from embeddings made before the model was
    placed, never bringing the text encoders back beside it."""
    import trainer.samples as samples

    brought: list[bool] = []
    original = samples.inference_pipeline

    def spy(*args, text_encoders=True, **kwargs):
        brought.append(text_encoders)
        return original(*args, text_encoders=text_encoders, **kwargs)

    monkeypatch.setattr(samples, "inference_pipeline", spy)
    cfg = _config(tiny_sd15, tmp_path, score_checkpoints="during", cache_text_encoder_outputs=True)
    assert train(cfg, progress=False) == "completed"
    assert [s.step for s in read_checkpoint_scores(cfg.output_dir)[0]] == [2, 4]
    (Path(cfg.output_dir) / CHECKPOINT_SCORES_FILE).unlink()
    assert [s.step for s in score_saved_checkpoints(cfg.output_dir)] == [2, 4]
    assert len(brought) >= 6 and not any(brought)   # samples, base and 2 checkpoints during; base and 2 after

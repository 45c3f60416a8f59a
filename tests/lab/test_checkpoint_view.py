"""lab.checkpoint_view on a real tiny run: the scores against steps, each checkpoint's grid, the
best checkpoint by the user's weights with why, and exporting it into the run log."""
from __future__ import annotations

from pathlib import Path

import pytest

import trainer.checkpoint_eval as checkpoint_eval
from advisor.profile import Profile
from helpers import fast_config, make_images
from lab import checkpoint_view
from trainer.checkpoint_scores import CheckpointScore, read_checkpoint_scores, read_kept, write_checkpoint_scores
from trainer.loop import train


@pytest.fixture(scope="module")
def scored_run(tiny_sd15, tmp_path_factory) -> Path:
    """A 4-step tiny LoRA run, its checkpoints at 2 and 4 scored after the run (cheaply)."""
    import torch

    root = tmp_path_factory.mktemp("ckview")
    make_images(root / "data", 3)
    cfg = fast_config(tiny_sd15, root / "data", root / "run", max_train_steps=4, checkpointing_steps=2,
                      checkpoints_total_limit=0, score_checkpoints="after", class_prompt="a photo of a dog")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint_eval, "SCORING_SEEDS", 1)
        mp.setattr(checkpoint_eval, "default_steps", lambda resolution: 2)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert train(cfg, progress=False) == "completed"
        finally:
            torch.set_num_threads(threads)
    return root / "run"


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def _plant(run: Path, rows) -> None:
    """Replace the scores with a planted curve over the same checkpoints and grids."""
    real, info = read_checkpoint_scores(run)
    grids = {s.step: s.grid for s in real}
    write_checkpoint_scores(run, [CheckpointScore(step, {"accuracy": a, "flexibility": f, "preservation": p},
                                                  grids[step]) for step, a, f, p in rows], info)


def test_the_view_plots_scores_against_steps_and_shows_each_grid(scored_run):
    shown = checkpoint_view.checkpoint_view(scored_run, None)
    frame = shown["frame"]
    assert sorted(set(frame["step"])) == [2, 4] and set(frame["factor"]) == {"accuracy", "flexibility", "preservation"}
    assert len(frame) == 6 and frame["score"].between(1, 5).all()
    assert shown["steps"] == [2, 4] and shown["best"] in (2, 4)
    paths = [p for p, _ in shown["grids"]]
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)     # base, then one per checkpoint
    assert shown["grids"][0][1].startswith("base model") and shown["grids"][1][1].startswith("step 2 · accuracy")
    md = shown["markdown"]
    assert f"**Best for you: the checkpoint at step {shown['best']}** (by equal weights (no interview))" in md
    assert "Scored without CLIP and DINO: weight-free stand-ins" in md     # the tests have no encoders
    assert shown["stamp"] == checkpoint_view.stamp(scored_run)


def test_the_best_checkpoint_follows_the_interviews_weights(scored_run, tmp_path):
    run = _copy(scored_run, tmp_path / "run")
    _plant(run, [(2, 3.0, 3.5, 4.8), (4, 4.4, 3.0, 2.6)])
    likeness = Profile(subject_type="animal", accuracy=5, flexibility=2, preservation=1)
    keep_base = Profile(subject_type="animal", accuracy=2, flexibility=2, preservation=5)
    assert checkpoint_view.checkpoint_view(run, likeness)["best"] == 4
    shown = checkpoint_view.checkpoint_view(run, keep_base)
    assert shown["best"] == 2
    assert "by your weights from the interview" in shown["markdown"]
    assert "preservation weighed most" in shown["markdown"] and "preservation fell to 2.6" in shown["markdown"]
    # after a reload the page holds no profile: the one saved with the run decides
    (run / "profile.json").write_text(__import__("json").dumps(keep_base.to_dict()))
    assert checkpoint_view.checkpoint_view(run, None)["best"] == 2
    (run / "profile.json").write_text("{broken")
    assert checkpoint_view.checkpoint_view(run, None)["best"] in (2, 4)    # equal weights, no traceback


def test_export_records_the_kept_checkpoint_in_the_run_log(scored_run, tmp_path):
    from advisor.runlog.store import RunLog

    run = _copy(scored_run, tmp_path / "run")
    message, files = checkpoint_view.export_kept(run, "2", None, runlog=tmp_path / "log.sqlite")
    assert message.startswith("Exported the checkpoint at step 2 (2 files)")
    assert sorted(Path(f).name for f in files) == ["pytorch_lora_weights.safetensors", "run-step2_kohya.safetensors"]
    assert read_kept(run).step == 2
    assert "Kept: step 2 of 4" in checkpoint_view.checkpoint_view(run, None)["markdown"]
    with RunLog(tmp_path / "log.sqlite") as log:
        assert [r["id"] for r in log.list_runs()] == ["run"]


@pytest.mark.parametrize("step,message", [("5", "no checkpoint at step 5"), ("../../etc", "Pick a checkpoint step"),
                                          (None, "Pick a checkpoint step"), (True, "Pick a checkpoint step"),
                                          (2.5, "Pick a checkpoint step")])
def test_export_of_a_bad_step_is_one_line_and_writes_nothing(scored_run, tmp_path, step, message):
    run = _copy(scored_run, tmp_path / "run")
    text, files = checkpoint_view.export_kept(run, step, None, runlog=tmp_path / "log.sqlite")
    assert text.startswith("**Not exported.**") and message in text and "\n" not in text and files == []
    assert read_kept(run) is None and not (run / "exports").exists()


def test_a_run_without_checkpoints_or_folder_shows_an_empty_view(tmp_path):
    assert checkpoint_view.checkpoint_view(None, None)["grids"] == []
    assert checkpoint_view.checkpoint_view(tmp_path / "missing", None)["steps"] == []
    (tmp_path / "run").mkdir()
    shown = checkpoint_view.checkpoint_view(tmp_path / "run", None)
    assert shown["markdown"] == "" and shown["best"] is None and shown["frame"].empty

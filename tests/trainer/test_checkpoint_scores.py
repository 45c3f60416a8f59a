"""Choosing the best checkpoint by the user's factor weights, and when to stop early, on planted
score curves; the files' readers on junk. Stdlib only, no model."""
import json
import re

import pytest

from trainer.checkpoint_scores import (CHECKPOINT_SCORES_FILE, KEPT_FILE, CheckpointScore, KeptCheckpoint,
                                       choose_checkpoint, early_stop_reason, normalised_weights,
                                       parse_checkpoint_scores, read_checkpoint_scores, read_kept,
                                       write_checkpoint_scores, write_kept)
from trainer.config import ConfigError, TrainConfig


def curve(rows):
    """[(step, accuracy, flexibility, preservation), ...] -> CheckpointScores."""
    return [CheckpointScore(step, {"accuracy": a, "flexibility": f, "preservation": p}) for step, a, f, p in rows]


# Likeness rises to a peak at step 600 and then creeps up a little more while the base bleeds:
# the shape kohya_ss #2701 reports (likeness peaks, then the model degrades).
PLANTED = curve([(200, 2.0, 4.0, 4.8), (400, 3.4, 3.8, 4.5), (600, 4.2, 3.6, 4.1),
                 (800, 4.5, 3.4, 3.6), (1000, 4.5, 2.6, 2.4), (1200, 4.6, 2.2, 1.8)])


def test_the_choice_follows_the_users_factor_weights():
    likeness = choose_checkpoint(PLANTED, {"accuracy": 5, "flexibility": 1, "preservation": 1})
    balanced = choose_checkpoint(PLANTED, {"accuracy": 3, "flexibility": 3, "preservation": 3})
    keep_base = choose_checkpoint(PLANTED, {"accuracy": 1, "flexibility": 1, "preservation": 5})
    assert keep_base.step < balanced.step <= likeness.step
    assert (keep_base.step, balanced.step, likeness.step) == (200, 600, 800)
    # a person who cares nothing for preservation gets a later checkpoint than a balanced one
    assert choose_checkpoint(PLANTED, {"accuracy": 5, "flexibility": 1, "preservation": 0}).step > balanced.step
    assert "preservation weighed most" in keep_base.reason and "Step 200" in keep_base.reason
    assert "by the last step, 1200" in balanced.reason and "preservation fell to 1.8" in balanced.reason
    assert re.sub(r"\d\.\d", "", balanced.reason).count(".") == 1 and balanced.reason.endswith(".")  # one sentence


def test_the_choice_on_ties_no_scores_and_bad_weights():
    flat = curve([(100, 3.0, 3.0, 3.0), (200, 3.0, 3.0, 3.0)])
    assert choose_checkpoint(flat, None).step == 100       # equal: the earlier, less trained one
    assert choose_checkpoint([], {"accuracy": 1}) is None
    rising = curve([(100, 2.0, 3.0, 3.0), (200, 4.0, 3.0, 3.0)])
    last = choose_checkpoint(rising, None)
    assert last.step == 200 and "training longer may still help" in last.reason
    for junk in (None, {}, {"accuracy": -1}, {"accuracy": float("nan")}, {"accuracy": 0, "preservation": 0}):
        assert normalised_weights(junk) == pytest.approx(dict.fromkeys(("accuracy", "flexibility", "preservation"), 1 / 3))


def test_early_stop_triggers_when_accuracy_stalls_and_preservation_falls():
    reason = early_stop_reason(PLANTED, patience=2)
    assert reason is not None
    assert "for 2 checkpoints since step 800" in reason and "preservation fell from 3.6 to 1.8" in reason
    assert early_stop_reason(PLANTED[:5], patience=2) is None   # only one checkpoint since the peak
    assert early_stop_reason(PLANTED, patience=3) is None       # patience not used up


def test_early_stop_does_not_trigger_where_it_should_not():
    still_rising = curve([(100, 2.0, 3, 4.0), (200, 2.5, 3, 3.5), (300, 3.0, 3, 3.0), (400, 3.5, 3, 2.5)])
    assert early_stop_reason(still_rising, patience=2) is None       # accuracy keeps rising
    plateau_kept = curve([(100, 4.0, 3, 4.0), (200, 4.0, 3, 4.0), (300, 4.0, 3, 4.0), (400, 4.0, 3, 4.0)])
    assert early_stop_reason(plateau_kept, patience=2) is None       # stalled, but nothing is lost
    assert early_stop_reason(PLANTED, patience=0) is None            # off
    assert early_stop_reason([], patience=1) is None
    noisy = curve([(100, 3.0, 3, 4.0), (200, 3.05, 3, 3.95), (300, 3.08, 3, 3.92)])
    assert early_stop_reason(noisy, patience=2) is None              # a 0.05 wobble is no fall


def test_checkpoint_scores_file_round_trips_and_tolerates_junk(tmp_path):
    write_checkpoint_scores(tmp_path, PLANTED[::-1], {"seeds": [0, 1]})
    read, info = read_checkpoint_scores(tmp_path)
    assert [s.step for s in read] == [200, 400, 600, 800, 1000, 1200] and info["seeds"] == [0, 1]
    assert read[2].scores == PLANTED[2].scores
    junk = {"checkpoints": [{"step": 1, "accuracy": 9, "flexibility": 3, "preservation": 3},
                            {"step": True, "accuracy": 3, "flexibility": 3, "preservation": 3},
                            {"step": 5, "accuracy": 3, "flexibility": 3},
                            "nonsense", {"step": 7, "accuracy": 3, "flexibility": 3, "preservation": 3, "grid": 5}]}
    assert [s.step for s in parse_checkpoint_scores(junk)] == [7]
    assert parse_checkpoint_scores([1, 2]) == [] and parse_checkpoint_scores(None) == []
    (tmp_path / CHECKPOINT_SCORES_FILE).write_text("[" * 100_000)
    assert read_checkpoint_scores(tmp_path) == ([], {})
    assert read_checkpoint_scores(tmp_path / "missing") == ([], {})


def test_kept_file_round_trips_and_refuses_impossible_steps(tmp_path):
    kept = KeptCheckpoint(step=600, steps_done=1000, max_train_steps=1000, scores={"accuracy": 4.2},
                          weights={"accuracy": 0.5}, reason="why", export_dir="exports/checkpoint-600",
                          outputs=["exports/checkpoint-600/pytorch_lora_weights.safetensors"])
    write_kept(tmp_path, kept)
    back = read_kept(tmp_path)
    assert back == kept and back.fraction == 0.6
    for bad in ({"step": 1200, "steps_done": 1000, "max_train_steps": 1000},
                {"step": "600", "steps_done": 1000, "max_train_steps": 1000},
                {"step": 10, "steps_done": 0, "max_train_steps": 0}, [1], "x"):
        (tmp_path / KEPT_FILE).write_text(json.dumps(bad))
        assert read_kept(tmp_path) is None
    (tmp_path / KEPT_FILE).write_text("{not json")
    assert read_kept(tmp_path) is None


def test_config_checks_scoring_and_early_stop():
    TrainConfig(score_checkpoints="after", checkpoints_total_limit=0)
    TrainConfig(score_checkpoints="during", checkpoints_total_limit=0, early_stop_patience=2)
    with pytest.raises(ConfigError, match="score_checkpoints='sometimes'"):
        TrainConfig(score_checkpoints="sometimes")
    with pytest.raises(ConfigError, match="checkpoints_total_limit=0"):
        TrainConfig(score_checkpoints="after", checkpoints_total_limit=2)
    with pytest.raises(ConfigError, match="needs score_checkpoints='during'"):
        TrainConfig(score_checkpoints="after", checkpoints_total_limit=0, early_stop_patience=2)
    with pytest.raises(ConfigError, match="early_stop_patience=-1"):
        TrainConfig(early_stop_patience=-1)

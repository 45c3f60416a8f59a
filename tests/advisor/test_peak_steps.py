"""The kept checkpoint: the run log records its step, and the advisor moves the next plan's
steps toward where the user's similar runs peaked (advisor.learning.peak)."""
from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from advisor.learning.log_learner import DATA_K, LogLearner, learner_for_log
from advisor.learning.peak import PEAK_RANGE, load_kept
from advisor.profile import Profile
from advisor.recommendation.recommend import recommend
from advisor.recommendation.render import recommendation_markdown
from advisor.runlog.csvio import read_csv, write_csv
from advisor.runlog.importing import import_csv
from advisor.runlog.records import RunRecord, RunRecordError
from advisor.runlog.schema import MIGRATIONS, SCHEMA_VERSION
from advisor.runlog.store import RunLog
from trainer.checkpoint_scores import KEPT_FILE, KeptCheckpoint, write_kept

# A dog on a 24 GB card: the rules give DreamBooth-LoRA at the diffusers recipe, 500 steps of
# one image each, so 50 passes over the 10 images.
DOG = Profile(subject_type="animal", class_noun="dog", n_images=10, vram_gb=24, time_budget_min=240,
              base_model="sd15")   # the logged runs are SD 1.5 runs
RULES_STEPS = 500


def _canonical(rec) -> str:
    return json.dumps(rec.to_dict(), sort_keys=True)


def _kept_run(run_id, kept_step, steps_done=RULES_STEPS, *, profile=DOG, method=None, scores=None, **fields):
    """A finished run of the rules' plan for `profile` whose checkpoint at `kept_step` was kept."""
    rules = recommend(profile)
    hp = {k: v for k, v in rules.hyperparameters.items() if v is not None}
    hp.update(fields.pop("hp", {}))
    extra = dict(zip(("score_accuracy", "score_flexibility", "score_preservation"), scores)) if scores else {}
    return RunRecord(run_id=run_id, method=method or rules.method, base_model=profile.base_model or "sd15",
                     status=fields.pop("status", "completed"), hyperparameters=hp,
                     profile=profile.with_defaults()[0].to_dict(), steps_done=steps_done, kept_step=kept_step,
                     **extra, **fields)


def _steps(rec) -> int:
    return rec.hyperparameters["max_train_steps"]


# --------------------------------------------------------------------------- the run log
def test_a_v4_log_migrates_to_v5_and_keeps_its_rows(tmp_path):
    db = tmp_path / "v4.sqlite"
    conn = sqlite3.connect(db)
    for step in MIGRATIONS[:4]:
        step(conn)
    conn.execute("INSERT INTO runs (run_id, created_at, updated_at, source, method, base_model, status, steps_done,"
                 " rating_accuracy, rating_flexibility, rating_preservation, out_of_memory)"
                 " VALUES ('old', 1.0, 2.0, 'manual', 'lora', 'sd15', 'completed', 800, 4, 3, 5, 0)")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with RunLog(db) as log:
        assert log.schema_version() == SCHEMA_VERSION == 5
        old = log.get("old")
        assert (old.method, old.steps_done, old.rating_accuracy, old.out_of_memory, old.kept_step) == (
            "lora", 800, 4, False, None)
        log.upsert_run(RunRecord(run_id="old", kept_step=600))
        assert log.get("old").kept_step == 600 and log.get("old").rating_preservation == 5
    assert len(list(tmp_path.glob("v4.sqlite.v4-*.bak"))) == 1   # the copy from before the migration


def test_a_kept_step_must_be_a_whole_number_and_a_merged_row_still_reads_back(tmp_path):
    assert RunRecord(run_id="x", steps_done=500, kept_step=500).kept_step == 500
    for bad in (-1, 2.5, True, "300"):
        with pytest.raises(RunRecordError, match="kept_step"):
            RunRecord(run_id="x", steps_done=500, kept_step=bad)
    # the log merges columns from several imports: a kept step past the steps must not break reading
    with RunLog(tmp_path / "log.sqlite") as log:
        log.upsert_run(RunRecord(run_id="x", method="lora", steps_done=500))
        log.upsert_run(RunRecord(run_id="x", kept_step=600))
        assert (log.get("x").steps_done, log.get("x").kept_step) == (500, 600)


def _run_folder(root, name, steps=20):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    recommend(DOG).train_config.save(run_dir / "config.json")
    events = [{"t": 1.0, "kind": "start", "step": 0}]
    events += [{"t": 1.0 + s, "kind": "step", "step": s, "loss": 0.1} for s in range(1, steps + 1)]
    events.append({"t": 99.0, "kind": "end", "step": steps, "status": "completed"})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run_dir / "profile.json").write_text(json.dumps(DOG.with_defaults()[0].to_dict()))
    return run_dir


def test_a_kept_checkpoint_written_after_the_run_is_picked_up_on_the_next_sync(tmp_path):
    runs = tmp_path / "runs"
    run_dir = _run_folder(runs, "dog-1")
    with RunLog(tmp_path / "log.sqlite") as log:
        assert log.ingest_runs_folder(runs)[0].kept_step is None
        assert log.ingest_runs_folder(runs) == []          # nothing changed: not re-read
        write_kept(run_dir, KeptCheckpoint(step=15, steps_done=20, max_train_steps=20, reason="best likeness"))
        assert [r.kept_step for r in log.ingest_runs_folder(runs)] == [15]   # the file is in the stamp
        assert log.get("dog-1").kept_step == 15 and log.get("dog-1").note is None


@pytest.mark.parametrize("content,note", [
    ("{not json", f"{KEPT_FILE} is not valid JSON"),
    ("[15]", f"{KEPT_FILE} is not a JSON object"),
    (json.dumps({"step": "fifteen", "steps_done": 20, "max_train_steps": 20}), "no usable step"),
    # the file says 30 of 40, but the run's own events stop at step 20
    (json.dumps({"step": 30, "steps_done": 40, "max_train_steps": 40}), "must not be above steps_done (20)"),
])
def test_a_malformed_kept_file_is_noted_not_fatal(tmp_path, content, note):
    run_dir = _run_folder(tmp_path, "dog-1")
    (run_dir / KEPT_FILE).write_text(content)
    with RunLog(tmp_path / "log.sqlite") as log:
        record = log.ingest_run_dir(run_dir)
    assert record.kept_step is None and record.steps_done == 20
    assert note in record.note


def test_csv_carries_the_kept_step_and_drops_a_bad_one_with_a_note(tmp_path):
    path = tmp_path / "runs.csv"
    write_csv(path, [RunRecord(run_id="kept", method="lora", steps_done=800, kept_step=600)])
    (_, back, why), = list(read_csv(path))
    assert why is None and back.kept_step == 600

    rows = [["run_id", "method", "steps_done", "kept_step", "note"],
            ["fine", "lora", "800", "600.0", ""],
            ["words", "lora", "800", "many", "from my sheet"],
            ["negative", "lora", "800", "-5", ""],
            ["fraction", "lora", "800", "2.5", ""],
            ["past-the-end", "lora", "800", "900", ""],
            ["no-steps-done", "lora", "", "300", ""]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with RunLog(tmp_path / "log.sqlite") as log:
        report = import_csv(log, path)
        assert report.ok and len(report.imported) == 6     # a bad kept step never costs the run
        got = {r.run_id: (r.kept_step, r.note) for r in log.records()}
    assert got["fine"] == (600, None) and got["no-steps-done"] == (300, None)
    assert got["words"] == (None, "from my sheet; kept_step='many'; must be a whole number >= 0 (dropped)")
    assert got["negative"] == (None, "kept_step=-5; must be a whole number >= 0 (dropped)")
    assert got["fraction"][0] is None and "kept_step='2.5'" in got["fraction"][1]
    assert got["past-the-end"] == (None, "kept_step=900; must not be above steps_done (800) (dropped)")
    assert all("\n" not in (note or "") for _, note in got.values())


# --------------------------------------------------------------------------- the advisor learns
def test_similar_runs_that_kept_early_checkpoints_move_the_steps_and_the_card_says_so():
    rules = recommend(DOG)
    assert _steps(rules) == RULES_STEPS and rules.method == "dreambooth_lora"
    learner = LogLearner.fit([_kept_run("dog-1", 300), _kept_run("dog-2", 300)])
    rec = recommend(DOG, learner=learner)
    # 2 runs of the same method, subject and base model: w = 2 / (2 + 3) = 0.4 toward step 300
    w = 2 / (2 + DATA_K)
    assert _steps(rec) == round((RULES_STEPS + w * (300 - RULES_STEPS)) / 50) * 50 == 400
    assert rec.train_config.max_train_steps == 400
    assert rec.train_config.checkpointing_steps == rec.train_config.validation_steps == 100  # a quarter, as before
    sentence = rec.reasons[0]
    assert sentence == ("Steps 400 instead of the rules' 500: your 2 similar runs kept a checkpoint at about 60% of "
                        "their steps (step 300 of 500 in 2 runs), about 30 passes over their images where the rules' "
                        "plan makes 50 (weight 0.40 against the rules; your run log).")
    assert sentence in recommendation_markdown(rec.to_dict())
    assert not any("passes over 10 images, from OneTrainer" in r for r in rec.reasons)  # the rules' arithmetic went
    peak = rec.to_dict()["learned"]["peak"]
    assert (peak["rules_steps"], peak["steps"], peak["n_runs"], peak["weight"]) == (500, 400, 2, 0.4)
    # everything but the steps (and what follows them) is the rules' plan
    same = {k: v for k, v in rules.hyperparameters.items() if k not in ("max_train_steps", "validation_steps",
                                                                        "checkpointing_steps")}
    assert {k: rec.hyperparameters[k] for k in same} == same
    assert rec.estimates.minutes < rules.estimates.minutes


def test_more_runs_move_the_steps_further_toward_the_peak():
    moved = [_steps(recommend(DOG, learner=LogLearner.fit([_kept_run(f"dog-{i}", 200) for i in range(n)])))
             for n in (1, 3, 12)]
    assert RULES_STEPS > moved[0] > moved[1] > moved[2] >= 200
    assert moved[1] == 350   # 3 runs weigh as much as the rules: halfway from 500 to 200


def test_kept_runs_through_run_folders_reach_the_chat_learner(tmp_path):
    runs = tmp_path / "runs"
    for name in ("dog-1", "dog-2"):
        run_dir = _run_folder(runs, name, steps=RULES_STEPS)
        write_kept(run_dir, KeptCheckpoint(step=300, steps_done=RULES_STEPS, max_train_steps=RULES_STEPS))
    db = tmp_path / "log.sqlite"
    with RunLog(db) as log:
        log.sync(runs)
    learner, note = learner_for_log(db)
    assert note is None and learner is not None and learner.n_runs == 0   # nothing scored, but kept steps
    rec = recommend(DOG, learner=learner)
    assert _steps(rec) == 400 and rec.reasons[0].startswith("Steps 400 instead of the rules' 500")


def test_the_peak_scales_with_the_image_count_and_batch():
    # runs of 20 images at batch 2 kept step 300: 30 passes over their images, as 300 of one image over 10
    twenty = Profile(**{**DOG.to_dict(), "n_images": 20})
    hp = {"train_batch_size": 2, "gradient_accumulation_steps": 1, "max_train_steps": 1000}
    runs = [_kept_run(f"dog-{i}", 300, 1000, profile=twenty, method="dreambooth_lora", hp=hp) for i in range(2)]
    assert list(load_kept(runs)["passes"]) == [30.0, 30.0]
    assert _steps(recommend(DOG, learner=LogLearner.fit(runs))) == 400


def test_scored_and_timed_kept_runs_say_the_plan_started_from_the_kept_checkpoints():
    runs = [_kept_run(f"dog-{i}", 300, scores=(3.5, 3.5, 3.5), duration_s=1800.0) for i in range(4)]
    learner = LogLearner.fit(runs)
    assert learner.n_runs == learner.n_timed == 4
    rec = recommend(DOG, learner=learner)
    assert _steps(rec) == 400 and rec.reasons[0].startswith("Steps 400 instead of the rules' 500")
    assert "agrees with the rules and your kept checkpoints" in rec.reasons[1]
    assert rec.reasons[2].startswith("Your 4 logged run(s) took")   # the pace, for the plan at 400 steps
    assert rec.learned["time"]["minutes"] == rec.estimates.minutes


def test_no_kept_checkpoints_leave_the_steps_alone():
    scored = [_kept_run(f"dog-{i}", None, scores=(3.5, 3.0, 3.5)) for i in range(3)]
    rec = recommend(DOG, learner=LogLearner.fit(scored)).to_dict()
    assert rec["hyperparameters"]["max_train_steps"] == RULES_STEPS and "peak" not in rec["learned"]
    assert not any(r.startswith("Steps ") for r in rec["reasons"])


def test_kept_checkpoints_of_another_method_leave_the_recommendation_alone():
    runs = [_kept_run(f"lora-{i}", 100, method="lora") for i in range(5)]
    learner = LogLearner.fit(runs)
    assert len(learner.kept) == 5
    assert _canonical(recommend(DOG, learner=learner)) == _canonical(recommend(DOG))


def test_a_step_count_the_user_named_is_kept():
    named = Profile(**{**DOG.to_dict(), "settings": {"max_train_steps": 700}})
    learner = LogLearner.fit([_kept_run(f"dog-{i}", 200) for i in range(5)])
    rec = recommend(named, learner=learner)
    assert _steps(rec) == 700 and _canonical(rec) == _canonical(recommend(named))


def test_a_run_kept_at_its_last_step_does_not_pull_the_steps_down():
    # 300 of 300: its best was at the end, so perhaps later; it says nothing for fewer than 500
    assert _steps(recommend(DOG, learner=LogLearner.fit([_kept_run(f"dog-{i}", 300, 300) for i in range(4)]))) \
        == RULES_STEPS
    # 800 of 800 says "at least 800": that does pull up
    assert _steps(recommend(DOG, learner=LogLearner.fit([_kept_run(f"dog-{i}", 800, 800) for i in range(4)]))) \
        > RULES_STEPS


def test_the_move_is_clipped_and_held_within_the_time_budget():
    early = LogLearner.fit([_kept_run(f"dog-{i}", 10, 1000) for i in range(50)])
    rec = recommend(DOG, learner=early)
    assert _steps(rec) == round(PEAK_RANGE[0] * RULES_STEPS / 50) * 50
    assert "held at a quarter of the rules' count" in rec.reasons[0]

    tight = Profile(**{**DOG.to_dict(), "time_budget_min": 10})   # 500 steps take 9.5 of the 10 minutes
    rules = recommend(tight)
    late = LogLearner.fit([_kept_run(f"dog-{i}", 1000, 1000, profile=tight) for i in range(50)])
    rec = recommend(tight, learner=late)
    assert _steps(rules) <= _steps(rec) < PEAK_RANGE[1] * _steps(rules)
    assert rec.estimates.fits and rec.estimates.minutes <= 10
    assert "held at what fits your time budget" in rec.reasons[0]


def test_unusable_kept_runs_are_left_out_with_why():
    runs = [_kept_run("running", 300, status="running"),
            _kept_run("at-zero", 0),
            _kept_run("no-steps", 300, steps_done=None),
            _kept_run("past-the-end", 600, steps_done=500),
            RunRecord(run_id="no-images", method="dreambooth_lora", base_model="sd15", status="completed",
                      steps_done=500, kept_step=300),
            _kept_run("fine", 300)]
    learner = LogLearner.fit(runs)
    assert [r["run_id"] for r in learner.kept] == ["fine"]
    assert dict(learner.kept_dropped) == {
        "running": "still running: a later checkpoint may yet be better",
        "at-zero": "kept step 0, before any training",
        "no-steps": "no steps done to set the kept step against",
        "past-the-end": "kept step 600 is past its 500 steps done",
        "no-images": "no image count in its profile to scale its steps by"}

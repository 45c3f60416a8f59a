"""The kept checkpoint: the run log records its step."""
from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from advisor.profile import Profile
from advisor.recommendation.recommend import recommend
from advisor.runlog.csvio import read_csv, write_csv
from advisor.runlog.importing import import_csv
from advisor.runlog.records import RunRecord, RunRecordError
from advisor.runlog.schema import MIGRATIONS, SCHEMA_VERSION
from advisor.runlog.store import RunLog
from trainer.checkpoint_scores import KEPT_FILE, KeptCheckpoint, write_kept

# A dog on a 24 GB card: the rules give DreamBooth-LoRA at the diffusers recipe, 500 steps of
# one image each, so 50 passes over the 10 images.
DOG = Profile(subject_type="animal", class_noun="dog", n_images=10, vram_gb=24, time_budget_min=240)
RULES_STEPS = 500


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


def test_a_kept_step_must_be_a_step_of_the_run():
    assert RunRecord(run_id="x", steps_done=500, kept_step=500).kept_step == 500
    for bad in (-1, 2.5, True, "300", 501):
        with pytest.raises(RunRecordError, match="kept_step"):
            RunRecord(run_id="x", steps_done=500, kept_step=bad)


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

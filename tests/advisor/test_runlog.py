"""The SQLite run log: schema and migrations, run-folder ingest, CSV, corruption, concurrency, CLI."""
import csv
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import fields
from pathlib import Path

import pytest

from advisor.runlog.schema import APPLICATION_ID, SCHEMA_VERSION
from advisor.runlog.records import CSV_COLUMNS, RunRecord, RunRecordError
from trainer.config import HYPERPARAMETERS
from advisor.runlog.importing import import_csv
from advisor.runlog.store import RunLog
from advisor.runlog.connection import RunLogError
from advisor.runlog.paths import default_db_path, default_runs_dir
from advisor.runlog.cli import runs_cli
from trainer.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------
def make_run_dir(root: Path, name: str, events: list, *, metrics=None, profile=None, tail: str = "",
                 method: str = "lora", **config) -> Path:
    """A run folder as the trainer writes it; `tail` is appended unterminated (a torn write)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    TrainConfig(method=method, output_dir=str(run_dir), **config).save(run_dir / "config.json")
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    (run_dir / "events.jsonl").write_text("".join(line + "\n" for line in lines) + tail)
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if profile is not None:
        (run_dir / "profile.json").write_text(json.dumps(profile))
    return run_dir


def completed_events(t0=1_700_000_000.0, steps=20, loss0=1.0):
    events = [{"t": t0, "kind": "start", "step": 0}]
    for s in range(1, steps + 1):
        events.append({"t": t0 + s, "kind": "step", "step": s, "loss": loss0 / s, "lr": 1e-4})
    events.append({"t": t0 + steps + 1, "kind": "end", "step": steps, "status": "completed"})
    return events


METRICS = {"accuracy": {"score": 3.5, "dino": 0.61}, "flexibility": {"score": 2.0, "clip_t": 0.27},
           "preservation": {"score": 4.5, "pixel_sim": 0.9}}


def raw_row_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        conn.close()


def run_python(code: str, *args, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or REPO, env=full_env, timeout=timeout)


# --- schema -------------------------------------------------------------------------------
def test_new_log_is_wal_with_current_schema(tmp_path):
    db = tmp_path / "sub" / "log.sqlite"
    with RunLog(db) as log:
        assert log.schema_version() == SCHEMA_VERSION
        assert len(log) == 0 and bool(log)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


V1_SCHEMA = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL, source TEXT NOT NULL,
    method TEXT, base_model TEXT, status TEXT, profile_json TEXT, config_json TEXT,
    hyperparameters_json TEXT, metrics_json TEXT, score_accuracy REAL, score_flexibility REAL,
    score_preservation REAL,
    rating_accuracy INTEGER CHECK (rating_accuracy BETWEEN 1 AND 5),
    rating_flexibility INTEGER CHECK (rating_flexibility BETWEEN 1 AND 5),
    rating_preservation INTEGER CHECK (rating_preservation BETWEEN 1 AND 5),
    rating_note TEXT, started_at REAL, finished_at REAL, duration_s REAL, steps_done INTEGER,
    final_loss REAL, run_dir TEXT, output_path TEXT);
PRAGMA user_version = 1;
"""


def test_v1_log_made_by_hand_migrates_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO runs (run_id, created_at, updated_at, source, method, hyperparameters_json,"
                 " rating_accuracy, rating_flexibility, rating_preservation, rating_note)"
                 " VALUES ('old-run', 1.0, 2.0, 'manual', 'lora', '{\"rank\": 8}', 4, 2, 5, 'kept')")
    conn.commit()
    conn.close()

    with RunLog(db) as log:
        assert log.schema_version() == SCHEMA_VERSION
        old = log.get("old-run")
        assert (old.method, old.hyperparameters, old.rating) == (
            "lora", {"rank": 8}, {"accuracy": 4, "flexibility": 2, "preservation": 5, "note": "kept"})
        assert old.name is None  # a v2 column, added empty
        log.upsert_run(RunRecord(run_id="new-run", name="uses v2 columns", note="imported"))
        assert log.get("new-run").name == "uses v2 columns"
    # the pre-migration copy is kept, and is still a v1 log
    backups = list(tmp_path.glob("old.sqlite.v1-*.bak"))
    assert len(backups) == 1
    conn = sqlite3.connect(backups[0])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    # the migrated schema equals a fresh one
    fresh = tmp_path / "fresh.sqlite"
    RunLog(fresh).close()

    def columns(path):
        c = sqlite3.connect(path)
        try:
            return [(r[1], r[2]) for r in c.execute("PRAGMA table_info(runs)")]
        finally:
            c.close()
    assert sorted(columns(db)) == sorted(columns(fresh))


def test_newer_schema_is_refused_and_not_touched(tmp_path):
    db = tmp_path / "future.sqlite"
    RunLog(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(RunLogError, match="schema version 99"):
        RunLog(db)
    assert db.read_bytes() == before


def test_hyperparameter_keys_are_trainconfig_fields():
    assert set(HYPERPARAMETERS) <= {f.name for f in fields(TrainConfig)}


# --- run folders --------------------------------------------------------------------------
def test_ingest_run_folder_twice_is_one_row_and_keeps_the_rating(tmp_path):
    runs = tmp_path / "runs"
    events = completed_events()
    events.insert(5, "this is not json")           # junk in the middle
    events.insert(8, '["a", "list"]')              # JSON but not an event
    run_dir = make_run_dir(runs, "run-a", events, metrics=METRICS, tail='{"t": 1, "kind": "st',
                           learning_rate=2e-4, rank=8, max_train_steps=20,
                           profile=None)
    with RunLog(tmp_path / "log.sqlite") as log:
        first = log.ingest_run_dir(run_dir)
        assert first.run_id == "run-a" and first.source == "run_folder"
        assert first.status == "completed"
        assert first.steps_done == 20
        assert first.started_at == 1_700_000_000.0 and first.duration_s == 21.0
        assert first.final_loss == pytest.approx(sum(1.0 / s for s in range(11, 21)) / 10)
        assert first.scores == {"accuracy": 3.5, "flexibility": 2.0, "preservation": 4.5}
        assert first.hyperparameters["learning_rate"] == 2e-4 and first.hyperparameters["rank"] == 8
        assert first.metrics == METRICS
        assert "skipped 2 unreadable line(s)" in first.note  # the torn tail is not junk

        log.rate("run-a", 5, 3, 4, note="sharp")
        (run_dir / "metrics.json").write_text(json.dumps({**METRICS, "accuracy": {"score": 4.0}}))
        second = log.ingest_run_dir(run_dir)
        assert len(log) == 1
        assert second.created_at == first.created_at
        assert second.score_accuracy == 4.0
        assert second.rating == {"accuracy": 5, "flexibility": 3, "preservation": 4, "note": "sharp"}
        log.ingest_runs_folder(runs)
        assert len(log) == 1 and log.get("run-a").rating_accuracy == 5


@pytest.mark.parametrize("events,status,error", [
    ([], "created", None),
    ([{"t": 1.0, "kind": "start", "step": 0}, {"t": 2.0, "kind": "step", "step": 1, "loss": 0.3}], "running", None),
    ([{"t": 1.0, "kind": "start", "step": 0},
      {"t": 2.0, "kind": "error", "step": 3, "error": "CUDA out of memory"}], "failed", "CUDA out of memory"),
    ([{"t": 1.0, "kind": "start", "step": 0}, {"t": 2.0, "kind": "status", "step": 0, "status": "stopped"}],
     "stopped", None),
    ([{"t": 1.0, "kind": "start", "step": 0}, {"t": 5.0, "kind": "end", "step": 9, "status": "cancelled"}],
     "cancelled", None),
    # trainer.evaluate appends an eval event after the end: the run stays completed
    ([{"t": 1.0, "kind": "start", "step": 0}, {"t": 5.0, "kind": "end", "step": 9},
      {"t": 9.0, "kind": "eval", "step": 9, "clip_t": 0.3}], "completed", None),
])
def test_status_is_the_last_status_change(tmp_path, events, status, error):
    run_dir = make_run_dir(tmp_path, "r", events)
    with RunLog(tmp_path / "log.sqlite") as log:
        record = log.ingest_run_dir(run_dir)
    assert (record.status, record.error) == (status, error)


@pytest.mark.parametrize("end, out_of_memory", [
    ({"status": "failed", "error": "out of GPU memory at step 3", "out_of_memory": True}, True),
    ({"status": "failed", "error": "CUDA out of memory, said a message that is not the flag",
      "out_of_memory": False}, False),
    ({"status": "failed", "error": "out of GPU memory at step 3"}, None),  # no flag: nothing is read from the text
    ({"status": "completed"}, None),
])
def test_the_trainers_out_of_memory_flag_reaches_the_record(tmp_path, end, out_of_memory):
    run_dir = make_run_dir(tmp_path, "r", [{"t": 1.0, "kind": "start", "step": 0},
                                           {"t": 2.0, "kind": "end", "step": 3, **end}])
    with RunLog(tmp_path / "log.sqlite") as log:
        log.ingest_run_dir(run_dir)
        assert log.get("r").out_of_memory is out_of_memory


def finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_run_is_failed_failed_end_keeps_its_error(tmp_path):
    dead = {"t": 1.0, "kind": "start", "step": 0, "pid": finished_pid(), "host": socket.gethostname()}
    alive = {**dead, "pid": os.getpid()}
    elsewhere = {**dead, "host": "some-other-gpu-box"}
    failed_end = [dead, {"t": 2.0, "kind": "error", "step": 4, "error": "RuntimeError: boom"},
                  {"t": 3.0, "kind": "end", "step": 4, "status": "failed", "error": "RuntimeError: boom"}]
    with RunLog(tmp_path / "log.sqlite") as log:
        killed = log.ingest_run_dir(make_run_dir(tmp_path, "killed", [dead]))
        assert killed.status == "failed" and "ended without an end event" in killed.error
        assert log.ingest_run_dir(make_run_dir(tmp_path, "alive", [alive])).status == "running"
        assert log.ingest_run_dir(make_run_dir(tmp_path, "remote", [elsewhere])).status == "running"
        ended = log.ingest_run_dir(make_run_dir(tmp_path, "ended", failed_end))
        assert (ended.status, ended.error, ended.finished_at) == ("failed", "RuntimeError: boom", 3.0)


def test_running_rows_are_rechecked_when_the_process_dies(tmp_path):
    runs = tmp_path / "runs"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        make_run_dir(runs, "r", [{"t": 1.0, "kind": "start", "step": 0, "pid": sleeper.pid,
                                  "host": socket.gethostname()}])
        with RunLog(tmp_path / "log.sqlite") as log:
            assert log.ingest_runs_folder(runs)[0].status == "running"
            sleeper.kill()
            sleeper.wait()
            assert [r.status for r in log.ingest_runs_folder(runs)] == ["failed"]  # files unchanged
            assert log.ingest_runs_folder(runs) == []  # settled: not re-read again
    finally:
        sleeper.kill()
        sleeper.wait()


def test_nan_loss_is_noted(tmp_path):
    events = completed_events(steps=4)
    events[3] = {"t": 3.0, "kind": "step", "step": 3, "loss": "nan"}
    with RunLog(tmp_path / "log.sqlite") as log:
        record = log.ingest_run_dir(make_run_dir(tmp_path, "r", events))
    assert "loss became NaN/inf at step 3" in record.note and record.final_loss is not None


def test_runs_folder_ingest_rereads_only_changed_folders(tmp_path):
    runs = tmp_path / "runs"
    make_run_dir(runs, "a", completed_events())
    b = make_run_dir(runs, "b", completed_events()[:3])
    (runs / "not-a-run").mkdir()
    (runs / "stray.txt").write_text("hello")
    with RunLog(tmp_path / "log.sqlite") as log:
        assert sorted(r.run_id for r in log.ingest_runs_folder(runs)) == ["a", "b"]
        assert log.get("b").status == "running"
        # "a" is settled and unchanged: not re-read; "b" is running: always re-checked
        assert [r.run_id for r in log.ingest_runs_folder(runs)] == ["b"]
        with open(b / "events.jsonl", "a") as f:
            f.write(json.dumps({"t": 1_700_000_099.0, "kind": "end", "step": 2, "status": "completed"}) + "\n")
        assert [r.run_id for r in log.ingest_runs_folder(runs)] == ["b"]
        assert log.get("b").status == "completed"
        assert log.ingest_runs_folder(runs) == []      # nothing changed, nothing re-read
        (b / "metrics.json").write_text(json.dumps(METRICS))
        assert [r.run_id for r in log.ingest_runs_folder(runs)] == ["b"]  # evaluated later: re-read
        assert log.get("b").score_accuracy == 3.5
        assert len(log) == 2
        with pytest.raises(ValueError, match="does not exist"):
            log.ingest_runs_folder(tmp_path / "nope")


def test_invalid_files_in_a_run_folder_are_noted_not_fatal(tmp_path):
    run_dir = make_run_dir(tmp_path, "r", completed_events(), profile={"accuracy": 9})
    (run_dir / "metrics.json").write_text("{not json")
    with RunLog(tmp_path / "log.sqlite") as log:
        record = log.ingest_run_dir(run_dir)
    assert record.metrics is None and record.profile is None
    assert "metrics.json is not valid JSON" in record.note and "profile.json ignored" in record.note


def test_profile_json_is_kept(tmp_path):
    profile = {"goal": "my dog on the moon", "subject_type": "animal", "n_images": 12, "accuracy": 4,
               "flexibility": 4, "preservation": 3, "base_model": "sd15"}
    run_dir = make_run_dir(tmp_path, "r", completed_events(), profile=profile)
    with RunLog(tmp_path / "log.sqlite") as log:
        record = log.ingest_run_dir(run_dir)
        frame = log.to_dataframe()
    assert record.profile["goal"] == "my dog on the moon" and record.base_model == "sd15"
    assert frame.loc[0, "profile_n_images"] == 12 and frame.loc[0, "profile_subject_type"] == "animal"


# --- rating and records ---------------------------------------------------------------------
def test_rate_validates_and_reports_unknown_runs(tmp_path):
    with RunLog(tmp_path / "log.sqlite") as log:
        log.upsert_run(RunRecord(run_id="x", method="lora"))
        with pytest.raises(KeyError, match="no run 'y'"):
            log.rate("y", 3, 3, 3)
        for bad in (0, 6, 2.5, True, "3"):
            with pytest.raises(ValueError, match="accuracy"):
                log.rate("x", bad, 3, 3)
        log.rate("x", 1, 2, 3, note="first")
        assert log.rate("x", 2, 2, 2).rating == {"accuracy": 2, "flexibility": 2, "preservation": 2,
                                                 "note": "first"}
        assert log.rate("x", 2, 2, 2, note="").rating_note == ""


@pytest.mark.parametrize("kwargs,field", [
    ({"run_id": ""}, "run_id"),
    ({"run_id": "x", "source": "web"}, "source"),
    ({"run_id": "x", "method": "LoRA"}, "method"),
    ({"run_id": "x", "score_accuracy": 7.0}, "score_accuracy"),
    ({"run_id": "x", "rating_flexibility": 0}, "rating_flexibility"),
    ({"run_id": "x", "steps_done": -1}, "steps_done"),
    ({"run_id": "x", "started_at": float("nan")}, "started_at"),
    ({"run_id": "x", "hyperparameters": {"status": 1}}, "reserved"),
    ({"run_id": "x", "hyperparameters": {"lr": float("inf")}}, "hyperparameters"),
    ({"run_id": "x", "hyperparameters": {1: 2}}, "hyperparameters"),
])
def test_bad_record_values_name_the_field(kwargs, field):
    with pytest.raises(RunRecordError, match=field):
        RunRecord(**kwargs)


def test_upsert_never_erases_known_values(tmp_path):
    with RunLog(tmp_path / "log.sqlite") as log:
        log.upsert_run(RunRecord(run_id="x", method="lora", hyperparameters={"rank": 4}, final_loss=0.2,
                                 rating_accuracy=3, rating_flexibility=3, rating_preservation=3))
        merged = log.upsert_run(RunRecord(run_id="x", status="completed"))
    assert (merged.method, merged.hyperparameters, merged.final_loss, merged.rating_accuracy) == (
        "lora", {"rank": 4}, 0.2, 3)
    assert merged.status == "completed"


# --- CSV ------------------------------------------------------------------------------------
def test_csv_export_import_round_trip(tmp_path):
    runs = tmp_path / "runs"
    make_run_dir(runs, "folder-run", completed_events(), metrics=METRICS,
                 profile={"goal": "logo style", "n_images": 30, "accuracy": 2})
    src = tmp_path / "a.sqlite"
    with RunLog(src) as log:
        log.ingest_runs_folder(runs)
        log.rate("folder-run", 4, 5, 3, note='likes "quotes", commas\nand newlines')
        log.upsert_run(RunRecord(run_id="manual-1", source="manual", method="textual_inversion",
                                 hyperparameters={"learning_rate": 5e-4, "num_vectors": 2, "optimizer": "AdamW",
                                                  "prior_preservation": False, "resolution": 512},
                                 status="failed", error="out of GPU memory at step 1", out_of_memory=True,
                                 peak_vram_gb=11.6, steps_done=0))
        expected = log.list_runs()
        assert [r["out_of_memory"] for r in expected] == [None, True]
        assert log.export_csv(tmp_path / "out" / "runs.csv") == 2
    with RunLog(tmp_path / "b.sqlite") as log:
        report = import_csv(log, tmp_path / "out" / "runs.csv")
        assert report.ok and sorted(report.imported) == ["folder-run", "manual-1"]
        got = log.list_runs()
        assert log.get("folder-run").config == TrainConfig.load(runs / "folder-run" / "config.json").to_dict()

    def comparable(runs):
        return [{k: v for k, v in r.items() if k != "updated_at"} for r in runs]
    assert comparable(got) == comparable(expected)
    # idempotent: importing again changes nothing but updated_at
    with RunLog(tmp_path / "b.sqlite") as log:
        import_csv(log, tmp_path / "out" / "runs.csv")
        assert comparable(log.list_runs()) == comparable(expected)


def test_csv_bad_rows_are_reported_by_line_and_the_rest_imported(tmp_path):
    path = tmp_path / "mine.csv"
    rows = [
        ["run_id", "method", "rating_accuracy", "rating_flexibility", "rating_preservation", "steps_done",
         "learning_rate", "rank", "train_text_encoder", "lr_scheduler", "started_at"],
        ["good-1", "lora", "4", "3", "5", "800", "1e-4", "16", "true", "cosine", "2024-03-01T10:00:00"],
        ["bad-rating", "lora", "7", "3", "5", "", "", "", "", "", ""],
        ["bad-method", "LoRA", "", "", "", "", "", "", "", "", ""],
        ["", "lora", "", "", "", "", "", "", "", "", ""],
        ["bad-steps", "lora", "", "", "", "many", "", "", "", "", ""],
        ["short-row", "lora"],
        ["good-2", "dreambooth", "", "", "", "400.0", "2e-6", "", "false", "", "1700000000"],
    ]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with RunLog(tmp_path / "log.sqlite") as log:
        report = import_csv(log, path)
        assert report.imported == ["good-1", "good-2"]
        skipped = dict(report.skipped)
        assert set(skipped) == {"line 3", "line 4", "line 5", "line 6", "line 7"}
        assert "rating_accuracy=7" in skipped["line 3"]
        assert "method='LoRA'" in skipped["line 4"]
        assert "run_id" in skipped["line 5"]
        assert "steps_done='many'" in skipped["line 6"]
        assert "fields" in skipped["line 7"]
        good = log.get("good-1")
        assert good.hyperparameters == {"learning_rate": 1e-4, "rank": 16, "train_text_encoder": True,
                                        "lr_scheduler": "cosine"}
        assert good.source == "csv" and good.steps_done == 800 and good.rating_preservation == 5
        assert good.started_at == pytest.approx(time.mktime((2024, 3, 1, 10, 0, 0, 0, 0, -1)))
        assert log.get("good-2").steps_done == 400


def test_csv_without_run_id_column_is_rejected(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("name,learning_rate\nfoo,1e-4\n")
    with RunLog(tmp_path / "log.sqlite") as log:
        with pytest.raises(ValueError, match="no run_id column"):
            import_csv(log, path)
        assert len(log) == 0


# --- corruption and foreign files -------------------------------------------------------------
def test_non_sqlite_file_is_backed_up_never_reset(tmp_path):
    db = tmp_path / "runlog.sqlite"
    db.write_bytes(b"these are my notes, not a database\n" * 50)
    before = db.read_bytes()
    with pytest.raises(RunLogError, match="not an SQLite database") as info:
        RunLog(db)
    backups = list(tmp_path.glob("runlog.sqlite.corrupt-*.bak"))
    assert len(backups) == 1 and backups[0].name in str(info.value)
    assert backups[0].read_bytes() == before and db.read_bytes() == before
    with pytest.raises(RunLogError):  # opening again reuses the identical backup
        RunLog(db)
    assert len(list(tmp_path.glob("runlog.sqlite.corrupt-*.bak"))) == 1


def test_foreign_sqlite_database_is_backed_up_never_reset(tmp_path):
    db = tmp_path / "runlog.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(RunLogError, match="another application"):
        RunLog(db)
    assert db.read_bytes() == before
    assert not (tmp_path / "runlog.sqlite-wal").exists()
    backups = list(tmp_path.glob("runlog.sqlite.corrupt-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == before


def test_foreign_runs_table_without_our_marks_is_refused(tmp_path):
    db = tmp_path / "runlog.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE runs (run_id TEXT, distance_km REAL)")  # someone's jogging log
    conn.commit()
    conn.close()
    with pytest.raises(RunLogError, match="another application"):
        RunLog(db)


def test_damaged_log_is_detected_and_backed_up(tmp_path):
    db = tmp_path / "runlog.sqlite"
    with RunLog(db) as log:
        log.upsert_many(RunRecord(run_id=f"r{i}", note="x" * 500) for i in range(400))
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])  # lost the second half
    with pytest.raises(RunLogError, match="runlog.sqlite.corrupt-"):
        RunLog(db)
    assert db.read_bytes() == data[: len(data) // 2]


# --- concurrency and crashes --------------------------------------------------------------------
WRITER = """
    import sys, time
    from pathlib import Path
    from advisor.runlog.records import RunRecord
    from advisor.runlog.store import RunLog
    db, worker, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    with RunLog(db) as log:
        for i in range(50):
            log.upsert_run(RunRecord(run_id=f"w{worker}-{i}", method="lora",
                                     hyperparameters={"learning_rate": 1e-4, "rank": i}))
            if i % 10 == 0:
                log.rate(f"w{worker}-{i}", 1 + worker % 5, 3, 3)
            log.list_runs() if i % 25 == 0 else None
"""


def test_concurrent_writer_processes_lose_no_rows(tmp_path):
    db, go = tmp_path / "log.sqlite", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # the log does not exist yet: the four processes also race to create and migrate it
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(db), str(w), str(go)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    time.sleep(0.5)  # let them import and wait at the start line
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with RunLog(db) as log:
        assert len(log) == 200
        rated = [r for r in log.list_runs() if r["rating"]["accuracy"] is not None]
        assert len(rated) == 20
        assert {r["id"] for r in log.list_runs()} == {f"w{w}-{i}" for w in range(4) for i in range(50)}


def test_a_log_created_by_another_process_while_it_is_checked_is_not_called_foreign(tmp_path, monkeypatch):
    # CI saw this race: the check read the header (no id yet), another process committed the new
    # log, and the check then read its tables; the half-seen log looked like another application's
    from advisor.runlog import connection

    db = tmp_path / "log.sqlite"
    first = sqlite3.connect(str(db))
    first.execute("PRAGMA journal_mode = WAL")       # the creator has switched to WAL, not yet migrated
    real_connect = sqlite3.connect

    def connect_and_race(*args, **kwargs):
        conn = real_connect(*args, **kwargs)

        def between_reads(statement):
            if statement.lstrip().startswith("SELECT name FROM sqlite_master") and not created:
                created.append(True)
                with RunLog(db):                        # the other process creates and migrates the log
                    pass
        conn.set_trace_callback(between_reads)
        return conn

    created = []
    monkeypatch.setattr(connection.sqlite3, "connect", connect_and_race)
    conn = connection.open_checked(db)
    conn.close()
    first.close()
    assert created, "the other process never ran between the reads"
    assert not list(tmp_path.glob("*.corrupt-*.bak"))


CRASHER = """
    import os, sys
    from advisor.runlog.records import RunRecord
    from advisor.runlog.store import RunLog
    log = RunLog(sys.argv[1])
    def records():
        for i in range(2000):
            if i == 1500:
                os._exit(3)  # die inside the transaction: no rollback, no close
            yield RunRecord(run_id=f"crash-{i}", note="x" * 8000)
    log.upsert_many(records())
"""


def test_crash_in_the_middle_of_a_write_leaves_the_log_consistent(tmp_path):
    db = tmp_path / "log.sqlite"
    with RunLog(db) as log:
        for i in range(3):
            log.upsert_run(RunRecord(run_id=f"keep-{i}", method="lora"))
        log.rate("keep-0", 2, 3, 4)
    result = run_python(CRASHER, db)
    assert result.returncode == 3, result.stderr
    # ~12 MB of uncommitted rows overflow the page cache, so some reached the WAL before the crash
    assert (tmp_path / "log.sqlite-wal").stat().st_size > 1_000_000
    with RunLog(db) as log:
        assert sorted(r["id"] for r in log.list_runs()) == ["keep-0", "keep-1", "keep-2"]
        assert log.get("keep-0").rating_accuracy == 2
        log.upsert_run(RunRecord(run_id="after-crash"))
        assert len(log) == 4
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


# --- CLI ------------------------------------------------------------------------------------------
def test_cli_import_list_rate_export(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FTA_RUNLOG", raising=False)
    monkeypatch.delenv("FTA_RUNS_DIR", raising=False)
    runs = tmp_path / "elsewhere"
    make_run_dir(runs, "cli-run", completed_events(), metrics=METRICS, rank=16)

    assert runs_cli(["import", str(runs)]) == 0
    assert "imported 1 run(s)" in capsys.readouterr().out
    assert (tmp_path / "runlog.sqlite").is_file()  # the default location

    assert runs_cli(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1
    run = listed[0]
    assert {"id", "method", "hyperparameters", "status", "scores", "rating"} <= set(run)
    assert (run["id"], run["method"], run["status"], run["hyperparameters"]["rank"]) == (
        "cli-run", "lora", "completed", 16)
    assert run["scores"] == {"accuracy": 3.5, "flexibility": 2.0, "preservation": 4.5}

    assert runs_cli(["rate", "cli-run", "--accuracy", "5", "--flexibility", "4", "--preservation", "3",
                     "--note", "great"]) == 0
    capsys.readouterr()
    assert runs_cli(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rating"] == {
        "accuracy": 5, "flexibility": 4, "preservation": 3, "note": "great"}

    assert runs_cli(["export", "out.csv"]) == 0
    capsys.readouterr()
    assert runs_cli(["import", "out.csv", "--db", "copy.sqlite"]) == 0
    capsys.readouterr()
    assert runs_cli(["list", "--json", "--db", "copy.sqlite"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rating"]["note"] == "great"

    assert runs_cli(["list"]) == 0
    assert "cli-run" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["rate", "ghost", "--accuracy", "3", "--flexibility", "3", "--preservation", "3"], "no run 'ghost'"),
    (["rate", "ghost", "--accuracy", "9", "--flexibility", "3", "--preservation", "3"], "accuracy=9"),
    (["rate", "ghost", "--accuracy", "3"], "required"),
    (["import", "missing-folder"], "does not exist"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_cli_errors_are_one_line_and_exit_1(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert runs_cli(argv + ["--db", str(tmp_path / "log.sqlite")] if argv else argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_reports_a_corrupt_log_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FTA_RUNLOG", str(tmp_path / "custom.sqlite"))
    (tmp_path / "custom.sqlite").write_text("garbage")
    assert runs_cli(["list", "--json"]) == 1
    err = capsys.readouterr().err
    assert "custom.sqlite.corrupt-" in err and err.count("\n") == 1
    assert (tmp_path / "custom.sqlite").read_text() == "garbage"


def test_environment_variables_choose_log_and_runs_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FTA_RUNLOG", str(tmp_path / "data" / "my.sqlite"))
    monkeypatch.setenv("FTA_RUNS_DIR", str(tmp_path / "my-runs"))
    assert default_db_path() == tmp_path / "data" / "my.sqlite"
    assert default_runs_dir() == tmp_path / "my-runs"
    make_run_dir(tmp_path / "my-runs", "auto", completed_events())
    # `list` indexes the runs folder first: runs appear without an explicit import
    assert runs_cli(["list", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["auto"]
    assert (tmp_path / "data" / "my.sqlite").is_file()


def test_cli_through_a_subprocess(tmp_path):
    make_run_dir(tmp_path / "runs", "sub-run", completed_events())
    code = "import sys; from advisor.runlog.cli import runs_cli; sys.exit(runs_cli(sys.argv[1:]))"
    env = {"FTA_RUNLOG": str(tmp_path / "log.sqlite"), "FTA_RUNS_DIR": str(tmp_path / "runs")}
    result = run_python(code, "list", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["id"] == "sub-run"
    bad = run_python(code, "rate", "sub-run", "--accuracy", "0", "--flexibility", "1", "--preservation", "1",
                     cwd=tmp_path, env=env)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: accuracy=0")


# --- dataframe and imports --------------------------------------------------------------------------
def test_to_dataframe_flattens_hyperparameters_scores_and_ratings(tmp_path):
    with RunLog(tmp_path / "log.sqlite") as log:
        assert list(log.to_dataframe().columns) == [c for c in CSV_COLUMNS if not c.endswith("_json")]
        log.upsert_run(RunRecord(run_id="a", method="lora", hyperparameters={"rank": 8, "learning_rate": 1e-4},
                                 score_accuracy=3.0, rating_accuracy=4, rating_flexibility=2,
                                 rating_preservation=5))
        log.upsert_run(RunRecord(run_id="b", method="dreambooth", hyperparameters={"learning_rate": 2e-6}))
        frame = log.to_dataframe()
    assert list(frame["run_id"]) == ["a", "b"]
    assert frame.loc[0, "rank"] == 8 and frame.loc[1, "learning_rate"] == 2e-6
    assert frame.loc[0, "score_accuracy"] == 3.0 and frame.loc[0, "rating_preservation"] == 5


def test_runlog_import_path_pulls_in_no_heavy_modules():
    result = run_python("""
        import sys, advisor.runlog.store, advisor.runlog.importing, advisor.runlog.kohya, advisor.runlog.cli
        heavy = [m for m in ("torch", "diffusers", "transformers", "pandas", "gradio") if m in sys.modules]
        print(heavy)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_csv_rows_with_impossible_numbers_or_deep_json_are_skipped_with_why(tmp_path):
    path = tmp_path / "hostile.csv"
    rows = [["run_id", "method", "profile_json", "learning_rate", "noise_offset"],
            ["absurd-lr", "lora", "", "1e308", ""],
            ["infinite", "lora", "", "", "1e999"],
            ["deep", "lora", "[" * 50_000 + "]" * 50_000, "", ""],
            ["fine", "lora", '{"subject_type": "animal"}', "1e-4", "0.05"]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with RunLog(tmp_path / "log.sqlite") as log:
        report = import_csv(log, path)
    assert report.imported == ["fine"]
    why = dict(report.skipped)
    assert "learning_rate=1e+308 is outside (0, 1]" in why["line 2"]
    assert "noise_offset=inf is not a finite number" in why["line 3"]
    assert "profile_json is not valid JSON" in why["line 4"]


def test_the_learner_leaves_out_a_logged_run_with_an_absurd_learning_rate(tmp_path):
    from advisor.learning.log_learner import LogLearner

    prof = {"subject_type": "animal", "n_images": 10}
    runs = [RunRecord(run_id=rid, method="lora", base_model="sd15", status="completed", profile=prof,
                      hyperparameters={"learning_rate": lr, "max_train_steps": 500},
                      score_accuracy=s, score_flexibility=s, score_preservation=s)
            for rid, lr, s in (("absurd", 1e308, 4.0), ("fine", 1e-4, 3.0))]
    with RunLog(tmp_path / "log.sqlite") as log:
        log.upsert_many(runs)   # as an old log or another tool may hold it
        learner = LogLearner.fit(log)
    assert learner.n_runs == 1   # one bad row does not switch learning off for everyone


def test_csv_export_escapes_formula_cells_and_reads_them_back(tmp_path):
    from advisor.runlog.csvio import read_csv, write_csv

    record = RunRecord(run_id="=HYPERLINK(\"http://x\")", method="lora", name="+cmd|' /C calc'!A0",
                       hyperparameters={"lr_scheduler": "@SUM(1)", "noise_offset": -0.05, "sampler": "'=kept"})
    path = tmp_path / "out.csv"
    write_csv(path, [record])
    with open(path, newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    assert "-0.05" in cells   # numbers stay numbers
    (_, back, why), = list(read_csv(path))
    assert why is None and back.run_id == record.run_id and back.name == record.name
    assert back.hyperparameters == record.hyperparameters


def test_a_read_only_or_full_log_is_one_line_and_no_corrupt_copy(tmp_path, monkeypatch):
    """Issue 13: a good log on a read-only disk came back 'Permission denied ...corrupt...bak' and a
    traceback. (The tests run as root, so SQLite's refusal is played by the connection.)"""
    import sqlite3

    import advisor.runlog.connection as connection
    from advisor.runlog.connection import RunLogError
    from advisor.runlog.store import RunLog

    path = tmp_path / "runlog.sqlite"
    with RunLog(path):
        pass
    for words in ("attempt to write a readonly database", "database or disk is full"):
        def refuse(conn, p, words=words):
            raise sqlite3.OperationalError(words)
        monkeypatch.setattr(connection, "_prepare", refuse)
        with pytest.raises(RunLogError, match="cannot be written here") as caught:
            RunLog(path)
        assert "\n" not in str(caught.value) and "corrupt" not in str(caught.value)
        assert not list(tmp_path.glob("*.corrupt-*.bak"))
    monkeypatch.undo()

    def full():
        raise sqlite3.OperationalError("database or disk is full")
    with pytest.raises(RunLogError, match="cannot be written here"):
        connection.retry_locked(full, path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all")
    monkeypatch.setattr(connection, "_backup_copy", lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(RunLogError, match="no copy could be saved: Permission denied"):
        RunLog(tmp_path / "junk.sqlite")


def test_rating_on_an_unwritable_log_says_so_in_a_line(tmp_path, monkeypatch):
    from advisor.runlog.connection import RunLogError
    from lab import page, results

    monkeypatch.setattr(results, "open_runlog", lambda runlog: (_ for _ in ()).throw(
        RunLogError("run log x cannot be written here (attempt to write a readonly database)")))
    monkeypatch.setattr(page, "run_owner", lambda runs_dir, run_id: "user:ana")
    said = page.rate_logged("x", tmp_path, "run-1", "user:ana", (3, 3, 3), "")
    assert said.startswith("**Not saved.** run log x cannot be written here")

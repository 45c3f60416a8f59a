"""lab.jobs.JobQueue: validation, the CPU rule, FIFO places, cancel/stop/resume, persistence,
GPU pinning (with a fake launcher, fast), and real tiny-model trainings through trainer.launch:
one at a time with the second waiting at place 1, and a new app process reattaching to a running
job, stopping it (checkpoint) and resuming it to completion."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import lab.jobs as jobs
from helpers import make_images
from lab.jobs import CPU_ONLY_MESSAGE, CpuOnlyError, JobQueue, is_builtin_tiny
from lab.views import progress
from trainer.config import ConfigError, TrainConfig
from trainer.events import read_events
ROOT = Path(__file__).resolve().parents[2]


# --- fakes: the queue's logic without training -------------------------------------------------------------
class FakeJob:
    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.state = "running"
        self.stops = []

    def alive(self):
        return self.state == "running"

    def status(self):
        return self.state

    def stop(self, timeout=120.0):
        self.stops.append(timeout)
        self.state = "stopped"
        return self.state


class FakeLauncher:
    def __init__(self):
        self.calls = []
        self.jobs = {}

    def __call__(self, config, *, resume=None, env=None, gpus=None):
        if config.instance_prompt == "refuse me":
            raise ConfigError("output_dir already has a running job")
        name = Path(config.output_dir).name
        self.calls.append({"job": name, "resume": resume, "env": env, "gpus": gpus})
        self.jobs[name] = FakeJob(config.output_dir)
        (Path(config.output_dir) / "job.json").write_text('{"pid": 0}')  # as trainer.launch writes it
        return self.jobs[name]

    def attach(self, run_dir):
        """trainer.launch.attach's stand-in: the job behind <run>/job.json."""
        return self.jobs[Path(run_dir).name]


@pytest.fixture
def data(tmp_path) -> Path:
    make_images(tmp_path / "data", 2)
    return tmp_path / "data"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.delenv(jobs.SLOTS_ENV, raising=False)
    monkeypatch.delenv(jobs.ALLOW_CPU_ENV, raising=False)
    launcher = FakeLauncher()
    return launcher, (lambda **kw: JobQueue(tmp_path / "runs", gpus=kw.pop("gpus", 0), launcher=launcher,
                                            attacher=launcher.attach, **kw))


def cfg(data, **kw) -> dict:
    return {"base_model": "tiny", "data_dir": str(data), "resolution": 64, "max_train_steps": 3, **kw}


# --- submitting --------------------------------------------------------------------------------------------
def test_submit_writes_the_run_folder_and_starts_when_a_slot_is_free(fake, data, tmp_path):
    launcher, make = fake
    q = make()
    job_id = q.submit(cfg(data), session_id="s1", profile={"goal": "my dog", "n_images": 2})
    run = tmp_path / "runs" / job_id
    saved = TrainConfig.load(run / "config.json")
    assert Path(saved.output_dir) == run.resolve() and saved.data_dir == str(data.resolve())
    lab = json.loads((run / "lab.json").read_text())
    assert lab["session_id"] == "s1" and lab["state"] == "launched" and lab["demo"] is True
    assert json.loads((run / "profile.json").read_text())["goal"] == "my dog"
    assert not (run / "queued").exists()  # the marker goes once it started
    assert launcher.calls == [{"job": job_id, "resume": None, "env": None, "gpus": 0}]
    st = q.status(job_id)
    assert st.state == "running" and st.demo and "demonstration" in st.message and st.active


def test_bad_configs_are_refused_with_the_field_named(fake, data):
    _, make = fake
    q = make()
    with pytest.raises(ConfigError, match="learning_rate"):
        q.submit(cfg(data, learning_rate=-1.0), session_id="s")
    with pytest.raises(ConfigError, match="unknown config key"):
        q.submit(cfg(data, learning_rat=1e-4), session_id="s")
    with pytest.raises(ConfigError, match="data_dir is empty"):
        q.submit(cfg(data, data_dir=""), session_id="s")
    with pytest.raises(ConfigError, match="does not exist"):
        q.submit(cfg(data, data_dir=str(data / "nope")), session_id="s")
    with pytest.raises(ValueError, match="session_id"):
        q.submit(cfg(data), session_id="")
    assert not (q.runs_dir.exists() and any(p.is_dir() for p in q.runs_dir.iterdir()))  # nothing written


def test_a_real_model_without_a_gpu_is_refused_unless_allowed(fake, data, monkeypatch):
    launcher, make = fake
    q = make(gpus=0)
    with pytest.raises(CpuOnlyError) as e:
        q.submit(cfg(data, base_model="runwayml/stable-diffusion-v1-5"), session_id="s")
    msg = str(e.value)
    assert "needs a CUDA GPU" in msg and "Spaces" in msg and "Colab" in msg and "rent" in msg
    assert "\n" not in msg and jobs.ALLOW_CPU_ENV in msg and launcher.calls == []
    monkeypatch.setenv(jobs.ALLOW_CPU_ENV, "1")
    job_id = q.submit(cfg(data, base_model="runwayml/stable-diffusion-v1-5"), session_id="s")
    assert not q.status(job_id).demo
    # with a GPU a real model is no demonstration and needs no override
    monkeypatch.delenv(jobs.ALLOW_CPU_ENV)
    gpu = make(gpus=1)
    assert gpu.check_device(TrainConfig(base_model="runwayml/stable-diffusion-v1-5")) is False
    assert CPU_ONLY_MESSAGE.count("{model!r}") == 1


def test_builtin_tiny_is_recognised_by_name_or_folder(tmp_path):
    assert is_builtin_tiny("tiny") and is_builtin_tiny("tiny-sdxl")
    assert not is_builtin_tiny("runwayml/stable-diffusion-v1-5") and not is_builtin_tiny(str(tmp_path))
    (tmp_path / "tiny_model_version.txt").write_text("sd15 1\n")
    assert is_builtin_tiny(str(tmp_path))


# --- the queue ---------------------------------------------------------------------------------------------
def test_fifo_places_cancel_and_resume(fake, data):
    launcher, make = fake
    q = make(slots=1)
    a, b, c = (q.submit(cfg(data), session_id=s) for s in ("sa", "sb", "sc"))
    assert [q.status(j).state for j in (a, b, c)] == ["running", "queued", "queued"]
    assert [q.status(j).place for j in (b, c)] == [1, 2]
    assert "place 1" in q.status(b).message and (q.runs_dir / b / "queued").is_file()
    assert [r["job_id"] for r in q.overview()] == [a, b, c]
    # cancel the one in front: the other moves up
    assert q.stop(b).state == "cancelled" and not (q.runs_dir / b / "queued").exists()
    assert q.status(c).place == 1
    assert q.pump() == []  # a is still running
    launcher.jobs[a].state = "completed"
    assert q.pump() == [c]
    assert q.status(a).state == "completed" and q.status(c).state == "running"
    # a cancelled job can be queued again; it goes to the back and starts fresh (no checkpoint)
    assert q.resume(b).state == "queued"
    launcher.jobs[c].state = "completed"
    q.pump()
    assert q.status(b).state == "running" and launcher.calls[-1] == {"job": b, "resume": None, "env": None, "gpus": 0}
    with pytest.raises(ValueError, match="is running; only a stopped, failed or cancelled job"):
        q.resume(b)


def test_stop_running_and_resume_from_the_latest_checkpoint(fake, data):
    launcher, make = fake
    q = make(slots=1)
    a = q.submit(cfg(data), session_id="s")
    b = q.submit(cfg(data), session_id="s")
    st = q.stop(a, wait=False)
    assert launcher.jobs[a].stops == [0]
    assert st.state == "stopped" and q.status(b).state == "running"  # the freed slot went to b at once
    (q.runs_dir / a / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    assert q.resume(a).state == "queued" and q.status(a).place == 1
    launcher.jobs[b].state = "completed"
    assert q.pump() == [a]
    assert launcher.calls[-1]["resume"] == "latest"
    assert q.stop(b).state == "completed"  # stopping a finished job changes nothing


def test_a_refused_launch_fails_that_job_only(fake, data):
    _, make = fake
    q = make(slots=1)
    bad = q.submit(cfg(data, instance_prompt="refuse me"), session_id="s")
    good = q.submit(cfg(data), session_id="s")
    st = q.status(bad)
    assert st.state == "failed" and st.message == "could not start: output_dir already has a running job"
    assert q.status(good).state == "running"


def test_sessions_find_their_own_jobs(fake, data):
    launcher, make = fake
    q = make(slots=1)
    a1 = q.submit(cfg(data), session_id="alice")
    b1 = q.submit(cfg(data), session_id="bob")
    assert q.active_for("alice").job_id == a1 and q.active_for("bob").job_id == b1
    assert q.active_for("bob").state == "queued" and q.active_for("carol") is None
    launcher.jobs[a1].state = "completed"
    q.pump()
    assert q.active_for("alice") is None and q.latest_for("alice").job_id == a1
    assert q.latest_for("alice").state == "completed" and q.latest_for("carol") is None


def test_state_survives_a_new_queue_and_a_lost_queue_file(fake, data):
    _, make = fake
    q = make(slots=1)
    ids = [q.submit(cfg(data), session_id=f"s{i}") for i in range(3)]
    again = make(slots=1)  # a page reload or an app restart over the same runs folder
    assert [again.status(j).state for j in ids] == ["running", "queued", "queued"]
    assert again.active_for("s2").place == 2
    (q.runs_dir / "queue.json").unlink()
    rebuilt = make(slots=1)
    assert [rebuilt.status(j).place for j in ids[1:]] == [1, 2] and rebuilt.active_for("s0").state == "running"
    (q.runs_dir / "queue.json").write_text("{ not json")
    assert make(slots=1).status(ids[2]).place == 2


def test_job_ids_cannot_reach_outside_the_runs_folder(fake):
    _, make = fake
    q = make()
    for bad in ("../etc", "/etc/passwd", "", "a/b", ".hidden", None):
        assert q.status(bad).state == "unknown"
    assert q.status("20990101-000000000-lora-abcdef").message == "no such job"


def test_slots_from_the_environment_and_gpu_pinning(fake, data, monkeypatch):
    launcher, make = fake
    monkeypatch.setenv(jobs.SLOTS_ENV, "lots")
    with pytest.raises(ValueError, match=jobs.SLOTS_ENV):
        make().slot_count()
    monkeypatch.setenv(jobs.SLOTS_ENV, "1")
    assert make(gpus=4).slot_count() == 1
    monkeypatch.delenv(jobs.SLOTS_ENV)
    assert make(gpus=0).slot_count() == 1 and make(gpus=3).slot_count() == 3
    # two GPUs, two slots: one job per GPU, pinned
    q = make(gpus=2)
    a, b, c = (q.submit(cfg(data, base_model="some/model"), session_id="s") for _ in range(3))
    assert [call["env"] for call in launcher.calls] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert all(call["gpus"] == 1 for call in launcher.calls) and q.status(c).place == 1
    launcher.jobs[a].state = "completed"
    q.pump()
    assert launcher.calls[-1]["env"] == {"CUDA_VISIBLE_DEVICES": "0"}  # the GPU that came free
    # one slot over several GPUs: the job gets all of them (accelerate's multi-GPU launch)
    monkeypatch.setenv(jobs.SLOTS_ENV, "1")
    single = JobQueue(q.runs_dir.parent / "runs2", gpus=2, launcher=launcher, attacher=launcher.attach)
    single.submit(cfg(data, base_model="some/model"), session_id="s")
    assert launcher.calls[-1]["env"] is None and launcher.calls[-1]["gpus"] == 2


def test_background_pump_starts_the_next_job(fake, data):
    launcher, make = fake
    with make(slots=1).start(interval=0.05) as q:
        a = q.submit(cfg(data), session_id="s")
        b = q.submit(cfg(data), session_id="s")
        launcher.jobs[a].state = "completed"
        deadline = time.monotonic() + 10
        while q.status(b).state != "running":
            assert time.monotonic() < deadline, "the background pump did not start the next job"
            time.sleep(0.05)
        assert q.last_pump_error is None


# --- real trainings on the tiny model -----------------------------------------------------------------------
@pytest.fixture
def tiny_env(tiny_sd15, monkeypatch):
    """base_model "tiny" resolves to the session's tiny model in the training subprocesses too."""
    monkeypatch.setenv("FTA_CACHE_DIR", str(tiny_sd15.parent))
    monkeypatch.delenv(jobs.ALLOW_CPU_ENV, raising=False)
    return tiny_sd15


def tiny_config(data, **kw) -> dict:
    return cfg(data, learning_rate=1e-3, checkpointing_steps=0, validation_steps=0,
               validation_inference_steps=2, **kw)


def wait_until(check, what: str, run_dir: Path, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            log = (run_dir / "train.log").read_text()[-3000:] if (run_dir / "train.log").is_file() else ""
            pytest.fail(f"timed out waiting for {what}\n{log}")
        time.sleep(0.2)


@pytest.mark.slow
def test_one_training_at_a_time_second_waits_at_place_1(tiny_env, data, tmp_path, monkeypatch):
    monkeypatch.setenv(jobs.SLOTS_ENV, "1")
    q = JobQueue(tmp_path / "runs", gpus=0)
    first = q.submit(tiny_config(data), session_id="one")
    second = q.submit(tiny_config(data), session_id="two")
    assert q.status(first).state == "running"
    waiting = q.status(second)
    assert waiting.state == "queued" and waiting.place == 1 and not (q.runs_dir / second / "events.jsonl").exists()
    assert progress(q.runs_dir / second)["status"] == "queued"
    wait_until(lambda: q.status(first).state != "running", "the first job to end", q.runs_dir / first)
    assert q.status(first).state == "completed"
    assert (q.runs_dir / first / "output" / "pytorch_lora_weights.safetensors").is_file()
    q.pump()
    assert q.status(second).state in ("running", "completed")
    wait_until(lambda: q.status(second).state != "running", "the second job to end", q.runs_dir / second)
    assert q.status(second).state == "completed"
    # the second started only after the first had ended
    first_end = [e["t"] for e in read_events(q.runs_dir / first) if e["kind"] == "end"][0]
    second_start = [e["t"] for e in read_events(q.runs_dir / second) if e["kind"] == "start"][0]
    assert second_start > first_end


OLD_APP = """
import json, sys
from lab.jobs import JobQueue
q = JobQueue(sys.argv[1], gpus=0)
job_id = q.submit(json.loads(sys.argv[2]), session_id="browser-A")
q.start(interval=0.2)
print(job_id, flush=True)
sys.stdin.read()  # run until the test closes stdin, pumping (and reaping) like the app does
q.close()
"""


@pytest.mark.slow
def test_new_app_process_reattaches_stops_and_resumes(tiny_env, data, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    config = json.dumps(tiny_config(data, max_train_steps=30))
    old_app = subprocess.Popen([sys.executable, "-c", OLD_APP, str(runs), config], cwd=ROOT, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        job_id = old_app.stdout.readline().strip()
        assert job_id, "the old app did not submit"
        run = runs / job_id
        q = JobQueue(runs, gpus=0)  # this process never launched it: it must attach
        wait_until(lambda: progress(run)["step"] >= 1, "the first step", run)
        found = q.active_for("browser-A")
        assert found is not None and found.job_id == job_id and found.state == "running"
        assert found.demo and "training, step" in found.message
        assert str(run.resolve()) not in jobs._LAUNCHED  # followed through job.json, not our own handle
        assert q.active_for("browser-B") is None and q.latest_for("browser-A").job_id == job_id
        stopped = q.stop(job_id)
        assert stopped.state == "stopped", run.joinpath("train.log").read_text()[-3000:]
        steps = [e["step"] for e in read_events(run) if e["kind"] == "step"]
        stop_step = steps[-1]
        assert 1 <= stop_step < 30 and (run / "checkpoints" / f"checkpoint-{stop_step}").is_dir()
        assert q.active_for("browser-A") is None
    finally:
        old_app.stdin.close()
        old_app.wait(timeout=60)
    resumed = q.resume(job_id)
    assert resumed.state in ("running", "completed")
    wait_until(lambda: q.status(job_id).state != "running", "the resumed job to end", run)
    assert q.status(job_id).state == "completed"
    events = read_events(run)
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps[-1] == 30 and steps[len(steps) - (30 - stop_step)] == stop_step + 1  # continued, not restarted
    assert [e.get("resume") for e in events if e["kind"] == "start"] == [None, "latest"]
    assert progress(run)["fraction"] == 1.0


def test_a_run_that_ends_reaches_the_run_log_before_anyone_rates_it(fake, data, tmp_path, monkeypatch):
    """The page records a finished run (here: out of GPU memory) as soon as it shows the end, so
    the advisor's next answer already learns from it; nothing waits for a rating."""
    import app
    from advisor.runlog.store import RunLog
    from lab.page import LabState
    from trainer.events import emit

    launcher, make = fake
    queue = make()
    monkeypatch.setattr(app, "_queue", queue)
    monkeypatch.setenv("FTA_RUNLOG", str(tmp_path / "log.sqlite"))
    job_id = queue.submit(cfg(data), session_id="user:ana")
    queue.pump()
    run_dir = tmp_path / "runs" / job_id
    emit(run_dir, "start", 0, pid=0, max_train_steps=3)
    emit(run_dir, "end", 1, status="failed", error="out of GPU memory at step 1 (it held 7.9 GB); to fit, ...",
         out_of_memory=True)
    launcher.jobs[job_id].state = "failed"

    login = SimpleNamespace(username="ana")  # a gr.Request of the logged-in user who submitted it
    lab, status_md, *_ = app.refresh_lab(None, LabState(job_id=job_id), login)
    assert lab.shown == (job_id, "failed") and "ask the Advisor tab again" in status_md
    with RunLog(tmp_path / "log.sqlite") as log:
        record = log.get(job_id)
    assert record.status == "failed" and record.error.startswith("out of GPU memory at step 1")
    assert record.rating_accuracy is None


@pytest.mark.parametrize("error, out_of_memory, advised", [
    ("out of GPU memory at step 2 (it held 7.9 GB); to fit, ...", True, True),
    ("RuntimeError: CUDA error: an illegal memory access was encountered", True, True),  # the flag, not the words
    ("out of GPU memory, says a message that is not the trainer's flag", False, False),
    ("ValueError: data_dir 'x' does not exist", False, False),
])
def test_a_failed_jobs_advice_follows_the_trainers_out_of_memory_flag(fake, data, tmp_path, error, out_of_memory,
                                                                       advised):
    from trainer.events import emit

    launcher, make = fake
    queue = make()
    job_id = queue.submit(cfg(data), session_id="user:ana")
    queue.pump()
    run_dir = tmp_path / "runs" / job_id
    emit(run_dir, "start", 0, pid=0, max_train_steps=3)
    emit(run_dir, "error", 2, error=error, log="error.log", out_of_memory=out_of_memory)
    emit(run_dir, "end", 2, status="failed", error=error, out_of_memory=out_of_memory)
    launcher.jobs[job_id].state = "failed"
    message = queue.status(job_id).message
    assert message.startswith(f"failed: {error}")
    assert ("ask the Advisor tab again" in message) is advised


@pytest.mark.slow
def test_a_training_process_killed_by_the_system_says_so(tiny_env, data, tmp_path):
    """SIGKILL (what the out-of-memory killer sends) leaves no end event; the page says what
    most likely happened instead of 'ended without a result'."""
    import signal

    q = JobQueue(tmp_path / "runs", gpus=0)
    job_id = q.submit(tiny_config(data, max_train_steps=5000), session_id="one")
    run_dir = q.runs_dir / job_id
    wait_until(lambda: any(e["kind"] == "step" for e in read_events(run_dir)), "the first step", run_dir)
    pid = [e for e in read_events(run_dir) if e["kind"] == "start"][-1]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: q.status(job_id).state != "running", "the job to end", run_dir)
    status = q.status(job_id)
    assert status.state == "failed" and "killed by the system (SIGKILL)" in status.message, status.message
    assert "killed by the system (SIGKILL)" in progress(run_dir)["message"]
    assert not [e for e in read_events(run_dir) if e["kind"] == "end"]  # nothing could be written


def test_one_owner_cannot_fill_the_shared_queue(fake, data, monkeypatch):
    """Issue 13's per-user quota: runs waiting or training at once, per owner (others unaffected)."""
    from lab.jobs import PER_OWNER_ENV

    monkeypatch.setenv(PER_OWNER_ENV, "2")
    launcher, make = fake
    q = make(gpus=1)
    q.submit(cfg(data), session_id="ana")
    q.submit(cfg(data), session_id="ana")
    with pytest.raises(ValueError, match="you already have 2 runs waiting or training"):
        q.submit(cfg(data), session_id="ana")
    assert q.submit(cfg(data), session_id="bo")          # someone else still gets in
    monkeypatch.setenv(PER_OWNER_ENV, "lots")
    with pytest.raises(ValueError, match="FTA_MAX_JOBS_PER_USER='lots'"):
        q.submit(cfg(data), session_id="cy")


def test_the_admin_view_lists_everyones_jobs_and_stops_any(fake, data, tmp_path, monkeypatch):
    """Issue 13's admin view: only logins named in FTA_ADMIN; every job with its owner and disk use."""
    from lab import admin

    monkeypatch.setenv(admin.ADMIN_ENV, "root, ops")
    assert admin.is_admin("user:root") and admin.is_admin("user:ops")
    assert not admin.is_admin("user:ana") and not admin.is_admin("browser:root") and not admin.is_admin(None)
    launcher, make = fake
    q = make(gpus=1)
    running = q.submit(cfg(data), session_id="user:ana")
    waiting = q.submit(cfg(data), session_id="browser:bo")
    (tmp_path / "uploads" / "x").mkdir(parents=True)
    (tmp_path / "uploads" / "x" / "a.bin").write_bytes(b"0" * 2_000_000)
    seen = admin.overview(q, tmp_path / "uploads")
    jobs = seen["jobs"].set_index("Job")
    assert jobs.loc[running, "Owner"] == "user:ana" and jobs.loc[running, "State"] == "running"
    assert jobs.loc[waiting, "State"] == "queued" and jobs.loc[waiting, "Place"] == 1
    usage = seen["usage"].set_index("Owner")
    assert usage.loc["browser:bo", "Active"] == 1 and usage.loc["user:ana", "Runs"] == 1
    assert "2 runs by 2 people; 2 waiting or training" in seen["markdown"] and "2.0 MB of uploads" in seen["markdown"]
    assert "cancelled" in admin.stop_any(q, waiting)
    assert admin.stop_any(q, "../etc") == "**No such job.**" and admin.stop_any(q, None) == "**No such job.**"

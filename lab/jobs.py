"""JobQueue: one training per GPU, the rest wait in line, and any page can find its job again.

The run folder is the job: `submit` writes `config.json`, `lab.json` (who asked, when, the job's
lab state) and a `queued` marker into `runs/<job_id>/` before anything starts, so a reloaded page,
a second tab or a restarted app sees the same job. The order of the queue, the running jobs and
which session owns which job live in `runs/queue.json` (atomic writes, and a file lock so two app
processes over one runs folder never start the same job twice). Starting is `trainer.launch`
(a subprocess in its own process group); following a job started by an earlier app process is
`trainer.launch.attach` (from the run's `job.json`).

Slots: `max(1, number of CUDA GPUs)`, or $FTA_MAX_CONCURRENT_TRAININGS. With several GPUs and
several slots each job is pinned to one GPU (CUDA_VISIBLE_DEVICES); with one slot a job gets
every GPU (accelerate's multi-GPU launch).

Without a CUDA GPU only the built-in models train (the shapes demo model, the random tiny model:
a demonstration); a real base model is
refused with a message saying where to get a GPU, unless $FTA_ALLOW_CPU_TRAINING=1.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from advisor.runlog.paths import default_runs_dir
from trainer.config import ConfigError, TrainConfig
from trainer.events import error_line, last_event, read_events
from trainer.launch import JOB_FILE, TrainingJob, attach, ended_without_result, launch
from trainer.tiny import BUILTIN_MODELS


try:  # POSIX; elsewhere the in-process lock alone guards the queue file
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

QUEUE_FILE = "queue.json"
LAB_FILE = "lab.json"
QUEUED_MARKER = "queued"
SLOTS_ENV = "FTA_MAX_CONCURRENT_TRAININGS"
PER_OWNER_ENV = "FTA_MAX_JOBS_PER_USER"   # runs one owner may have waiting or training at once
DEFAULT_PER_OWNER = 3                     # one training and two waiting: nobody fills a shared queue alone
ALLOW_CPU_ENV = "FTA_ALLOW_CPU_TRAINING"
STATES = ("queued", "running", "completed", "stopped", "failed", "cancelled", "unknown")
ACTIVE_STATES = ("queued", "running")
_TINY_MARKER = "tiny_model_version.txt"  # written by trainer.tiny into every tiny model folder
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CPU_ONLY_MESSAGE = (
    "base_model {model!r} needs a CUDA GPU and this machine has none. Get one: rent a GPU machine "
    "(RunPod, Lambda, vast.ai, ...) and run the app there; on Hugging Face Spaces pick dedicated GPU "
    "hardware in the Space's settings (ZeroGPU cannot run a training job); or use a Google Colab GPU "
    "runtime. Here you can train the built-in 'tiny' model as a demonstration, or set "
    f"{ALLOW_CPU_ENV}=1 to train on the CPU anyway (hours per hundred steps).")
DEMO_NOTE = "demonstration: a small built-in model on the CPU"

# Jobs this process launched, by run folder: their Popen handles reap the finished processes
# (an attached pid of our own dead child would look alive as a zombie), whichever JobQueue asks.
_LAUNCHED: dict[str, TrainingJob] = {}
_LAUNCHED_LOCK = threading.Lock()


class CpuOnlyError(ConfigError):
    """A real base model was submitted on a machine without a CUDA GPU."""


@dataclass
class JobStatus:
    job_id: str
    state: str                     # one of STATES
    place: int | None = None       # queued: 1 = next to start
    message: str = ""              # one sentence for the page
    run_dir: str | None = None
    session_id: str | None = None
    demo: bool = False             # the tiny model on a CPU: label it a demonstration
    stopping: bool = False         # stop asked; the run is saving a checkpoint

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def _detected_gpus() -> int:
    from trainer.launch import cuda_device_count  # imports torch: once, and only when asked

    return cuda_device_count()


def is_builtin_tiny(base_model: str) -> bool:
    """Whether `base_model` names the built-in tiny model ("tiny", or a folder made by make-tiny-model)."""
    if base_model in BUILTIN_MODELS:
        return True
    try:
        return (Path(base_model).expanduser() / _TINY_MARKER).is_file()
    except (OSError, ValueError):
        return False


def _write_json(path: Path, data: Any) -> None:
    """Write-then-rename: a reader (or a crash) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


class JobQueue:
    """The lab's trainings over one runs folder. Every method re-reads the shared state, so any
    number of JobQueue objects (page reloads, app restarts) agree about the same folder.

    `slots`/`gpus` default to the environment and the machine; `launcher`/`attacher` default to
    trainer.launch's `launch`/`attach` (tests pass fakes to check the queue without training).
    """

    def __init__(self, runs_dir: str | Path | None = None, *, slots: int | None = None, gpus: int | None = None,
                 launcher: Callable[..., TrainingJob] | None = None,
                 attacher: Callable[[Path], TrainingJob] | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.slots = slots
        self.gpus = gpus
        self.launcher = launcher
        self.attacher = attacher
        self._lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self.last_pump_error: str | None = None

    # --- configuration ---------------------------------------------------------------------------
    def gpu_count(self) -> int:
        return self.gpus if self.gpus is not None else _detected_gpus()

    def slot_count(self) -> int:
        if self.slots is not None:
            if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1:
                raise ValueError(f"slots={self.slots!r}; must be an integer >= 1")
            return self.slots
        raw = os.environ.get(SLOTS_ENV, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{SLOTS_ENV}={raw!r}; must be an integer >= 1")
            return int(raw)
        return max(1, self.gpu_count())

    def per_owner_limit(self) -> int:
        """How many runs one owner may have queued or training at once ($FTA_MAX_JOBS_PER_USER)."""
        raw = os.environ.get(PER_OWNER_ENV, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{PER_OWNER_ENV}={raw!r}; must be an integer >= 1")
            return int(raw)
        return DEFAULT_PER_OWNER

    def check_device(self, config: TrainConfig) -> bool:
        """True when this is a CPU demonstration; CpuOnlyError for a real model without a GPU."""
        if self.gpu_count() > 0:
            return False
        if is_builtin_tiny(config.base_model):
            return True
        if os.environ.get(ALLOW_CPU_ENV, "").strip() == "1":
            return False
        raise CpuOnlyError(CPU_ONLY_MESSAGE.format(model=config.base_model))

    # --- submitting ------------------------------------------------------------------------------
    def submit(self, config: TrainConfig | dict[str, Any], *, session_id: str, profile: Any = None) -> str:
        """Validate, write the run folder with a `queued` marker, queue it, start it if a slot is free.

        Returns the job id (the run folder's name). Raises ConfigError (a ValueError) with the
        field named for a bad config, CpuOnlyError for a real model without a GPU.
        `profile` (an advisor Profile or its dict) is saved as profile.json for the run log.
        """
        if isinstance(config, dict):
            config = TrainConfig.from_dict(dict(config))
        elif not isinstance(config, TrainConfig):
            raise ConfigError(f"config must be a TrainConfig or a dict, got {type(config).__name__}")
        session_id = _check_session(session_id)
        if not config.data_dir.strip():
            raise ConfigError("data_dir is empty; upload images or pick a folder on the server first")
        if not Path(config.data_dir).expanduser().is_dir():
            raise ConfigError(f"data_dir '{config.data_dir}' does not exist or is not a folder")
        demo = self.check_device(config)
        profile_dict = profile.to_dict() if hasattr(profile, "to_dict") else profile
        if profile_dict is not None and not isinstance(profile_dict, dict):
            raise ValueError(f"profile must be a Profile or a dict, got {type(profile).__name__}")
        with self._locked():
            state = self._load()
            mine = [j for j in state["queue"] + [j for j in state["running"] if self._is_running(j)]
                    if state["sessions"].get(j) == session_id]
            limit = self.per_owner_limit()
            if len(mine) >= limit:
                raise ValueError(f"you already have {len(mine)} run{'s' if len(mine) != 1 else ''} waiting or "
                                 f"training (the most at once is {limit}); stop one, or wait for one to end")
            job_id = self._new_id(config.method)
            run_dir = self.runs_dir / job_id
            # the lab decides where runs go; the data folder is made absolute (same folder) so the run
            # still finds it when resumed by an app started from another working directory
            config = replace(config, output_dir=str(run_dir.resolve()),
                             data_dir=str(Path(config.data_dir).expanduser().resolve()))
            run_dir.mkdir(parents=True)
            config.save(run_dir / "config.json")
            if profile_dict is not None:
                _write_json(run_dir / "profile.json", profile_dict)
            now = time.time()
            _write_json(run_dir / LAB_FILE, {"job_id": job_id, "session_id": session_id, "submitted": now,
                                             "state": "queued", "resume": None, "demo": demo, "gpu": None,
                                             "error": None, "stop_requested": False})
            _write_json(run_dir / QUEUED_MARKER, {"submitted": now})
            state = self._load()
            state["queue"].append(job_id)
            state["sessions"][job_id] = session_id
            self._save(state)
        self.pump()
        return job_id

    def _new_id(self, method: str) -> str:
        while True:
            now = time.time()  # milliseconds in the id: ids sort in submit order
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
            job_id = f"{stamp}-{method}-{secrets.token_hex(3)}"
            if not (self.runs_dir / job_id).exists():
                return job_id

    # --- starting what can start -------------------------------------------------------------------
    def pump(self) -> list[str]:
        """Start queued jobs while slots are free (FIFO); return the ids started. Cheap when idle."""
        started = []
        with self._locked():
            state = self._load()
            before = json.dumps(state, sort_keys=True)
            state["running"] = [j for j in state["running"] if self._is_running(j)]
            _forget_finished()
            # slots are counted only when something waits: counting GPUs imports torch
            free = self.slot_count() - len(state["running"]) if state["queue"] else 0
            while free > 0 and state["queue"]:
                job_id = state["queue"].pop(0)
                if self._start(job_id, state["running"]):
                    state["running"].append(job_id)
                    started.append(job_id)
                    free -= 1
            if json.dumps(state, sort_keys=True) != before:
                self._save(state)
        return started

    def _start(self, job_id: str, running: list[str]) -> bool:
        run_dir = self.runs_dir / job_id
        rec = self._record(job_id)
        (run_dir / QUEUED_MARKER).unlink(missing_ok=True)
        if rec is None or rec.get("state") != "queued":
            return False
        gpu = self._free_gpu(running)
        env = {"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else None
        try:
            config = TrainConfig.load(run_dir / "config.json")
            job = (self.launcher or launch)(config, resume=rec.get("resume"), env=env,
                                            gpus=1 if gpu is not None else self.gpu_count())
        except Exception as e:  # a refused start is this job's failure, never the queue's
            rec.update(state="failed", error=error_line(e))
            _write_json(run_dir / LAB_FILE, rec)
            return False
        with _LAUNCHED_LOCK:
            _LAUNCHED[str(run_dir.resolve())] = job
        rec.update(state="launched", gpu=gpu, launched=time.time(), stop_requested=False, error=None)
        _write_json(run_dir / LAB_FILE, rec)
        return True

    def _free_gpu(self, running: list[str]) -> int | None:
        n = self.gpu_count()
        if n < 2 or self.slot_count() < 2:
            return None
        used = {(self._record(j) or {}).get("gpu") for j in running}
        free = [i for i in range(n) if i not in used]
        return free[0] if free else len(running) % n

    # --- following jobs ----------------------------------------------------------------------------
    def _job(self, job_id: str) -> TrainingJob | None:
        run_dir = self.runs_dir / job_id
        with _LAUNCHED_LOCK:
            job = _LAUNCHED.get(str(run_dir.resolve()))
        if job is not None:
            return job
        if not (run_dir / JOB_FILE).is_file():
            return None
        try:
            return (self.attacher or attach)(run_dir)
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _is_running(self, job_id: str) -> bool:
        job = self._job(job_id) if _JOB_ID.match(job_id) else None
        return job is not None and _job_status(job) == "running"

    def status(self, job_id: str) -> JobStatus:
        """queued (with place) | running | completed | stopped | failed | cancelled | unknown."""
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            return JobStatus(str(job_id), "unknown", message="no such job")
        run_dir = self.runs_dir / job_id
        rec = self._record(job_id)
        if rec is None:
            return JobStatus(job_id, "unknown", message="no such job")
        base = dict(job_id=job_id, run_dir=str(run_dir), session_id=rec.get("session_id"),
                    demo=bool(rec.get("demo")))
        lab_state = rec.get("state")
        if lab_state == "queued":
            state = self._load()
            place = state["queue"].index(job_id) + 1 if job_id in state["queue"] else None
            ahead = len(state["running"])
            msg = (f"waiting in the queue, place {place} ({ahead} training(s) running; one at a time on each "
                   f"GPU, or on this machine without one)" if place else "waiting to start")
            return JobStatus(state="queued", place=place, message=msg, **base)
        if lab_state == "cancelled":
            return JobStatus(state="cancelled", message="cancelled before it started", **base)
        if lab_state == "failed":
            return JobStatus(state="failed", message=f"could not start: {rec.get('error')}", **base)
        job = self._job(job_id)
        if job is None:
            return JobStatus(state="unknown", message="no record of this job starting", **base)
        status = _job_status(job)
        if status not in STATES:
            status = "unknown"
        stopping = status == "running" and bool(rec.get("stop_requested"))
        return JobStatus(state=status, message=_message(status, run_dir, stopping, base["demo"]),
                         stopping=stopping, **base)

    def active_for(self, session_id: str) -> JobStatus | None:
        """The session's newest queued or running job (what a reloaded page reattaches to), or None."""
        state = self._load()
        mine = [j for j in state["queue"] + state["running"] if state["sessions"].get(j) == session_id]
        for job_id in sorted(mine, reverse=True):  # ids start with the submit time
            st = self.status(job_id)
            if st.active:
                return st
        return None

    def latest_for(self, session_id: str) -> JobStatus | None:
        """The session's newest job in any state (e.g. a finished one whose results are shown), or None."""
        state = self._load()
        mine = sorted((j for j, s in state["sessions"].items() if s == session_id), reverse=True)
        return self.status(mine[0]) if mine else None

    def overview(self) -> list[dict[str, Any]]:
        """Running then queued jobs, in order, without whose they are: the queue as everyone sees it."""
        state = self._load()
        rows = [{"job_id": j, "state": "running", "place": None} for j in state["running"] if self._is_running(j)]
        rows += [{"job_id": j, "state": "queued", "place": i + 1} for i, j in enumerate(state["queue"])]
        return rows

    # --- stopping and resuming ---------------------------------------------------------------------
    def stop(self, job_id: str, *, wait: bool = True, timeout: float = 120.0) -> JobStatus:
        """Running: SIGTERM, the run saves a checkpoint and ends "stopped" (`wait=False` returns at
        once, status "running" with stopping=True). Queued: removed from the queue, "cancelled".
        Anything else is left as it is (stopping twice is harmless)."""
        current = self.status(job_id)
        if current.state == "queued":
            with self._locked():
                state = self._load()
                rec = self._record(job_id)
                if job_id in state["queue"] and rec is not None and rec.get("state") == "queued":
                    state["queue"].remove(job_id)
                    rec["state"] = "cancelled"
                    _write_json(self.runs_dir / job_id / LAB_FILE, rec)
                    (self.runs_dir / job_id / QUEUED_MARKER).unlink(missing_ok=True)
                    self._save(state)
            return self.status(job_id)
        if current.state == "running":
            with self._locked():
                rec = self._record(job_id)
                rec["stop_requested"] = True
                _write_json(self.runs_dir / job_id / LAB_FILE, rec)
            self._job(job_id).stop(timeout=timeout if wait else 0)
            self.pump()
        return self.status(job_id)

    def resume(self, job_id: str) -> JobStatus:
        """Queue a stopped, failed or cancelled job again; it continues from its latest checkpoint
        (`resume="latest"`) into the same run folder when it has one, else starts from step 0."""
        current = self.status(job_id)
        if current.state not in ("stopped", "failed", "cancelled"):
            raise ValueError(f"job {job_id!r} is {current.state}; only a stopped, failed or cancelled job "
                             "can be resumed")
        with self._locked():
            rec = self._record(job_id)
            has_checkpoint = any((self.runs_dir / job_id / "checkpoints").glob("checkpoint-*"))
            rec.update(state="queued", resume="latest" if has_checkpoint else None, stop_requested=False, error=None)
            _write_json(self.runs_dir / job_id / LAB_FILE, rec)
            _write_json(self.runs_dir / job_id / QUEUED_MARKER, {"submitted": time.time()})
            state = self._load()
            state["running"] = [j for j in state["running"] if j != job_id]
            state["queue"].append(job_id)
            state["sessions"][job_id] = rec.get("session_id")
            self._save(state)
        self.pump()
        return self.status(job_id)

    # --- the background pump -----------------------------------------------------------------------
    def start(self, interval: float = 2.0) -> "JobQueue":
        """Pump every `interval` seconds on a daemon thread (the app's timer may pump too)."""
        if self._thread is None or not self._thread.is_alive():
            self._halt.clear()
            self._thread = threading.Thread(target=self._run, args=(interval,), name="lab-job-pump", daemon=True)
            self._thread.start()
        return self

    def _run(self, interval: float) -> None:
        while not self._halt.wait(interval):
            try:
                self.pump()
                self.last_pump_error = None
            except Exception as e:  # keep pumping: one bad job folder must not stall the queue
                self.last_pump_error = error_line(e)

    def close(self) -> None:
        """Stop the background pump (running trainings go on)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "JobQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- shared state: queue.json and lab.json -------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        """This object's thread lock plus an exclusive lock file shared by every process."""
        with self._lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    self.runs_dir.mkdir(parents=True, exist_ok=True)
                    if fcntl is not None:
                        self._lock_fd = os.open(self.runs_dir / ".queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
                        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                yield
            finally:
                if self._depth == 1 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    os.close(self._lock_fd)
                    self._lock_fd = None
                self._depth -= 1

    def _record(self, job_id: str) -> dict[str, Any] | None:
        rec = _read_json(self.runs_dir / job_id / LAB_FILE)
        return rec if isinstance(rec, dict) else None

    def _load(self) -> dict[str, Any]:
        """queue.json, checked against the run folders; rebuilt from them when missing or damaged."""
        data = _read_json(self.runs_dir / QUEUE_FILE)
        if not (isinstance(data, dict) and isinstance(data.get("queue"), list)
                and isinstance(data.get("running"), list) and isinstance(data.get("sessions"), dict)):
            data = self._rebuild()
        def ok(j) -> bool:
            return isinstance(j, str) and bool(_JOB_ID.match(j)) and (self.runs_dir / j / LAB_FILE).is_file()
        data["queue"] = [j for j in dict.fromkeys(data["queue"]) if ok(j)
                         and (self.runs_dir / j / QUEUED_MARKER).is_file()]
        data["running"] = [j for j in dict.fromkeys(data["running"]) if ok(j)]
        data["sessions"] = {j: s for j, s in data["sessions"].items() if ok(j)}
        return data

    def _rebuild(self) -> dict[str, Any]:
        """The state from the run folders alone (queue.json lost): markers in submit order."""
        queued, running, sessions = [], [], {}
        if self.runs_dir.is_dir():
            for lab in self.runs_dir.glob(f"*/{LAB_FILE}"):
                rec = _read_json(lab)
                if not isinstance(rec, dict):
                    continue
                job_id = lab.parent.name
                sessions[job_id] = rec.get("session_id")
                marker = _read_json(lab.parent / QUEUED_MARKER)
                if rec.get("state") == "queued" and marker is not None:
                    queued.append((marker.get("submitted", 0) if isinstance(marker, dict) else 0, job_id))
                elif rec.get("state") == "launched":
                    running.append(job_id)
        return {"queue": [j for _, j in sorted(queued)], "running": sorted(running), "sessions": sessions}

    def _save(self, state: dict[str, Any]) -> None:
        _write_json(self.runs_dir / QUEUE_FILE, {"version": 1, **state})


def _job_status(job: TrainingJob) -> str:
    """A job is running while any of its processes lives: a resumed run still shows the previous
    attempt's end event until its new start, and a finishing run holds its GPU until it exits."""
    if job.alive():  # (polling also reaps a process this app started)
        return "running"
    return job.status()


def _forget_finished() -> None:
    """Drop launched jobs whose processes have all ended; attach() follows them from here on."""
    with _LAUNCHED_LOCK:
        for key in [k for k, job in _LAUNCHED.items() if not job.alive()]:
            del _LAUNCHED[key]


def _check_session(session_id: Any) -> str:
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 256:
        raise ValueError(f"session_id={session_id!r}; must be non-empty text of at most 256 characters")
    return session_id


def _message(status: str, run_dir: Path, stopping: bool, demo: bool) -> str:
    """One sentence for a launched job, from its events."""
    events = read_events(run_dir)
    end = last_event(events, "end")
    if status == "running":
        newest = {e.get("kind"): i for i, e in enumerate(events)}   # each kind's newest position
        ended = newest.get("end", -1) > newest.get("start", -1)
        saving = (not ended and newest.get("status", -1) > newest.get("start", -1)
                  and events[newest["status"]].get("phase") == "saving")
        if stopping:
            text = "stopping: saving a checkpoint"
        elif ended and (end or {}).get("status") == "completed":
            # the process lives on after its last step: it scores the checkpoints, then the run
            latest = events[newest["status"]] if newest.get("status", -1) > newest["end"] else {}
            if latest.get("phase") == "scoring_checkpoints":
                text = (f"training done; {latest.get('message', 'scoring checkpoints')}: the same prompts and seeds "
                        "at each one, so you can see where likeness peaks")
            else:
                text = ("training done; scoring the run now: base and fine-tuned images at the same seeds, then "
                        "accuracy, flexibility and preservation (a minute or two)")
        elif events and events[-1].get("kind") == "status" and events[-1].get("phase") in ("scoring", "scoring_setup"):
            text = events[-1].get("message", "scoring a checkpoint")
        elif saving:
            text = "training done; saving the outputs"
        else:
            step = last_event(events, "step")
            start = last_event(events, "start")
            total = (start or {}).get("max_train_steps")
            text = f"training, step {step['step']}/{total}" if step and total else "starting"
        return f"{text} ({DEMO_NOTE})" if demo else text
    if status == "completed":
        return "completed"
    if status == "stopped":
        return f"stopped at step {end['step'] if end else '?'}; a checkpoint was saved, resume to continue"
    if status == "failed":
        failed = end if (end or {}).get("error") else (last_event(events, "error") or {})
        error = failed.get("error") or ended_without_result(run_dir)
        return f"failed: {with_advice(error, failed.get('out_of_memory') is True)}"
    return "state unknown"


def with_advice(error: str, out_of_memory: bool) -> str:
    """A run's error line, plus where to go next when the run ran out of GPU memory
    (`out_of_memory`: the flag the trainer writes on a failed run's `end` and `error` events)."""
    if out_of_memory:
        return error + (" — or ask the Advisor tab again: it has read this run, and fits its next plan to "
                        "your card with what this one needed")
    return error

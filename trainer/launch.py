"""Start a training run as a subprocess under `accelerate launch`, and follow it.

    job = launch(config)            # writes <run>/config.json, starts the run, returns at once
    for event in job.new_events():  # tail events.jsonl
        ...
    job.stop()                      # SIGTERM: the run saves a checkpoint and ends "stopped"
    job.wait()                      # exit code

The command is `python -m accelerate.commands.launch [...] -m trainer train --config <run>/config.json`
as an argument list (never a shell string), in its own process group, with stdout and stderr
in `<run>/train.log`. Without a CUDA GPU it runs on the CPU (`--cpu --num_processes 1`). With
GPUs, the user's accelerate config (`accelerate config`; multi-GPU, DeepSpeed, ...) is used when
one exists, otherwise one process per GPU. `attach(run_dir)` follows a job started earlier (by
another process) from `<run>/job.json`.

Importing this module does not import torch: the UI can import it freely.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig
from .events import END_STATUSES, last_event, read_events, read_new_events, run_status

JOB_FILE = "job.json"
LOG_FILE = "train.log"
_EXIT_BY_STATUS = {"completed": 0, "stopped": 0, "failed": 1}
# How a launcher ends on a stop signal: Popen reports -N when the signal killed it; one that
# catches the signal and exits by the shell's convention (accelerate 1.16) gives 128 + N.
_STOP_EXITS = (128 + signal.SIGTERM, 128 + signal.SIGINT)


def user_accelerate_config() -> Path | None:
    """The default config `accelerate config` writes, if the user made one (same lookup as accelerate)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    path = Path(home).expanduser() / "accelerate" / "default_config.yaml"
    return path if path.is_file() else None


def cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def accelerate_command(config_path: str | Path, *, mixed_precision: str = "no", resume: str | None = None,
                       gpus: int | None = None, accelerate_config: str | Path | None = None) -> list[str]:
    """The `accelerate launch` argument list for one run (`gpus=None`: count them)."""
    gpus = cuda_device_count() if gpus is None else gpus
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    # our defaults only where no accelerate config decides (they also silence its warnings)
    ours = ["--num_machines", "1", "--dynamo_backend", "no"]
    if gpus == 0:
        cmd += ["--cpu", "--num_processes", "1", *ours]
    elif accelerate_config is not None:
        cmd += ["--config_file", str(accelerate_config)]
    elif user_accelerate_config() is None:  # otherwise accelerate reads the user's own config
        cmd += ["--num_processes", str(gpus), *ours] + (["--multi_gpu"] if gpus > 1 else [])
    # precision is part of the run's config (the single source of truth), so it always goes along
    cmd += ["--mixed_precision", mixed_precision, "-m", "trainer", "train", "--config", str(config_path)]
    if resume:
        cmd += ["--resume", str(resume)]
    return cmd


class TrainingJob:
    """A launched (or attached) training run: follow its events, stop it, wait for it."""

    def __init__(self, run_dir: str | Path, pid: int, process: subprocess.Popen | None = None):
        self.run_dir = Path(run_dir)
        self.pid = pid              # the launcher: leader of the job's process group
        self._process = process     # None when attached to a job another process started
        self._offset = 0
        self._stopped_by_us = False

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.run_dir)

    def new_events(self) -> list[dict[str, Any]]:
        """Events written since the last call (the first call returns all so far)."""
        rows, self._offset = read_new_events(self.run_dir, self._offset)
        return rows

    def alive(self) -> bool:
        """Whether any process of the job is still running (the trainer may outlive the launcher)."""
        if self._process is not None and self._process.poll() is None:
            return True
        try:
            os.killpg(self.pid, 0)  # the group lives while any of its processes does
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def status(self) -> str:
        """running | completed | stopped | failed | unknown (from events.jsonl and the processes)."""
        status = run_status(self.run_dir)
        if status in END_STATUSES:
            return status
        if self.alive():
            return "running"  # also while starting up, before the first event
        return "failed" if status in ("running", "unknown") and self._launched() else status

    def _launched(self) -> bool:
        return self._process is not None or (self.run_dir / JOB_FILE).is_file()

    def stop(self, timeout: float = 120.0) -> str:
        """SIGTERM the job's process group and wait until the run has ended; return its status."""
        if self.alive():
            self._stopped_by_us = True
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.wait(timeout)
        return self.status()

    def kill(self) -> None:
        """SIGKILL the whole group: no checkpoint, no end event (status becomes "failed")."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for every process of the job to exit; return `returncode` (None on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        return self.returncode

    @property
    def returncode(self) -> int | None:
        """The launcher's exit code; for an attached job, or when `stop()` ended the launcher
        (killed by the signal, or exiting 143/130 for SIGTERM/SIGINT), the run's own (0 completed
        or stopped, 1 failed): the launcher's code then tells only that it was stopped."""
        if self.alive():
            return None
        code = self._process.returncode if self._process is not None else None
        if code is not None and not (self._stopped_by_us and (code < 0 or code in _STOP_EXITS)):
            return code
        end = last_event(self.events(), "end")
        return _EXIT_BY_STATUS.get(end.get("status"), 1) if end else 1


def launch(config: TrainConfig | str | Path, *, resume: str | None = None, env: dict[str, str] | None = None,
           gpus: int | None = None, accelerate_config: str | Path | None = None) -> TrainingJob:
    """Write `<run>/config.json` and start the run; return at once with its TrainingJob."""
    from .checkpoints import check_run_folder

    if not isinstance(config, TrainConfig):
        config = TrainConfig.load(config)
    run_dir = Path(config.output_dir).resolve()
    previous = _read_job_file(run_dir)
    if previous and TrainingJob(run_dir, previous["pid"]).alive():
        raise ConfigError(f"output_dir '{run_dir}' already has a running job (pid {previous['pid']})")
    check_run_folder(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = config.save(run_dir / "config.json")
    cmd = accelerate_command(config_path, mixed_precision=config.mixed_precision, resume=resume, gpus=gpus,
                             accelerate_config=accelerate_config)
    child_env = child_environment(config, env, gpus)
    with open(run_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=child_env, start_new_session=True)
    (run_dir / JOB_FILE).write_text(json.dumps({"pid": process.pid, "cmd": cmd, "started": time.time()}) + "\n")
    return TrainingJob(run_dir, process.pid, process)


def child_environment(config: TrainConfig, env: dict[str, str] | None = None,
                      gpus: int | None = None) -> dict[str, str]:
    """The training process's environment: ours plus `env`, with the trainer importable, and
    one CPU thread for the built-in tiny model on a machine without a GPU (its operations are
    too small to gain from threads; on a busy 2-core machine two threads ran a run 7x slower)
    unless OMP_NUM_THREADS is set already."""
    from .tiny import BUILTIN_MODELS

    child_env = {**os.environ, **(env or {})}
    # the trainer package must be importable by the child even when it is not installed
    root = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    no_gpu = (cuda_device_count() if gpus is None else gpus) == 0
    if no_gpu and config.base_model in BUILTIN_MODELS and "OMP_NUM_THREADS" not in child_env:
        child_env["OMP_NUM_THREADS"] = child_env["MKL_NUM_THREADS"] = "1"
    return child_env


_KILLED = re.compile(r"SIGKILL|signal 9\b|exit status -9\b|^Killed\b", re.MULTILINE)


def ended_without_result(run_dir: str | Path) -> str:
    """Why a run's process ended without its `end` event, as one line from the end of its log:
    killed by the system (the Linux out-of-memory killer sends SIGKILL, which no program can
    catch, so nothing else is written), or otherwise unknown."""
    try:
        with open(Path(run_dir) / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    if _KILLED.search(tail):
        return ("the training process was killed by the system (SIGKILL), most often because the machine ran out "
                "of memory: lower the resolution or batch size, turn on gradient checkpointing or cached latents, "
                "or close other programs; then resume from the last checkpoint")
    return "the training process ended without a result (see the log)"


def attach(run_dir: str | Path) -> TrainingJob:
    """Follow a job started earlier (by this or another process) from `<run>/job.json`."""
    run_dir = Path(run_dir)
    job = _read_job_file(run_dir)
    if job is None:
        raise FileNotFoundError(f"no {JOB_FILE} in '{run_dir}': it was not started by trainer.launch")
    return TrainingJob(run_dir, int(job["pid"]))


def _read_job_file(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / JOB_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None

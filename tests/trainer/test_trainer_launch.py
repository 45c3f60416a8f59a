"""trainer.launch: `accelerate launch` as a subprocess, followed through events.jsonl."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from helpers import fast_config, steps_logged
from trainer.config import ConfigError
from trainer.launch import JOB_FILE, LOG_FILE, accelerate_command, attach, launch
from trainer.checkpoints import checkpoint_dirs

ROOT = Path(__file__).resolve().parents[2]


def test_command_is_an_argument_list(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cpu = accelerate_command("/r/config.json", gpus=0, resume="latest")
    assert cpu[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cpu[3:6] == ["--cpu", "--num_processes", "1"]
    assert cpu[-7:] == ["-m", "trainer", "train", "--config", "/r/config.json", "--resume", "latest"]
    two = accelerate_command("/r/config.json", gpus=2, mixed_precision="bf16")
    assert "--multi_gpu" in two and two[two.index("--num_processes") + 1] == "2"
    assert two[two.index("--mixed_precision") + 1] == "bf16"
    assert "--multi_gpu" not in accelerate_command("/r/config.json", gpus=1)
    # a user's `accelerate config` (multi-GPU, DeepSpeed, ...) is respected, not overridden
    (tmp_path / "hf" / "accelerate").mkdir(parents=True)
    (tmp_path / "hf" / "accelerate" / "default_config.yaml").write_text("distributed_type: DEEPSPEED\n")
    mine = accelerate_command("/r/config.json", gpus=4)
    assert not {"--num_processes", "--multi_gpu", "--cpu", "--dynamo_backend"} & set(mine)
    chosen = accelerate_command("/r/config.json", gpus=4, accelerate_config="/my/ds.yaml")
    assert chosen[chosen.index("--config_file") + 1] == "/my/ds.yaml"


def _wait_for_step(job, timeout=240):
    deadline = time.monotonic() + timeout
    while not steps_logged(job.events()):
        assert job.alive(), (job.run_dir / LOG_FILE).read_text()[-3000:]
        assert time.monotonic() < deadline, "no step within the timeout"
        time.sleep(0.2)


@pytest.mark.slow
def test_launch_stop_attach_and_resume_to_completion(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=100_000, learning_rate=1e-3)
    job = launch(cfg)
    assert (tmp_path / "run" / "config.json").is_file() and (tmp_path / "run" / JOB_FILE).is_file()
    assert job.status() == "running" and job.returncode is None
    with pytest.raises(ConfigError, match="already has a running job"):
        launch(cfg)
    _wait_for_step(job)
    seen = job.new_events()
    assert seen[0]["kind"] == "start"
    assert all(e["kind"] != "start" for e in job.new_events())  # the tail moved past what was read
    assert job.stop(timeout=180) == "stopped"
    assert job.returncode == 0 and not job.alive()
    stopped_at = job.events()[-1]["step"]
    assert [s for s, _ in checkpoint_dirs(tmp_path / "run" / "checkpoints")] == [stopped_at]

    again = attach(tmp_path / "run")
    assert again.pid == job.pid and again.status() == "stopped" and again.returncode == 0

    more = cfg.with_overrides([f"max_train_steps={stopped_at + 1}"])
    job2 = launch(more, resume="latest")
    assert job2.wait(timeout=240) == 0, (tmp_path / "run" / LOG_FILE).read_text()[-3000:]
    assert job2.status() == "completed"
    assert steps_logged(job2.events())[-1]["step"] == stopped_at + 1
    assert (tmp_path / "run" / "output" / "pytorch_lora_weights.safetensors").is_file()


def test_attach_needs_a_launched_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="job.json"):
        attach(tmp_path)


def test_the_tiny_model_on_a_cpu_trains_with_one_thread(monkeypatch):
    from trainer.config import TrainConfig
    from trainer.launch import child_environment

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    tiny = TrainConfig(base_model="tiny", data_dir="d", output_dir="o")
    real = TrainConfig(base_model="runwayml/stable-diffusion-v1-5", data_dir="d", output_dir="o")
    assert child_environment(tiny, gpus=0)["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in child_environment(tiny, gpus=1)   # a GPU run: torch's own choice
    assert "OMP_NUM_THREADS" not in child_environment(real, gpus=0)   # a real model wants every core
    assert child_environment(tiny, {"OMP_NUM_THREADS": "4"}, gpus=0)["OMP_NUM_THREADS"] == "4"  # the user's wins
    assert child_environment(tiny, gpus=0)["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)


def test_why_a_run_ended_without_its_end_event(tmp_path):
    from trainer.launch import ended_without_result

    assert ended_without_result(tmp_path) == "the training process ended without a result (see the log)"
    (tmp_path / LOG_FILE).write_text("step 3\nsubprocess.CalledProcessError: Command '[...]' died with "
                                     "<Signals.SIGKILL: 9>.\n")
    assert ended_without_result(tmp_path).startswith("the training process was killed by the system (SIGKILL)")
    (tmp_path / LOG_FILE).write_text("Traceback ...\nValueError: something else\n")
    assert "see the log" in ended_without_result(tmp_path)


# A stand-in launcher: exits with `code` on SIGTERM (None: dies of the signal, as Popen reports -15).
_LAUNCHER = """
import signal, sys, time
code = {code!r}
if code is not None:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(code))
print("ready", flush=True)
time.sleep(60)
"""


def _stand_in_job(run_dir: Path, code: int | None):
    import subprocess

    from trainer.launch import TrainingJob

    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER.format(code=code)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"  # the handler is in place before any signal
    return TrainingJob(run_dir, proc.pid, proc), proc


@pytest.mark.parametrize("code", [143, 130, None])
@pytest.mark.parametrize("status, expected", [("stopped", 0), ("failed", 1)])
def test_a_launcher_ended_by_our_stop_reports_the_runs_own_exit(tmp_path, code, status, expected):
    """accelerate 1.16 exits 143 (128 + SIGTERM) on the stop; older ones died of it (-15). Either
    way the launcher's code only says it was stopped: the run's end event decides."""
    from trainer.events import emit

    job, proc = _stand_in_job(tmp_path, code)
    emit(tmp_path, "end", 7, status=status)  # what the run writes as it stops
    assert job.stop(timeout=30) == status
    assert proc.returncode == (code if code is not None else -15)
    assert job.returncode == expected


def test_a_launcher_that_exits_143_unasked_keeps_its_code(tmp_path):
    import signal

    job, proc = _stand_in_job(tmp_path, 143)
    os.killpg(proc.pid, signal.SIGTERM)  # someone else's signal, not job.stop()
    assert job.wait(timeout=30) == 143

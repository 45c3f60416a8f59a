"""Checkpoints: resume continues at the checkpoint's step with the same optimizer state, and a
stop signal leaves a checkpoint and status "stopped"."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, fast_config, steps_logged
from trainer.config import ConfigError
from trainer.events import read_events, run_status
from trainer.loop import train
from trainer.checkpoints import checkpoint_dirs


def _losses(run_dir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in steps_logged(read_events(run_dir))}


def _optimizer_state(checkpoint):
    from trainer.state_files import load_tree

    return load_tree(checkpoint, "training_state")["optimizer"]


@pytest.mark.parametrize("arch", ["sd15", "sdxl", "sd3", "flux", "flux2", "zimage", "qwenimage"])   # every model family
def test_resume_continues_exactly_where_the_checkpoint_left_off(arch, tiny_model, images, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tiny_model(arch)
    straight = fast_config(folder, images, tmp_path / "straight", max_train_steps=4, checkpointing_steps=2,
                           learning_rate=1e-3)
    train(straight, progress=False)

    first = fast_config(folder, images, tmp_path / "resumed", max_train_steps=2, checkpointing_steps=2,
                        learning_rate=1e-3)
    train(first, progress=False)
    assert [s for s, _ in checkpoint_dirs(tmp_path / "resumed" / "checkpoints")] == [2]
    second = first.with_overrides(["max_train_steps=4"])
    assert train(second, resume="latest", progress=False) == "completed"

    events = read_events(tmp_path / "resumed")
    resumed = [e for e in events if e["kind"] == "status" and e["phase"] == "resume"]
    assert resumed and resumed[-1]["step"] == 2
    after = [e["step"] for e in events[events.index(resumed[-1]):] if e["kind"] == "step"]
    assert after == [3, 4]  # continues at its step, does not redo 1-2
    a, b = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert (a[1], a[2]) == (b[1], b[2])  # same seed, same run: reproducible
    assert b[3] == pytest.approx(a[3], rel=1e-5) and b[4] == pytest.approx(a[4], rel=1e-5)

    # the optimizer state (Adam moments, step counts) matches the uninterrupted run's
    sa = _optimizer_state(tmp_path / "straight" / "checkpoints" / "checkpoint-4")["state"]
    sb = _optimizer_state(tmp_path / "resumed" / "checkpoints" / "checkpoint-4")["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert float(sa[k]["step"]) == float(sb[k]["step"]) == 4.0
        assert torch.allclose(sa[k]["exp_avg"], sb[k]["exp_avg"], atol=1e-6)
    wa = load_file(str(tmp_path / "straight" / "output" / "pytorch_lora_weights.safetensors"))
    wb = load_file(str(tmp_path / "resumed" / "output" / "pytorch_lora_weights.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_checkpoint_limit_keeps_the_newest(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=3, checkpointing_steps=1,
                      checkpoints_total_limit=1)
    train(cfg, progress=False)
    assert [s for s, _ in checkpoint_dirs(tmp_path / "run" / "checkpoints")] == [3]
    kept = tmp_path / "run" / "checkpoints" / "checkpoint-3"
    assert json.loads((kept / "meta.json").read_text())["step"] == 3
    assert (kept / "trainable.safetensors").is_file()
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))
    checkpoints = [e["step"] for e in read_events(tmp_path / "run") if e["kind"] == "checkpoint"]
    assert checkpoints == [1, 2, 3]


def test_a_finished_run_is_not_overwritten_and_resume_checks_the_method(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=1, checkpointing_steps=1)
    train(cfg, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg, progress=False)
    other = cfg.with_overrides(["method=dreambooth", "max_train_steps=2"])
    with pytest.raises(ConfigError, match="made by method 'lora'"):
        train(other, resume="latest", progress=False)
    with pytest.raises(ConfigError, match="not a complete checkpoint"):
        train(cfg, resume=str(tmp_path), progress=False)


def test_resume_latest_without_a_checkpoint_starts_at_zero(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=1)
    assert train(cfg, resume="latest", progress=False) == "completed"
    events = read_events(tmp_path / "run")
    assert any(e["kind"] == "status" and "no checkpoint" in e["message"] for e in events)
    assert [e["step"] for e in steps_logged(events)] == [1]


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_stops_then_resume_finishes(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=100_000, learning_rate=1e-3)
    cfg.save(tmp_path / "config.json")
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "train", "--config", str(tmp_path / "config.json"),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})
    deadline = time.monotonic() + 180
    while not steps_logged(read_events(tmp_path / "run")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no training step within 180 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    events = read_events(tmp_path / "run")
    end = events[-1]
    assert end["kind"] == "end" and end["status"] == "stopped" and run_status(tmp_path / "run") == "stopped"
    stopped_at = end["step"]
    assert [s for s, _ in checkpoint_dirs(tmp_path / "run" / "checkpoints")] == [stopped_at]
    assert events[-2]["kind"] == "checkpoint" and events[-2]["reason"] == "stop"

    more = cfg.with_overrides([f"max_train_steps={stopped_at + 1}"])
    assert train(more, resume="latest", progress=False) == "completed"
    assert steps_logged(read_events(tmp_path / "run"))[-1]["step"] == stopped_at + 1

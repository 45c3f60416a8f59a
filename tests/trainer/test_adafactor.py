"""Adafactor (use_adafactor): trains, keeps almost no optimizer state, and resumes exactly."""
from __future__ import annotations

import math

import pytest

from helpers import fast_config, steps_logged
from trainer.config import ConfigError, TrainConfig
from trainer.events import read_events
from trainer.loop import train


def _losses(run_dir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in steps_logged(read_events(run_dir))}


def test_adafactor_and_8bit_adam_cannot_both_be_on():
    with pytest.raises(ConfigError, match="pick one optimizer"):
        TrainConfig(use_8bit_adam=True, use_adafactor=True)


def test_adafactor_keeps_less_state_than_adamw():
    import torch

    from trainer.training_utils import make_optimizer

    def state_numbers(opt, weight):
        weight.grad = torch.ones_like(weight)
        opt.step()
        return sum(t.numel() for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.dim())

    w1, w2 = torch.nn.Parameter(torch.zeros(64, 64)), torch.nn.Parameter(torch.zeros(64, 64))
    adamw = state_numbers(make_optimizer([{"params": [w1]}], lr=1e-3, weight_decay=0.0, use_8bit_adam=False), w1)
    ada = state_numbers(make_optimizer([{"params": [w2]}], lr=1e-3, weight_decay=0.0, use_8bit_adam=False,
                                       use_adafactor=True), w2)
    assert adamw == 2 * 64 * 64 and ada == 64 + 64   # factored second moments: a row and a column
    assert w2.abs().sum() > 0                          # the fixed learning rate moved the weight


def test_a_full_fine_tune_with_adafactor_trains_and_resumes_to_the_same_losses(tiny_sd15, images, tmp_path):
    common = dict(method="full_finetune", use_adafactor=True, learning_rate=1e-3, checkpointing_steps=2)
    straight = fast_config(tiny_sd15, images, tmp_path / "straight", max_train_steps=4, **common)
    assert train(straight, progress=False) == "completed"
    first = fast_config(tiny_sd15, images, tmp_path / "resumed", max_train_steps=2, **common)
    train(first, progress=False)
    assert train(first.with_overrides(["max_train_steps=4"]), resume="latest", progress=False) == "completed"
    a, b = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert sorted(a) == [1, 2, 3, 4] and all(math.isfinite(v) for v in a.values())
    assert b[3] == pytest.approx(a[3], rel=1e-5) and b[4] == pytest.approx(a[4], rel=1e-5)

"""training_utils (learning-rate schedule, min-SNR weights, seeding) and checkpoints (the folders)."""
from __future__ import annotations

import math

import pytest

from trainer.checkpoints import checkpoint_dirs, checkpoint_path, latest_checkpoint, prune_checkpoints
from trainer.training_utils import (epoch_order, format_seconds, lr_factor, make_lr_scheduler, min_snr_weights,
                                    step_generator)


@pytest.mark.parametrize("schedule", ["constant", "constant_with_warmup", "linear", "cosine"])
def test_warmup_is_linear_for_every_schedule(schedule):
    factors = [lr_factor(schedule, s, warmup_steps=4, total_steps=100) for s in range(4)]
    assert factors == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_factor(schedule, 4, 4, 100) == pytest.approx(1.0)


def test_decaying_schedules():
    assert lr_factor("constant", 99, 0, 100) == 1.0
    assert lr_factor("linear", 50, 0, 100) == pytest.approx(0.5)
    assert lr_factor("linear", 100, 0, 100) == 0.0
    assert lr_factor("cosine", 50, 0, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 0, 100) == pytest.approx(0.0)
    assert lr_factor("cosine", 25, 0, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    with pytest.raises(ValueError, match="lr_scheduler='step'"):
        lr_factor("step", 10, 0, 100)


def test_lr_scheduler_follows_the_factor():
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_lr_scheduler(opt, "linear", warmup_steps=1, total_steps=3)
    seen = []
    for _ in range(3):
        seen.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.05, 0.1, 0.05])


def test_min_snr_weights():
    import torch
    from diffusers import DDPMScheduler
    from diffusers.training_utils import compute_snr

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    t = torch.tensor([0, 10, 500, 999])
    snr = compute_snr(sched, t)
    w = min_snr_weights(sched, t, gamma=5.0, prediction_type="epsilon")
    assert torch.allclose(w, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert w[0] < 1 and w[-1] == pytest.approx(1.0)  # low-noise steps are down-weighted, high-noise kept
    v = min_snr_weights(sched, t, gamma=5.0, prediction_type="v_prediction")
    assert torch.allclose(v, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))


def test_step_generators_are_reproducible_and_distinct():
    import torch

    a = torch.randn(3, generator=step_generator(42, 7))
    assert torch.equal(a, torch.randn(3, generator=step_generator(42, 7)))
    assert not torch.equal(a, torch.randn(3, generator=step_generator(42, 8)))
    assert not torch.equal(a, torch.randn(3, generator=step_generator(42, 7, process_index=1)))
    assert not torch.equal(a, torch.randn(3, generator=step_generator(43, 7)))


def test_epoch_order_is_a_seeded_permutation():
    order = epoch_order(10, epoch=0, seed=1)
    assert sorted(order) == list(range(10))
    assert order == epoch_order(10, epoch=0, seed=1)
    assert order != epoch_order(10, epoch=1, seed=1)


def test_checkpoint_folders(tmp_path):
    assert checkpoint_dirs(tmp_path / "none") == [] and latest_checkpoint(tmp_path) is None
    for step in (2, 10, 4):
        path = checkpoint_path(tmp_path, step)
        path.mkdir()
        (path / "meta.json").write_text("{}")
    (tmp_path / "checkpoint-20").mkdir()          # a save that was killed: no meta.json
    (tmp_path / ".tmp-checkpoint-30").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert [s for s, _ in checkpoint_dirs(tmp_path)] == [2, 4, 10]
    assert latest_checkpoint(tmp_path).name == "checkpoint-10"
    assert prune_checkpoints(tmp_path, keep=0) == []
    removed = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in removed] == ["checkpoint-2"]
    assert [s for s, _ in checkpoint_dirs(tmp_path)] == [4, 10]


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.4, 185, 3720)] == ["0s", "59s", "3m05s", "1h02m"]

"""No pickle on any checkpoint path: checkpoints hold safetensors and JSON only, and resuming
from a folder with a pickle file in it (planted, downloaded, or from an older version) is refused
before anything is loaded, so it cannot run code."""
from __future__ import annotations

import json
import random

import pytest

from helpers import fast_config
from trainer.checkpoints import PICKLE_SUFFIXES, checkpoint_dirs
from trainer.config import ConfigError
from trainer.loop import train
from trainer.state_files import join_tree, load_tree, rng_state, save_tree, set_rng_state, split_tree


class _Payload:
    """Unpickling this creates a file: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_holds_only_safetensors_and_json(tiny_sd15, images, tmp_path):
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=2, checkpointing_steps=2,
                      method="full_finetune", use_ema=True, learning_rate=1e-3)
    train(cfg, progress=False)
    (step, folder), = checkpoint_dirs(tmp_path / "run" / "checkpoints")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["meta.json", "rng_0.json", "rng_0.safetensors", "trainable.safetensors",
                     "training_state.json", "training_state.safetensors"]
    state = load_tree(folder, "training_state")
    assert state["optimizer"]["state"] and len(state["objects"]) == 2  # lr schedule and the EMA
    assert state["objects"][1]["optimization_step"] == 2


def test_resume_refuses_a_planted_pickle_without_loading_it(tiny_sd15, images, tmp_path):
    """Before: accelerate loaded custom_checkpoint_0.pkl with weights_only=False on --resume."""
    import torch

    cfg = fast_config(tiny_sd15, images, tmp_path / "run", max_train_steps=1, checkpointing_steps=1)
    train(cfg, progress=False)
    (_, folder), = checkpoint_dirs(tmp_path / "run" / "checkpoints")
    marker = tmp_path / "pwned"
    torch.save(_Payload(marker), folder / "custom_checkpoint_0.pkl")
    with pytest.raises(ConfigError) as e:
        train(cfg.with_overrides(["max_train_steps=2"]), resume="latest", progress=False)
    assert not marker.exists()
    message = str(e.value)
    assert "custom_checkpoint_0.pkl" in message and "can run code" in message and "\n" not in message
    assert {".pkl", ".bin", ".pt"} <= set(PICKLE_SUFFIXES)


def test_state_trees_round_trip_without_pickle(tmp_path):
    import numpy as np
    import torch

    tree = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2, 3)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1], "foreach": None}],
            "shadow_params": [torch.zeros(4)], "__tuple__": "a key that looks like a tag"}
    save_tree(tree, tmp_path, "s")
    back = load_tree(tmp_path, "s")
    assert back["param_groups"] == tree["param_groups"] and back["__tuple__"] == tree["__tuple__"]
    assert list(back["state"]) == [0] and torch.equal(back["state"][0]["exp_avg"], torch.ones(2, 3))
    assert json.loads((tmp_path / "s.json").read_text())  # plain JSON
    with pytest.raises(ValueError, match="without pickle"):
        split_tree({"x": object()})
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved = join_tree(*split_tree(rng_state()))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

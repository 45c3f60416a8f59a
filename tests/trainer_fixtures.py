"""Shared pieces of the trainer tests: the tiny model (built once per session) and fast configs.

Test modules import the fixtures by name (`from trainer_fixtures import tiny_sd15, ...`). The
model is built through `ensure_tiny_model` under pytest's session temp root, so every module
that imports the fixture reuses the same folder instead of building its own.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import make_images

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    from trainer.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-cache", arch="sd15")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from trainer.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-cache", arch="sdxl")


@pytest.fixture
def images(tmp_path) -> Path:
    """Four distinct 64 px PNGs (no captions)."""
    make_images(tmp_path / "data", 4)
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Class images and any cached model go under the test's temp folder, never ~/.cache.

    Also one torch thread (here and in subprocesses): the tiny model's ops are too small to
    gain from a second thread, and on a busy 2-core machine two spinning threads per process
    made steps 3-5x slower.
    """
    import torch

    monkeypatch.setenv("FTA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fast_config(model: Path, data: Path, out: Path, **overrides):
    """A TrainConfig that trains in a second on the tiny model (64 px, batch 1, 3 steps)."""
    from trainer.config import TrainConfig

    values = dict(base_model=str(model), data_dir=str(data), output_dir=str(out), resolution=64,
                  max_train_steps=3, learning_rate=1e-2, checkpointing_steps=0, validation_inference_steps=2,
                  validation_steps=0)
    values.update(overrides)
    return TrainConfig(**values)


# Per method: what makes a 3-step run visibly change the tiny model's image.
METHOD_OVERRIDES = {
    "lora": {"learning_rate": 1e-2},
    "dreambooth_lora": {"learning_rate": 1e-2},
    "dreambooth": {"learning_rate": 1e-3},
    "full_finetune": {"learning_rate": 1e-3},
    "textual_inversion": {"learning_rate": 1e-1, "instance_prompt": "a photo of <sks>",
                          "initializer_token": "dog"},
}
METHOD_PROMPT = {"textual_inversion": "a photo of <sks>"}


def generate(pipe, prompt: str = "a photo of sks dog", seed: int = 0) -> np.ndarray:
    import torch

    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(seed),
                output_type="np").images


def steps_logged(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] == "step"]


def run_cli(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m trainer ...` in a subprocess, from the repository root."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)

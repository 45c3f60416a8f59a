"""Test-wide environment: no network, no telemetry. Set before anything imports the HF stack."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Each test session gets its own run log, runs and uploads folders, so no test reads or
# writes the developer's ./runlog.sqlite (the chat's learner reads the log when it exists).
import tempfile  # noqa: E402

_session_dir = tempfile.mkdtemp(prefix="fta-tests-")
os.environ["FTA_RUNLOG"] = os.path.join(_session_dir, "runlog.sqlite")
os.environ["FTA_RUNS_DIR"] = os.path.join(_session_dir, "runs")
os.environ["FTA_UPLOADS_DIR"] = os.path.join(_session_dir, "uploads")


# --------------------------------------------------------------------------- shared fixtures
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from helpers import make_images  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    """The built-in tiny SD 1.5 pipeline, built once per session under pytest's temp root."""
    from trainer.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-cache", arch="sd15")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from trainer.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-cache", arch="sdxl")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """`tiny_model(arch)`: the built-in tiny pipeline of any family, built once per session."""
    from trainer.tiny import ensure_tiny_model

    return lambda arch: ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-cache", arch=arch)


@pytest.fixture
def images(tmp_path) -> Path:
    """Four distinct 64 px PNGs (no captions)."""
    make_images(tmp_path / "data", 4)
    return tmp_path / "data"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
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
    yield tmp_path / "cache"
    torch.set_num_threads(threads)

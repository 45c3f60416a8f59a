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

"""GPU memory: the peak a run held reaches its events, the run log and the lab's summary, and a run
that runs out of memory says what to change.

No GPU here: the CUDA reading itself is one PyTorch call (trainer.memory.peak_vram_gb); these
tests stand in a reading for it and check everything downstream, and check that the CPU
records nothing rather than a made-up figure.
"""
from __future__ import annotations

import pytest

from helpers import fast_config
from trainer import loop as loop_module
from trainer.config import TrainConfig
from trainer.events import read_events
from trainer.loop import TrainingRun
from trainer.memory import (is_out_of_memory, memory_savings, out_of_memory_message, peak_vram_gb, summary_fields,
                            vram_fields)


def test_the_cpu_records_no_vram_figure(tiny_sd15, images, tmp_path):
    assert peak_vram_gb("cpu") is None and vram_fields("cpu", "vram_gb") == {}
    assert TrainingRun(fast_config(tiny_sd15, images, tmp_path / "run"), progress=False).run() == "completed"
    events = read_events(tmp_path / "run")
    assert not any("vram_gb" in e or "peak_vram_gb" in e for e in events)


@pytest.fixture
def measured(monkeypatch):
    """Stand in a CUDA reading: 3.25 GiB per step, rising, and the end's peak."""
    readings = iter(x / 4 for x in range(13, 100))

    def fake(device, key):
        return {key: next(readings)}
    monkeypatch.setattr(loop_module, "vram_fields", fake)


def test_peak_vram_flows_to_events_run_log_and_lab_summary(measured, tiny_sd15, images, tmp_path):
    from advisor.runlog.store import RunLog
    from advisor.runlog.folders import record_from_run_dir
    from lab.views import progress, run_summary

    run_dir = tmp_path / "run"
    assert TrainingRun(fast_config(tiny_sd15, images, run_dir), progress=False).run() == "completed"
    events = read_events(run_dir)
    assert [e["vram_gb"] for e in events if e["kind"] == "step"] == [3.25, 3.5, 3.75]
    assert [e["peak_vram_gb"] for e in events if e["kind"] == "end"] == [4.0]

    record = record_from_run_dir(run_dir)
    assert record.peak_vram_gb == 4.0
    with RunLog(tmp_path / "log.sqlite") as log:
        log.upsert_run(record)
        assert log.get("run").peak_vram_gb == 4.0
        assert log.list_runs()[0]["peak_vram_gb"] == 4.0
        assert log.to_dataframe()["peak_vram_gb"].tolist() == [4.0]
    assert run_summary(run_dir)["peak_vram_gb"] == 4.0
    shown = progress(run_dir)
    assert shown["vram_gb"] == 4.0 and shown["message"] == "completed: 3 steps, peak GPU memory 4.0 GB"


def test_out_of_memory_fails_the_run_with_what_to_change(measured, tiny_sd15, images, tmp_path, monkeypatch):
    import torch

    def boom(self, batch, micro):
        if micro == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, batch, micro)
    original = TrainingRun._loss
    monkeypatch.setattr(TrainingRun, "_loss", boom)
    cfg = fast_config(tiny_sd15, images, tmp_path / "run", method="dreambooth")
    with pytest.raises(torch.OutOfMemoryError):
        TrainingRun(cfg, progress=False).run()
    events = read_events(tmp_path / "run")
    end, error = events[-1], [e for e in events if e["kind"] == "error"][-1]
    assert end["kind"] == "end" and end["status"] == "failed" and end["peak_vram_gb"] == 3.5
    assert end["out_of_memory"] is True and error["out_of_memory"] is True  # a flag: no reader parses the text
    assert error["error"] == end["error"]
    assert end["error"].startswith("out of GPU memory at step 1 (it held 3.5 GB); to fit, try in this order: "
                                   "mixed_precision='fp16'")
    assert "use_8bit_adam=true" in end["error"]  # DreamBooth trains every UNet weight
    assert "CUDA out of memory" in (tmp_path / "run" / "error.log").read_text()  # the original is kept


def test_other_failures_say_they_did_not_run_out_of_memory(tiny_sd15, images, tmp_path, monkeypatch):
    def boom(self, batch, micro):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (the words of no memory problem)")
    monkeypatch.setattr(TrainingRun, "_loss", boom)
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        TrainingRun(fast_config(tiny_sd15, images, tmp_path / "run"), progress=False).run()
    failed = [e for e in read_events(tmp_path / "run") if e["kind"] in ("error", "end")]
    assert [(e["kind"], e["out_of_memory"]) for e in failed] == [("error", False), ("end", False)]
    assert failed[-1]["status"] == "failed" and failed[-1]["error"].startswith("RuntimeError: mat1 and mat2")


def test_a_run_out_of_memory_reaches_the_advisor_through_the_lab(measured, tiny_sd15, images, tmp_path,
                                                                   monkeypatch):
    """trainer (OOM) -> run folder -> lab.results.record_run (what the page does when a run ends)
    -> run log -> LogLearner -> the next recommendation fits the card with what the run needed."""
    import json

    import torch

    from advisor.learning.log_learner import LogLearner
    from advisor.profile import Profile
    from advisor.recommendation.recommend import recommend
    from advisor.runlog.store import RunLog
    from lab.results import record_run
    from lab.views import progress

    dog = Profile(subject_type="animal", class_noun="dog", n_images=5, vram_gb=8, time_budget_min=120,
                  preferred_method="lora")
    rules = recommend(dog)
    # an unnamed 8 GB card is timed as a T4, and trains in its fp16 (the run below is the CPU's own config)
    assert rules.method == "lora" and rules.hyperparameters["mixed_precision"] == "fp16"
    original = TrainingRun._loss

    def boom(self, batch, micro):
        if micro == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, batch, micro)
    monkeypatch.setattr(TrainingRun, "_loss", boom)
    run_dir = tmp_path / "run"
    cfg = fast_config(tiny_sd15, images, run_dir, method="lora")
    run_dir.mkdir()
    (run_dir / "profile.json").write_text(json.dumps(dog.with_defaults()[0].to_dict()))
    with pytest.raises(torch.OutOfMemoryError):
        TrainingRun(cfg, progress=False).run()
    assert "ask the Advisor tab again" in progress(run_dir)["message"]

    summary = record_run(run_dir, runlog=tmp_path / "log.sqlite")
    assert summary["status"] == "failed" and summary["error"].startswith("out of GPU memory at step 1")
    with RunLog(tmp_path / "log.sqlite") as log:
        learner = LogLearner.fit(log)
    assert learner.memory() is not None and learner.memory().kind == "out_of_memory"
    again = recommend(dog, learner=learner)
    assert again.reasons[0].startswith("Your run 'run' ran out of memory on a 8 GB card")
    assert again.estimates.fits and again.hyperparameters != rules.hyperparameters  # a saving went on
    assert any("what your logged runs held" in line for line in again.estimates.breakdown)


def test_memory_savings_leave_out_what_is_already_on():
    base = dict(base_model="tiny", data_dir="d", output_dir="o")
    plain = memory_savings(TrainConfig(**base, method="lora", resolution=1024, train_batch_size=2))
    assert plain[0].startswith("mixed_precision") and "gradient_checkpointing=true" in plain[1]
    assert not any("8bit" in s for s in plain)  # a LoRA's optimizer state is small
    assert "train_batch_size=1 with gradient_accumulation_steps=2" in plain
    assert "resolution=768" in plain
    tight = TrainConfig(**base, method="dreambooth", mixed_precision="fp16", gradient_checkpointing=True,
                        use_8bit_adam=True, cache_latents=True, resolution=512)
    assert memory_savings(tight) == ["cache_text_encoder_outputs=true"]     # T5 / CLIP off the GPU
    tight = tight.with_overrides(["cache_text_encoder_outputs=True"])
    assert memory_savings(tight) == ["a GPU with more memory (every memory saving is already on)"]
    assert "while loading or preparing" in out_of_memory_message(tight, 0, None)


def test_out_of_memory_is_recognised_in_both_forms():
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(MemoryError())


def test_the_peak_of_a_runs_events_counts_only_finite_positive_readings():
    assert summary_fields([]) == {} and summary_fields([{"kind": "step", "step": 1}]) == {}
    steps = [{"kind": "step", "vram_gb": v} for v in (3.25, 3.5, "inf", float("inf"), float("nan"), True, -1, 0)]
    assert summary_fields(steps) == {"peak_vram_gb": 3.5}  # a run killed before its end: the steps' readings
    assert summary_fields(steps + [{"kind": "end", "peak_vram_gb": 4}]) == {"peak_vram_gb": 4.0}


"""trainer.real_architectures: what the GPU benchmarks train. The released configs are counted
against the cost model in tests/advisor/test_arch_counts.py (meta device, every base); here a
copy with every stack cut to one layer (the released widths, classes and wiring) is written by the
CLI, recognised as its family from its own files, and trains through the loop on the CPU."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT
from trainer.real_architectures import REAL_BASES, SHRINKABLE, build_real_pipeline
from trainer.vocabulary import BASE_MODELS


def test_layers_cut_the_stacks_and_keep_the_widths():
    pipe = build_real_pipeline("flux1dev", layers=1, device="meta")
    config = pipe.transformer.config
    assert (config.num_layers, config.num_single_layers) == (1, 1)
    assert config.num_attention_heads * config.attention_head_dim == 3072 and config.joint_attention_dim == 4096
    assert pipe.text_encoder_2.config.num_layers == 1 and pipe.text_encoder_2.config.d_model == 4096
    assert pipe.text_encoder_2.config.vocab_size == len(pipe.tokenizer_2)   # the tokenizer's, not T5's 32,128


def test_bad_requests_are_refused_in_one_line():
    with pytest.raises(ValueError, match="pick one of"):
        build_real_pipeline("sd2", device="meta")
    with pytest.raises(ValueError, match="built whole only"):
        build_real_pipeline("klein4b", layers=1, device="meta")
    assert set(SHRINKABLE) < set(REAL_BASES) <= set(BASE_MODELS)


def test_the_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    from trainer.cli import EXIT_BAD_INPUT, main

    with pytest.raises(SystemExit) as exited:
        main(["make-real-architecture", str(tmp_path / "new"), "--base", "sd2"])
    assert exited.value.code == EXIT_BAD_INPUT
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "model.safetensors").write_text("mine")
    assert main(["make-real-architecture", str(taken), "--base", "zimage", "--layers", "1", "--device", "cpu"]) \
        == EXIT_BAD_INPUT
    assert main(["make-real-architecture", str(tmp_path / "whole"), "--base", "klein4b", "--layers", "1",
                 "--device", "cpu"]) == EXIT_BAD_INPUT
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3 and "invalid choice: 'sd2'" in lines[0]
    assert "is not empty" in lines[1] and "built whole only" in lines[2]
    assert (taken / "model.safetensors").read_text() == "mine" and not (tmp_path / "whole").exists()


@pytest.mark.slow
@pytest.mark.parametrize("base", SHRINKABLE)
def test_a_one_layer_copy_is_written_recognised_and_trains(base, images, tmp_path):
    from trainer.config import TrainConfig
    from trainer.events import read_events
    from trainer.families.base import detect_family
    from trainer.loop import train

    folder = tmp_path / base
    done = subprocess.run([sys.executable, "-m", "trainer", "make-real-architecture", str(folder), "--base", base,
                           "--layers", "1", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert detect_family(folder).name == BASE_MODELS[base].family
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == detect_family(folder).pipeline_class
    cfg = TrainConfig(base_model=str(folder), data_dir=str(images), output_dir=str(tmp_path / "run"), resolution=64,
                      max_train_steps=2, learning_rate=1e-4, checkpointing_steps=0, validation_steps=0,
                      mixed_precision="bf16", gradient_checkpointing=True, cache_text_encoder_outputs=True)
    assert train(cfg, progress=False) == "completed"
    losses = [e["loss"] for e in read_events(tmp_path / "run") if e["kind"] == "step"]
    assert len(losses) == 2 and all(0 < loss < 100 for loss in losses)

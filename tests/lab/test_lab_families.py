"""Every model family end to end through the lab's own functions: a LoRA run on the family's tiny
model launched as the app launches it, then progress, samples, base-vs-fine-tuned images, scores,
downloads and the rating, as the lab page shows them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_images
from lab.results import compare_images, downloads, evaluate, save_rating
from lab.views import progress, samples

PROMPT = "a photo of sks dog"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sd3", "flux", "flux2", "zimage", "qwenimage"])
def test_a_flow_family_trains_and_shows_in_the_lab(arch, tiny_model, tmp_path):
    from advisor.runlog.store import RunLog
    from trainer.config import TrainConfig
    from trainer.launch import launch

    make_images(tmp_path / "data", 4)
    run = tmp_path / "run"
    cfg = TrainConfig(base_model=str(tiny_model(arch)), data_dir=str(tmp_path / "data"), output_dir=str(run),
                      resolution=64, max_train_steps=4, learning_rate=1e-2, checkpointing_steps=0,
                      validation_steps=2,
                      validation_prompts=[PROMPT], validation_inference_steps=2)
    assert launch(cfg, gpus=0).wait(timeout=400) == 0, (run / "train.log").read_text()[-3000:]

    state = progress(run)
    assert state["status"] == "completed" and state["step"] == 4
    assert len(samples(run)) == 2                                   # steps 2 and 4
    pairs = compare_images(run, seeds=(0,))
    with Image.open(pairs[0][0]) as base, Image.open(pairs[1][0]) as tuned:
        assert base.size == (64, 64)
        assert np.abs(np.asarray(base, np.float32) - np.asarray(tuned, np.float32)).mean() > 0.5
    result = evaluate(run)
    assert set(result["scores"]) == {"accuracy", "flexibility", "preservation"}, result
    assert [Path(f).name for f in downloads(run)] == ["pytorch_lora_weights.safetensors", "config.json"]
    with RunLog(tmp_path / "log.sqlite") as log:
        assert save_rating(run, 4, 3, 5, runlog=log)["method"] == "lora"
        assert log.get("run").rating_accuracy == 4

"""DreamBooth prior preservation: class images are generated with the base model when missing,
reused by later runs, and each batch pairs instance and class images."""
from __future__ import annotations

from pathlib import Path

from helpers import fast_config
from trainer.events import read_events
from trainer.loop import TrainingRun
from trainer.prior import class_images_dir, existing_class_images


def _prior_config(model, data, out, **kw):
    values = dict(method="dreambooth_lora", prior_preservation=True, class_prompt="a photo of a dog",
                  num_class_images=2, max_train_steps=2, prior_loss_weight=0.5)
    values.update(kw)
    return fast_config(model, data, out, **values)


def _generating(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir) if e["kind"] == "status" and e["phase"] == "class_images"]


def test_class_images_are_generated_cached_and_reused(tiny_sd15, images, tmp_path):
    from PIL import Image

    run = TrainingRun(_prior_config(tiny_sd15, images, tmp_path / "one"), progress=False)
    assert run.run() == "completed"
    folder = class_images_dir("", tiny_sd15, "a photo of a dog", 64)
    assert folder.is_relative_to(tmp_path / "cache")  # the shared cache, not the run folder
    made = existing_class_images(folder)
    assert [p.name for p in made] == ["class-00000.png", "class-00001.png"]
    assert Image.open(made[0]).size == (64, 64)
    progress = _generating(tmp_path / "one")
    assert progress[0]["total"] == 2 and progress[-1]["done"] == 2

    # a DreamBooth batch: instance images first, then as many class images with the class prompt
    batch = run._batch(0)
    assert batch["n_instance"] == 1 and batch["latents"].shape[0] == 2
    assert batch["prompts"] == [run.config.instance_prompt, "a photo of a dog"]

    stamps = {p: p.stat().st_mtime_ns for p in made}
    again = _prior_config(tiny_sd15, images, tmp_path / "two")
    assert TrainingRun(again, progress=False).run() == "completed"
    assert _generating(tmp_path / "two") == []  # nothing to generate: reused
    assert {p: p.stat().st_mtime_ns for p in existing_class_images(folder)} == stamps

    more = _prior_config(tiny_sd15, images, tmp_path / "three", num_class_images=3)
    TrainingRun(more, progress=False).run()
    assert len(existing_class_images(folder)) == 3
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # topped up, not redrawn


def test_given_class_folder_is_used_and_filled(tiny_sd15, images, tmp_path):
    from helpers import make_images

    make_images(tmp_path / "mine", 1, seed=50)
    cfg = _prior_config(tiny_sd15, images, tmp_path / "run", class_data_dir=str(tmp_path / "mine"))
    TrainingRun(cfg, progress=False).run()
    names = sorted(p.name for p in existing_class_images(tmp_path / "mine"))
    assert names == ["class-00000.png", "img_000.png"]
    assert not (tmp_path / "cache" / "class_images").exists()


def test_cache_folder_is_keyed_by_model_prompt_and_resolution(tmp_path):
    base = class_images_dir("", tmp_path / "m", "a photo of a dog", 512, cache_root=tmp_path)
    assert base.parent == tmp_path / "class_images" and base.name.startswith("a-photo-of-a-dog-")
    assert class_images_dir("", tmp_path / "m", "a photo of a cat", 512, cache_root=tmp_path) != base
    assert class_images_dir("", tmp_path / "n", "a photo of a dog", 512, cache_root=tmp_path) != base
    assert class_images_dir("", tmp_path / "m", "a photo of a dog", 768, cache_root=tmp_path) != base
    assert class_images_dir("", tmp_path / "m", "a photo of a dog", 512, cache_root=tmp_path) == base
    assert class_images_dir(str(tmp_path / "x"), tmp_path / "m", "a dog", 512) == tmp_path / "x"

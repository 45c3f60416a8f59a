"""The shapes demo model (issue 15): built from the shipped weights, it loads like any diffusers
folder, draws the world's prompts (checked by the ground-truth checker), cannot draw the held-out
concepts, and a short LoRA on one of them teaches it."""
import json

import pytest

from trainer.cli import main as cli_main
from trainer.shapes import demo_model, experiment
from trainer.shapes.checker import measure
from trainer.shapes.demo_model import (CORPUS, DEMO_RESOLUTION, build_demo_pipeline, demo_tokenizer, draw,
                                       ensure_demo_model, make_demo_model)
from trainer.shapes.pretrain import world_accuracy
from trainer.shapes.world import HELD_OUT, PALETTE, SHAPES, SUBJECT, caption, sample_scenes
from trainer.tiny import BUILTIN_MODELS, DEMO_MODEL

# What the shipped model must draw right, measured by the checker on fresh prompts (its pretraining
# printed shape 0.97, colour 1.00, background 1.00 on 100; these floors leave room for seed noise).
# Where it puts the shape is still at chance (cell 0.08): position words are not learned yet.
MIN_FIELD_ACCURACY = {"background": 0.9, "color": 0.9, "shape": 0.8}


@pytest.fixture(scope="module")
def pipe():
    return build_demo_pipeline()


class TestTheModelFolder:
    def test_every_world_word_is_one_token_and_captions_fit(self):
        tok = demo_tokenizer()
        for word in [*PALETTE, *SHAPES, "outline", "background", "striped", "dotted"]:
            assert len(tok.encode(word, add_special_tokens=False)) == 1, word
        longest = max((caption(s) for s in sample_scenes(300, 0, exclude=())), key=len)
        assert len(tok(longest).input_ids) < tok.model_max_length
        assert "star" in CORPUS.split()

    def test_make_demo_model_writes_a_diffusers_folder_that_loads_as_a_base_model(self, tmp_path):
        from trainer.models import load_components

        out = make_demo_model(tmp_path / "demo")
        index = json.loads((out / "model_index.json").read_text())
        assert index["_class_name"] == "StableDiffusionPipeline"
        assert list(out.glob("unet/*.safetensors")) and not list(out.rglob("*.bin"))
        parts = load_components(out)
        assert parts.vae.config.latent_channels == demo_model.LATENT_CHANNELS
        assert parts.vae.config.scaling_factor != 1.0   # measured in pretraining, stored in the weights file

    def test_it_refuses_a_folder_that_holds_files(self, tmp_path):
        (tmp_path / "keep.txt").write_text("mine")
        with pytest.raises(ValueError, match="not empty"):
            make_demo_model(tmp_path)
        assert (tmp_path / "keep.txt").read_text() == "mine"

    def test_cli_make_demo_model(self, tmp_path, capsys):
        assert cli_main(["make-demo-model", str(tmp_path / "m")]) == 0
        assert (tmp_path / "m" / "model_index.json").is_file()
        capsys.readouterr()
        assert cli_main(["make-demo-model", str(tmp_path / "m")]) == 2
        assert capsys.readouterr().err.startswith("error: out_dir")

    def test_the_name_resolves_to_a_cached_copy_built_once(self, tmp_path):
        from trainer.models import resolve_base_model

        assert DEMO_MODEL in BUILTIN_MODELS
        first = resolve_base_model(DEMO_MODEL, tmp_path)
        stamp = (first / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
        assert ensure_demo_model(tmp_path) == first
        assert (first / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp

    def test_a_stale_copy_is_rebuilt(self, tmp_path):
        folder = ensure_demo_model(tmp_path)
        (folder / "demo_model_version.txt").write_text("an older recipe\n")
        assert ensure_demo_model(tmp_path) == folder
        assert (folder / "demo_model_version.txt").read_text().strip() == demo_model.weights_digest()

    def test_building_it_leaves_the_global_rng_alone(self, tmp_path):
        # a run seeds, then resolves its base model: building the cached folder there must not
        # move what the run draws next (its LoRA init), or the first run in a fresh cache differs
        import torch

        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        ensure_demo_model(tmp_path)
        build_demo_pipeline()
        assert torch.equal(torch.rand(3), expected)

    def test_missing_weights_say_how_to_make_them(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="trainer.shapes.pretrain"):
            build_demo_pipeline(tmp_path / "none.safetensors")


class TestWhatItDraws:
    def test_it_draws_the_worlds_prompts(self, pipe):
        right = world_accuracy(pipe, 48, seed=7)
        for field, floor in MIN_FIELD_ACCURACY.items():
            assert right[field] >= floor, (field, right)

    def test_the_same_seed_draws_the_same_image(self, pipe):
        a, b = draw(pipe, ["a large red circle on a blue background in the center"] * 2, seed=3)
        a2 = draw(pipe, ["a large red circle on a blue background in the center"], seed=3)[0]
        assert a.tobytes() == a2.tobytes() and a.size == (DEMO_RESOLUTION, DEMO_RESOLUTION)
        assert a.tobytes() != b.tobytes()   # the second prompt has the next seed

    def test_it_cannot_draw_the_held_out_star(self, pipe):
        scenes = sample_scenes(24, 5, concept=SUBJECT)
        shown = [measure(im).shape for im in draw(pipe, [caption(s) for s in scenes], seed=0)]
        assert shown.count("star") / len(shown) <= 0.2, shown


@pytest.mark.slow
def test_a_short_lora_teaches_the_held_out_star(tmp_path, pipe):
    data = experiment.write_concept_data(tmp_path / "data", SUBJECT, n_images=8)
    run = experiment.fine_tune(experiment.fine_tune_config(data, tmp_path / "run", SUBJECT, "lora"))
    base_other = experiment.base_drawings(pipe, 12)
    before = experiment.ground_truth(pipe, base_other, SUBJECT, n=12)
    after = experiment.ground_truth(experiment.load_tuned(run), base_other, SUBJECT, n=12)
    # measured: 0 -> 0.33 (4 stars in 12 new prompts), 9 of 12 other prompts as the base drew them
    assert before.accuracy == 0.0 and after.accuracy >= 0.2, (before, after)
    assert after.preservation >= 0.5, after
    assert before.preservation == 1.0 and set(HELD_OUT) >= {SUBJECT}

"""Automatic evaluation: SSIM and the score maps, the prompt sets, tiny CLIP/DINO encoders built
from configs (no download), the weight-free fallback, a scored tiny run, drift detection, the CLI."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import fast_config, pattern_image, run_cli
from trainer.calibration import ANCHORS, PROXY_ANCHORS, REFERENCE_MEASUREMENTS, Anchor, pres_score, score_from_anchors
from trainer.encoders import (clip_image_similarity, clip_text_similarity, dino_similarity, load_encoders,
                              parse_encoder_specs)
from trainer.evaluate import (EvalError, EvalImages, check_run, compute_metrics, default_steps, evaluate_run, generate,
                              make_grid)
from trainer.events import emit, read_events
from trainer.measures import color_histogram_similarity, prompt_sensitivity, ssim
from trainer.metrics import read_metrics
from trainer.prompts import LIVE_TEMPLATES, OBJECT_TEMPLATES, build_prompts, parse_subject, without_identifier
from trainer.vocabulary import FACTORS

FAST = dict(num_images=1, steps=2, num_templates=2)   # 14 images of 64 px per evaluation


# --- SSIM and the weight-free measures ----------------------------------------------------------------
def test_ssim_identical_is_one_noise_vs_constant_is_low():
    img = pattern_image((64, 64), seed=3)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    noise, const = rng.random((64, 64)), np.full((64, 64), 0.5)
    assert ssim(noise, const) < 0.05
    assert ssim(noise, rng.random((64, 64))) < 0.1
    assert ssim(img, pattern_image((64, 64), seed=4)) < 0.9
    a, b = rng.random((40, 40)), rng.random((40, 40))
    assert ssim(a, b) == pytest.approx(ssim(b, a))


def test_ssim_compares_different_sizes_and_rejects_bad_input():
    big = pattern_image((300, 200), seed=1)
    assert ssim(big, big.resize((150, 100))) > 0.9          # same picture, other size: high
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="one shape"):
        ssim(np.zeros((20, 20)), np.zeros((20, 21)))


def test_color_histogram_and_prompt_sensitivity():
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    assert color_histogram_similarity(red, red) == pytest.approx(1.0)
    assert color_histogram_similarity(red, blue) == 0.0
    same = [[pattern_image(seed=0)], [pattern_image(seed=0)]]           # the prompt changed nothing
    differ = [[pattern_image(seed=0)], [pattern_image(seed=9)]]
    assert prompt_sensitivity(same) == pytest.approx(0.0, abs=1e-9)
    assert prompt_sensitivity(differ) > 0.1
    with pytest.raises(ValueError, match="two prompts"):
        prompt_sensitivity([[red]])


def test_proxy_reference_measurements_are_reproducible():
    """The proxy anchors quote values measured on scikit-learn's sample photos: re-measure them."""
    sklearn = pytest.importorskip("sklearn")
    from PIL import ImageFilter

    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    china, flower = (Image.open(folder / n).convert("RGB") for n in ("china.jpg", "flower.jpg"))
    shifted = china.crop((40, 20, china.width, china.height)).resize(china.size)
    measured = {"ssim_unrelated": ssim(china, flower), "ssim_shifted": ssim(china, shifted),
                "ssim_blurred": ssim(china, china.filter(ImageFilter.GaussianBlur(2))),
                "hist_unrelated": color_histogram_similarity(china, flower),
                "hist_shifted": color_histogram_similarity(china, shifted)}
    for name, value in REFERENCE_MEASUREMENTS.items():
        assert measured[name] == pytest.approx(value, abs=0.01), name


# --- calibration maps ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ANCHORS) + sorted(f"proxy:{k}" for k in PROXY_ANCHORS))
def test_score_maps_are_monotone_bounded_and_sourced(name):
    anchors = PROXY_ANCHORS[name[6:]] if name.startswith("proxy:") else ANCHORS[name]
    assert all(isinstance(a, Anchor) and a.source and 1.0 <= a.score <= 5.0 for a in anchors)
    values = np.linspace(-1.0, 2.0, 301)
    scores = np.array([score_from_anchors(v, anchors) for v in values])
    assert scores.min() >= 1.0 and scores.max() <= 5.0
    steps = np.diff(scores)
    assert (steps >= -1e-12).all() or (steps <= 1e-12).all()          # one direction only
    for a in anchors:
        assert score_from_anchors(a.value, anchors) == pytest.approx(a.score)


def test_published_reference_values_land_where_documented():
    assert score_from_anchors(0.774, ANCHORS["dino"]) == 5.0            # real images
    assert score_from_anchors(0.668, ANCHORS["dino"]) == 4.0            # DreamBooth (SD)
    assert score_from_anchors(0.569, ANCHORS["dino"]) == 3.0            # textual inversion
    assert 3.0 < score_from_anchors(0.594, ANCHORS["dino"]) < 4.0       # BLIP-Diffusion zero-shot
    assert score_from_anchors(0.885, ANCHORS["clip_i"]) == 5.0
    assert score_from_anchors(0.305, ANCHORS["clip_t"]) == 4.0
    assert score_from_anchors(0.255, ANCHORS["clip_t"]) == 2.5
    assert score_from_anchors(1.0, PROXY_ANCHORS["ssim_base_vs_tuned"]) == 5.0
    assert score_from_anchors(1.0, ANCHORS["clip_base_vs_tuned"]) == 5.0


def test_score_from_anchors_rejects_bad_input():
    with pytest.raises(ValueError, match="two points"):
        score_from_anchors(0.5, [(0.5, 3.0)])
    with pytest.raises(ValueError, match="distinct"):
        score_from_anchors(0.5, [(0.5, 3.0), (0.5, 4.0)])
    with pytest.raises(ValueError, match="finite"):
        score_from_anchors(float("nan"), ANCHORS["dino"])


def test_pres_score_counts_points_lost_relative_to_the_base():
    assert pres_score(0.60, 0.60) == 5.0                # untouched: nothing lost
    assert pres_score(0.40, 0.60) == 5.0                # class moved away from the subject: no penalty
    assert pres_score(0.664, 0.493) == pytest.approx(3.5)   # the paper's with -> without prior gap
    assert pres_score(0.95, 0.30) == 1.0                # collapsed onto the subject


# --- prompts ---------------------------------------------------------------------------------------------
def test_dreambench_lists_have_25_prompts_each():
    assert len(OBJECT_TEMPLATES) == len(LIVE_TEMPLATES) == 25
    assert "a {} wearing a santa hat" in LIVE_TEMPLATES and "a {} floating in an ocean of milk" in OBJECT_TEMPLATES
    assert OBJECT_TEMPLATES[-1] == LIVE_TEMPLATES[-1] == "a cube shaped {}"


def test_prompt_sets_for_a_dog_with_dream_prompts():
    p = build_prompts("a photo of sks dog", class_prompt="a photo of a dog",
                      validation_prompts=["a sks dog on the moon"], num_templates=3)
    assert p.info.identifier == "sks" and p.info.class_noun == "dog" and p.info.kind == "live"
    assert p.subject == ("a photo of sks dog",)
    assert p.flexibility[0] == "a sks dog on the moon" and len(p.flexibility) == 4
    assert all("sks dog" in f for f in p.flexibility)
    assert any("wearing" in f or "outfit" in f for f in p.flexibility)     # live-subject list
    assert p.classes[0] == "a photo of a dog" and all("sks" not in c for c in p.classes)
    assert p.preservation and all("dog" not in q for q in p.preservation)
    assert p.clip_text["a sks dog on the moon"] == "a dog on the moon"
    assert p.base_prompts == p.preservation + p.classes


def test_prompt_sets_for_textual_inversion_objects_and_styles():
    ti = build_prompts("a photo of <sks>", method="textual_inversion", placeholder_token="<sks>",
                       initializer_token="teapot", num_templates=2)
    assert ti.info.identifier == "<sks>" and ti.info.kind == "object"
    assert ti.flexibility == ("a <sks> in the jungle", "a cube shaped <sks>")
    assert ti.clip_text["a <sks> in the jungle"] == "a teapot in the jungle"
    assert ti.classes[0] == "a photo of a teapot"
    style = build_prompts("a painting in the style of sks", num_templates=2)
    assert style.info.kind == "style" and style.classes == ()
    assert all(f.endswith("in the style of sks") for f in style.flexibility)
    assert without_identifier(style.flexibility[0], style.info) == "a painting of a mountain lake"
    assert parse_subject("a photo of ohwx man, 4k", "a photo of a man").identifier == "ohwx"


def test_prompt_sets_reject_bad_input():
    with pytest.raises(ValueError, match="instance_prompt"):
        build_prompts("   ")
    with pytest.raises(ValueError, match="at least 2 prompts"):
        build_prompts("a photo of sks dog", num_templates=1)
    with pytest.raises(ValueError, match="num_templates"):
        build_prompts("a photo of sks dog", num_templates=-1)


# --- tiny encoders built from configs ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_encoders(tmp_path_factory) -> dict[str, Path]:
    """A random CLIP (with the tiny model's tokenizer) and a random ViT (DINO-shaped), saved."""
    import torch
    from transformers import CLIPConfig, CLIPModel, ViTConfig, ViTModel

    from trainer.tiny import make_tiny_tokenizer

    root = tmp_path_factory.mktemp("encoders")
    tok = make_tiny_tokenizer()
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                  num_hidden_layers=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip = CLIPModel(CLIPConfig(
            text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                             num_hidden_layers=2, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            vision_config=vision, projection_dim=16))
        dino = ViTModel(ViTConfig(**vision))
    clip.save_pretrained(root / "clip")
    tok.save_pretrained(root / "clip")
    clip.save_pretrained(root / "clip-no-tokenizer")
    dino.save_pretrained(root / "dino")
    return {"clip": root / "clip", "dino": root / "dino", "clip_no_tok": root / "clip-no-tokenizer"}


def test_tiny_encoders_load_and_measure(tiny_encoders):
    enc, notes = load_encoders(str(tiny_encoders["clip"]), str(tiny_encoders["dino"]))
    assert notes == {"clip": str(tiny_encoders["clip"]), "dino": str(tiny_encoders["dino"])}
    imgs = [pattern_image((48, 40), seed=s) for s in range(3)]
    assert clip_image_similarity(enc["clip"], imgs, imgs, paired=True) == pytest.approx(1.0, abs=1e-5)
    assert dino_similarity(enc["dino"], imgs, imgs, paired=True) == pytest.approx(1.0, abs=1e-5)
    cross = dino_similarity(enc["dino"], imgs[:1], imgs[1:])
    assert -1.0 <= cross < 1.0
    t = clip_text_similarity(enc["clip"], imgs, ["a dog", "a red car", "a bowl of fruit on a table"])
    assert math.isfinite(t) and -1.0 <= t <= 1.0
    with pytest.raises(ValueError, match="one text per image"):
        clip_text_similarity(enc["clip"], imgs, ["a dog"])


def test_encoders_that_cannot_load_fall_back_with_a_reason(tiny_encoders, tmp_path):
    enc, notes = load_encoders(None, str(tmp_path / "missing"))          # default CLIP: not cached here
    assert enc == {"clip": None, "dino": None}
    assert notes["clip"].startswith("none: openai/clip-vit-base-patch32") and "offline" in notes["clip"]
    assert notes["dino"].startswith("none:") and "missing" in notes["dino"]
    enc, notes = load_encoders(str(tiny_encoders["clip_no_tok"]), "none")
    assert enc["clip"] is not None and enc["clip"].tokenizer is None and "no CLIP-T" in notes["clip"]
    assert enc["dino"] is None and notes["dino"] == "none: turned off"
    enc, notes = load_encoders(str(tiny_encoders["clip"]), str(tiny_encoders["clip"]))   # CLIP is no DINO
    assert enc["dino"] is None and "not a ViT/DINO" in notes["dino"]


def test_dinov2_folders_load_with_their_224_px_crop(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                             num_attention_heads=4, num_hidden_layers=2)).save_pretrained(tmp_path / "dinov2")
    enc, notes = load_encoders("none", str(tmp_path / "dinov2"))
    assert (enc["dino"].crop, enc["dino"].resize) == (224, 256)
    imgs = [pattern_image(seed=s) for s in range(2)]
    assert dino_similarity(enc["dino"], imgs, imgs, paired=True) == pytest.approx(1.0, abs=1e-5)


def test_parse_encoder_specs():
    assert parse_encoder_specs("clip=/m/clip, dino=facebook/dino-vits16") == {
        "clip": "/m/clip", "dino": "facebook/dino-vits16"}
    assert parse_encoder_specs("") == {} and parse_encoder_specs("dino=none") == {"dino": "none"}
    for bad in ("clip", "siglip=x", "clip:/x"):
        with pytest.raises(ValueError, match="--encoders"):
            parse_encoder_specs(bad)


# --- drift detection on pipelines: untouched scores 5, drifted scores lower --------------------------------
@pytest.fixture(scope="module")
def base_pipe(tiny_sd15):
    from trainer.models import load_pipeline

    return load_pipeline(tiny_sd15)


def _drifted(pipe, scale: float):
    """A copy of `pipe` whose UNet weights got Gaussian noise (`scale` x each tensor's std)."""
    import copy

    import torch
    from diffusers import StableDiffusionPipeline

    unet = copy.deepcopy(pipe.unet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() if p.numel() > 1 else 1.0))
    return StableDiffusionPipeline(**{**pipe.components, "unet": unet})


def _images(tuned, base, prompts, seeds=(0,)) -> EvalImages:
    def gen(pipe, ps):
        return generate(pipe, ps, seeds, 2, resolution=64)
    return EvalImages(subject=gen(tuned, prompts.subject), flexibility=gen(tuned, prompts.flexibility),
                      tuned=gen(tuned, prompts.base_prompts), base=gen(base, prompts.base_prompts))


@pytest.mark.slow
def test_preservation_untouched_is_5_and_drift_scores_lower(base_pipe, tiny_encoders, tmp_path):
    prompts = build_prompts("a photo of sks dog", num_templates=2, num_unrelated=2)
    train = [pattern_image((64, 64), seed=s) for s in range(3)]
    untouched = _images(base_pipe, base_pipe, prompts)
    drifted = _images(_drifted(base_pipe, 0.5), base_pipe, prompts)
    enc, notes = load_encoders(str(tiny_encoders["clip"]), str(tiny_encoders["dino"]))
    none_enc, none_notes = load_encoders("none", "none")
    for encoders, enc_notes in ((enc, notes), (none_enc, none_notes)):
        same = compute_metrics(untouched, prompts, train, encoders, enc_notes)["preservation"]
        moved = compute_metrics(drifted, prompts, train, encoders, enc_notes)["preservation"]
        assert same["ssim_base_vs_tuned"] == pytest.approx(1.0, abs=1e-6)
        assert same["score"] == 5.0 and same["unchanged"] is True      # 5/5 from nothing: said, not praised
        assert moved["unchanged"] is False
        assert moved["ssim_base_vs_tuned"] < 0.9 and moved["scores"]["ssim_base_vs_tuned"] < 4.0
        assert moved["score"] < same["score"]
    # Without encoders SSIM is the whole score. (Random tiny CLIP/DINO embed every 64 px image
    # almost alike, so with them the drop is real but diluted; real encoders see it plainly.)
    assert same["method"] == moved["method"] == "weight-free proxy"
    assert moved["score"] <= 4.0


# --- a tiny trained run, evaluated end to end -----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tiny_sd15, tmp_path_factory) -> Path:
    """One tiny LoRA run (3 steps) with a dream prompt; tests copy it before writing into it."""
    from helpers import make_images
    from trainer.loop import train

    root = tmp_path_factory.mktemp("eval-run")
    make_images(root / "data", 3)
    cfg = fast_config(tiny_sd15, root / "data", root / "run", method="lora", class_prompt="a photo of a dog",
                      validation_prompts=["a sks dog on the moon"])
    assert train(cfg, progress=False) == "completed"
    return root / "run"


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _check_contract(metrics: dict, run: Path) -> None:
    for factor in FACTORS:
        entry = metrics[factor]
        assert 1.0 <= entry["score"] <= 5.0 and round(entry["score"], 1) == entry["score"]
        assert entry["basis"] and entry["method"] and entry["encoder"]
        raw = {k: v for k, v in entry.items() if isinstance(v, float) and k != "score"}
        assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in raw.values()), raw
        assert all(1.0 <= s <= 5.0 for s in entry["scores"].values())
    for key in ("encoders", "prompts", "seeds", "n_images", "seconds", "grids"):
        assert key in metrics
    on_disk = json.loads((run / "metrics.json").read_text())
    assert {f: on_disk[f]["score"] for f in FACTORS} == {f: metrics[f]["score"] for f in FACTORS}
    read = read_metrics(run)  # the one reader takes what the evaluation wrote, whole
    assert read.scores == {f: metrics[f]["score"] for f in FACTORS} and read.problem is None
    assert set(on_disk["grids"]) == {"subject", "flexibility", "preservation"}
    for rel in on_disk["grids"].values():
        with Image.open(run / rel) as grid:
            assert grid.format == "PNG" and grid.width > 128
    assert not list(run.glob(".metrics.json.*"))                              # no temp file left behind
    event = [e for e in read_events(run) if e["kind"] == "eval"][-1]
    assert event["metrics"] == {f: metrics[f]["score"] for f in FACTORS} and event["step"] == 3


@pytest.mark.slow
def test_evaluate_run_with_tiny_encoders(trained_run, tiny_encoders, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    metrics = evaluate_run(run, clip=str(tiny_encoders["clip"]), dino=str(tiny_encoders["dino"]), **FAST)
    _check_contract(metrics, run)
    acc, flex, pres = (metrics[f] for f in FACTORS)
    assert acc["method"] == "clip_i+dino" and {"dino", "clip_i", "dino_train_self"} <= set(acc)
    assert flex["method"] == "clip_t" and "clip_t" in flex
    assert {"clip_base_vs_tuned", "ssim_base_vs_tuned", "pres", "pres_base"} <= set(pres)
    assert metrics["prompts"]["class"][0] == "a photo of a dog"
    assert metrics["prompts"]["flexibility"][0] == "a sks dog on the moon"
    assert metrics["n_images"] == 14 and metrics["seeds"] == [0] and metrics["steps"] == 2


@pytest.mark.slow
def test_evaluate_run_without_encoders_uses_labelled_proxies(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    metrics = evaluate_run(run, clip="none", dino="none", **FAST)
    _check_contract(metrics, run)
    for factor in FACTORS:
        assert metrics[factor]["method"] == "weight-free proxy"
        assert metrics[factor]["encoder"].startswith("none: ")
        assert "clip_i" not in metrics[factor] and "dino" not in metrics[factor]
    assert "uncalibrated" in metrics["accuracy"]["basis"]
    assert metrics["encoders"] == {"clip": "none: turned off", "dino": "none: turned off"}


@pytest.mark.slow
def test_zeroed_lora_run_preserves_everything(trained_run, tmp_path):
    """A run whose adapter adds exactly nothing is the base model: preservation 5, SSIM 1."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    run = _copy_run(trained_run, tmp_path / "run")
    weights = run / "output" / "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    state = load_file(str(weights))
    ups = [k for k in state if "lora.up" in k or "lora_B" in k]
    assert ups and any(state[k].abs().sum() > 0 for k in ups)
    save_file({k: v * 0 if k in ups else v for k, v in state.items()}, str(weights), metadata=meta)
    metrics = evaluate_run(run, clip="none", dino="none", **FAST)
    assert metrics["preservation"]["ssim_base_vs_tuned"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["preservation"]["score"] == 5.0
    from trainer.metrics import nothing_changed, read_metrics, stand_in_factors
    on_disk = read_metrics(run).raw
    assert nothing_changed(on_disk) and stand_in_factors(on_disk) == ["accuracy", "flexibility", "preservation"]


# --- run-folder checks and the CLI --------------------------------------------------------------------------
@pytest.mark.slow
def test_train_scores_a_completed_run_when_the_config_asks(tiny_sd15, images, tmp_path, monkeypatch):
    """trainer.loop.train, not only the CLI, honours evaluate_after_training: once, after the end."""
    import trainer.evaluate
    from trainer.loop import train

    calls = []
    real = trainer.evaluate.evaluate_run

    def counted(run_dir, **kw):
        calls.append(Path(run_dir))
        return real(run_dir, **kw)
    monkeypatch.setattr(trainer.evaluate, "evaluate_run", counted)
    run = tmp_path / "run"
    assert train(fast_config(tiny_sd15, images, run, evaluate_after_training=True), progress=False) == "completed"
    assert calls == [run]
    kinds = [e["kind"] for e in read_events(run)]
    assert kinds[-2:] == ["end", "eval"] and kinds.count("eval") == 1
    on_disk = json.loads((run / "metrics.json").read_text())
    assert read_events(run)[-1]["metrics"] == {f: on_disk[f]["score"] for f in FACTORS}

    assert train(fast_config(tiny_sd15, images, tmp_path / "plain"), progress=False) == "completed"
    assert calls == [run] and not (tmp_path / "plain" / "metrics.json").exists()  # off by default


def test_a_scoring_failure_after_training_leaves_the_run_completed(tiny_sd15, images, tmp_path, monkeypatch):
    import trainer.evaluate
    from trainer.loop import train

    def broken(run_dir, **kw):
        raise RuntimeError("encoder exploded")
    monkeypatch.setattr(trainer.evaluate, "evaluate_run", broken)
    run = tmp_path / "run"
    assert train(fast_config(tiny_sd15, images, run, evaluate_after_training=True), progress=False) == "completed"
    end, scored = read_events(run)[-2:]
    assert end["kind"] == "end" and end["status"] == "completed"
    assert scored["kind"] == "eval" and scored["error"] == "RuntimeError: encoder exploded"
    assert scored["step"] == end["step"] and "metrics" not in scored


def test_check_run_rejects_missing_unconfigured_and_unfinished_folders(trained_run, tmp_path):
    with pytest.raises(EvalError, match="does not exist"):
        check_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="no config.json"):
        check_run(tmp_path / "empty")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(trained_run / "config.json", unfinished / "config.json")
    with pytest.raises(EvalError, match="no outputs"):
        check_run(unfinished)
    emit(unfinished, "start", 0, pid=os.getpid(), host=__import__("socket").gethostname())
    with pytest.raises(EvalError, match="is running"):
        check_run(unfinished)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"method": "magic"}')
    with pytest.raises(EvalError, match="not a valid config"):
        check_run(tmp_path / "broken")
    assert check_run(trained_run).method == "lora"


def test_evaluate_run_rejects_bad_counts(trained_run):
    with pytest.raises(EvalError, match="num_images"):
        evaluate_run(trained_run, num_images=0)
    with pytest.raises(EvalError, match="steps"):
        evaluate_run(trained_run, steps=0)


def test_cli_errors_are_one_line(trained_run, tmp_path, capsys):
    from trainer.cli import main

    (tmp_path / "no-config").mkdir()
    cases = [([str(tmp_path / "missing")], "does not exist"), ([str(tmp_path / "no-config")], "no config.json"),
             ([str(trained_run), "--encoders", "siglip=x"], "--encoders"),
             ([str(trained_run), "--num-images", "0"], "num_images"), ([str(trained_run), "--steps", "0"], "steps")]
    for args, message in cases:
        assert main(["evaluate", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.slow
def test_cli_evaluate_end_to_end(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "run")
    out = run_cli("evaluate", str(run), "--encoders", "clip=none,dino=none", "--num-images", "1", "--steps", "2")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(1.0 <= metrics[f]["score"] <= 5.0 for f in FACTORS)
    assert out.stdout.strip().endswith(f"{run}/metrics.json") and "preservation" in out.stdout
    assert metrics["steps"] == 2 and metrics["n_images"] == 15 and metrics["seeds"] == [0]


def test_default_steps_follow_the_model_size():
    assert default_steps(64) == 10 and default_steps(512) == 25 and default_steps(1024) == 25


def test_make_grid_labels_rows():
    grid = make_grid([("first row", [pattern_image(seed=1)] * 2), ("second", [pattern_image(seed=2)])], cell=32,
                     label_width=50)
    assert grid.size == (50 + 2 * 32, 2 * 32)
    assert np.asarray(grid)[:, :50].min() < 128                          # the labels drew something


@pytest.mark.slow
def test_one_pipeline_in_memory_at_a_time(trained_run, tmp_path, monkeypatch):
    """The fine-tuned pipeline is gone before the base loads (it once stayed referenced, and a real
    SD 1.5 scoring peaked at 2.4x its weights on the CPU)."""
    import weakref

    from trainer import models
    from trainer.methods import registry

    run = _copy_run(trained_run, tmp_path / "run")
    alive_at_base_load = []
    tuned_refs = []
    real_trained, real_base = registry.load_trained_pipeline, models.load_pipeline

    def trained(*args, **kw):
        pipe = real_trained(*args, **kw)
        tuned_refs.append(weakref.ref(pipe))
        return pipe

    def base(*args, **kw):
        alive_at_base_load.append([ref() is not None for ref in tuned_refs])
        return real_base(*args, **kw)

    monkeypatch.setattr(registry, "load_trained_pipeline", trained)
    monkeypatch.setattr(models, "load_pipeline", base)
    evaluate_run(run, clip="none", dino="none", **FAST)
    assert tuned_refs and alive_at_base_load[-1] == [False]


@pytest.mark.parametrize("setting,allowed", [(None, True), ("1", True), ("0", False), ("no", False)])
def test_default_encoders_are_fetched_unless_the_owner_says_no(monkeypatch, setting, allowed):
    """Scores without CLIP/DINO are stand-ins, so the defaults are downloaded when the hub is
    reachable; FTA_EVAL_DOWNLOAD=0 forbids it. (The tests run with HF_HUB_OFFLINE=1: nothing is fetched.)"""
    import trainer.encoders as encoders

    seen = {}

    def loader(kind):
        def load(spec, device, allow_download):
            seen[kind] = allow_download
            raise FileNotFoundError("not here")
        return load
    monkeypatch.setattr(encoders, "load_clip", loader("clip"))
    monkeypatch.setattr(encoders, "load_dino", loader("dino"))
    if setting is None:
        monkeypatch.delenv(encoders.DOWNLOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(encoders.DOWNLOAD_ENV, setting)
    found, notes = encoders.load_encoders()
    assert seen == {"clip": allowed, "dino": allowed} and found == {"clip": None, "dino": None}
    assert notes["clip"].startswith("none: openai/clip-vit-base-patch32 could not be loaded")


def test_a_forbidden_download_says_how_to_allow_it(monkeypatch):
    import trainer.encoders as encoders

    monkeypatch.setattr(encoders, "_hub_offline", lambda: False)
    monkeypatch.setattr(encoders, "_in_cache", lambda repo: False)
    with pytest.raises(FileNotFoundError, match="FTA_EVAL_DOWNLOAD=0 forbids downloading it"):
        encoders._from_pretrained(object, "openai/clip-vit-base-patch32", allow_download=False)


def test_an_unreachable_hub_fails_fast_instead_of_retrying(monkeypatch):
    """No network and no HF_HUB_OFFLINE: transformers spent ~100 s in retries per encoder."""
    import trainer.encoders as encoders

    monkeypatch.setattr(encoders, "_hub_offline", lambda: False)
    monkeypatch.setattr(encoders, "_in_cache", lambda repo: False)
    monkeypatch.setattr(encoders, "hub_reachable", lambda: False)
    with pytest.raises(FileNotFoundError, match="the hub cannot be reached from here"):
        encoders._from_pretrained(object, "openai/clip-vit-base-patch32", allow_download=True)

"""The shapes world (issue 15): deterministic scenes and captions, and a checker that measures them
back from pixels, also through the noise and blur a generated image has."""
import itertools
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from trainer.shapes.checker import Measured, accuracy, agrees, flexibility, measure, points, preservation
from trainer.shapes.world import (HELD_OUT, PALETTE, SHAPES, STYLE, SUBJECT, Concept, Scene, caption,
                                  position_words, render, sample_scenes, shade, with_concept)

FIELDS = ("shape", "color", "background", "cell", "style")


def degrade(image: Image.Image, seed: int, sigma: float = 10.0, blur: float = 0.8) -> Image.Image:
    """Mild imperfection: a Gaussian blur, then Gaussian noise (sigma in 0-255 units)."""
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
    noisy = blurred + np.random.default_rng(seed).normal(0.0, sigma, blurred.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))


def field_accuracy(scenes, images) -> dict[str, float]:
    measured = [measure(im) for im in images]
    return {f: sum(getattr(m, f) == getattr(s, f) for m, s in zip(measured, scenes)) / len(scenes) for f in FIELDS}


@pytest.fixture(scope="module")
def scenes():
    return sample_scenes(200, seed=0)


@pytest.fixture(scope="module")
def images(scenes):
    return [render(s) for s in scenes]


class TestWorld:
    def test_the_same_seed_gives_the_same_scenes_and_pixels(self):
        a, b = sample_scenes(20, seed=7), sample_scenes(20, seed=7)
        assert a == b
        assert all(np.array_equal(np.asarray(render(x)), np.asarray(render(y))) for x, y in zip(a, b))
        assert sample_scenes(20, seed=8) != a

    def test_sample_scenes_never_draws_a_held_out_concept_unless_asked(self):
        drawn = sample_scenes(500, seed=1)
        assert not any(s.shows(c) for s in drawn for c in HELD_OUT)
        assert {s.shape for s in drawn} == set(SHAPES) - {SUBJECT.value}
        assert all(s.shows(SUBJECT) for s in sample_scenes(30, seed=1, concept=SUBJECT))
        only_subject = sample_scenes(100, seed=1, concept=SUBJECT)
        assert not any(s.shows(STYLE) for s in only_subject)    # asking for one keeps the other held out
        assert any(s.shows(STYLE) for s in sample_scenes(100, seed=1, exclude=()))

    def test_captions_name_what_is_drawn(self):
        scene = Scene(shape="triangle", color="red", background="blue", cell=(0, 0), size="small", pattern="striped")
        assert caption(scene) == "a small red striped triangle on a blue background at the top left"
        assert caption(Scene(cell=(1, 1))) == "a large red circle on a blue background in the center"
        assert caption(with_concept(Scene(cell=(2, 1)), STYLE)).endswith("on the right, outline drawing")
        for s in sample_scenes(50, seed=2, exclude=()):
            text = caption(s)
            assert f" {s.shape} " in text and f" {s.color}" in text and f" {s.background} background" in text
            assert position_words(s.cell) in text

    def test_every_cell_has_its_own_words(self):
        assert len({position_words(c) for c in itertools.product(range(3), range(3))}) == 9

    def test_palette_colours_and_shades_are_far_apart(self):
        """What lets the checker tell colours apart, and pattern shades from backgrounds."""
        assert min(math.dist(PALETTE[a], PALETTE[b]) for a, b in itertools.combinations(PALETTE, 2)) > 100
        assert min(math.dist(shade(a), PALETTE[b]) for a in PALETTE for b in PALETTE if a != b) > 90

    @pytest.mark.parametrize("bad", [dict(shape="hexagon"), dict(color="pink"), dict(color="blue"),
                                     dict(cell=(3, 0)), dict(offset=(0.1, 0.0)), dict(style="sketch")])
    def test_a_bad_scene_is_a_value_error_naming_the_field(self, bad):
        field = next(iter(bad)) if "color" not in bad or bad["color"] == "pink" else "color"
        with pytest.raises(ValueError, match=field):
            Scene(**bad)

    def test_a_bad_concept_is_a_value_error(self):
        with pytest.raises(ValueError, match="kind"):
            Concept("texture", "checkered")
        with pytest.raises(ValueError, match="value"):
            Concept("shape", "checkered")


class TestChecker:
    def test_recovers_every_fact_of_clean_renders(self, scenes, images):
        acc = field_accuracy(scenes, images)
        print("clean, 200 scenes at 64 px:", acc)
        assert min(acc.values()) >= 0.95

    def test_recovers_them_through_noise_and_blur(self, scenes, images):
        acc = field_accuracy(scenes, [degrade(im, i) for i, im in enumerate(images)])
        print("blur 0.8 px + noise sigma 10, 200 scenes at 64 px:", acc)
        assert min(acc.values()) >= 0.9

    @pytest.mark.parametrize("concept", HELD_OUT, ids=lambda c: c.value)
    def test_recognises_the_held_out_concepts_drawn_and_not_drawn(self, concept, images):
        with_it = [render(s) for s in sample_scenes(40, seed=3, concept=concept, exclude=())]
        assert accuracy(with_it, concept) >= 0.95
        assert accuracy([degrade(im, i) for i, im in enumerate(with_it)], concept) >= 0.9
        assert accuracy(images[:100], concept) <= 0.02

    def test_an_empty_background_has_no_object(self):
        m = measure(Image.new("RGB", (64, 64), PALETTE["green"]))
        assert m == Measured(background="green", color=None, shape=None, cell=None, bbox=None, style=None)

    def test_agrees_needs_every_fact(self):
        scene = Scene(shape="square", color="yellow", background="purple", cell=(2, 0))
        m = measure(render(scene))
        assert agrees(m, scene)
        assert not agrees(m, Scene(shape="square", color="yellow", background="purple", cell=(2, 1)))


class TestFactors:
    def test_accuracy_is_one_for_concept_images_and_zero_without(self, images):
        stars = [render(s) for s in sample_scenes(10, seed=4, concept=SUBJECT)]
        assert accuracy(stars, SUBJECT) == 1.0
        assert accuracy(images[:10], SUBJECT) == 0.0

    def test_flexibility_is_one_when_the_context_is_drawn_and_zero_when_not(self):
        prompts = sample_scenes(10, seed=5, concept=SUBJECT)
        drawn = [render(s) for s in prompts]
        assert flexibility(drawn, prompts) == 1.0
        # the star, but always in the same place and colours: the prompts' contexts are ignored
        fixed = render(Scene(shape="star", color="white", background="green", cell=(1, 1)))
        ignored = [p for p in prompts if (p.color, p.background, p.cell) != ("white", "green", (1, 1))]
        assert flexibility([fixed] * len(ignored), ignored) == 0.0

    def test_preservation_is_one_when_unchanged_and_zero_when_all_changed(self, scenes, images):
        prompts, base = scenes[:10], images[:10]
        assert preservation(base, base, prompts) == 1.0
        changed = [render(Scene(shape="star", color=s.background, background=s.color)) for s in prompts]
        assert preservation(base, changed, prompts) == 0.0

    def test_preservation_only_counts_prompts_without_the_concept(self, scenes, images):
        star_prompt = sample_scenes(1, seed=6, concept=SUBJECT)[0]
        star_image = render(star_prompt)
        blank = Image.new("RGB", (64, 64), PALETTE["white"])
        assert preservation(images[:3] + [star_image], images[:3] + [blank], scenes[:3] + [star_prompt]) == 1.0
        with pytest.raises(ValueError, match="held-out"):
            preservation([star_image], [blank], [star_prompt])

    def test_mismatched_lengths_are_a_value_error(self, scenes, images):
        with pytest.raises(ValueError, match="one image per scene"):
            flexibility(images[:2], scenes[:3])


class TestPoints:
    """A star needs five points, not just a concave outline: a generated blob is concave too."""

    @staticmethod
    def solid_mask(shape: str) -> np.ndarray:
        image = render(Scene(shape=shape, color="white", background="blue", size="large"))
        return np.asarray(image)[..., 0] > 140

    @pytest.mark.parametrize("shape, n", [("star", 5), ("triangle", 3), ("square", 4), ("diamond", 4)])
    def test_points_of_each_shape(self, shape, n):
        assert points(self.solid_mask(shape)) == n

    def test_a_circle_has_none(self):
        assert points(self.solid_mask("circle")) == 0

    def test_a_concave_blob_is_not_a_star(self):
        yy, xx = np.mgrid[:64, :64]
        blob = ((xx - 28) ** 2 + (yy - 30) ** 2 < 100) | ((xx - 40) ** 2 + (yy - 34) ** 2 < 60)  # two lumps
        image = Image.fromarray(np.where(blob[..., None], [240, 210, 50], [40, 90, 220]).astype(np.uint8))
        m = measure(image)
        assert m.solidity < 0.95 and m.shape != "star"

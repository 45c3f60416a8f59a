"""Profile: the interview's contract object."""
import json

import pytest

from advisor.profile import DEFAULTS, Profile, ProfileError


def test_all_unknown_is_valid_and_defaults_are_reported():
    p = Profile()
    filled, assumed = p.with_defaults()
    assert set(assumed) == set(DEFAULTS)
    assert filled.vram_gb == DEFAULTS["vram_gb"]
    assert p.vram_gb is None  # the original is untouched


def test_round_trip(tmp_path):
    p = Profile(goal="my cat everywhere", subject_type="animal", n_images=30, vram_gb=12,
                accuracy=4, flexibility=5, preservation=2, base_model="sd15", dream_prompts=["a cat astronaut"])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(p.to_dict()))
    assert Profile.load(path) == p


@pytest.mark.parametrize("data, slot", [
    ({"subject_type": "car"}, "subject_type"),
    ({"base_model": "flux"}, "base_model"),
    ({"accuracy": 7}, "accuracy"),
    ({"flexibility": 0}, "flexibility"),
    ({"preservation": 2.5}, "preservation"),
    ({"preservation": True}, "preservation"),
    ({"n_images": -3}, "n_images"),
    ({"n_images": 2.5}, "n_images"),
    ({"vram_gb": 10000}, "vram_gb"),
    ({"vram_gb": "12"}, "vram_gb"),
    ({"time_budget_min": 0}, "time_budget_min"),
    ({"captions": "yes"}, "captions"),
    ({"dream_prompts": "a cat"}, "dream_prompts"),
    ({"colour": "red"}, "colour"),
    ({"preferred_method": "dora"}, "preferred_method"),
    ({"preferred_method": "LoRA"}, "preferred_method"),
    ({"preferred_method": 1}, "preferred_method"),
])
def test_bad_values_name_the_slot(data, slot):
    with pytest.raises(ProfileError, match=slot):
        Profile.from_dict(data)


def test_malformed_files(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{oops")
    with pytest.raises(ProfileError, match="not valid JSON"):
        Profile.load(bad)
    bad.write_text("[]")
    with pytest.raises(ProfileError, match="JSON object"):
        Profile.load(bad)
    with pytest.raises(ProfileError, match="does not exist"):
        Profile.load(tmp_path / "missing.json")


def test_preferred_method_is_optional_and_never_assumed(tmp_path):
    from trainer.vocabulary import METHOD_NAMES

    assert "preferred_method" not in DEFAULTS
    filled, assumed = Profile().with_defaults()
    assert filled.preferred_method is None and "preferred_method" not in assumed
    assert "preferred_method" not in Profile().missing()
    for method in METHOD_NAMES:
        p = Profile(preferred_method=method)
        path = tmp_path / f"{method}.json"
        path.write_text(json.dumps(p.to_dict()))
        assert Profile.load(path).preferred_method == method
    with pytest.raises(ProfileError, match="pick one of .*'lora'"):
        Profile(preferred_method="dora")

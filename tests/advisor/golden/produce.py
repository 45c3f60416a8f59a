"""Produce the advisor's outputs for the golden cases (the one place that calls the advisor)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import cases
from advisor.learning.log_learner import LogLearner
from advisor.chat import answer_from_knowledge, play
from advisor.interview.subjects import SubjectClassifier
from advisor.profile import Profile
from advisor.recommendation.recommend import recommend
from advisor.knowledge.cards import KNOWLEDGE_DIR, load_cards
from advisor.knowledge.retrieval import SENTENCE_TRANSFORMERS, Retriever, load_embedder
from advisor.runlog.store import RunLog
from advisor.runlog.records import RunRecord


def dump(items: list) -> str:
    """The exact text compared: each output as the CLI prints it, in a JSON list."""
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def recommendations() -> list[dict]:
    return [{"profile": p, "recommendation": recommend(Profile.from_dict(p)).to_dict()} for p in cases.profiles()]


def learned(db: Path) -> list[dict]:
    with RunLog(db) as log:
        log.upsert_many([RunRecord(**row) for row in cases.learned_runs()])
        learner = LogLearner.fit(log)
    return [{"profile": p, "recommendation": recommend(Profile.from_dict(p), learner=learner).to_dict()}
            for p in cases.LEARNED_PROFILES]


@functools.lru_cache(maxsize=1)
def _retriever():
    """A retriever of the golden's own (sentence-transformers), not the process-wide one another
    test may have built with TF-IDF."""
    embedder, why_not = load_embedder()
    if embedder is None:
        raise RuntimeError(f"the chat goldens answer questions with sentence-transformers: {why_not}")
    retriever = Retriever.build(load_cards(KNOWLEDGE_DIR), embedder)
    assert retriever.backend == SENTENCE_TRANSFORMERS
    return retriever


def chats() -> list[dict]:
    retriever = _retriever()
    answer = functools.partial(answer_from_knowledge, retriever=retriever)
    classify = SubjectClassifier().fit(retriever.embedder).predict
    return [{"messages": messages, "result": play(messages, answer_question=answer, classify_subject=classify)}
            for messages in cases.CHATS]

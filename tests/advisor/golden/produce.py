"""Produce the advisor's outputs for the golden cases (the one place that calls the advisor)."""
from __future__ import annotations

import json
from pathlib import Path

import cases
from advisor.adapt import LogLearner
from advisor.chat import play
from advisor.profile import Profile
from advisor.recommend import recommend
from advisor.runlog import RunLog, RunRecord


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


def chats() -> list[dict]:
    return [{"messages": messages, "result": play(messages)} for messages in cases.CHATS]

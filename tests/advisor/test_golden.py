"""The advisor's outputs, byte for byte, against goldens written before advisor/ was reshaped.

48 profiles (recommend --json), 6 profiles against a fixed run log (the learner's path) and 22
conversations (chat --json, with transcripts). A difference here is a change of advice: if it is
meant, regenerate the goldens (python tests/advisor/golden/regenerate.py) and say why in the commit.
"""
import difflib
import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import produce  # noqa: E402


def _same(name: str, items: list) -> None:
    want = (GOLDEN / name).read_text(encoding="utf-8")
    got = produce.dump(items)
    if got != want:
        diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), name, "now", n=2))[:80])
        pytest.fail(f"{name} differs from the golden:\n{diff}")


@pytest.fixture
def no_run_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FTA_RUNLOG", str(tmp_path / "absent.sqlite"))


def test_recommendations_match_the_golden():
    items = produce.recommendations()
    assert len(items) >= 40
    _same("recommendations.json", items)


def test_recommendations_learned_from_a_run_log_match_the_golden(tmp_path):
    items = produce.learned(tmp_path / "learned.sqlite")
    assert all(item["recommendation"]["learned"] for item in items)  # the log really was used
    _same("learned.json", items)


def test_chat_transcripts_match_the_golden(no_run_log):
    items = produce.chats()
    assert len(items) >= 20
    _same("chats.json", items)


def test_the_goldens_are_what_the_cases_describe():
    """The stored files hold exactly the cases (a case added without regenerating fails here)."""
    for name, n in (("recommendations.json", len(produce.cases.profiles())),
                    ("learned.json", len(produce.cases.LEARNED_PROFILES)), ("chats.json", len(produce.cases.CHATS))):
        assert len(json.loads((GOLDEN / name).read_text(encoding="utf-8"))) == n

"""The chat session: interview + recommendation, state in and state out."""
import copy

import pytest

from advisor import chat
from advisor.profile import Profile


def fake_answer(question):
    return f"answer to {question}", [{"card": "prior-preservation", "title": "Prior preservation", "source": "x"}]


def talk(*messages):
    session, _ = chat.new_session()
    replies = []
    for m in messages:
        session, reply = chat.send(session, m, answer_question=fake_answer)
        replies.append(reply)
    return session, replies


def test_one_message_gives_a_cited_budget_respecting_recommendation():
    session, (reply,) = talk("30 pictures of my cat, 12GB card, I want it in all kinds of scenes")
    assert reply.ready and session.recommendation is not None
    rec = session.recommendation.to_dict()
    assert rec["estimates"]["vram_gb"] <= 12 and rec["estimates"]["fits"]
    assert rec["citations"] and all({"card", "title", "source"} <= set(c) for c in rec["citations"])
    assert "My recommendation" in reply.text
    assert rec["train_config"]["method"] == rec["method"]


def test_changing_an_answer_updates_the_recommendation():
    session, _ = talk("30 photos of my dog, 24GB card, must look exactly like him")
    before = session.recommendation
    session2, reply = chat.send(session, "actually I only have 6GB", answer_question=fake_answer)
    assert session2.interview.profile.vram_gb == 6
    assert session2.recommendation.estimates.vram_gb <= 6 or not session2.recommendation.estimates.fits
    assert "Updated recommendation" in reply.text
    assert session.recommendation == before  # the old session is untouched


def test_send_never_mutates_its_input():
    session, _ = talk("my watercolor paintings as a style, 40 images, free colab")
    snapshot = copy.deepcopy(session)
    chat.send(session, "actually 8GB and SDXL", answer_question=fake_answer)
    assert session == snapshot


def test_questions_are_answered_and_state_kept():
    session, _ = talk("30 pictures of my cat, 12GB card")
    profile = session.interview.profile.to_dict()
    session2, reply = chat.send(session, "what is prior preservation?", answer_question=fake_answer)
    assert "answer to" in reply.text
    assert session2.interview.profile.to_dict() == profile


@pytest.mark.parametrize("junk", ["", " ", "🐱🐶🚀" * 50, "x" * 10_000, "Я хочу обучить модель на фото кошки",
                                  "我想训练我的狗", "'; DROP TABLE runs; --", "<script>alert(1)</script>", None])
def test_junk_never_raises_and_keeps_state(junk):
    session, _ = talk("30 pictures of my cat, 12GB card")
    before = session.interview.profile.to_dict()
    session2, reply = chat.send(session, junk, answer_question=fake_answer)
    assert isinstance(reply.text, str) and reply.text
    assert session2.interview.profile.to_dict() == before


def test_impossible_numbers_are_refused_not_stored():
    session, replies = talk("-3 images of my dog and a 10000 GB card")
    p = session.interview.profile
    assert p.n_images is None and p.vram_gb is None
    assert replies[0].problems


def test_play_contract_shape():
    out = chat.play(["30 pictures of my cat, 12GB card, I want it in all kinds of scenes"],
                    answer_question=fake_answer)
    assert set(out) >= {"profile", "recommendation", "transcript"}
    assert out["profile"]["n_images"] == 30 and out["profile"]["vram_gb"] == 12
    # unknown slots stay null in the profile; what was assumed is listed separately
    assert out["profile"]["base_model"] is None and out["assumed"]["base_model"] == "sd15"
    Profile.from_dict(out["profile"])
    assert [m["role"] for m in out["transcript"]][:2] == ["assistant", "user"]


def test_answer_from_knowledge_tf_idf(monkeypatch):
    from advisor.knowledge import retrieval

    monkeypatch.setenv("FTA_EMBEDDER", "none")
    monkeypatch.setattr(chat, "_retriever", None)
    monkeypatch.setattr(retrieval, "_DEFAULT", None)  # another test may have built the semantic one
    text, cites = chat.answer_from_knowledge("what is prior preservation?")
    assert cites and cites[0]["card"] == "prior-preservation"
    assert "TF-IDF" in text  # the fallback is said, not hidden
    monkeypatch.setattr(chat, "_retriever", None)


def test_an_assumed_base_the_card_does_not_keep_is_said_in_the_chat():
    """On a 24 GB card SDXL is assumed, but under a 10 MB cap its LoRA would drop to rank 1: the
    card falls back to SD 1.5, and the chat says so instead of leaving 'base model: SDXL' standing."""
    session, replies = talk("lora of my shoes, 40 photos, 4090, the file must stay under 10 MB", "you decide")
    rec = session.recommendation
    said = " ".join(r.text for r in replies)
    assert rec.base_model == "sd15" and session.interview.profile.base_model == "sd15"
    assert "Base model: Stable Diffusion 1.5 rather than SDXL 1.0" in said and "lower LoRA rank" in said
    session, replies = talk("lora of my cat, 20 photos, 4090", "you decide")
    assert session.recommendation.base_model == "sdxl" and "rather than" not in replies[-1].text

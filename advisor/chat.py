"""One chat session: the interview plus the recommendation it leads to.

`send(session, message)` is the whole chat API: state in, state out, never raising on user
input. The interview decides when enough is known; from then on every turn re-runs the
recommendation for the current profile (only when the profile changed), so "actually I
have 8GB" updates the card at once.
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .interview import conversation
from .learning.log_learner import learner_for_log
from .interview.conversation import InterviewState, Reply
from .profile import Profile
from .recommendation.recommend import Recommendation, recommend
from .recommendation.render import base_title, method_title

log = logging.getLogger(__name__)

AnswerFn = Callable[[str], "tuple[str, list[Any]]"]


@dataclass
class ChatSession:
    interview: InterviewState
    recommendation: Recommendation | None = None
    recommended_for: Profile | None = None   # what the user had said when it was made

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.interview.transcript


def new_session(profile: Profile | None = None) -> tuple[ChatSession, Reply]:
    state, reply = conversation.start(profile)
    session = _with_recommendation(ChatSession(state), reply)
    return session, reply


def send(session: ChatSession, message: Any, *, answer_question: AnswerFn | None = None,
         classify_subject=None) -> tuple[ChatSession, Reply]:
    """One user message in; a new session and the interview's reply out (the input is untouched).
    Questions go to the knowledge base and unlisted subject nouns to the subject classifier,
    the process-wide ones unless others are given."""
    answer_question = answer_question or answer_from_knowledge
    classify_subject = classify_subject or classify_unlisted_subject
    state, reply = conversation.turn(session.interview, message, answer_question=answer_question,
                                     classify_subject=classify_subject)
    new = ChatSession(state, copy.deepcopy(session.recommendation), copy.deepcopy(session.recommended_for))
    return _with_recommendation(new, reply), reply


def stated_profile(state: InterviewState) -> Profile:
    """The profile with only what the user said: assumed slots go back to None, so the
    recommendation lists them as assumptions instead of treating them as facts."""
    data = state.profile.to_dict()
    for slot, how in state.sources.items():
        if how == "assumed" and slot in data:
            data[slot] = [] if slot == "dream_prompts" else None
    return Profile.from_dict(data)


def _with_recommendation(session: ChatSession, reply: Reply) -> ChatSession:
    if not (reply.ready or session.interview.done):
        return session
    profile = stated_profile(session.interview)
    if profile == session.recommended_for:
        return session
    try:
        rec, note = _recommend_with_log(profile)
    except Exception as e:  # a rules bug must not lose the conversation
        log.exception("recommend failed")
        reply.problems.append(f"I could not build a recommendation ({type(e).__name__}: {e}).")
        reply.text += "\n\nSorry, building the recommendation failed; your answers are kept."
        return session
    first_time = session.recommendation is None
    changed = not first_time and rec.method != session.recommendation.method
    session.recommendation, session.recommended_for = rec, profile
    base_note = _assumed_base_kept(session.interview, rec)
    if base_note:
        reply.text += "\n\n" + base_note
    reply.text += "\n\n" + summary_line(rec, updated=not first_time, changed=changed)
    if note:
        reply.problems.append(note)
        reply.text += f"\n\n_{note}_"
    if session.interview.transcript and session.interview.transcript[-1]["role"] == "assistant":
        session.interview.transcript[-1]["content"] = reply.text
    return session


def _assumed_base_kept(state: InterviewState, rec: Recommendation) -> str:
    """An assumed base model the recommendation did not keep (the card's default is SDXL on a big
    card, SD 1.5 where the SDXL plan falls short): the interview's profile follows the card, and
    the chat says why in one line. "" when nothing changed."""
    if state.sources.get("base_model") != "assumed" or state.profile.base_model == rec.base_model:
        return ""
    data = state.profile.to_dict()
    was, data["base_model"] = data["base_model"], rec.base_model
    state.profile = Profile.from_dict(data)
    why = next((a["how_to_change"] for a in rec.assumptions if a.get("slot") == "base_model"), "")
    return f"Base model: {base_title(rec.base_model)} rather than {base_title(was)}. {why}".rstrip()


def _recommend_with_log(profile: Profile) -> tuple[Recommendation, str | None]:
    """The recommendation, learned from the run log when it has runs; (rec, note). A log or
    learner failure falls back to the rules alone with a one-line note; no log, no note."""
    learner, note = learner_for_log()
    if learner is not None:
        try:
            return recommend(profile, learner=learner), None
        except Exception as e:
            log.exception("recommend with the run log failed")
            note = (f"Learning from your run log failed ({type(e).__name__}: {e}); "
                    "this recommendation uses the rules only.")
    return recommend(profile), note


def summary_line(rec: Recommendation, *, updated: bool = False, changed: bool = False) -> str:
    est = rec.estimates
    lead = "Updated recommendation" if updated else "My recommendation"
    if changed:
        lead += " (the method changed)"
    line = (f"**{lead}: {method_title(rec.method)} on {base_title(rec.base_model)}**, about {est.vram_gb:g} GB of GPU "
            f"memory and {est.minutes:g} GPU minutes per run. The full card with settings, reasons and "
            "sources is beside the chat.")
    if not est.fits:
        line += f" ⚠️ It does not fit your budget: {est.fits_reason}"
    return line


# --------------------------------------------------------------------------- questions
_retriever = None
_retriever_lock = threading.Lock()


def knowledge_retriever():
    """The process-wide retriever, built on first use (loads the embedding model: seconds)."""
    global _retriever
    with _retriever_lock:
        if _retriever is None:
            from .knowledge.retrieval import default_retriever
            _retriever = default_retriever()
        return _retriever


_classifier = None
_classifier_lock = threading.Lock()


def classify_unlisted_subject(phrase: str) -> tuple[str, float] | None:
    """The subject type of a noun the phrase tables lack, by meaning (interview.subjects), with the
    knowledge retriever's embedding model; built on the first such noun, so a chat that never
    needs it never loads it. None when no embedding model loads: the interview then asks."""
    global _classifier
    with _classifier_lock:
        if _classifier is None:
            from .interview.subjects import SubjectClassifier

            embedder = getattr(knowledge_retriever(), "embedder", None)
            _classifier = SubjectClassifier().fit(embedder) if embedder is not None else False
    return _classifier.predict(phrase) if _classifier else None


def answer_from_knowledge(question: str, retriever=None) -> tuple[str, list[dict[str, str]]]:
    """Answer a user's question with the best knowledge cards and their sources (from the
    process-wide retriever unless one is given)."""
    retriever = retriever or knowledge_retriever()
    hits = retriever.search(question, k=3)
    if not hits:
        return ("I found nothing on that in my knowledge base. Try other words, or ask about methods, "
                "learning rates, memory, datasets or evaluation.", [])
    best = hits[0]
    text = f"**{best.title}**: {best.snippet}"
    if len(hits) > 1:
        text += "\n\nSee also: " + ", ".join(h.title for h in hits[1:])
    if retriever.backend != "sentence-transformers":
        text += f"\n\n_({retriever.note})_"
    cites = [{"card": h.card_id, "title": h.title, "source": "; ".join(h.sources)} for h in hits]
    return text, cites


# --------------------------------------------------------------------------- scripted chats
def play(messages: Iterable[str], *, answer_question: AnswerFn | None = None,
         classify_subject=None) -> dict[str, Any]:
    """Play user messages through a fresh interview: the `chat --json` contract."""
    session, _ = new_session()
    for message in messages:
        session, _ = send(session, message, answer_question=answer_question, classify_subject=classify_subject)
    state = session.interview
    return {
        "profile": stated_profile(state).to_dict(),
        "assumed": {s: getattr(state.profile, s) for s in state.assumed},
        "recommendation": session.recommendation.to_dict() if session.recommendation else None,
        "transcript": state.transcript,
    }

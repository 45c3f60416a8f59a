"""The expert case suite: requests in the words people write on trainer trackers and forums, each
with what an expert accepts and the published source for that judgement (cases.json).

`run_case(case)` plays the messages through the chat as the Advisor tab does (a user who is asked
more clicks "You decide", at most MAX_SKIPS times) and returns the list of what an expert would
object to, empty when the plan passes. tests/advisor/test_expert_cases.py holds the pass rate to a
floor that only rises; benchmarks/expert_cases.py prints it by category.

What a case may expect (every key optional):
- "profile": slot -> value the interview must have read from the words (exact; a list holds the
  values an expert accepts, e.g. ["corgi", "dog"]; {"min": x, "max": y} a range).
- "profile_unset": slots the words must NOT fill (e.g. a GPU's memory on a Mac).
- "method", "base_model": lists of acceptable values.
- "hyperparameters": key -> list of acceptable values, or {"min": x, "max": y}.
- "fits": true/false; "fits" true also needs the estimate at most 1/1.1 of the stated card.
- "says": phrases that must appear (case-blind) in what the user reads: the chat's replies and the
  card (reasons, dataset advice, assumptions, fit sentence, savings).
- "never_says": phrases that must not.
- "not_assumed_binding": slots whose assumed (unstated) default must not shorten or reject a plan.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from advisor import chat
from advisor.interview.subjects import SubjectClassifier
from advisor.knowledge.retrieval import load_embedder

HERE = Path(__file__).resolve().parent
CASES_FILE = HERE / "cases.json"
MAX_SKIPS = 3
MEMORY_MARGIN = 1.1  # an expert leaves 10% of the card free before calling a plan a fit
CATEGORIES = ("subject", "factors", "counts", "invented-constraints", "precision", "memory", "fallbacks",
              "large-sets", "explicit-requests", "consistency")


def load_cases(path: Path = CASES_FILE) -> list[dict[str, Any]]:
    cases = json.loads(path.read_text(encoding="utf-8"))
    ids = [c["id"] for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path.name}: repeated case ids {sorted({i for i in ids if ids.count(i) > 1})}")
    for c in cases:
        missing = {"id", "category", "messages", "expect", "source", "why"} - set(c)
        if missing:
            raise ValueError(f"case {c.get('id')!r} lacks {sorted(missing)}")
        if c["category"] not in CATEGORIES:
            raise ValueError(f"case {c['id']!r}: category {c['category']!r}; pick one of {list(CATEGORIES)}")
    return cases


def _no_questions(question: str) -> tuple[str, list]:
    return "(a knowledge-base answer)", []


@functools.lru_cache(maxsize=1)
def _classifier():
    """The suite's own subject classifier (all-MiniLM-L6-v2), not the process-wide one another test
    may have built without an embedding model."""
    embedder, why_not = load_embedder()
    if embedder is None:
        raise RuntimeError(f"the expert suite reads subjects with all-MiniLM-L6-v2: {why_not}")
    return SubjectClassifier().fit(embedder)


def play(messages: list[str]) -> tuple[dict[str, Any], chat.ChatSession]:
    """The chat after `messages`, then "You decide" while it still asks (at most MAX_SKIPS)."""
    classify = _classifier().predict
    session, _ = chat.new_session()
    for message in messages:
        session, _ = chat.send(session, message, answer_question=_no_questions, classify_subject=classify)
    for _ in range(MAX_SKIPS):
        if session.recommendation is not None:
            break
        session, _ = chat.send(session, "You decide", answer_question=_no_questions, classify_subject=classify)
    return chat.stated_profile(session.interview).to_dict(), session


def _text(session: chat.ChatSession) -> str:
    parts = [m["content"] for m in session.interview.transcript if m["role"] == "assistant"]
    rec = session.recommendation
    if rec is not None:
        est = rec.estimates
        parts += rec.reasons + rec.dataset_advice + rec.iteration_plan + est.savings + [est.fits_reason]
        parts += [a.get("how_to_change", "") for a in rec.assumptions]
        parts += [a.get("why_not", "") for a in rec.alternatives]
    return "\n".join(parts).lower()


def run_case(case: dict[str, Any]) -> list[str]:
    """What an expert would object to in the plan for this case (empty: it passes)."""
    expect = case["expect"]
    profile, session = play(case["messages"])
    out = []
    for slot, want in expect.get("profile", {}).items():
        got = profile.get(slot)
        if isinstance(want, dict):  # {"min": x, "max": y}
            ok = got is not None and want.get("min", got) <= got <= want.get("max", got)
        else:
            ok = got in (want if isinstance(want, list) and slot != "dream_prompts" else [want])
        if not ok:
            out.append(f"profile {slot}={got!r}, expected {want!r}")
    for slot in expect.get("profile_unset", []):
        if profile.get(slot) is not None:
            out.append(f"profile {slot}={profile.get(slot)!r}, expected it unset")
    text = _text(session)
    for phrase in expect.get("says", []):
        if phrase.lower() not in text:
            out.append(f"never says {phrase!r}")
    for phrase in expect.get("never_says", []):
        if phrase.lower() in text:
            out.append(f"says {phrase!r}")
    rec = session.recommendation
    plan_keys = {"method", "base_model", "hyperparameters", "fits", "not_assumed_binding"}
    if rec is None:
        if plan_keys & set(expect):
            out.append("no recommendation after the messages and 'You decide'")
        return out
    if "method" in expect and rec.method not in expect["method"]:
        out.append(f"method {rec.method}, expected one of {expect['method']}")
    if "base_model" in expect and rec.base_model not in expect["base_model"]:
        out.append(f"base model {rec.base_model}, expected one of {expect['base_model']}")
    hp = rec.train_config.to_dict()
    for key, want in expect.get("hyperparameters", {}).items():
        got = hp.get(key)
        if isinstance(want, dict):
            if ("min" in want and not got >= want["min"]) or ("max" in want and not got <= want["max"]):
                out.append(f"{key}={got!r}, expected within {want}")
        elif got not in want:
            out.append(f"{key}={got!r}, expected one of {want}")
    est = rec.estimates
    if "fits" in expect and est.fits is not expect["fits"]:
        out.append(f"fits={est.fits}, expected {expect['fits']} ({est.fits_reason})")
    card = profile.get("vram_gb")
    if est.fits and card and est.vram_gb * MEMORY_MARGIN > card:
        out.append(f"claims to fit {est.vram_gb} GB on a {card:g} GB card, within 10% of it")
    for slot in expect.get("not_assumed_binding", []):
        if slot == "time_budget_min" and any("minutes" in s and "to fit" in s for s in est.savings):
            out.append("an assumed time budget shortened the plan: " + next(s for s in est.savings if "to fit" in s))
        if slot == "time_budget_min" and not est.fits and "budget" in est.fits_reason:
            out.append(f"an assumed time budget rejected the plan: {est.fits_reason}")
    return out


# --- a card that agrees with itself ------------------------------------------------------------
# Sentences of the card that state a number of the plan: (where, pattern with group v, the plan's
# value). A number a sentence states about the plan must be the plan's number.
def _plan_claims(rec) -> list[tuple[str, str, Any]]:
    tc, est = rec.train_config, rec.estimates
    steps, lr, rank = tc.max_train_steps, tc.learning_rate, tc.rank
    claims = [
        ("reasons", r"^(?P<v>\d+) steps: about", steps),
        ("reasons", r"You set steps (?P<v>\d+), (?:so the plan uses it|the recipe)", steps),
        ("reasons", r"You set rank (?P<v>\d+), (?:so the plan uses it|the recipe)", rank),
        ("reasons", r"You set learning rate (?P<v>[\d.e+-]+), (?:so the plan uses it|the recipe)", lr),
        ("reasons", r"You set batch size (?P<v>\d+), (?:so the plan uses it|the recipe)", tc.train_batch_size),
        ("reasons", r"You set resolution (?P<v>\d+), (?:so the plan uses it|the recipe)", tc.resolution),
        ("reasons", r"this plan is predicted at (?P<v>[\d.]+), short", None),   # checked per factor below
        ("dataset", r"\((?P<v>\d+) steps\)", steps),
        ("dataset", r"(?P<v>\d+) steps give about", steps),
        ("dataset", r"(?P<v>\d+) class images of", tc.num_class_images),
        ("dataset", r"instance prompt '(?P<v>[^']+)'", tc.instance_prompt),
        ("dataset", r"at least (?P<v>\d+) x \d+ px", tc.resolution),
        ("dataset", r"with about (?P<v>\d+) x \d+ pixels", tc.resolution),
        ("fits", r"about (?P<v>[\d.]+) of your [\d.]+ GB", round(est.vram_gb, 1)),
        ("fits", r"GB and about (?P<v>\d+) minutes", round(est.minutes)),
        ("fits", r"GB and (?P<v>\d+) of your", round(est.minutes)),
        ("plan", r"^Run 1 \(~(?P<v>\d+)", round(est.minutes)),
        ("plan", r"samples every (?P<v>\d+) steps", tc.validation_steps),
        ("plan", r"run 2 with learning rate (?P<v>[\d.e+-]+) or", float(f"{lr / 2:.1e}")),
        ("plan", r"or (?P<v>\d+) steps, or keep", steps * 2 // 3),
        ("plan", r"run 2 with (?P<v>\d+) steps \(", int(steps * 1.5)),
        ("plan", r"lower the rank to (?P<v>\d+)", max(1, rank // 2)),
        ("savings", r"^(?P<v>\d+) steps instead of", steps),
    ]
    return claims


def card_disagreements(rec) -> tuple[int, list[str]]:
    """(how many of the card's stated numbers were checked, those that are not the plan's)."""
    where = {"reasons": rec.reasons, "dataset": rec.dataset_advice, "fits": [rec.estimates.fits_reason],
             "plan": rec.iteration_plan, "savings": rec.estimates.savings}
    checked, wrong = 0, []
    for part, pattern, want in _plan_claims(rec):
        for sentence in where[part]:
            for m in re.finditer(pattern, sentence):
                said = m.group("v")
                checked += 1
                expected = want
                if expected is None:   # a shortfall sentence: the predicted score of the factor it names
                    expected = rec.predicted[re.search(r"Your (\w+) wish", sentence).group(1)]["score"]
                if isinstance(expected, str):
                    same = said == expected
                else:
                    same = abs(float(said) - float(expected)) <= 1e-9 * max(1.0, abs(float(expected)))
                if not same:
                    wrong.append(f"{part}: says {said!r} where the plan has {expected!r}: {sentence}")
    if rec.train_config.prior_preservation is False and any("class images of" in d for d in rec.dataset_advice):
        wrong.append("dataset: speaks of class images, but the plan has no prior preservation")
    return checked, wrong

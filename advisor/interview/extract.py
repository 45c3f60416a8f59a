"""Free text -> Profile slots: one chat message in, an `Extraction` out. Pure functions.

How it reads a message:

1. Clean it (Unicode NFKC, one kind of quote and dash), cut it at `MAX_SCAN_CHARS` so a
   10,000-character paste costs the same as a short one, and split it into clauses.
   Question clauses ("what is prior preservation?") are kept apart: a choice inside a
   question ("flux or sdxl?", "is rank 32 too high?") is an option being asked about, so it
   is not stored; what the user has ("is 15 pics enough?", "any chance on my 4GB 1650?") is
   a fact wherever it stands, stored unless a statement said otherwise.
2. Normalise numbers: "thirty" -> 30, "a dozen" -> 12, "twenty-five" -> 25, "5k" -> 5000;
   vague image counts become our pick, marked: "hundreds of photos" -> "~200 photos".
3. Run the slot readers in a fixed order (see `extract`), most specific first. Each match
   is blanked out of the text so a later, looser rule cannot read it again ("one shot" is
   a run count, so the image rule must not see "1 shot"; "A100 40GB" is one GPU, not a
   GPU plus a second memory size).
4. Resolve: a value negated in place ("not 12GB", "instead of SDXL") is dropped; two
   different values for one slot are a conflict for the interview to ask about, unless a
   correction word ("actually", "I mean") sits between them, in which case the later wins.

The phrase tables are data in advisor/phrases.py. The engine that compiles and applies
them is split by job: advisor/parsing_text.py (steps 1 and 2), advisor/parsing_scan.py
(the scan state and the `Extraction`), advisor/parsing_amounts.py and
advisor/parsing_choices.py (the slot readers of step 3), and this module (step 4 and the
entry point, `extract`). A new phrasing is a new row in phrases.py (and a new test row).
Every pattern is linear (bounded repetition, no nested quantifiers), so time grows with
length only; the cut keeps even that small.
"""
from __future__ import annotations

import re
from typing import Any

from . import phrases as P
from .amounts import read_gpus, read_images, read_output, read_runs, read_time, read_vram
from .choices import read_bare, read_base, read_captions, read_factors, read_method, read_settings, read_subject
from .scan import Extraction, Scan
from .text import BLANK, RECOMMEND_RX, SKIP_RX, clean, normalise, split_clauses

MAX_SCAN_CHARS = 4000   # longer messages are cut here; the user is told
MAX_PROMPTS = 10        # dream prompts kept from one message
MAX_TEXT = 300          # characters kept of the goal and of each dream prompt

_CHANGE = re.compile(P.CHANGE)
_WANT = re.compile(P.WANT)
_CORRECTION = re.compile(P.CORRECTION)
_QUOTED = re.compile(r'"([^"\n]{3,400})"|(?:(?<=\s)|^)\'([^\'\n]{8,400})\'(?=[\s.,;:!?)]|$)')
_PROMPT_LINE = re.compile(P.PROMPT_LINE)
_RENT = re.compile(P.RENT_INTENT)


# --------------------------------------------------------------------------- resolve
def _resolve(s: Scan, ex: Extraction) -> None:
    for slot, cands in s.cands.items():
        if slot == "gpu_name":
            continue   # follows vram_gb, below
        values: list[Any] = []
        for _, v in cands:
            if v not in values:
                values.append(v)
        if len(values) == 1:
            ex.slots[slot] = values[0]
            continue
        between = s.text[cands[-2][0]:cands[-1][0]]
        if _CORRECTION.search(between.replace(BLANK, " ")):
            ex.slots[slot] = cands[-1][1]     # "12GB, I mean 24GB": the correction wins
        else:
            ex.conflicts[slot] = values
    # The card's name is kept only when its memory is the memory we stored.
    if "vram_gb" in ex.slots:
        gb_at = dict(s.cands.get("vram_gb", []))
        names = [n for p, n in s.cands.get("gpu_name", []) if gb_at.get(p) == ex.slots["vram_gb"]]
        if names:
            ex.slots["gpu_name"] = names[-1]


def _dream_prompts(text: str) -> list[str]:
    prompts: list[str] = []
    for m in _QUOTED.finditer(text):
        prompts.append(m.group(1) or m.group(2))
    for m in _PROMPT_LINE.finditer(text):
        line = m.group(1)
        if '"' in line:
            continue   # its quoted parts were taken above
        prompts.extend(p for p in re.split(r"\s*(?:;|\||\s/\s)\s*", line))
    out: list[str] = []
    for p in prompts:
        p = " ".join(p.split()).strip(" .,;:")[:MAX_TEXT]
        # A prompt has at least two words; a quoted single word is just emphasis.
        if len(re.findall(r"[A-Za-z]{2,}", p)) >= 2 and p not in out:
            out.append(p)
    return out[:MAX_PROMPTS]


def _goal(statements: list[str], s: Scan, expecting: str | None) -> str | None:
    """The message itself, when it describes what the user wants (not a bare value)."""
    text = " ".join(" ".join(statements).split())
    # Words left once the values are taken out: "make it 16GB" is a value, not a goal.
    words = re.findall(r"[a-z][a-z'-]+", s.text)
    if len(words) < 3 or SKIP_RX.fullmatch(text.lower().strip(" .!")):
        return None
    if _WANT.search(text.lower()) or "subject_type" in s.cands or expecting == "subject_type":
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1].rstrip() + "\u2026"
    return None


def _facts_in_questions(questions: list[str], s: Scan, ex: Extraction, classify_subject) -> None:
    """What the user has, said inside a question: "is 15 pics enough?", "any chance for a lora of my
    cat?", "which is better for my dog lora, 4090?". Images, the card, the subject and captions are
    facts wherever they stand; a base model, a method, a setting or a factor inside a question is
    an option being asked about, so it is not stored (a model the trainer lacks is still named).
    A slot the statements filled keeps their value."""
    q = Scan(normalise("\n".join(questions)))
    notes = Extraction()
    read_settings(q, notes)             # taken out, not stored: "is rank 32 too high?"
    read_gpus(q, ex, None)
    read_vram(q, ex)
    read_base(q, notes, None)           # "flux or sdxl?": not a choice, but Flux is named
    ex.problems += [n for n in notes.problems if n not in ex.problems and " is built on " not in n]
    read_method(q)
    read_captions(q)
    read_subject(q, classify_subject)
    read_images(q, ex)
    offset = len(s.text) + 1            # positions after the statements': they never mix
    pairs = (("vram_gb", "gpu_name"), ("subject_type", "class_noun"))
    stated = set(s.cands)
    for slot, cands in q.cands.items():
        partner = next((a if b == slot else b for a, b in pairs if slot in (a, b)), None)
        if slot in ("base_model", "preferred_method") or slot in stated or partner in stated:
            continue
        s.cands[slot] = [(pos + offset, v) for pos, v in cands]


# --------------------------------------------------------------------------- entry point
def extract(message: str, expecting: str | None = None, classify_subject=None) -> Extraction:
    """Read one chat message. `expecting` is the slot of the pending question, so short
    answers ("30", "3", "yes", "no limit") fill it; `classify_subject(phrase) -> (type, similarity)
    or None` reads a subject noun the tables lack (subjects.SubjectClassifier.predict). Never raises
    on any text."""
    ex = Extraction()
    if not isinstance(message, str):
        ex.problems.append(f"I can only read text, not {type(message).__name__}.")
        return ex
    text = clean(message)
    if len(text) > MAX_SCAN_CHARS:
        text, ex.truncated = text[:MAX_SCAN_CHARS], True
        ex.notes.append(f"Your message is long ({len(message):,} characters); I read the first "
                        f"{MAX_SCAN_CHARS:,}. Send the rest separately if it matters.")
    if not text.strip():
        return ex
    statements, questions = split_clauses(text)
    if questions:
        ex.is_question, ex.question = True, " ".join(questions)[:MAX_TEXT * 2]
    low_all = text.lower()
    ex.wants_recommendation = bool(RECOMMEND_RX.search(low_all))
    if _RENT.search(low_all):   # "which gpu should i rent for it?": in a question too
        ex.slots["rent_gpu"] = True
    s = Scan(normalise("\n".join(statements)))
    ex.is_change = bool(_CHANGE.search(s.text))
    read_factors(s, ex)
    read_settings(s, ex)   # before counts and cards: "2000 steps", "4090 at 1024"
    read_output(s, ex)
    read_runs(s, ex)
    read_time(s, ex)
    read_gpus(s, ex, expecting)
    read_vram(s, ex)
    read_base(s, ex, expecting)
    read_method(s)     # after GPUs ("4060 ti") and file sizes ("a small LoRA file")
    read_captions(s)   # before image counts: "1000 captioned images" holds both
    read_subject(s, classify_subject, ex)    # before image counts too: "12 selfies" is a count and a person
    read_images(s, ex)
    if expecting and expecting not in s.cands:
        read_bare(s, expecting, ex)
    if questions:
        _facts_in_questions(questions, s, ex, classify_subject)
    ex.is_skip = bool(SKIP_RX.search(s.text.replace(BLANK, " ")))
    _resolve(s, ex)

    prompts = _dream_prompts(text)   # whole lines: a prompt list may hold ';' and '?'

    if prompts:
        ex.slots["dream_prompts"] = prompts
    goal = _goal(statements, s, expecting)
    if goal:
        ex.slots["goal"] = goal
    return ex

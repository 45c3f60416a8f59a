"""The chat interview: state in, state out.

`turn(state, message)` reads one user message and returns a new `InterviewState` and a
`Reply`; the input state is never changed, so a caller (Gradio, the CLI, a test) can keep
the old one and nothing is lost when a message is bad. One turn:

    parse (advisor.parsing.extract, told which question is pending)
    -> conflicts in the message ("12GB ... 24GB"): ask which, keep the old value
    -> merge the rest: a later statement overrides an earlier one, and says so; a method
       asked for by name is noted (never asked about, never assumed); a number picked from
       vague words ("hundreds of photos") is shown as "about 200"
    -> impossible values are reported, never stored
    -> "no idea" / "you decide": the pending slot gets its default, marked assumed
    -> a question: answered through the injected `answer_question`, then the pending
       question is asked again
    -> ready? (subject or goal, images, GPU memory and one factor known, or "recommend
       now"): fill the rest with defaults marked assumed and say how to change each
    -> next question, always with quick-reply options.

Questions are data (`QUESTIONS`): the option values are plain text that `extract` reads
back, so a clicked button and a typed answer take the same path.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from .extract import extract
from .scan import Extraction
from trainer.vocabulary import BASE_MODELS, FACTORS, METHOD_FACTS

from ..profile import DEFAULTS, SETTING_LABELS, Profile, ProfileError, default_value, setting_value

log = logging.getLogger(__name__)

MAX_STORED_CHARS = 10_000   # of one message in the transcript
MAX_DREAM_PROMPTS = 20
SOURCES = ("stated", "assumed")

AnswerFn = Callable[[str], "tuple[str, list[Any]]"]


@dataclass(frozen=True)
class Question:
    slot: str
    text: str
    options: tuple[tuple[str, str], ...]   # (value sent back as the message, button label)
    hint: str                              # how to change the slot later, parseable by extract


SKIP_OPTIONS = (("Not sure", "Not sure"), ("You decide", "You decide"))

QUESTIONS: dict[str, Question] = {q.slot: q for q in [
    Question("subject_type",
             "What should the model learn? Describe it in your own words, or pick one.",
             (("a person", "A person (me, a friend)"), ("my pet", "A pet or animal"),
              ("an object or product", "An object or product"), ("an art style", "An art style"),
              ("a concept or pose", "A concept or pose"),
              ("general fine-tune on my dataset", "A general fine-tune on a dataset")),
             "say 'my dog' or 'an art style'"),
    Question("n_images", "How many training images do you have?",
             (("5 images", "About 5"), ("15 images", "10-20"), ("30 images", "20-50"),
              ("100 images", "About 100"), ("1000 images", "1,000 or more")),
             "say 'I have 40 images'"),
    Question("vram_gb", "How much GPU memory do you have? A card name works too ('RTX 3060', 'free Colab').",
             (("8 GB", "8 GB"), ("12 GB", "12 GB (RTX 3060)"), ("16 GB", "16 GB (T4 / free Colab)"),
              ("24 GB", "24 GB (RTX 3090/4090)"), ("40 GB", "40 GB+ (A100)")),
             "say 'actually 24 GB' or name your card"),
    Question("accuracy", "How exactly must the subject be reproduced?",
             (("accuracy 1", "1: a loose resemblance"), ("accuracy 2", "2: recognisable is enough"),
              ("accuracy 3", "3: clearly the same subject"), ("accuracy 4", "4: must look like it"),
              ("accuracy 5", "5: exactly like it, every detail")),
             "say 'accuracy 5'"),
    Question("flexibility", "How far from your training images must it go?",
             (("flexibility 1", "1: only like my photos"), ("flexibility 2", "2: small variations"),
              ("flexibility 3", "3: new backgrounds and poses"), ("flexibility 4", "4: new scenes and outfits"),
              ("flexibility 5", "5: anything, all kinds of scenes and styles")),
             "say 'flexibility 5'"),
    Question("preservation", "How much of the base model must stay intact?",
             (("preservation 1", "1: don't care if it forgets other things"),
              ("preservation 2", "2: a little drift is fine"), ("preservation 3", "3: mostly intact"),
              ("preservation 4", "4: other subjects should look as before"),
              ("preservation 5", "5: it must still do everything else")),
             "say 'preservation 5'"),
    Question("time_budget_min", "How much GPU time can one training run take?",
             (("15 minutes", "15 minutes"), ("30 minutes", "30 minutes"), ("1 hour", "1 hour"),
              ("3 hours", "3 hours"), ("overnight", "Overnight")),
             "say 'I have 2 hours'"),
    Question("base_model", "Which base model family?",
             (("SD 1.5", "SD 1.5 (fastest, most add-ons)"), ("SD 2.1", "SD 2.1 (768 px)"),
              ("SDXL", "SDXL (1024 px, most community models)"),
              ("Flux.1 dev", "Flux.1 dev (best prompt following; non-commercial licence)")),
             "say 'use SD 1.5', 'use SDXL' or 'use Flux'"),
    Question("n_runs", "How many training runs are you willing to try?",
             (("1 run", "One shot"), ("3 runs", "3 runs"), ("5 runs", "5 runs"), ("10 runs", "10 or more")),
             "say 'I can try 5 times'"),
    Question("captions", "Do your images have captions (a text file per image)?",
             (("with captions", "Yes, captioned"), ("no captions", "No captions")),
             "say 'my images have captions'"),
    Question("max_output_mb", "Is there a size limit on the output file, for example to share it?",
             (("under 10 MB", "Under 10 MB"), ("under 50 MB", "Under 50 MB"), ("under 200 MB", "Under 200 MB"),
              ("under 2 GB", "Under 2 GB"), ("no size limit", "No limit")),
             "say 'under 50 MB' or 'no size limit'"),
]}
ASK_ORDER = tuple(QUESTIONS)   # the priority order of the questions
OPTION_VALUES = frozenset(v.lower() for q in QUESTIONS.values() for v, _ in q.options + SKIP_OPTIONS)

LABELS = {"goal": "goal", "subject_type": "subject", "n_images": "images", "vram_gb": "GPU memory",
          "accuracy": "accuracy", "flexibility": "flexibility", "preservation": "preservation",
          "time_budget_min": "GPU time per run", "base_model": "base model", "n_runs": "runs you'll try",
          "captions": "captions", "max_output_mb": "output size limit", "dream_prompts": "dream prompts",
          "preferred_method": "preferred method", "rent_gpu": "GPU", "n_subjects": "subjects"}
FACTOR_WORDS = {1: "very low", 2: "low", 3: "medium", 4: "high", 5: "very high"}

EXAMPLES = ("30 photos of my dog Rex, 12GB card, I want him in all kinds of scenes",
            "my watercolor paintings as a style, on free Colab",
            "product shots of our sneakers for ads; they must look exactly like the real ones")


@dataclass
class Reply:
    text: str
    options: list[dict[str, str]] = field(default_factory=list)   # quick replies: {"value", "label"}
    question_slot: str | None = None       # the slot the options answer
    ready: bool = False                    # enough is known to recommend
    problems: list[str] = field(default_factory=list)
    answer: dict[str, Any] | None = None   # {"text", "citations"} when the user asked something
    assumed: list[str] = field(default_factory=list)   # slots filled with defaults, so far


@dataclass
class InterviewState:
    profile: Profile = field(default_factory=Profile)
    sources: dict[str, str] = field(default_factory=dict)    # slot -> "stated" | "assumed"
    asked: list[str] = field(default_factory=list)           # slots asked, in order (repeats kept)
    transcript: list[dict[str, str]] = field(default_factory=list)   # {"role", "content"}
    done: bool = False                                       # ready to recommend
    last_question: str | None = None                         # slot being asked

    @property
    def assumed(self) -> list[str]:
        return [s for s in ASK_ORDER if self.sources.get(s) == "assumed"]

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile.to_dict(), "sources": dict(self.sources), "asked": list(self.asked),
                "transcript": [dict(t) for t in self.transcript], "done": self.done,
                "last_question": self.last_question}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InterviewState":
        """Rebuild a saved state; a malformed one raises ValueError naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"an interview state must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown interview state key(s) {unknown}; known keys: {sorted(known)}")
        profile = Profile.from_dict(data.get("profile") or {})
        sources = data.get("sources") or {}
        if not isinstance(sources, dict) or any(v not in SOURCES for v in sources.values()):
            raise ValueError(f"sources must map slot names to one of {list(SOURCES)}")
        asked = data.get("asked") or []
        if not isinstance(asked, list) or any(a not in QUESTIONS for a in asked):
            raise ValueError(f"asked must be a list of slots from {list(QUESTIONS)}")
        transcript = data.get("transcript") or []
        if not isinstance(transcript, list) or not all(
                isinstance(t, dict) and isinstance(t.get("role"), str) and isinstance(t.get("content"), str)
                for t in transcript):
            raise ValueError("transcript must be a list of {'role', 'content'} objects with text values")
        last = data.get("last_question")
        if last is not None and last not in QUESTIONS:
            raise ValueError(f"last_question={last!r}; pick one of {list(QUESTIONS)} or null")
        done = data.get("done", False)
        if not isinstance(done, bool):
            raise ValueError(f"done={done!r}; must be true or false")
        return cls(profile=profile, sources=dict(sources), asked=list(asked), transcript=list(transcript),
                   done=done, last_question=last)


# --------------------------------------------------------------------------- entry points
def start(profile: Profile | None = None) -> tuple[InterviewState, Reply]:
    """The greeting and the first question. A profile given (e.g. loaded from a file) counts
    as stated, and the interview goes on from there."""
    state = InterviewState()
    intro = ("Hi! I'll help you choose how to fine-tune Stable Diffusion. Tell me what you want and what "
             "you have, in one message if you like, for example:\n"
             + "\n".join(f"- \u201c{e}\u201d" for e in EXAMPLES)
             + "\nYou can skip any question ('not sure'), change an answer ('actually 8 GB') or ask me "
               "something ('what is prior preservation?') at any point.")
    if profile is not None:
        state.profile = copy.deepcopy(profile)
        state.sources = {s: "stated" for s in [*ASK_ORDER, "goal", "preferred_method"]
                         if getattr(profile, s) is not None}
    reply = _finish(state, [intro], problems=[], wants_rec=False, nothing_read=False)
    state.transcript.append({"role": "assistant", "content": reply.text})
    return state, reply


def turn(state: InterviewState, message: Any, *, answer_question: AnswerFn | None = None,
         classify_subject=None) -> tuple[InterviewState, Reply]:
    """One user message in; a new state and the reply out. Never raises on user input.
    `classify_subject` reads subject nouns the tables lack (extract's argument)."""
    new = copy.deepcopy(state)
    text = "" if message is None else message
    new.transcript.append({"role": "user", "content": str(text)[:MAX_STORED_CHARS]})
    try:
        reply = _turn(new, text, answer_question, classify_subject)
    except Exception as e:   # the chat must survive a bug: keep the old state, say what broke
        log.exception("interview turn failed")
        new = copy.deepcopy(state)
        new.transcript.append({"role": "user", "content": str(text)[:MAX_STORED_CHARS]})
        reply = Reply(text=f"Sorry, I couldn't process that message ({type(e).__name__}: {e}). "
                           "Nothing was changed; please rephrase.", problems=[str(e)],
                      ready=state.done, assumed=state.assumed)
    new.transcript.append({"role": "assistant", "content": reply.text})
    return new, reply


# --------------------------------------------------------------------------- one turn
def _turn(state: InterviewState, message: Any, answer_question: AnswerFn | None, classify_subject=None) -> Reply:
    if not isinstance(message, str):
        return _finish(state, [], problems=[f"I can only read text messages, not {type(message).__name__}."],
                       wants_rec=False, nothing_read=False)
    if not message.strip():
        return _finish(state, ["I didn't get any text."], problems=[], wants_rec=False, nothing_read=False)
    pending = state.last_question
    ex = extract(message, expecting=pending, classify_subject=classify_subject)
    problems = list(ex.problems)
    conflict = _first_conflict(ex)
    lines = _merge(state, ex, message) + ex.notes   # what was stored first, then how it was read
    if "preferred_method" in ex.conflicts:   # not a question worth asking: the rules weigh the methods
        named = " and ".join(_describe("preferred_method", {"preferred_method": m})
                             for m in ex.conflicts["preferred_method"] if m)
        kept = state.profile.preferred_method
        lines.append(f"You named {named}, so I noted no new method preference"
                     + (f" (keeping {METHOD_FACTS[kept].phrase})." if kept else "; I'll recommend what fits best."))
    skipped = _apply_skip(state, ex, pending, conflict)
    if skipped:
        lines.append(skipped)
    answer = None
    if ex.is_question:
        answer = _answer(ex.question or message, answer_question)
        lines.append(answer["text"])
        if answer["citations"]:
            lines.append("Sources: " + "; ".join(_cite(c) for c in answer["citations"]))
    nothing_read = not (ex.slots or ex.conflicts or ex.problems or skipped or ex.is_question
                        or ex.wants_recommendation)
    if conflict is not None:
        reply = _ask_conflict(state, *conflict, lines, problems)
    else:
        answered = pending is not None and (pending in ex.slots or skipped is not None)
        reply = _finish(state, lines, problems=problems, wants_rec=ex.wants_recommendation,
                        nothing_read=nothing_read, answered=answered, after_question=ex.is_question)
    if answer is not None:
        reply.answer = {"text": answer["text"], "citations": answer["citations"]}
    return reply


def _merge(state: InterviewState, ex: Extraction, message: str) -> list[str]:
    """Store the extracted slots; return one line per slot learnt or changed."""
    slots = {k: v for k, v in ex.slots.items() if k not in ex.conflicts}
    lines: list[str] = []
    learnt: list[str] = []
    noted: list[str] = []
    data = state.profile.to_dict()
    order = {s: i for i, s in enumerate(ASK_ORDER)}
    for slot, value in sorted(slots.items(), key=lambda kv: order.get(kv[0], len(order))):
        if slot in ("class_noun", "gpu_name", "goal", "dream_prompts", "settings"):
            continue   # stored with their partner slot, or below
        if (slot == "subject_type" and ex.subject_from_cue and state.sources.get(slot) == "stated"
                and value != data[slot] and not ex.is_change and state.last_question != slot):
            continue   # "it's for my mom's birthday" does not make the dog a person; "instead" would
        trial = dict(data)
        trial[slot] = value
        if slot == "subject_type":
            trial["class_noun"] = slots.get("class_noun")
        if slot == "vram_gb":
            # A new card name, or none: a plain "8GB" makes the old card's name stale.
            same = data["vram_gb"] == value and "gpu_name" not in slots
            trial["gpu_name"] = data["gpu_name"] if same else slots.get("gpu_name")
        try:
            Profile.from_dict(trial)
        except ProfileError as e:   # parsing checks bounds, so this is a safety net
            lines.append(f"I couldn't store that: {e}.")
            continue
        old_text, old_source = _describe(slot, data), state.sources.get(slot)
        data = trial
        state.sources[slot] = "stated"
        new_text = _describe(slot, data)
        if slot in ex.approximate:   # our pick from vague words: say so, and how to correct it
            new_text = f"about {new_text}"
            if old_source is None:
                new_text += f" ({QUESTIONS[slot].hint} if you know the number)"
        if slot == "preferred_method" and old_source is None:
            noted.append(f"Noted: you'd like {new_text}; I'll favour it unless it clearly doesn't fit."
                         if value else "Noted: no method preference; I'll recommend what fits best.")
        elif old_source is None:
            learnt.append(f"{LABELS[slot]}: {new_text}")
        elif old_text != new_text:
            was = " (was assumed)" if old_source == "assumed" else ""
            lines.append(f"Updated {LABELS[slot]}: {old_text} \u2192 {new_text}{was}.")
    goal = slots.get("goal")
    # The goal is the first description in their own words; later ones refine other slots.
    if goal and data["goal"] is None and message.strip().lower() not in OPTION_VALUES:
        data["goal"] = goal
        state.sources["goal"] = "stated"
    for prompt in slots.get("dream_prompts", []):
        if prompt not in data["dream_prompts"] and len(data["dream_prompts"]) < MAX_DREAM_PROMPTS:
            data["dream_prompts"].append(prompt)
            learnt.append(f"dream prompt \u201c{prompt}\u201d")
    for name, value in slots.get("settings", {}).items():
        old = data["settings"].get(name)
        data["settings"] = {**data["settings"], name: value}
        if old is None:
            learnt.append(f"{SETTING_LABELS[name]} {setting_value(name, value)}")
        elif old != value:
            lines.append(f"Updated {SETTING_LABELS[name]}: {setting_value(name, old)} \u2192 "
                         f"{setting_value(name, value)}.")
    state.profile = Profile.from_dict(data)
    lines[:0] = noted
    if learnt:
        lines.insert(0, "Got it: " + "; ".join(learnt) + ".")
    return lines


def _apply_skip(state: InterviewState, ex: Extraction, pending: str | None,
                conflict: tuple[str, list[Any]] | None) -> str | None:
    """'No idea' answers the pending question with its default, marked assumed."""
    if not ex.is_skip or pending is None or pending in ex.slots or conflict is not None:
        return None
    if state.sources.get(pending) == "stated":   # already answered: "whatever" keeps the answer
        return f"Keeping {LABELS[pending]}: {_describe(pending, state.profile.to_dict())}."
    return _assume(state, pending, "OK, I'll assume")


def _assume(state: InterviewState, slot: str, lead: str) -> str:
    data = state.profile.to_dict()
    if slot in DEFAULTS and data[slot] is None:
        data[slot] = default_value(slot, data)
        state.profile = Profile.from_dict(data)
    state.sources[slot] = "assumed"
    return f"{lead} {LABELS[slot]}: {_describe(slot, data)} ({QUESTIONS[slot].hint} to change it)."


def _answer(question: str, answer_question: AnswerFn | None) -> dict[str, Any]:
    if answer_question is None:
        return {"text": "I can't look questions up right now, sorry; the knowledge base isn't connected.",
                "citations": []}
    try:
        result = answer_question(question)
        text, citations = result
        if not isinstance(text, str) or not isinstance(citations, (list, tuple)):
            raise TypeError("answer_question must return (text, citations list)")
    except Exception as e:   # retrieval failing must not end the interview
        log.exception("answer_question failed")
        return {"text": f"I couldn't look that up right now ({type(e).__name__}).", "citations": []}
    return {"text": text, "citations": list(citations)}


def _cite(c: Any) -> str:
    if isinstance(c, dict):
        title, source = c.get("title") or c.get("card") or "", c.get("source") or ""
        return f"{title} ({source})" if source else str(title)
    return str(c)


def _first_conflict(ex: Extraction) -> tuple[str, list[Any]] | None:
    for slot in ASK_ORDER:
        if slot in ex.conflicts:
            return slot, ex.conflicts[slot]
    return None


def _ask_conflict(state: InterviewState, slot: str, values: list[Any], lines: list[str],
                  problems: list[str]) -> Reply:
    said = " and ".join(_describe(slot, {**state.profile.to_dict(), slot: v}) for v in values)
    keep = _describe(slot, state.profile.to_dict()) if getattr(state.profile, slot) is not None else None
    text = f"You mentioned both {said} for {LABELS[slot]}. Which one is right?"
    if keep:
        text += f" I'm keeping {keep} until you tell me."
    options = [{"value": answer_value(slot, v), "label": answer_value(slot, v)} for v in values]
    options += [{"value": v, "label": lab} for v, lab in SKIP_OPTIONS]
    # The question this interrupts was not answered: take it off `asked` so it comes back.
    interrupted = state.last_question
    if interrupted not in (None, slot) and interrupted in state.asked:
        del state.asked[len(state.asked) - 1 - state.asked[::-1].index(interrupted)]
    state.last_question = slot
    state.asked.append(slot)
    return Reply(text="\n".join([*filter(None, lines), *problems, text]), options=options, question_slot=slot,
                 ready=state.done, problems=problems, assumed=state.assumed)


def _finish(state: InterviewState, lines: list[str], *, problems: list[str], wants_rec: bool,
            nothing_read: bool, answered: bool = False, after_question: bool = False) -> Reply:
    """Decide readiness and the next question; build the reply. `answered`: this message
    filled the pending question (or skipped it)."""
    lines = [ln for ln in lines if ln]
    pending = state.last_question
    if nothing_read and pending is not None:
        lines.append("I didn't find an answer in that. Pick an option, or say 'not sure' and I'll assume a default.")
    newly_ready = False
    if not state.done and (wants_rec or _core_known(state)):
        state.done = newly_ready = True
    newly_assumed: list[str] = []
    if state.done:
        for slot in DEFAULTS:
            if not _known(state, slot):   # a card to rent is known: the plan names it
                _assume(state, slot, "")
                newly_assumed.append(slot)
    if newly_ready:
        lines.append("That's enough to recommend a fine-tuning plan.")
    if newly_assumed:
        lines.append("I assumed (change any time): " + "; ".join(
            f"{LABELS[s]}: {_describe(s, state.profile.to_dict())} ({QUESTIONS[s].hint})"
            for s in ASK_ORDER if s in newly_assumed) + ".")
    # An unanswered question stays the question (after an aside, a question, a bad value).
    still_open = pending is not None and not answered and (
        state.sources.get(pending) != "stated" if state.done else not _known(state, pending))
    slot = pending if still_open else _next_question(state)
    ask = None
    if slot is not None:
        lead = "Back to my question: " if after_question and slot == pending else ""
        if state.done and not lead:
            lead = "Optional, to sharpen it: "
        ask = lead + QUESTIONS[slot].text
        state.asked.append(slot)
    elif state.done and not newly_ready:
        ask = "I have what I need. Change anything by saying, e.g., 'actually 24 GB'."
    state.last_question = slot
    options = [] if slot is None else [{"value": v, "label": lab} for v, lab in QUESTIONS[slot].options + SKIP_OPTIONS]
    return Reply(text="\n".join([*lines, *problems, *([ask] if ask else [])]), options=options,
                 question_slot=slot, ready=state.done, problems=list(problems), assumed=state.assumed)


def _known(state: InterviewState, slot: str) -> bool:
    if slot == "vram_gb" and state.profile.rent_gpu:
        return True   # they will rent: the plan names the card, no memory to ask for
    return getattr(state.profile, slot) is not None or slot in state.sources


def _core_known(state: InterviewState) -> bool:
    return ((_known(state, "subject_type") or _known(state, "goal")) and _known(state, "n_images")
            and _known(state, "vram_gb") and any(_known(state, f) for f in FACTORS))


def _next_question(state: InterviewState) -> str | None:
    """Before ready: the first unknown slot in priority order. After: the first slot still
    assumed (or never asked) that has not been asked yet, as an optional refinement."""
    p = state.profile
    for slot in ASK_ORDER:
        if slot == "vram_gb" and p.rent_gpu and p.vram_gb is None:
            continue
        if slot == "captions" and not ((p.n_images or 0) >= 50 or p.subject_type in ("style", "general")):
            continue
        if slot == "subject_type" and p.goal is not None and "subject_type" in state.asked:
            continue   # a goal in their words is enough; don't insist on a category
        if state.done:
            if state.sources.get(slot) != "stated" and slot not in state.asked:
                return slot
        elif not _known(state, slot):
            return slot
    return None


# --------------------------------------------------------------------------- wording
def _describe(slot: str, data: dict[str, Any]) -> str:
    v = data.get(slot)
    if slot == "max_output_mb":
        return "no limit" if v is None else f"under {_size(v)}"
    if slot == "preferred_method" and v is None:
        return "no preference"
    if slot == "time_budget_min" and v is None:
        return "no limit (the plan is not shortened for time)"
    if v is None:
        return "unknown"
    if slot == "subject_type":
        noun = data.get("class_noun")
        return f"{v} ({noun})" if noun else str(v)
    if slot == "vram_gb":
        gpu = data.get("gpu_name")
        return f"{v:g} GB" + (f" ({gpu})" if gpu else "")
    if slot == "time_budget_min":
        return f"{v:g} min" if v < 60 else f"{v / 60:g} h"
    if slot in FACTORS:
        return f"{v}/5 ({FACTOR_WORDS[v]})"
    if slot == "base_model":
        return BASE_MODELS[v].short if v in BASE_MODELS else str(v)
    if slot == "captions":
        return "captioned" if v else "no captions"
    if slot == "rent_gpu":
        return "you'll rent one (the plan names the smallest that runs it)" if v else "your own"
    if slot == "preferred_method":
        return METHOD_FACTS[v].phrase if v in METHOD_FACTS else str(v)
    return str(v)


def answer_value(slot: str, value: Any) -> str:
    """A message that `extract` reads back as exactly this value (used for option buttons)."""
    if slot == "n_images":
        return f"{value} images"
    if slot == "vram_gb":
        return f"{value:g} GB"
    if slot == "time_budget_min":
        return f"{value:g} minutes"
    if slot == "n_runs":
        return f"{value} runs"
    if slot == "base_model":
        return BASE_MODELS[value].short if value in BASE_MODELS else str(value)
    if slot in FACTORS:
        return f"{slot} {value}"
    if slot == "captions":
        return "with captions" if value else "no captions"
    if slot == "max_output_mb":
        return "no size limit" if value is None else f"under {_size(value)}"
    return str(value)


def _size(mb: float) -> str:
    return f"{mb / 1024:g} GB" if mb >= 1024 and (mb / 1024) * 10 == int((mb / 1024) * 10) else f"{mb:g} MB"

"""Slot readers for values said in words: the factor levels (accuracy, flexibility,
preservation), base model, preferred method, captions, subject type and class noun; and
`read_bare`, for short answers to the pending question ("30", "3", "yes", "no limit").

Each reader takes its matches from the `Scan` (blanking them) and adds the values it finds;
`extract` in advisor/parsing.py calls them in a fixed order.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from trainer.vocabulary import ADAPTER_KINDS, BASE_MODELS, FACTORS

from . import phrases as P
from ..knowledge.families import family_named
from ..profile import WHOLE_SETTINGS, setting_problem
from .scan import Extraction, Scan, check_bounds, said_text
from .subjects import subject_phrase
from .text import BLANK


# --------------------------------------------------------------------------- compiled tables
# The vocabulary is data in advisor/phrases.py; here it is compiled and combined with numbers.
_FACTOR_RX = [(f, v, re.compile(p)) for f, v, p in P.FACTOR_PHRASES]
_LEVEL_WORDS = P.LEVEL_WORDS
_FACTOR_NAME = P.FACTOR_NAMES
_LEVEL = r"(?P<v>-?\d+(?:\.\d+)?|" + P.LEVEL_WORD + ")"
_FACTOR_WORD = r"(?P<f>" + "|".join(P.FACTOR_NAMES) + ")"
_EXPLICIT_FACTOR = [
    re.compile(r"\b" + _FACTOR_WORD + r"\s*(?:is|:|=|of|at|level|should be|needs to be|to|-)?\s*(?:a\s+)?"
               + _LEVEL + r"\b(?!\s*(?:gb|g|mb|images?|photos?|pictures?|minutes?|hours?|%))(?:\s*(?:/|out of)\s*5\b)?"),
    re.compile(r"\b(?P<v>" + P.LEVEL_WORD + r")\s+" + _FACTOR_WORD + r"\b"),   # "high accuracy"
]

_BASE_RX = [(v, re.compile(p)) for v, p in P.BASE_MODEL_PATTERNS]
_BARE_VERSION_RX = [(v, re.compile(p)) for v, p in P.BARE_VERSIONS]
_UNSUPPORTED_BASE = re.compile(P.UNSUPPORTED_BASE)
_CLOSED_SERVICES = re.compile(P.CLOSED_SERVICES)
_COMMUNITY = [(base, name, re.compile(rx), extra) for base, name, rx, extra in P.COMMUNITY_CHECKPOINTS]
_VIDEO = re.compile(P.VIDEO)
_ADAPTER_VARIANTS = re.compile(P.ADAPTER_VARIANTS)
# Other models of a planned family, said with its name: (regex over the words from the name on,
# why the plan is for the family's base model instead, by the variant's name).
_VARIANTS = {
    "flux1": (re.compile(r".*?\b(?P<name>schnell|kontext|pro)\b"), {
        "schnell": "schnell is step-distilled and trains poorly without a de-distillation adapter",
        "kontext": "Kontext is an image-editing model, trained on image pairs, which this trainer does not make",
        "pro": "Flux.1 pro's weights are not published, so no trainer can fine-tune it"}),
    "sd3": (re.compile(r".*?\b(?P<name>medium|turbo)\b"), {
        "medium": "the advisor has no cost figures for the 2.5 B Medium yet; the trainer trains it from its hub id "
                  "(stabilityai/stable-diffusion-3.5-medium) or a diffusers folder",
        "turbo": "Large Turbo is step-distilled; LoRAs are trained on Large"}),
    "z-image": (re.compile(r".*?\b(?P<name>turbo|edit)\b"), {
        "turbo": "Turbo is its 8-step distillation; a LoRA trained on Turbo needs a de-distillation adapter "
                 "(diffusion-pipe#462), so LoRAs are trained on the base Z-Image",
        "edit": "Z-Image-Edit is an image-editing model, trained on image pairs, which this trainer does not make"}),
    "qwen-image": (re.compile(r"qwen[\s-]?image[\s-]*(?P<name>edit|layered|2\.1)(?![\w.])"), {
        "edit": "Qwen-Image-Edit is an image-editing model, trained on image pairs, which this trainer does not make",
        "layered": "Qwen-Image-Layered splits an image into layers, which this trainer does not train",
        "2.1": "Qwen-Image 2.1 is another model (7 B, under the Qwen Research License) that this trainer does not "
               "train yet; Qwen-Image is the 20 B model, Apache 2.0"}),
    "flux2-klein": (re.compile(r".*?\b(?P<name>9\s?b)\b"), {
        "9b": "the advisor's figures are for the 4B, Apache 2.0; the 9B is under the FLUX non-commercial licence, needs "
              "about 22 GB with a bf16 base and 14 GB in int8 (SimpleTuner), and trains here from its hub id "
              "(black-forest-labs/FLUX.2-klein-base-9B)"}),
}
_VARIANT_TITLES = {"lokr": "LoKr", "loha": "LoHa", "lycoris": "LyCORIS", "dora": "DoRA",
                   "ia3": "IA3", "(ia)3": "IA3", "oft": "OFT", "boft": "BOFT", "glora": "GLoRA"}

_CAPTIONS = [(v, re.compile(p)) for v, p in P.CAPTIONS]

_SUBJECT_RX = [(k, c, re.compile(p)) for k, c, p in P.SUBJECT_CUES]
_GENERIC_SUBJECT_RX = [(k, c, re.compile(p)) for k, c, p in P.GENERIC_SUBJECT_CUES]
_GENERAL_RX = re.compile(P.GENERAL_CUES)
_STYLE_INTENT = re.compile(P.STYLE_INTENT)
_PRONOUNS = [(noun, re.compile(p)) for noun, p in P.PRONOUNS]
_NOUN_TABLES = {"animal": (P.ANIMALS,), "object": (P.OBJECTS, P.GENERIC_OBJECTS), "style": (P.STYLE_NOUNS,)}
_METHOD_RX = [(m, re.compile(p)) for m, p in P.METHOD_PHRASES]
_SETTING_RX = [(k, re.compile(p)) for k, p in P.SETTING_PHRASES]
_SWITCH_RX = [(k, v, re.compile(p)) for k, v, p in P.SWITCH_PHRASES]
_NO_METHOD = re.compile(P.NO_METHOD_PREFERENCE)


# --------------------------------------------------------------------------- slot readers
def read_factors(s: Scan, ex: Extraction) -> None:
    explicit: dict[str, list[tuple[int, int]]] = {}
    for rx in _EXPLICIT_FACTOR:
        for m in s.take(rx):
            factor, raw = _FACTOR_NAME[m.group("f")], m.group("v")
            value = _LEVEL_WORDS.get(raw)
            if value is None:
                number = float(raw)
                if not number.is_integer() or not 1 <= number <= 5:
                    ex.problems.append(f"'{said_text(m)}': {factor} is a whole number from 1 to 5, so I didn't store it.")
                    continue
                value = int(number)
            if not s.negated(m.start()):
                explicit.setdefault(factor, []).append((m.start(), value))
    phrased: dict[str, list[tuple[int, int]]] = {}
    for factor, value, rx in _FACTOR_RX:
        for m in s.take(rx):
            phrased.setdefault(factor, []).append((m.start(), value))
    for factor in FACTORS:
        if factor in explicit:
            s.cands[factor] = explicit[factor]
        elif factor in phrased:
            values = [v for _, v in phrased[factor]]
            # Phrases pointing the same way: the strongest one. Opposite ways: a conflict.
            if min(values) >= 3 or max(values) <= 3:
                strongest = max(values, key=lambda v: abs(v - 3))
                s.cands[factor] = [(phrased[factor][0][0], strongest)]
            else:
                s.cands[factor] = phrased[factor]


def read_settings(s: Scan, ex: Extraction) -> None:
    """Training settings named in words ("rank 32", "lr 5e-5", "2000 steps"): the last value said
    for each wins; an impossible one is named and not stored."""
    found: dict[str, float | bool] = {}
    for key, value, rx in _SWITCH_RX:   # "no prior preservation pls", "train the text encoder too"
        for m in s.take(rx):
            if not s.negated(m.start()) or not value:
                found[key] = value
    for key, rx in _SETTING_RX:
        for m in s.take(rx):
            if s.negated(m.start()):
                continue
            raw = next(v for name, v in m.groupdict().items() if name.startswith("v") and v)
            value: float = float(raw)  # type: ignore[no-redef]
            if key in WHOLE_SETTINGS and value.is_integer():
                value = int(value)
            problem = setting_problem(key, value)
            if problem:
                ex.problems.append(f"'{said_text(m)}': {problem.removeprefix('settings: ')}, so I didn't store it.")
                continue
            found[key] = value
    if found:
        ex.slots["settings"] = found


def read_base(s: Scan, ex: Extraction, expecting: str | None) -> None:
    """The base model by name; a model the trainer cannot train, or a community checkpoint, is named
    back with what the plan does instead (never a silent swap)."""
    for m in s.take(_VIDEO):
        _say(ex, f"'{said_text(m)}': this trainer makes image models, so a video or motion LoRA (AnimateDiff, Wan, "
                 "HunyuanVideo, LTX) is out of its reach; musubi-tuner, diffusion-pipe and ai-toolkit train those. "
                 "The plan here is for still images.")
    for m in s.take(_ADAPTER_VARIANTS):
        key = m.group("name")
        name = _VARIANT_TITLES[key]
        if key in ADAPTER_KINDS:
            _say(ex, f"The trainer trains {name} (set \"adapter\": \"{key}\" in the settings), but the advisor does not "
                     f"set it from the chat yet, so the plan keeps a plain LoRA, the LyCORIS guidelines' first choice "
                     f"(then LoKr with a low factor if it underfits, LoHa if it overfits).")
            continue
        _say(ex, f"{name} is an adapter this trainer does not train yet (it trains LoRA, LoCon, DoRA, LoHa and LoKr), "
                 f"so the plan picks among the methods it has; a plain LoRA is the LyCORIS guidelines' first choice "
                 f"anyway (then LoKr with a low factor if it underfits, LoHa if it overfits). kohya sd-scripts (with "
                 f"the lycoris package), OneTrainer and SimpleTuner train {name}.")
    for m in s.take(_CLOSED_SERVICES):
        _say(ex, f"'{said_text(m)}' is a closed service: its weights are not published, so no trainer can fine-tune "
                 "it. A LoRA trained here on images in the look you want (a style LoRA) is the usual way to get "
                 "close to it on an open model.")
    for m in s.take(_UNSUPPORTED_BASE):
        said = said_text(m)
        family = family_named(said)
        if family is not None and family.base_model:   # a family the advisor plans (Flux.1 dev, SD 3.5 Large, ...)
            s.add("base_model", m.start(), family.base_model)
            rx, why = _VARIANTS.get(family.key, (None, {}))
            variant = rx.match(s.original[m.start():m.end() + 12].lower()) if rx else None
            if variant:
                name = "".join(variant.group("name").split())   # "9 b" is the 9b
                _say(ex, f"'{variant.group().strip()}': the plan is for {BASE_MODELS[family.base_model].title} "
                         f"({why[name]}).")
            continue
        if family is not None and family.trained_as:
            _say(ex, f"'{said}' isn't planned here yet: the trainer trains {family.title} (LoRA, DreamBooth-LoRA, "
                     f"full fine-tune) from its hub id ({family.hub_id}) or a diffusers folder, but the advisor has no "
                     f"memory and time figures for it yet, so the plan is for SDXL (set base_model to "
                     f"{family.hub_id} to train {family.title} instead). {family.sentence()}")
            continue
        published = (f" {family.sentence()} The nearest this trainer has is SDXL (say 'use SDXL')."
                     if family else " kohya sd-scripts, ai-toolkit, SimpleTuner and diffusers' examples/dreambooth "
                                    "scripts train the newer families.")
        _say(ex, f"'{said}' isn't trained here yet: the trainer covers SD 1.5, SD 2.1 and SDXL (and the "
                 f"community checkpoints built on them), SD 3.5 Large, Flux.1 dev, Z-Image, Flux.2 klein 4B and "
                 f"Qwen-Image, and plans for all of them."
                 f"{published}")
    for base, name, rx, extra in _COMMUNITY:
        for m in s.take(rx):
            short = BASE_MODELS[base].short
            s.add("base_model", m.start(), base)
            _say(ex, f"{name} is built on {short}, so the plan is for {short} and carries over to it. {name} ships "
                     f"as one .safetensors file: give its path as base_model and the trainer reads it (the family, and "
                     f"v-prediction where the file says so, come from the file itself).{extra}")
    rules = _BASE_RX + (_BARE_VERSION_RX if expecting in (None, "base_model") else [])
    for value, rx in rules:
        for m in s.take(rx):
            s.add("base_model", m.start(), value)


def _say(ex: Extraction, note: str) -> None:
    if note not in ex.problems:
        ex.problems.append(note)


def read_captions(s: Scan) -> None:
    for value, rx in _CAPTIONS:
        for m in s.take(rx):
            s.cands.setdefault("captions", []).append((m.start(), value))


def read_subject(s: Scan, classify: Callable[[str], tuple[str, float] | None] | None = None,
                 ex: Extraction | None = None) -> None:
    """The subject type and class noun. Where the sentence says what is trained ("a lora of my
    corgi"), that phrase decides: by the noun tables, else by `classify` (subjects.SubjectClassifier:
    any noun, by meaning); otherwise the earliest cue anywhere, skipping negated ones ("it's not a
    person"). A phrase nobody can classify leaves the subject to the interview's question."""
    intent = next((m for m in _STYLE_INTENT.finditer(s.original) if not s.negated(m.start())), None)
    if intent is not None:   # "i want the look": a style, whatever the pictures show
        cue = _earliest_cue(s, [c for c in _SUBJECT_RX if c[0] == "style"])
        s.cands["subject_type"] = [(intent.start(), "style")]
        s.cands["class_noun"] = [(intent.start(), cue[3] if cue else "artwork")]
        return
    best = _subject_by_position(s, classify)
    if best is None and ex is not None:
        ex.subject_from_cue = True   # "it's for my mom's birthday" names a person, not the subject
    best = best or _earliest_cue(s, _SUBJECT_RX) or _earliest_cue(s, _GENERIC_SUBJECT_RX)
    if best is None:
        m = _GENERAL_RX.search(s.text)
        if m:
            best = (m.start(), 0, "general", None)
    if best is None:
        for noun, rx in _PRONOUNS:
            m = rx.search(s.text)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), 0, "person", noun)
    if best is not None:
        s.cands["subject_type"] = [(best[0], best[2])]
        s.cands["class_noun"] = [(best[0], best[3])]


def _subject_by_position(s: Scan, classify) -> tuple[int, int, str, Any] | None:
    found = subject_phrase(s.original, s.negated)  # the original: "lora" was already read as the method
    if found is None:
        return None
    pos, phrase = found
    known = _earliest_cue(Scan(f"my {phrase}"), _SUBJECT_RX)  # the tables' cues expect a determiner
    if known is not None:
        return (pos, 0, known[2], known[3])
    guess = classify(phrase) if classify is not None else None
    if guess is None:
        return None
    return (pos, 0, guess[0], None if guess[0] == "general" else phrase)  # a dataset has no class noun


def _earliest_cue(s: Scan, cues) -> tuple[int, int, str, Any] | None:
    """(start, -length, type, noun) of the cue found earliest in the text; a tie goes to the longer;
    a negated cue does not count ("it's not a person")."""
    best = None
    for kind, noun, rx in cues:
        m = next((m for m in rx.finditer(s.text) if not s.negated(m.start())), None)
        if m is None:
            continue
        if noun is None:
            noun = _noun_for(kind, m.group(0))
        key = (m.start(), -(m.end() - m.start()), kind, noun)
        if best is None or key[:2] < best[:2]:
            best = key
    return best


def _noun_for(kind: str, matched: str) -> str | None:
    """The class noun inside a matched cue: 'my dog rex' -> 'dog', '40 drawings' -> 'drawing'."""
    for table in _NOUN_TABLES.get(kind, ()):
        for w in sorted(table, key=len, reverse=True):
            if re.search(r"\b" + re.escape(w) + r"\b", matched):
                return table[w]
    return "artwork" if kind == "style" else ("product" if kind == "object" else None)


def read_method(s: Scan) -> None:
    """A method asked for by name; "any method is fine" clears an earlier one."""
    for m in s.take(_NO_METHOD):
        s.cands.setdefault("preferred_method", []).append((m.start(), None))
    for method, rx in _METHOD_RX:
        for m in s.take(rx):
            s.add("preferred_method", m.start(), method)
    s.cands.get("preferred_method", []).sort(key=lambda c: c[0])   # text order, as the user said them


def read_bare(s: Scan, expecting: str, ex: Extraction) -> None:
    """Short answers to the pending question: "30", "3", "yes", "high", "no limit"."""
    rest = " ".join(s.text.replace(BLANK, " ").split()).strip(" .!,")
    rest = re.sub(r"^(?:about|around|roughly|maybe|approx(?:imately|\.)?|~|like|i have|i've got|it's|its)\s*", "", rest)
    num = re.fullmatch(r"(-?\d+(?:\.\d+)?)", rest)
    if expecting in FACTORS:
        level = P.BARE_LEVELS.get(rest, _LEVEL_WORDS.get(rest))
        if num:
            n = float(num.group(1))
            if n.is_integer() and 1 <= n <= 5:
                level = int(n)
            else:
                ex.problems.append(f"'{rest}': {expecting} is a whole number from 1 to 5, so I didn't store it.")
        if level is not None:
            s.cands[expecting] = [(0, level)]
    elif expecting == "captions":
        if re.fullmatch(P.BARE_YES, rest):
            s.cands["captions"] = [(0, True)]
        elif re.fullmatch(P.BARE_NO, rest):
            s.cands["captions"] = [(0, False)]
    elif expecting == "max_output_mb":
        if re.fullmatch(P.BARE_NO_LIMIT, rest):
            s.cands["max_output_mb"] = [(0, None)]
        elif num and check_bounds("max_output_mb", float(num.group(1)), rest, ex):
            s.cands["max_output_mb"] = [(0, float(num.group(1)))]
    elif expecting == "subject_type" and rest in P.BARE_SUBJECT:
        kind, noun = P.BARE_SUBJECT[rest]
        s.cands["subject_type"], s.cands["class_noun"] = [(0, kind)], [(0, noun)]
    elif num and expecting in ("n_images", "vram_gb", "time_budget_min", "n_runs"):
        n = float(num.group(1))
        if expecting == "time_budget_min" and 0 < n < 10:
            n *= 60   # a bare "2" for GPU time means hours; "45" means minutes
        if check_bounds(expecting, n, rest, ex):
            s.cands[expecting] = [(0, int(n) if expecting in ("n_images", "n_runs") else n)]

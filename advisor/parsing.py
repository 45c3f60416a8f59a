"""Free text -> Profile slots: one chat message in, an `Extraction` out. Pure functions.

How it reads a message:

1. Clean it (Unicode NFKC, one kind of quote and dash), cut it at `MAX_SCAN_CHARS` so a
   10,000-character paste costs the same as a short one, and split it into clauses.
   Question clauses ("what is prior preservation?") are kept apart: values inside a
   question ("is 12GB enough?") are hypothetical, so they are not stored.
2. Normalise numbers: "thirty" -> 30, "a dozen" -> 12, "twenty-five" -> 25, "5k" -> 5000;
   vague image counts become our pick, marked: "hundreds of photos" -> "~200 photos".
3. Run the slot readers below in a fixed order, most specific first. Each match is blanked
   out of the text so a later, looser rule cannot read it again ("one shot" is a run
   count, so the image rule must not see "1 shot"; "A100 40GB" is one GPU, not a GPU
   plus a second memory size).
4. Resolve: a value negated in place ("not 12GB", "instead of SDXL") is dropped; two
   different values for one slot are a conflict for the interview to ask about, unless a
   correction word ("actually", "I mean") sits between them, in which case the later wins.

The phrase tables are data in advisor/phrases.py; this module is the engine that compiles
and applies them. A new phrasing is a new row there (and a new test row). Every pattern is
linear (bounded repetition, no nested quantifiers), so time grows with length
only; the cut keeps even that small.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from . import phrases as P
from .gpus import find_gpus
from .profile import BOUNDS, FACTORS

MAX_SCAN_CHARS = 4000   # longer messages are cut here; the user is told
MAX_PROMPTS = 10        # dream prompts kept from one message
MAX_TEXT = 300          # characters kept of the goal and of each dream prompt
# Fills consumed spans. It is not a word character but `\s` matches it, so a blanked word
# reads as a gap: "1000 captioned images" still counts 1000 once "captioned" is taken.
_BLANK = "\x1f"


@dataclass
class Extraction:
    slots: dict[str, Any] = field(default_factory=dict)   # Profile field -> value
    problems: list[str] = field(default_factory=list)     # impossible values, NOT stored
    conflicts: dict[str, list[Any]] = field(default_factory=dict)  # slot -> values said
    is_question: bool = False
    question: str | None = None
    is_skip: bool = False               # "no idea", "skip", "you decide"
    is_change: bool = False             # "actually", "change", "instead", "make that"
    wants_recommendation: bool = False  # "recommend now", "just tell me"
    notes: list[str] = field(default_factory=list)        # e.g. the message was cut
    approximate: list[str] = field(default_factory=list)  # slots picked from vague words ("hundreds of")
    truncated: bool = False


# --------------------------------------------------------------------------- numbers
_UNITS = {w: i for i, w in enumerate(P.NUMBER_UNITS)}
_TENS = {w: 10 * i for i, w in enumerate(P.NUMBER_TENS, start=2)}
_SCALES = P.NUMBER_SCALES
_NUMWORD = r"(?:" + "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "dozen"], key=len, reverse=True)) + r")"
# "and" only joins after a scale word ("one hundred and fifty"), not "three and four".
_NUMWORDS = re.compile(
    r"\b(?P<a>(?:half\s+)?an?\s+(?=(?:dozen|hundred|thousand|million)\b))?"
    + _NUMWORD + r"(?:(?:(?<=hundred)\s+and\s+|(?<=thousand)\s+and\s+|\s+|-)" + _NUMWORD + r"){0,6}\b")
_PREPASS_RX = [(re.compile(p), r) for p, r in P.PREPASS]

NUM = r"(?P<n>(?<![\w.])-?\d+(?:\.\d+)?)"

def words_to_number(words: str) -> int | float:
    """'twenty-five' -> 25, 'a dozen' -> 12, 'one hundred and fifty' -> 150."""
    tokens = re.findall(r"[a-z]+", words.lower())
    total, current = 0, 0.0
    if tokens and tokens[0] in ("a", "an"):
        current, tokens = 1, tokens[1:]
    elif tokens[:2] in (["half", "a"], ["half", "an"]):
        current, tokens = 0.5, tokens[2:]
    for w in tokens:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "dozen":
            current = (current or 1) * 12
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in _SCALES:
            total += (current or 1) * _SCALES[w]
            current = 0
    value = total + current
    return int(value) if float(value).is_integer() else value


def normalise(text: str) -> str:
    """Lowercase, numbers as digits: 'Thirty pics, 5k steps' -> '30 pics, 5000 steps'."""
    t = text.lower()
    for rx, rep in _PREPASS_RX:
        t = rx.sub(rep, t)
    t = _NUMWORDS.sub(lambda m: str(words_to_number(m.group(0))), t)
    t = re.sub(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?![\d,])", lambda m: m.group(1).replace(",", ""), t)
    # "5k images" is 5000; "4k photos" usually means resolution, so leave 4k/8k + screen words.
    t = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)\s?k\b(?!\s*(?:res|resolution|quality|video|monitor|display|screen|uhd|tv))",
               lambda m: _fmt(float(m.group(1)) * 1000), t)
    return t


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _clean(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    t = t.translate(str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": " - ", "\u2018": "'",
                                   "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'",
                                   "\u00a0": " ", _BLANK: " "}))
    # Control and invisible format characters carry nothing and confuse the splitter.
    return _INVISIBLE.sub("", t)


_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


# --------------------------------------------------------------------------- clauses
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|;\s*|,\s*(?=(?:but\s+|and\s+|so\s+)?(?:what|how|why|which|"
                    r"is|are|can|could|should|does|do you|do i)\b)")
_QUESTION_START = re.compile(P.QUESTION_START)
_SKIP = re.compile(P.SKIP)
_RECOMMEND = re.compile(P.RECOMMEND)
_CHANGE = re.compile(P.CHANGE)


def _split_clauses(text: str) -> tuple[list[str], list[str]]:
    """(statement clauses, question clauses), both in the user's own casing."""
    statements, questions = [], []
    for clause in _SPLIT.split(text):
        c = clause.strip()
        if not c:
            continue
        low = c.lower()
        is_q = low.endswith("?") or bool(_QUESTION_START.match(low))
        # "No idea?" is a skip and "what do you recommend?" asks for the recommendation.
        if is_q and not _SKIP.search(low) and not _RECOMMEND.search(low):
            questions.append(c)
        else:
            statements.append(c)
    return statements, questions


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

_IMG_NOUN = P.IMAGE_NOUNS
_IMAGES = [
    # a letter glued to the number makes it a word: "3d renders", "2x photos"
    re.compile(NUM + r"(?![a-z]\b)\s*\+?\s*(?:" + P.NOT_IMAGE_ADJ + r"(?:\d+[a-z]|[a-z])[a-z'-]*\s+){0,2}"
               + _IMG_NOUN + r"\b"),
    re.compile(r"\b(?:dataset|data set|set|collection|folder) of (?:about |around |roughly |~)?" + NUM + r"\b"),
    re.compile(r"\b(?:number of )?(?:images|photos|pictures)\s*(?:[:=]|is|are)\s*(?:about |around |~)?" + NUM + r"\b"),
    re.compile(NUM + r"[- ](?:image|photo|picture) (?:dataset|data set|set|collection)\b"),
    re.compile(NUM + r"\s+of\s+" + P.IMAGE_OWNERS + r"\s+(?:" + P.NOT_IMAGE_ADJ + r"[a-z][a-z'-]*\s+){0,2}"
               + _IMG_NOUN + r"\b"),   # "25 of my paintings"
]
_RANGE_BEFORE = re.compile(r"(\d+)\s*(?:-|to|or)\s*$")

_VRAM = [
    re.compile(r"\b" + P.VRAM_WORDS + r"\s*(?:is|of|:|=|-)?\s*(?:about |around |~)?" + NUM
               + r"(?:\s*" + P.VRAM_UNIT + r"\b)?"),
    re.compile(NUM + r"\s*" + P.VRAM_UNIT + r"\b(?P<tail>(?:\s*(?:of\s+)?(?:" + P.VRAM_TAIL + "|"
               + P.NOT_VRAM_TAIL + r")\b)?)"),
]
_VRAM_MIB = re.compile(NUM + r"\s*(?:mib|mb)\s*(?:of\s+)?(?:vram|gpu memory|video memory)\b")
_NOT_VRAM_TAIL = re.compile(r"(?<!v)(?<!v-)\b(?:" + P.NOT_VRAM_TAIL + r")\b")

_SIZE_UNIT = P.SIZE_UNIT
_OUTPUT = [
    # "under 50MB", "max 2 GB" (GB only when it is not about the card)
    re.compile(P.SIZE_CAP + r"\s*(?:about\s+|around\s+)?" + NUM + r"\s*(?P<u>kb|mb|megabytes?|gb|gigabytes?|gigs?)\b"
               r"(?P<tail>\s*(?:of\s+)?(?:v-?ram|gpu|card|graphics|memory)\b)?"),
    # "a 50MB file", "the LoRA must be 30 MB": a size in MB is always a file here
    re.compile(NUM + r"\s*(?P<u>kb|mb|megabytes?)\b(?P<tail>\s*(?:of\s+)?(?:v-?ram|gpu memory|video memory)\b)?"),
    re.compile(NUM + r"\s*(?P<u>gb|gigabytes?)\s+(?:file|output|model file|checkpoint|lora|download)\b(?P<tail>)"),
]
SMALL_FILE_MB = P.SMALL_FILE_MB
_OUTPUT_SMALL = re.compile(P.OUTPUT_SMALL)
_OUTPUT_ANY = re.compile(P.OUTPUT_ANY)

QUICK_MIN = P.QUICK_MIN
_TIME_PHRASES_RX = [(v, re.compile(p)) for v, p in P.TIME_PHRASES]
_TOTAL_AFTER = re.compile(P.TOTAL_TIME_AFTER)
_TOTAL_BEFORE = re.compile(P.TOTAL_TIME_BEFORE)
_TIME = [
    (60.0, re.compile(r"(?<![\w.])(?P<n>\d+)h(?P<m>\d{1,2})m?\b")),  # 2h30
    (60.0, re.compile(NUM + r"\s*" + P.HOUR_UNIT + r"\b(?:\s*(?:and\s+)?(?P<m>\d+)\s*(?:m|mins?|minutes?)\b)?")),
    (1.0, re.compile(NUM + r"\s*" + P.MINUTE_UNIT + r"\b")),
    (1440.0, re.compile(NUM + r"\s*" + P.DAY_UNIT + r"\b")),
]

_RUNS_PHRASES_RX = [(v, re.compile(p)) for v, p in P.RUNS_PHRASES]
_RUNS = [
    re.compile(NUM + r"\s*" + P.RUN_NOUNS + r"\b"),
    re.compile(r"\b" + P.RUN_VERBS + r"\w*(?:\s+[a-z]+){0,3}?\s+" + NUM + r"\s*times\b"),
]

_BASE_RX = [(v, re.compile(p)) for v, p in P.BASE_MODEL_PATTERNS]
_BARE_VERSION_RX = [(v, re.compile(p)) for v, p in P.BARE_VERSIONS]
_UNSUPPORTED_BASE = re.compile(P.UNSUPPORTED_BASE)

_CAPTIONS = [(v, re.compile(p)) for v, p in P.CAPTIONS]

_SUBJECT_RX = [(k, c, re.compile(p)) for k, c, p in P.SUBJECT_CUES]
_GENERIC_SUBJECT_RX = [(k, c, re.compile(p)) for k, c, p in P.GENERIC_SUBJECT_CUES]
_GENERAL_RX = re.compile(P.GENERAL_CUES)
_PRONOUNS = [(noun, re.compile(p)) for noun, p in P.PRONOUNS]
_NOUN_TABLES = {"animal": (P.ANIMALS,), "object": (P.OBJECTS, P.GENERIC_OBJECTS), "style": (P.STYLE_NOUNS,)}
_METHOD_RX = [(m, re.compile(p)) for m, p in P.METHOD_PHRASES]
_NO_METHOD = re.compile(P.NO_METHOD_PREFERENCE)

_WANT = re.compile(P.WANT)
_NEGATED = re.compile(P.NEGATION)
_CORRECTION = re.compile(P.CORRECTION)
_QUOTED = re.compile(r'"([^"\n]{3,400})"|(?:(?<=\s)|^)\'([^\'\n]{8,400})\'(?=[\s.,;:!?)]|$)')
_PROMPT_LINE = re.compile(P.PROMPT_LINE)

# --------------------------------------------------------------------------- scanner
class _Scan:
    """The statement text being read, with consumed spans blanked and candidate values."""

    def __init__(self, text: str):
        self.text = text
        self.original = text   # never blanked: context around a match ("2 hours total for 4 tries")
        self.cands: dict[str, list[tuple[int, Any]]] = {}

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + _BLANK * (end - start) + self.text[end:]

    def take(self, rx: re.Pattern, keep=lambda m: True) -> list[re.Match]:
        """Matches of rx that `keep` accepts, in order; each accepted one is blanked."""
        out = [m for m in rx.finditer(self.text) if keep(m)]
        for m in out:
            self.blank(*m.span())
        return out

    def add(self, slot: str, pos: int, value: Any) -> None:
        if not self.negated(pos):
            self.cands.setdefault(slot, []).append((pos, value))

    def negated(self, pos: int) -> bool:
        return bool(_NEGATED.search(self.text[max(0, pos - 30):pos].replace(_BLANK, " ")))


def _number(m: re.Match, name: str = "n") -> float:
    return float(m.group(name))


def _check(slot: str, value: float, said: str, ex: Extraction) -> bool:
    """Keep a value only inside profile.BOUNDS; otherwise say why (values are never clamped)."""
    lo, hi = BOUNDS[slot]
    whole = slot in ("n_images", "n_runs")
    if whole and not float(value).is_integer():
        ex.problems.append(f"'{said}': {_LABEL[slot]} must be a whole number, so I didn't store it.")
        return False
    if not lo <= value <= hi:
        ex.problems.append(f"'{said}' isn't possible: {_LABEL[slot]} must be between {lo:,g} and {hi:,g}"
                           f"{_UNIT[slot]}, so I didn't store it.")
        return False
    return True


_LABEL = {"n_images": "the number of images", "vram_gb": "GPU memory", "time_budget_min": "the GPU time per run",
          "n_runs": "the number of runs", "max_output_mb": "the output size limit"}
_UNIT = {"n_images": "", "vram_gb": " GB", "time_budget_min": " minutes", "n_runs": "", "max_output_mb": " MB"}


def _said(m: re.Match) -> str:
    return " ".join(m.group(0).replace(_BLANK, " ").split())


# --------------------------------------------------------------------------- slot readers
def _read_factors(s: _Scan, ex: Extraction) -> None:
    explicit: dict[str, list[tuple[int, int]]] = {}
    for rx in _EXPLICIT_FACTOR:
        for m in s.take(rx):
            factor, raw = _FACTOR_NAME[m.group("f")], m.group("v")
            value = _LEVEL_WORDS.get(raw)
            if value is None:
                number = float(raw)
                if not number.is_integer() or not 1 <= number <= 5:
                    ex.problems.append(f"'{_said(m)}': {factor} is a whole number from 1 to 5, so I didn't store it.")
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


def _read_output(s: _Scan, ex: Extraction) -> None:
    for m in s.take(_OUTPUT_ANY):
        s.cands.setdefault("max_output_mb", []).append((m.start(), None))
    for i, rx in enumerate(_OUTPUT):
        def keep(m: re.Match, first=(i == 0)) -> bool:
            if m.group("tail"):
                return False       # "under 16 GB of VRAM" is about the card
            if first and m.group("u").startswith("g"):
                before = s.text[max(0, m.start() - 25):m.start()]
                return not re.search(r"\b(?:have|got|own|with)\b", before)
            return True
        for m in s.take(rx, keep):
            mb = float(m.group("n")) * _SIZE_UNIT[m.group("u").rstrip("s")]
            if _check("max_output_mb", mb, _said(m), ex):
                s.add("max_output_mb", m.start(), round(mb, 3))
    for m in s.take(_OUTPUT_SMALL):
        if "max_output_mb" not in s.cands:   # "a small file, under 50MB" means 50MB
            s.add("max_output_mb", m.start(), SMALL_FILE_MB)


def _read_runs(s: _Scan, ex: Extraction) -> None:
    for rx in _RUNS:
        for m in s.take(rx):
            n = _number(m)
            if _check("n_runs", n, _said(m), ex):
                s.add("n_runs", m.start("n"), int(n))
    for value, rx in _RUNS_PHRASES_RX:
        for m in s.take(rx):
            if "n_runs" not in s.cands:   # a number said outright beats "a few times"
                s.add("n_runs", m.start(), value)


def _read_time(s: _Scan, ex: Extraction) -> None:
    totals: list[tuple[int, float, str]] = []
    for scale, rx in _TIME:
        for m in s.take(rx):
            minutes = _number(m) * scale
            if m.groupdict().get("m"):
                minutes += float(m.group("m"))
            if _is_total(s, m):
                totals.append((m.start(), minutes, _said(m)))
            elif _check("time_budget_min", minutes, _said(m), ex):
                s.add("time_budget_min", m.start(), minutes)
    _split_total(s, ex, totals)
    for minutes, rx in _TIME_PHRASES_RX:
        for m in s.take(rx):
            if "time_budget_min" not in s.cands:   # "quick, 30 minutes" means 30 minutes
                s.add("time_budget_min", m.start(), minutes)


def _is_total(s: _Scan, m: re.Match) -> bool:
    """'2 hours total', 'a total of 2 hours', '2 hours for 4 tries': the time of all runs."""
    return bool(_TOTAL_AFTER.match(s.original, m.end())
                or _TOTAL_BEFORE.search(s.original[max(0, m.start() - 40):m.start()]))


def _split_total(s: _Scan, ex: Extraction, totals: list[tuple[int, float, str]]) -> None:
    """A total over the runs said in the same message becomes the time of one run."""
    runs = sorted({v for _, v in s.cands.get("n_runs", [])})
    for pos, minutes, said in totals:
        if len(runs) == 1:   # two run counts are a conflict the interview asks about: no split
            n = runs[0]
            per = round(minutes / n, 1)
            if _check("time_budget_min", per, said, ex):
                s.add("time_budget_min", pos, per)
                ex.notes.append(f"'{said}' in total over {n} run{'s' if n > 1 else ''}: "
                                f"{per:g} minutes of GPU time per run.")
        elif _check("time_budget_min", minutes, said, ex):
            s.add("time_budget_min", pos, minutes)
            ex.notes.append(f"'{said}' is your total; I'll count it as the time for one run until you tell me "
                            "how many runs to split it over ('30 minutes per run').")


def _read_gpus(s: _Scan, ex: Extraction, expecting: str | None) -> None:
    for hit in find_gpus(s.text):
        if expecting in _COUNT_SLOTS and s.text.strip(" .!~") == s.text[hit.start:hit.end]:
            continue   # a bare "1080" answering "how many images?" is a count, not a GTX 1080
        s.blank(hit.start, hit.end)
        if hit.gb is None:
            problem = hit.note + " I didn't store a GPU memory size."
            if problem not in ex.problems:
                ex.problems.append(problem)
        elif not s.negated(hit.start):
            s.add("vram_gb", hit.start, hit.gb)
            s.cands.setdefault("gpu_name", []).append((hit.start, hit.name))


_COUNT_SLOTS = ("n_images", "time_budget_min", "n_runs", "max_output_mb")


def _read_vram(s: _Scan, ex: Extraction) -> None:
    for m in s.take(_VRAM_MIB):
        gb = round(_number(m) / 1024, 1)
        if _check("vram_gb", gb, _said(m), ex):
            s.add("vram_gb", m.start(), gb)

    def keep(m: re.Match) -> bool:
        tail = m.groupdict().get("tail") or ""
        return not _NOT_VRAM_TAIL.search(tail)

    for rx in _VRAM:
        for m in s.take(rx, keep):
            gb = _number(m)
            if _check("vram_gb", gb, _said(m), ex):
                s.add("vram_gb", m.start(), gb)


def _read_base(s: _Scan, ex: Extraction, expecting: str | None) -> None:
    for m in s.take(_UNSUPPORTED_BASE):
        ex.problems.append(f"'{_said(m)}' isn't supported here; the advisor covers SD 1.5, SD 2.1 and SDXL.")
    rules = _BASE_RX + (_BARE_VERSION_RX if expecting in (None, "base_model") else [])
    for value, rx in rules:
        for m in s.take(rx):
            s.add("base_model", m.start(), value)


def _read_images(s: _Scan, ex: Extraction) -> None:
    for rx in _IMAGES:
        for m in s.take(rx):
            n = _number(m)
            low = _RANGE_BEFORE.search(s.text[max(0, m.start("n") - 12):m.start("n")])
            if low and 0 < float(low.group(1)) < n:
                n = float(low.group(1))   # "20-30 photos": count on the images surely there
            if _check("n_images", n, _said(m), ex):
                s.add("n_images", m.start(), int(n))
                if s.text[m.start("n") - 1:m.start("n")] == "~" and "n_images" not in ex.approximate:
                    ex.approximate.append("n_images")   # "hundreds of photos" -> ~200: our pick


def _read_captions(s: _Scan) -> None:
    for value, rx in _CAPTIONS:
        for m in s.take(rx):
            s.cands.setdefault("captions", []).append((m.start(), value))


def _read_subject(s: _Scan) -> None:
    best = _earliest_cue(s, _SUBJECT_RX) or _earliest_cue(s, _GENERIC_SUBJECT_RX)
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


def _earliest_cue(s: _Scan, cues) -> tuple[int, int, str, Any] | None:
    """(start, -length, type, noun) of the cue found earliest in the text; a tie goes to the longer."""
    best = None
    for kind, noun, rx in cues:
        m = rx.search(s.text)
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


def _read_method(s: _Scan) -> None:
    """A method asked for by name; "any method is fine" clears an earlier one."""
    for m in s.take(_NO_METHOD):
        s.cands.setdefault("preferred_method", []).append((m.start(), None))
    for method, rx in _METHOD_RX:
        for m in s.take(rx):
            s.add("preferred_method", m.start(), method)
    s.cands.get("preferred_method", []).sort(key=lambda c: c[0])   # text order, as the user said them


def _read_bare(s: _Scan, expecting: str, ex: Extraction) -> None:
    """Short answers to the pending question: "30", "3", "yes", "high", "no limit"."""
    rest = " ".join(s.text.replace(_BLANK, " ").split()).strip(" .!,")
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
        elif num and _check("max_output_mb", float(num.group(1)), rest, ex):
            s.cands["max_output_mb"] = [(0, float(num.group(1)))]
    elif expecting == "subject_type" and rest in P.BARE_SUBJECT:
        kind, noun = P.BARE_SUBJECT[rest]
        s.cands["subject_type"], s.cands["class_noun"] = [(0, kind)], [(0, noun)]
    elif num and expecting in ("n_images", "vram_gb", "time_budget_min", "n_runs"):
        n = float(num.group(1))
        if expecting == "time_budget_min" and 0 < n < 10:
            n *= 60   # a bare "2" for GPU time means hours; "45" means minutes
        if _check(expecting, n, rest, ex):
            s.cands[expecting] = [(0, int(n) if expecting in ("n_images", "n_runs") else n)]


# --------------------------------------------------------------------------- resolve
def _resolve(s: _Scan, ex: Extraction) -> None:
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
        if _CORRECTION.search(between.replace(_BLANK, " ")):
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


def _goal(statements: list[str], s: _Scan, expecting: str | None) -> str | None:
    """The message itself, when it describes what the user wants (not a bare value)."""
    text = " ".join(" ".join(statements).split())
    # Words left once the values are taken out: "make it 16GB" is a value, not a goal.
    words = re.findall(r"[a-z][a-z'-]+", s.text)
    if len(words) < 3 or _SKIP.fullmatch(text.lower().strip(" .!")):
        return None
    if _WANT.search(text.lower()) or "subject_type" in s.cands or expecting == "subject_type":
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1].rstrip() + "\u2026"
    return None


# --------------------------------------------------------------------------- entry point
def extract(message: str, expecting: str | None = None) -> Extraction:
    """Read one chat message. `expecting` is the slot of the pending question, so short
    answers ("30", "3", "yes", "no limit") fill it. Never raises on any text."""
    ex = Extraction()
    if not isinstance(message, str):
        ex.problems.append(f"I can only read text, not {type(message).__name__}.")
        return ex
    text = _clean(message)
    if len(text) > MAX_SCAN_CHARS:
        text, ex.truncated = text[:MAX_SCAN_CHARS], True
        ex.notes.append(f"Your message is long ({len(message):,} characters); I read the first "
                        f"{MAX_SCAN_CHARS:,}. Send the rest separately if it matters.")
    if not text.strip():
        return ex
    statements, questions = _split_clauses(text)
    if questions:
        ex.is_question, ex.question = True, " ".join(questions)[:MAX_TEXT * 2]
    low_all = text.lower()
    ex.wants_recommendation = bool(_RECOMMEND.search(low_all))
    s = _Scan(normalise("\n".join(statements)))
    ex.is_change = bool(_CHANGE.search(s.text))
    _read_factors(s, ex)
    _read_output(s, ex)
    _read_runs(s, ex)
    _read_time(s, ex)
    _read_gpus(s, ex, expecting)
    _read_vram(s, ex)
    _read_base(s, ex, expecting)
    _read_method(s)     # after GPUs ("4060 ti") and file sizes ("a small LoRA file")
    _read_captions(s)   # before image counts: "1000 captioned images" holds both
    _read_subject(s)    # before image counts too: "12 selfies" is a count and a person
    _read_images(s, ex)
    if expecting and expecting not in s.cands:
        _read_bare(s, expecting, ex)
    ex.is_skip = bool(_SKIP.search(s.text.replace(_BLANK, " ")))
    _resolve(s, ex)

    prompts = _dream_prompts(text)   # whole lines: a prompt list may hold ';' and '?'

    if prompts:
        ex.slots["dream_prompts"] = prompts
    goal = _goal(statements, s, expecting)
    if goal:
        ex.slots["goal"] = goal
    return ex

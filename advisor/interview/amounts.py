"""Slot readers for amounts said as a number and a unit: output file size, number of runs,
GPU time, GPU memory (and named cards) and image counts.

Each reader takes its matches from the `Scan` (blanking them) and adds the values it finds;
`extract` in advisor/parsing.py calls them in a fixed order. The phrase tables are data
in advisor/phrases.py; here they are compiled and combined with numbers.
"""
from __future__ import annotations

import re

from . import phrases as P
from ..gpus import find_gpus
from .scan import Extraction, Scan, check_bounds, matched_number, said_text
from .text import NUM

# --------------------------------------------------------------------------- compiled tables
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
    re.compile(r"\b(?:only\s+|just\s+)?" + NUM + r"\s+(?:of\s+(?:them|those)\s+)?(?:are|were|is)\s+(?:actually\s+|really\s+)?"
               r"(?:usable|good|decent|sharp|keepers|any good|ok|okay|in focus)\b"),   # "only 25 are usable"
]
_RANGE_BEFORE = re.compile(r"(\d+)\s*(?:-|to|or)\s*$")
_HEAD_COUNTS = re.compile(P.HEAD_COUNTS)
_EACH = re.compile(r"(?:about |around |roughly |~)?" + NUM + r"\s+(?:[a-z'-]+\s+)?(?:" + _IMG_NOUN + r")"
                   + P.PER_SUBJECT_TAIL)
_SUBJECT_COUNT = [(re.compile(rx), add) for rx, add in P.SUBJECT_COUNT_PHRASES] \
    + [(re.compile(r"(?<![\w.])(?P<k>\d+)\s+(?:different\s+|separate\s+)?" + P.SUBJECT_NOUNS + r"\b"), 0)]
_TOGETHER = re.compile(P.TOGETHER.format(img=_IMG_NOUN))

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


# --------------------------------------------------------------------------- slot readers
def read_output(s: Scan, ex: Extraction) -> None:
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
            if check_bounds("max_output_mb", mb, said_text(m), ex):
                s.add("max_output_mb", m.start(), round(mb, 3))
    for m in s.take(_OUTPUT_SMALL):
        if "max_output_mb" not in s.cands:   # "a small file, under 50MB" means 50MB
            s.add("max_output_mb", m.start(), SMALL_FILE_MB)


def read_runs(s: Scan, ex: Extraction) -> None:
    for rx in _RUNS:
        for m in s.take(rx):
            n = matched_number(m)
            if check_bounds("n_runs", n, said_text(m), ex):
                s.add("n_runs", m.start("n"), int(n))
    for value, rx in _RUNS_PHRASES_RX:
        for m in s.take(rx):
            if "n_runs" not in s.cands:   # a number said outright beats "a few times"
                s.add("n_runs", m.start(), value)


def read_time(s: Scan, ex: Extraction) -> None:
    totals: list[tuple[int, float, str]] = []
    for scale, rx in _TIME:
        for m in s.take(rx):
            minutes = matched_number(m) * scale
            if m.groupdict().get("m"):
                minutes += float(m.group("m"))
            if _is_total(s, m):
                totals.append((m.start(), minutes, said_text(m)))
            elif check_bounds("time_budget_min", minutes, said_text(m), ex):
                s.add("time_budget_min", m.start(), minutes)
    _split_total(s, ex, totals)
    for minutes, rx in _TIME_PHRASES_RX:
        for m in s.take(rx):
            if "time_budget_min" not in s.cands:   # "quick, 30 minutes" means 30 minutes
                s.add("time_budget_min", m.start(), minutes)


def _is_total(s: Scan, m: re.Match) -> bool:
    """'2 hours total', 'a total of 2 hours', '2 hours for 4 tries': the time of all runs."""
    return bool(_TOTAL_AFTER.match(s.original, m.end())
                or _TOTAL_BEFORE.search(s.original[max(0, m.start() - 40):m.start()]))


def _split_total(s: Scan, ex: Extraction, totals: list[tuple[int, float, str]]) -> None:
    """A total over the runs said in the same message becomes the time of one run."""
    runs = sorted({v for _, v in s.cands.get("n_runs", [])})
    for pos, minutes, said in totals:
        if len(runs) == 1:   # two run counts are a conflict the interview asks about: no split
            n = runs[0]
            per = round(minutes / n, 1)
            if check_bounds("time_budget_min", per, said, ex):
                s.add("time_budget_min", pos, per)
                ex.notes.append(f"'{said}' in total over {n} run{'s' if n > 1 else ''}: "
                                f"{per:g} minutes of GPU time per run.")
        elif check_bounds("time_budget_min", minutes, said, ex):
            s.add("time_budget_min", pos, minutes)
            ex.notes.append(f"'{said}' is your total; I'll count it as the time for one run until you tell me "
                            "how many runs to split it over ('30 minutes per run').")


def read_gpus(s: Scan, ex: Extraction, expecting: str | None) -> None:
    for hit in find_gpus(s.text):
        if expecting in _COUNT_SLOTS and s.text.strip(" .!~") == s.text[hit.start:hit.end]:
            continue   # a bare "1080" answering "how many images?" is a count, not a GTX 1080
        s.blank(hit.start, hit.end)
        if hit.gb is None:
            s.no_cuda = True  # a Mac's or a PC's memory said beside it is not a GPU's: read_vram skips it
            problem = hit.note + " I didn't store a GPU memory size."
            if problem not in ex.problems:
                ex.problems.append(problem)
        elif not s.negated(hit.start):
            s.add("vram_gb", hit.start, hit.gb)
            s.cands.setdefault("gpu_name", []).append((hit.start, hit.name))
            if hit.note and hit.note not in ex.problems:  # an AMD card: what does and does not carry over
                ex.problems.append(hit.note)


_COUNT_SLOTS = ("n_images", "time_budget_min", "n_runs", "max_output_mb")


def read_vram(s: Scan, ex: Extraction) -> None:
    if s.no_cuda:  # "a MacBook M2 with 32 GB": unified memory (or RAM), not a CUDA card's memory
        for rx in (_VRAM_MIB, *_VRAM):
            s.take(rx)
        return
    for m in s.take(_VRAM_MIB):
        gb = round(matched_number(m) / 1024, 1)
        if check_bounds("vram_gb", gb, said_text(m), ex):
            s.add("vram_gb", m.start(), gb)

    def keep(m: re.Match) -> bool:
        tail = m.groupdict().get("tail") or ""
        return not _NOT_VRAM_TAIL.search(tail)

    for rx in _VRAM:
        for m in s.take(rx, keep):
            gb = matched_number(m)
            if check_bounds("vram_gb", gb, said_text(m), ex):
                s.add("vram_gb", m.start(), gb)


def _subjects_counted(text: str) -> int | None:
    """How many subjects the message names: "3 characters", "me and my 2 brothers", "both my cats"."""
    for rx, add in _SUBJECT_COUNT:
        m = rx.search(text)
        if m:
            return int(m.group("k")) + add if m.groupdict().get("k") else add
    return None


def _read_per_subject(s: Scan, ex: Extraction) -> None:
    """Images per subject times the subjects, plus group shots: "3 characters, about 25 images each"
    is 75; "both my cats, 20 pics of each plus 10 of them together" is 50. Without a subject count,
    "15 pics each" is left to the plain image count."""
    each = _EACH.search(s.text)
    # the subjects before the count ("3 characters, 25 each"), else just after it ("25 each of 3 characters")
    k = (_subjects_counted(s.text[:each.start()]) or _subjects_counted(s.text[each.end():each.end() + 30])
         if each else None)
    if each is None or not k or k < 2:
        return
    s.blank(*each.span())
    n = k * float(each.group("n"))
    together = next(iter(s.take(_TOGETHER)), None)
    if together is not None:
        n += float(together.group("n"))
    if check_bounds("n_images", n, said_text(each), ex):
        s.add("n_images", each.start(), int(n))
        s.add("n_subjects", each.start(), int(k))   # each gets its own token (dataset advice)


def read_images(s: Scan, ex: Extraction) -> None:
    _read_per_subject(s, ex)
    s.take(_HEAD_COUNTS)   # "all 4 of us in one picture" counts people, not images
    for rx in _IMAGES:
        for m in s.take(rx):
            n = matched_number(m)
            low = _RANGE_BEFORE.search(s.text[max(0, m.start("n") - 12):m.start("n")])
            if low and 0 < float(low.group(1)) < n:
                n = float(low.group(1))   # "20-30 photos": count on the images surely there
            if check_bounds("n_images", n, said_text(m), ex):
                s.add("n_images", m.start(), int(n))
                if s.text[m.start("n") - 1:m.start("n")] == "~" and "n_images" not in ex.approximate:
                    ex.approximate.append("n_images")   # "hundreds of photos" -> ~200: our pick

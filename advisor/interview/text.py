"""Text before the slot readers see it: cleaned, split into clauses, numbers as digits.

`clean` gives one kind of quote and dash and drops invisible characters; `split_clauses`
keeps question clauses apart from statements; `normalise` lowercases and writes numbers as
digits ("thirty" -> 30, "a dozen" -> 12, "5k" -> 5000). `NUM` is the regex fragment the
slot readers use for a number in normalised text, and `BLANK` the character the scanner
fills consumed spans with (so `clean` removes it from what the user typed).
"""
from __future__ import annotations

import re
import unicodedata

from . import phrases as P

# Fills consumed spans. It is not a word character but `\s` matches it, so a blanked word
# reads as a gap: "1000 captioned images" still counts 1000 once "captioned" is taken.
BLANK = "\x1f"


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
    # "5k images" and "1.2k screenshots" are counts; "4k screenshots" and "8k video" a resolution.
    return _THOUSANDS.sub(lambda m: m.group(0) if m.group(1) in _SCREEN_K and _SCREEN_WORDS.match(t, m.end())
                          else _fmt(float(m.group(1)) * 1000), t)


_THOUSANDS = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?k\b")
_SCREEN_K = {"2", "4", "5", "8"}   # "4k photos" is a resolution when a screen word follows
_SCREEN_WORDS = re.compile(r"\s*(?:res|resolution|quality|video|monitor|display|screen|uhd|tv)")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def clean(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    t = t.translate(str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": " - ", "\u2018": "'",
                                   "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'",
                                   "\u00a0": " ", BLANK: " "}))
    # Control and invisible format characters carry nothing and confuse the splitter.
    return _INVISIBLE.sub("", t)


_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


# --------------------------------------------------------------------------- clauses
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|;\s*|,\s*(?=(?:but\s+|and\s+|so\s+)?(?:what|how|why|which|"
                    r"is|are|can|could|should|does|do you|do i)\b)")
_QUESTION_START = re.compile(P.QUESTION_START)
SKIP_RX = re.compile(P.SKIP)
RECOMMEND_RX = re.compile(P.RECOMMEND)


def split_clauses(text: str) -> tuple[list[str], list[str]]:
    """(statement clauses, question clauses), both in the user's own casing."""
    statements, questions = [], []
    for clause in _SPLIT.split(text):
        c = clause.strip()
        if not c:
            continue
        low = c.lower()
        is_q = low.endswith("?") or bool(_QUESTION_START.match(low))
        # "No idea?" is a skip and "what do you recommend?" asks for the recommendation.
        if is_q and not SKIP_RX.search(low) and not RECOMMEND_RX.search(low):
            questions.append(c)
        else:
            statements.append(c)
    return statements, questions

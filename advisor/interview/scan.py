"""The scan state the slot readers share, and the `Extraction` they fill.

`Scan` holds the normalised statement text, blanks each span a reader takes (so a later,
looser rule cannot read it again) and collects candidate values per slot, dropping values
negated in place ("not 12GB"). `check_bounds` keeps a value only inside profile.BOUNDS and
otherwise says why.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import phrases as P
from .text import BLANK
from ..profile import BOUNDS


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
    subject_from_cue: bool = False      # the subject came from a passing word, not from what is trained
    truncated: bool = False


_NEGATED = re.compile(P.NEGATION)


# --------------------------------------------------------------------------- scanner
class Scan:
    """The statement text being read, with consumed spans blanked and candidate values."""

    def __init__(self, text: str):
        self.text = text
        self.original = text   # never blanked: context around a match ("2 hours total for 4 tries")
        self.cands: dict[str, list[tuple[int, Any]]] = {}
        self.no_cuda = False   # the text names a machine without CUDA (a Mac, a CPU): its memory is no GPU's

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + BLANK * (end - start) + self.text[end:]

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
        return bool(_NEGATED.search(self.text[max(0, pos - 30):pos].replace(BLANK, " ")))


def matched_number(m: re.Match, name: str = "n") -> float:
    return float(m.group(name))


def check_bounds(slot: str, value: float, said: str, ex: Extraction) -> bool:
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


def said_text(m: re.Match) -> str:
    return " ".join(m.group(0).replace(BLANK, " ").split())

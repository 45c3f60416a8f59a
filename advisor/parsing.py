"""Free text -> Profile slots: one chat message in, an `Extraction` out. Pure functions.

How it reads a message:

1. Clean it (Unicode NFKC, one kind of quote and dash), cut it at `MAX_SCAN_CHARS` so a
   10,000-character paste costs the same as a short one, and split it into clauses.
   Question clauses ("what is prior preservation?") are kept apart: values inside a
   question ("is 12GB enough?") are hypothetical, so they are not stored.
2. Normalise numbers: "thirty" -> 30, "a dozen" -> 12, "twenty-five" -> 25, "5k" -> 5000.
3. Run the slot rules below in a fixed order, most specific first. Each match is blanked
   out of the text so a later, looser rule cannot read it again ("one shot" is a run
   count, so the image rule must not see "1 shot"; "A100 40GB" is one GPU, not a GPU
   plus a second memory size).
4. Resolve: a value negated in place ("not 12GB", "instead of SDXL") is dropped; two
   different values for one slot are a conflict for the interview to ask about, unless a
   correction word ("actually", "I mean") sits between them, in which case the later wins.

The phrase tables are data: a new phrasing is a new row (and a new test row). Every
pattern is linear (bounded repetition, no nested quantifiers), so time grows with length
only; the cut keeps even that small.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

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
    truncated: bool = False


# --------------------------------------------------------------------------- numbers
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMWORD = r"(?:" + "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "dozen"], key=len, reverse=True)) + r")"
# "and" only joins after a scale word ("one hundred and fifty"), not "three and four".
_NUMWORDS = re.compile(
    r"\b(?P<a>(?:half\s+)?an?\s+(?=(?:dozen|hundred|thousand|million)\b))?"
    + _NUMWORD + r"(?:(?:(?<=hundred)\s+and\s+|(?<=thousand)\s+and\s+|\s+|-)" + _NUMWORD + r"){0,6}\b")

# Phrases rewritten before numbers are read (why: each hides a number in words).
_PREPASS = [
    (r"\bminus\s+", "-"),
    (r"\bhalf an? hour\b", "30 minutes"),
    (r"\b(?:an?|1|one) hour and a half\b", "90 minutes"),
    (r"\b(?:1|one) and a half hours?\b", "90 minutes"),
    (r"\ba couple(?: of)?\b", "2"),
    (r"\bhalf a dozen\b", "6"),
    (r"\b(?:1|one)[- ]shot\b", "one_shot"),   # a run count; keep it away from "shots"
]
_PREPASS_RX = [(re.compile(p), r) for p, r in _PREPASS]

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
_QUESTION_START = re.compile(
    r"^(?:so\s+|and\s+|but\s+|also\s+|btw,?\s+|oh,?\s+|ok,?\s+|hey,?\s+)?(?:what(?!\s+i\b)|what's|whats|"
    r"how(?!\s+about)|why|which|who|explain|tell me (?:about|more|what|how|why)|is it|is there|"
    r"are there|does|do i|do you|can i|can you|could you|could i|should i|would it|will it|difference between)\b")
_SKIP = re.compile(
    r"\b(?:no idea|(?:i\s+)?(?:don't|do not|dont) know|dunno|idk|not sure|unsure|no clue|skip|"
    r"pass|whatever|you decide|you choose|you pick|up to you|your call|no preference|"
    r"(?:doesn't|does not|don't) matter|(?:don't|dont|do not) care|any(?:thing)? is fine|"
    r"use (?:the )?defaults?|default|not a clue|can't say|cannot say)\b")
# Asking for the recommendation itself is not a knowledge question: it ends the interview.
_RECOMMEND = re.compile(
    r"\b(?:recommend (?:now|something|it|me|a method|one)|give me (?:a |the |your )?(?:recommendation|suggestion|"
    r"plan|answer)|(?:just )?tell me what to do|just tell me|what (?:do|would) you (?:recommend|suggest)|"
    r"what should i (?:use|do|pick|choose|train)|which method should i|can you recommend|(?:your|a) "
    r"(?:recommendation|suggestion)|go ahead|let'?s go|that'?s (?:all|it|everything)|enough questions|"
    r"skip the (?:rest|questions)|show me (?:the |a )?(?:plan|recommendation|settings))\b")
_CHANGE = re.compile(
    r"\b(?:actually|change|changed|instead|make that|make it (?=\d)|correction|i meant|i mean|scratch that|"
    r"no wait|rather|switch(?:ed)? to|upgraded|downgraded|now i have|turns out)\b")


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


# --------------------------------------------------------------------------- rule tables
# Factor phrases: (factor, value 1-5, pattern). Strong/specific rows first within a factor.
FACTOR_PHRASES: list[tuple[str, int, str]] = [
    # accuracy: how exactly the subject must be replicated
    ("accuracy", 5, r"\b(?:look|looks|looking|be)\s+exactly\s+like\b"),
    ("accuracy", 5, r"\bexact(?:ly the same| likeness| replica| copy)\b"),
    ("accuracy", 5, r"\b(?:identical|indistinguishable|pixel[- ]perfect|spitting image)\b"),
    ("accuracy", 5, r"\bperfect(?:ly)?\s+(?:likeness|replica|match|copy|accurate|faithful)\b"),
    ("accuracy", 5, r"\bevery (?:single )?detail\b"),
    ("accuracy", 5, r"\b100\s*%\s*(?:accurate|faithful|like|the same)\b"),
    ("accuracy", 2, r"\brecogni[sz]able (?:is |would be )?(?:enough|fine|ok|okay|good enough)\b"),
    ("accuracy", 2, r"\bjust (?:needs? to be |has to be )?recogni[sz]able\b"),
    ("accuracy", 2, r"\b(?:doesn't|does not|don't|do not|needn't|need not)\s+(?:need|have)\s+to\s+be\s+"
                    r"(?:exact|perfect|identical|100\s*%)"),
    ("accuracy", 2, r"\b(?:close enough|roughly(?: similar| like| the same)?|somewhat similar|"
                    r"similar (?:is|would be) (?:fine|enough|ok|okay)|inspired by)\b"),
    ("accuracy", 1, r"\b(?:vaguely(?: similar| like)?|loosely(?: similar| like| inspired| based)?|"
                    r"(?:just|only) the (?:vibe|gist|feel))\b"),
    ("accuracy", 4, r"\b(?:must|has to|have to|needs? to|should)\s+(?:really\s+|clearly\s+|definitely\s+)?"
                    r"(?:look like|resemble|be recogni[sz]ably)\b"),
    ("accuracy", 4, r"\b(?:must|has to|have to|needs? to) (?:clearly |really |definitely )?be (?:clearly )?"
                    r"(?:him|her|them|me|my \w+)\b"),
    ("accuracy", 4, r"\b(?:very |highly )?accurate(?:ly)?\b|\bfaithful(?:ly)?\b|\bhigh (?:fidelity|likeness)\b"),
    ("accuracy", 4, r"\b(?:keep|preserve) (?:the|his|her|its|their|my) (?:face|identity|likeness|details?)\b"),
    ("accuracy", 4, r"\b(?:likeness|identity|accuracy) (?:matters|is (?:important|key|crucial|critical))\b"),
    # flexibility: how far from the training images the subject must go
    ("flexibility", 5, r"\ball (?:kinds|sorts|types) of (?:[a-z]+ )?(?:scenes|settings|places|styles|situations|contexts|"
                       r"backgrounds|poses|outfits|things|scenarios|art styles|worlds)\b"),
    ("flexibility", 5, r"\b(?:in )?any (?:scene|setting|style|situation|context|background|pose|outfit|"
                       r"scenario|place|world)s?\b|\banything (?:i|we) (?:want|can imagine|like)\b"),
    ("flexibility", 5, r"\b(?:wild|crazy|fantastical|surreal|impossible) (?:scenes|settings|situations|"
                       r"scenarios|ideas|prompts|stuff)\b|"
                       r"\bcompletely (?:new|different) (?:scenes|settings|styles|contexts|situations)\b"),
    ("flexibility", 4, r"\b(?:as|like|into) an? (?:astronaut|superhero|super hero|knight|wizard|witch|pirate|king|queen|"
                       r"prince|princess|cowboy|samurai|viking|ninja|robot|cyborg|vampire|zombie|chef|"
                       r"soldier|warrior|god|goddess|elf|jedi|cartoon|anime character|pixar character|"
                       r"disney character|lego figure|statue|sculpture|painting)\b"),
    ("flexibility", 4, r"\b(?:in space|on the moon|on mars|underwater|in the style of)\b"),
    ("flexibility", 4, r"\b(?:different|various|varied|new|many|lots of|other|diverse) (?:scenes|settings|places|"
                       r"backgrounds|situations|contexts|styles|art styles|outfits|poses|locations|environments)\b"),
    ("flexibility", 4, r"\b(?:very |really |super |highly )?(?:flexible|versatile)\b"),
    ("flexibility", 1, r"\bonly (?:portraits|headshots|product shots|close-?ups|the same (?:pose|angle|setting|"
                       r"scene|style|background))\b"),
    ("flexibility", 1, r"\b(?:just|exactly|only) like (?:the|my|our) (?:photos|pictures|images|training "
                       r"(?:images|data|photos))\b|\bsame (?:as|like) (?:the|my|our) (?:photos|pictures|images|training)\b"),
    ("flexibility", 1, r"\b(?:same|identical) (?:pose|angle|setting|background|scene)s? as\b|\bno (?:need for )?variety\b"),
    ("flexibility", 2, r"\b(?:mostly|mainly) (?:like|similar to) (?:the|my|our) (?:photos|pictures|images|training)\b"
                       r"|\bsmall variations\b|\bminor changes\b|\bsimilar (?:scenes|settings|poses|shots) (?:to|as)\b"),
    # preservation: how much of the base model must stay intact
    ("preservation", 1, r"\b(?:don't|do not|dont|doesn't|does not|won't|wouldn't)\s+(?:really\s+)?(?:care|mind|matter)"
                        r"(?:\s+(?:if|whether|that|about))?[^.;,!?\n]{0,40}?\b(?:forgets?|forgetting|loses?|losing|"
                        r"breaks?|breaking|ruins?|ruining|the rest|everything else|other (?:things|stuff|subjects|"
                        r"content|styles)|the base model)\b"),
    ("preservation", 1, r"\b(?:only|just) (?:needs? to|has to|care about|want it to) (?:do|draw|make|generate|"
                        r"know) (?:this|my|him|her|it|the|that)\b|\bforget (?:everything|the rest|other)\b"),
    ("preservation", 2, r"\b(?:ok|okay|fine|alright) (?:if|that) it (?:forgets|loses|breaks)\b"),
    ("preservation", 5, r"\b(?:must|should|has to|needs? to)\s+still\s+(?:do|draw|make|generate|work for|handle|"
                        r"be able to do)\s+(?:everything|anything|all|other)\b"),
    ("preservation", 5, r"\bintact\b|\b(?:don't|do not|without) (?:break|breaking|ruin|ruining|damage|damaging|"
                        r"hurt|hurting|mess up|messing up|destroy|destroying) (?:the )?(?:base |original )?model\b"),
    ("preservation", 5, r"\bkeep (?:its|the model's|all (?:its|the)|the) (?:general|other|original) "
                        r"(?:abilities|knowledge|skills|capabilities)\b"),
    ("preservation", 4, r"\bstill (?:be able to )?(?:do|draw|make|generate|work for) (?:other|normal|regular|everything)\b"),
    ("preservation", 4, r"\b(?:preserve|keep) (?:the )?(?:base|original) (?:model|style|abilities|knowledge)\b"),
]
_FACTOR_RX = [(f, v, re.compile(p)) for f, v, p in FACTOR_PHRASES]

_LEVEL_WORDS = {"very high": 5, "max": 5, "maximum": 5, "top": 5, "highest": 5, "high": 4,
                "medium": 3, "moderate": 3, "mid": 3, "average": 3, "low": 2, "very low": 1,
                "min": 1, "minimum": 1, "lowest": 1, "none": 1}
_LEVEL_WORD = r"very high|very low|highest|high|medium|moderate|mid|average|lowest|low|maximum|max|minimum|min|top"
_LEVEL = r"(?P<v>-?\d+(?:\.\d+)?|" + _LEVEL_WORD + ")"
_FACTOR_NAME = {"accuracy": "accuracy", "accurate": "accuracy", "likeness": "accuracy", "fidelity": "accuracy",
                "flexibility": "flexibility", "flexible": "flexibility", "variety": "flexibility",
                "preservation": "preservation", "preserve": "preservation"}
_FACTOR_WORD = r"(?P<f>accuracy|accurate|likeness|fidelity|flexibility|flexible|variety|preservation|preserve)"
_EXPLICIT_FACTOR = [
    re.compile(r"\b" + _FACTOR_WORD + r"\s*(?:is|:|=|of|at|level|should be|needs to be|to|-)?\s*(?:a\s+)?"
               + _LEVEL + r"\b(?!\s*(?:gb|g|mb|images?|photos?|pictures?|minutes?|hours?|%))(?:\s*(?:/|out of)\s*5\b)?"),
    re.compile(r"\b(?P<v>" + _LEVEL_WORD + r")\s+" + _FACTOR_WORD + r"\b"),   # "high accuracy"
]

_IMG_NOUN = (r"(?:pictures?|pics?|photos?|photographs?|images?|imgs?|shots?|selfies|selfie|snaps?|drawings?|"
             r"paintings?|sketches|sketch|illustrations?|artworks?|renders?|screenshots?|portraits?|"
             r"headshots?|frames?|jpe?gs?|pngs?)")
_NOT_ADJ = (r"(?!(?:gb|gib|gigs?|g|mb|kb|vram|min|mins|minutes?|hours?|hrs?|h|days?|runs?|times?|tries|"
            r"attempts?|steps?|epochs?|of|per|x|px|by|and|or|to|more|less|percent)\b)")
_IMAGES = [
    re.compile(NUM + r"\s*\+?\s*(?:" + _NOT_ADJ + r"[a-z][a-z'-]*\s+){0,2}" + _IMG_NOUN + r"\b"),
    re.compile(r"\b(?:dataset|data set|set|collection|folder) of (?:about |around |roughly |~)?" + NUM + r"\b"),
    re.compile(r"\b(?:number of )?(?:images|photos|pictures)\s*(?:[:=]|is|are)\s*(?:about |around |~)?" + NUM + r"\b"),
    re.compile(NUM + r"[- ](?:image|photo|picture) (?:dataset|data set|set|collection)\b"),
]
_RANGE_BEFORE = re.compile(r"(\d+)\s*(?:-|to|or)\s*$")

_VRAM_UNIT = r"(?:gb|gib|g|gigs?|gigabytes?)"
_VRAM = [
    re.compile(r"\b(?:vram|v-ram|gpu memory|video memory|graphics memory|gpu ram)\s*(?:is|of|:|=|-)?\s*"
               r"(?:about |around |~)?" + NUM + r"(?:\s*" + _VRAM_UNIT + r"\b)?"),
    re.compile(NUM + r"\s*" + _VRAM_UNIT + r"\b(?P<tail>(?:\s*(?:of\s+)?(?:v-?ram|gpu|card|graphics|video|memory|"
               r"system ram|ram|disk|storage|ssd|hdd|drive|space|data|dataset|file|files|images|photos|pictures|"
               r"download|upload|model|lora|output|checkpoint|weights)\b)?)"),
]
_VRAM_MIB = re.compile(NUM + r"\s*(?:mib|mb)\s*(?:of\s+)?(?:vram|gpu memory|video memory)\b")
_NOT_VRAM_TAIL = re.compile(r"(?<!v)(?<!v-)\b(?:ram|disk|storage|ssd|hdd|drive|space|data|dataset|file|files|images|"
                            r"photos|pictures|download|upload|model|lora|output|checkpoint|weights)\b")

_SIZE_UNIT = {"kb": 1 / 1024, "mb": 1.0, "megabyte": 1.0, "gb": 1024.0, "gigabyte": 1024.0, "gig": 1024.0}
_CAP_WORDS = (r"(?:\b(?:under|below|less than|smaller than|at most|no (?:more|bigger|larger) than|"
              r"not (?:more|bigger|larger) than|max(?:imum)?|up to|within|limit(?:ed)?(?: of| to| is)?|"
              r"cap(?:ped)?(?: at| of)?)|<=?)")
_OUTPUT = [
    # "under 50MB", "max 2 GB" (GB only when it is not about the card)
    re.compile(_CAP_WORDS + r"\s*(?:about\s+|around\s+)?" + NUM + r"\s*(?P<u>kb|mb|megabytes?|gb|gigabytes?|gigs?)\b"
               r"(?P<tail>\s*(?:of\s+)?(?:v-?ram|gpu|card|graphics|memory)\b)?"),
    # "a 50MB file", "the LoRA must be 30 MB": a size in MB is always a file here
    re.compile(NUM + r"\s*(?P<u>kb|mb|megabytes?)\b(?P<tail>\s*(?:of\s+)?(?:v-?ram|gpu memory|video memory)\b)?"),
    re.compile(NUM + r"\s*(?P<u>gb|gigabytes?)\s+(?:file|output|model file|checkpoint|lora|download)\b(?P<tail>)"),
]
SMALL_FILE_MB = 200.0   # "a small file to share": LoRA-sized, far below a full checkpoint (2-7 GB)
_OUTPUT_SMALL = re.compile(
    r"\b(?:small|tiny|light(?:weight)?|compact)\s+(?:file|output|model|lora|download|size)\b|"
    r"\b(?:easy|small enough|light enough) to (?:share|upload|send|download)\b|\bshar(?:e|ing) (?:a )?small\b")
_OUTPUT_ANY = re.compile(
    r"\b(?:file |output |model )?size (?:doesn't|does not|don't|won't|wont|doesnt) matter\b|"
    r"\bno (?:file |output )?size (?:limit|cap|constraint|restriction)s?\b|"
    r"\b(?:don't|do not|dont) care about (?:the )?(?:file |output |model )?size\b|"
    r"\bsize is (?:not|no) (?:a )?(?:problem|issue|concern)\b|\bany (?:file )?size\b|\bunlimited\b")

QUICK_MIN = 20.0   # "something quick"
_TIME_PHRASES: list[tuple[float, str]] = [
    (480.0, r"\b(?:overnight|over night|all night|while i sleep)\b"),
    (2880.0, r"\b(?:a|the|one) (?:whole |full )?weekend\b"),
    (10080.0, r"\b(?:a|one) (?:whole |full )?week\b"),
    (1440.0, r"\b(?:a|one) (?:whole |full )?day\b|\b24/7\b"),
    (240.0, r"\b(?:an|one|the) afternoon\b"),
    (180.0, r"\ba few hours\b"),
    (10.0, r"\ba few minutes\b"),
    (60.0, r"\ban hour\b"),
    (QUICK_MIN, r"\b(?:quick(?:ly)?|asap|as fast as possible|in a hurry)\b(?!\s+(?:question|q|note|one)\b)"),
]
_TIME_PHRASES_RX = [(v, re.compile(p)) for v, p in _TIME_PHRASES]
_TIME = [
    (60.0, re.compile(r"(?<![\w.])(?P<n>\d+)h(?P<m>\d{1,2})m?\b")),  # 2h30
    (60.0, re.compile(NUM + r"\s*(?:gpu[- ])?(?:h|hrs?|hours?)\b(?:\s*(?:and\s+)?(?P<m>\d+)\s*(?:m|mins?|minutes?)\b)?")),
    (1.0, re.compile(NUM + r"\s*(?:gpu[- ])?(?:mins?|minutes?)\b")),
    (1440.0, re.compile(NUM + r"\s*(?:gpu[- ])?days?\b")),
]

_RUNS_PHRASES: list[tuple[int, str]] = [
    (1, r"\bone_shot\b|\bsingle (?:run|shot|try|attempt)\b|\b(?:only|just) once\b|\bonce only\b|"
        r"\b(?:try|train|run) (?:it )?once\b|\b(?:right|work) (?:the )?first time\b|\bno (?:second|2nd) (?:try|chance)\b"),
    (2, r"\btwice\b(?!\s+as)"),
    (3, r"\ba few (?:times|runs|tries|attempts)\b"),
    (10, r"\b(?:many|lots of|plenty of|unlimited|a lot of) (?:times|runs|tries|attempts)\b|"
         r"\bas many (?:times |runs |tries )?as (?:needed|it takes|i need|i want)\b|\b(?:iterate|experiment) (?:a lot|lots)\b"),
]
_RUNS_PHRASES_RX = [(v, re.compile(p)) for v, p in _RUNS_PHRASES]
_RUNS = [
    re.compile(NUM + r"\s*(?:training\s+)?(?:runs?|attempts?|tries|trials|experiments?|rounds?|goes)\b"),
    re.compile(r"\b(?:try|iterate|train|run|retrain|experiment|tweak|attempt)\w*(?:\s+[a-z]+){0,3}?\s+" + NUM
               + r"\s*times\b"),
]

BASE_MODEL_PATTERNS: list[tuple[str, str]] = [
    ("sdxl", r"\b(?:sd\s*-?\s*xl|stable[- ]diffusion[- ]xl|xl)\b"),
    ("sd21", r"\b(?:sd\s*-?\s*v?2(?:[.-][01])?|sd21|stable[- ]diffusion[- ]v?2(?:[.-][01])?|v2[.-][01])\b"),
    ("sd15", r"\b(?:sd\s*-?\s*v?1(?:[.-][45])?|sd15|stable[- ]diffusion[- ]v?1(?:[.-][45])?|v1[.-][45])\b"),
]
# A bare "1.5" / "2.1" names a version only when no number is expected ("1.5" hours...).
BARE_VERSIONS = [("sd21", r"(?<![\w.])2\.[01](?![\w.]|\d)"), ("sd15", r"(?<![\w.])1\.5(?![\w.]|\d)")]
_BASE_RX = [(v, re.compile(p)) for v, p in BASE_MODEL_PATTERNS]
_BARE_VERSION_RX = [(v, re.compile(p)) for v, p in BARE_VERSIONS]
_UNSUPPORTED_BASE = re.compile(r"\b(?:sd\s*3(?:\.5)?|stable diffusion 3(?:\.5)?|flux(?:\.1)?|midjourney|"
                               r"dall-?e|kandinsky|sd\s*cascade|stable cascade)\b")

_CAPTIONS = [
    (False, re.compile(r"\b(?:no|without|not|don't have|do not have|dont have|lack|missing|0)\s+(?:any\s+)?"
                       r"(?:captions?|text files?|labels?|descriptions?|tags)\b|\b(?:uncaptioned|not captioned|"
                       r"unlabell?ed|not labell?ed|not tagged|untagged)\b")),
    (True, re.compile(r"\b(?:captioned|labell?ed|tagged)\b|\b(?:with|have|has|including|plus|and)\s+(?:\w+\s+)?"
                      r"(?:captions?|text files|descriptions|tags)\b|\bcaptions? (?:files?|for (?:each|every|all))\b|"
                      r"\beach (?:image|photo|picture) has a (?:caption|description)\b")),
]

# Subject cues: (subject_type, class_noun, pattern). The earliest cue in the message wins;
# "general" cues only count when nothing more specific is named, pronouns last of all.
_DET = r"(?:my|our|a|an|the|this|these|his|her|their|your|of)\s+(?:[a-z']+\s+)?"   # "my wife's handbag"
_ANIMALS = {"cat": "cat", "cats": "cat", "kitty": "cat", "kitten": "cat", "kittens": "cat",
            "dog": "dog", "dogs": "dog", "puppy": "dog", "puppies": "dog", "pup": "dog", "doggo": "dog",
            "horse": "horse", "pony": "horse", "bird": "bird", "parrot": "parrot", "rabbit": "rabbit",
            "bunny": "rabbit", "hamster": "hamster", "guinea pig": "guinea pig", "ferret": "ferret",
            "turtle": "turtle", "tortoise": "tortoise", "lizard": "lizard", "snake": "snake", "fish": "fish",
            "goldfish": "fish", "cow": "cow", "pig": "pig", "goat": "goat", "sheep": "sheep",
            "chicken": "chicken", "duck": "duck", "owl": "owl", "fox": "fox", "pet": "pet", "pets": "pet",
            "animal": "animal", "animals": "animal"}
_WOMEN = "wife|girlfriend|gf|mom|mum|mother|sister|grandma|grandmother|aunt|niece|fiancee|woman|lady|bride"
_MEN = "husband|boyfriend|bf|dad|father|brother|grandpa|grandfather|uncle|nephew|fiance|man|guy|groom"
_OBJECTS = {"sneaker": "sneaker", "sneakers": "sneaker", "shoe": "shoe", "shoes": "shoe", "boots": "boot",
            "mug": "mug", "mugs": "mug", "cup": "cup", "bottle": "bottle", "bag": "bag", "handbag": "handbag",
            "backpack": "backpack", "watch": "watch", "car": "car", "bike": "bicycle", "bicycle": "bicycle",
            "motorcycle": "motorcycle", "toy": "toy", "toys": "toy", "plushie": "plush toy", "plush": "plush toy",
            "teddy bear": "teddy bear", "stuffed animal": "stuffed animal", "chair": "chair", "lamp": "lamp",
            "sofa": "sofa", "guitar": "guitar", "ring": "ring", "necklace": "necklace", "jewelry": "jewelry",
            "jewellery": "jewelry", "hat": "hat", "shirt": "shirt", "t-shirt": "t-shirt", "hoodie": "hoodie",
            "jacket": "jacket", "dress": "dress", "figurine": "figurine", "perfume": "perfume bottle",
            "phone": "phone", "vase": "vase", "candle": "candle", "house": "house", "building": "building",
            "logo": "logo", "product": "product", "products": "product", "object": "object", "item": "object",
            "robot": "robot", "glasses": "glasses", "sunglasses": "sunglasses", "furniture": "furniture"}
_STYLE_NOUNS = {"drawing": "drawing", "drawings": "drawing", "painting": "painting", "paintings": "painting",
                "sketches": "drawing", "illustrations": "illustration", "illustration": "illustration",
                "art": "artwork", "artwork": "artwork", "artworks": "artwork", "comics": "illustration",
                "doodles": "drawing"}


def _alts(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


SUBJECT_CUES: list[tuple[str, Any, str]] = [
    ("person", "person", r"\b(?:of|like|on|with)\s+me\b|\bme\s+(?:as|in|into|on|at|with)\b|\bmyself\b|"
                         r"\bmy (?:own )?(?:face|likeness|selfies?)\b|\bselfies?\b|\bportraits? of me\b"),
    ("person", "woman", r"\b(?:my|our|a|the|this)\s+(?:[a-z]+\s+)?(?:" + _WOMEN + r")\b(?!')"),
    ("person", "man", r"\b(?:my|our|a|the|this)\s+(?:[a-z]+\s+)?(?:" + _MEN + r")\b(?!')"),
    ("person", "girl", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:daughter|girl)\b(?!')"),
    ("person", "boy", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:son|boy)\b(?!')"),
    ("person", "child", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:kids?|child|children|baby|toddler)\b(?!')"),
    ("person", "person", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:friend|partner|colleague|boss|team|family|"
                         r"grandparents?|parents?|celebrity|influencer|face)\b(?!')|\b(?:a\s+)?(?:person|people|"
                         r"human|someone|somebody|headshots)\b"),
    ("animal", None, r"\b(?:" + _alts(_ANIMALS) + r")\b"),
    ("object", None, r"\b" + _DET + r"(?:" + _alts(_OBJECTS) + r")\b|\bproducts?\b|\bproduct (?:shots|photos)\b"),
    ("style", None, r"\b(?:my|our|his|her|their)\s+(?:own\s+)?(?:" + _alts(_STYLE_NOUNS) + r")\b|"
                    r"\b\d+\s+(?:drawings|paintings|sketches|illustrations|artworks)\b"),
    ("style", "watercolor painting", r"\bwatercolou?rs?\b"),
    ("style", "painting", r"\boil paintings?\b"),
    ("style", "artwork", r"\b(?:art|artistic|drawing|painting|illustration|visual|anime|manga|comic|cartoon|"
                         r"pixel[- ]art|aesthetic)\s+style\b(?!\s+of)|\b(?:a|an|the|my|our|this|that|own|new|"
                         r"specific|particular|certain)\s+(?:[a-z]+\s+)?style\b(?!\s+of)|\bstyles?\b(?!\s+of)|"
                         r"\bpixel art\b|\bline art\b|\baesthetic\b"),
    ("concept", "concept", r"\bconcepts?\b"),
    ("concept", "pose", r"\bposes?\b"),
    ("concept", None, r"\b(?:gesture|action|facial expression|expression|lighting setup|camera angle|composition)\b"),
]
GENERAL_CUES = (r"\bgeneral(?:[- ]purpose)?\b|\beverything\b|\bfine[- ]?tun\w*\s+(?:it\s+|the model\s+|sd\s+)?on\s+"
                r"(?:my|our|a|an|the)\s+(?:own\s+)?(?:[a-z]+\s+)?(?:dataset|data|collection|images)\b|"
                r"\b(?:my|our|a|an|the)\s+(?:own\s+|whole\s+|entire\s+|big\s+|large\s+|huge\s+)?dataset\b|"
                r"\bdomain\b|\bbetter at\b|\bimprove (?:the )?(?:base )?model\b")
_PRONOUNS = [("man", re.compile(r"\b(?:him|he|his)\b")), ("woman", re.compile(r"\b(?:her|she)\b"))]
_SUBJECT_RX = [(k, c, re.compile(p)) for k, c, p in SUBJECT_CUES]
_GENERAL_RX = re.compile(GENERAL_CUES)
_BARE_SUBJECT = {"person": ("person", "person"), "people": ("person", "person"), "human": ("person", "person"),
                 "animal": ("animal", "animal"), "pet": ("animal", "pet"), "object": ("object", "object"),
                 "product": ("object", "product"), "thing": ("object", "object"), "style": ("style", "artwork"),
                 "concept": ("concept", "concept"), "general": ("general", None)}

_WANT = re.compile(r"\b(?:want|wanna|would like|'d like|like to|trying to|try to|hoping to|hope to|goal|aim|"
                   r"looking to|need (?:to|a|an)|make|generate|create|dream|imagine)\b")
# "not a 4090", "don't have 24GB" (up to two words between); "instead of SDXL", "switching
# from SDXL" (only an article between, so the value after "to" is not caught too).
_NEGATED = re.compile(r"(?:(?:\bnot|n't|\bnever|\bno longer)(?:\s+[\w'-]+){0,2}|\bno|(?:\binstead of|\brather than|"
                      r"\bused to (?:have|be)|\b(?:switch|chang|mov|go|upgrad)(?:e|ed|ing|ed)? from)"
                      r"(?:\s+(?:a|an|the|my))?)\s*$")
_CORRECTION = re.compile(r"\b(?:actually|i mean|i meant|make (?:that|it)|no wait|wait|sorry|correction|"
                         r"scratch that|instead|rather|oops)\b")

_QUOTED = re.compile(r'"([^"\n]{3,400})"|(?:(?<=\s)|^)\'([^\'\n]{8,400})\'(?=[\s.,;:!?)]|$)')
_PROMPT_LINE = re.compile(r"(?im)(?:\bprompts?\s*(?:like|such as|:|=|e\.g\.?)|^\s*(?:e\.g\.|eg\b|for example\b|"
                          r"for instance\b|like:))\s*[:,]?\s*(.+)$")


# --------------------------------------------------------------------------- scanner
class _Scan:
    """The statement text being read, with consumed spans blanked and candidate values."""

    def __init__(self, text: str):
        self.text = text
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
    for scale, rx in _TIME:
        for m in s.take(rx):
            minutes = _number(m) * scale
            if m.groupdict().get("m"):
                minutes += float(m.group("m"))
            if _check("time_budget_min", minutes, _said(m), ex):
                s.add("time_budget_min", m.start(), minutes)
    for minutes, rx in _TIME_PHRASES_RX:
        for m in s.take(rx):
            if "time_budget_min" not in s.cands:   # "quick, 30 minutes" means 30 minutes
                s.add("time_budget_min", m.start(), minutes)


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


def _read_captions(s: _Scan) -> None:
    for value, rx in _CAPTIONS:
        for m in s.take(rx):
            s.cands.setdefault("captions", []).append((m.start(), value))


def _read_subject(s: _Scan) -> None:
    best: tuple[int, int, str, Any] | None = None   # (start, -length, type, noun)
    for kind, noun, rx in _SUBJECT_RX:
        m = rx.search(s.text)
        if m is None:
            continue
        if noun is None:
            noun = _noun_for(kind, m.group(0))
        key = (m.start(), -(m.end() - m.start()), kind, noun)
        if best is None or key[:2] < best[:2]:
            best = key
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


def _noun_for(kind: str, matched: str) -> str | None:
    """The class noun inside a matched cue: 'my dog rex' -> 'dog', '40 drawings' -> 'drawing'."""
    table = {"animal": _ANIMALS, "object": _OBJECTS, "style": _STYLE_NOUNS}.get(kind, {})
    for w in sorted(table, key=len, reverse=True):
        if re.search(r"\b" + re.escape(w) + r"\b", matched):
            return table[w]
    return "artwork" if kind == "style" else ("product" if kind == "object" else None)


def _read_bare(s: _Scan, expecting: str, ex: Extraction) -> None:
    """Short answers to the pending question: "30", "3", "yes", "high", "no limit"."""
    rest = " ".join(s.text.replace(_BLANK, " ").split()).strip(" .!,")
    rest = re.sub(r"^(?:about|around|roughly|maybe|approx(?:imately|\.)?|~|like|i have|i've got|it's|its)\s*", "", rest)
    num = re.fullmatch(r"(-?\d+(?:\.\d+)?)", rest)
    if expecting in FACTORS:
        level = {"a lot": 4, "very": 5, "very much": 5, "somewhat": 3, "a bit": 2, "a little": 2,
                 "not much": 2, "not really": 2, "not at all": 1}.get(rest, _LEVEL_WORDS.get(rest))
        if num:
            n = float(num.group(1))
            if n.is_integer() and 1 <= n <= 5:
                level = int(n)
            else:
                ex.problems.append(f"'{rest}': {expecting} is a whole number from 1 to 5, so I didn't store it.")
        if level is not None:
            s.cands[expecting] = [(0, level)]
    elif expecting == "captions":
        if re.fullmatch(r"yes|yeah|yep|y|sure|they do|true|yes they do|all of them", rest):
            s.cands["captions"] = [(0, True)]
        elif re.fullmatch(r"no|nope|n|none|false|they don't|not really", rest):
            s.cands["captions"] = [(0, False)]
    elif expecting == "max_output_mb":
        if re.fullmatch(r"no|nope|none|no limit|not really|unlimited|any", rest):
            s.cands["max_output_mb"] = [(0, None)]
        elif num and _check("max_output_mb", float(num.group(1)), rest, ex):
            s.cands["max_output_mb"] = [(0, float(num.group(1)))]
    elif expecting == "subject_type" and rest in _BARE_SUBJECT:
        kind, noun = _BARE_SUBJECT[rest]
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

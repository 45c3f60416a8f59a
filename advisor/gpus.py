"""The one GPU table: the cards people train on, their memory, and how they are named.

The table is data: one row per card (or per service, such as free Colab, with the card it
gives), with the memory it is usually sold with and any other sizes sold under the same name
(the 3060 also came with 8 GB, the A100 with 40 or 80 GB), and whether it computes in bf16
(Ampere and newer). A memory size written next to the name ("RTX 3060 8GB", "A100-80G",
"A100-SXM4-80GB") picks the variant. Apple silicon and CPU-only machines are in the table too,
with `gb=None`: the trainer needs CUDA, and the advisor should say so rather than store a
number that would never work.

`find_gpus` reads names in chat text; `find_gpu` reads one stored name (the chat's, or a
device name such as "NVIDIA A100-SXM4-80GB" from a run log). The cost estimator's speed
figures are keyed by these rows' names (advisor.recommendation.costs.SPEEDS).

Pure stdlib; `lookup_gpu` is cheap enough to run on every chat message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str                        # what we show the user
    gb: float | None                 # memory it usually has; None = no CUDA device
    pattern: str                     # regex over lowercased text
    variants: tuple[float, ...] = ()  # other memory sizes sold under the same name
    note: str = ""                   # said to the user when this card is found
    keys: tuple[str, ...] = ()       # one must be in the text before the regex runs (speed)
    bf16: bool = False               # computes in bf16: Ampere (RTX 30xx, A-series) or newer
    card: str | None = None          # a service's card, by its row name (free Colab: "Tesla T4")
    fp16_nan: bool = False           # fp16 autocast gives NaNs (black images): the GTX 16xx cards

    @property
    def precision(self) -> str:
        """The mixed precision a run trains in on this card: bf16 on Ampere or newer, fp16 before
        it, fp32 ("no") where fp16 breaks (AUTOMATIC1111 modules/devices.py detects the GTX 16
        series and stops autocasting there)."""
        return "bf16" if self.bf16 else "no" if self.fp16_nan else "fp16"


NO_CUDA = ("{name} has no CUDA GPU, and the trainer needs an NVIDIA GPU with CUDA. "
           "Free Google Colab or Kaggle (a T4 with 16 GB) works.")
AMD = ("{name} is an AMD card: PyTorch runs on it through ROCm (on Linux), but the trainer is tested on NVIDIA "
       "CUDA only, bitsandbytes' 8-bit Adam and xFormers are CUDA-only, and the times assume NVIDIA speeds.")

# Only a bare model number ("a 4090") needs care: "2080 images" or "1080p" are not cards.
_NOT_A_CARD_AFTER = re.compile(
    r"\s*(?:p\b|px|x\d|k\b|images?|pictures?|pics?|photos?|shots?|selfies?|steps?|epochs?|"
    r"minutes?|mins?|hours?|runs?|times?|mb|dollars?|usd|euros?|\$|of\b)")
_MEMORY = r"(\d{1,3}(?:\.\d)?)\s*(?:gb|gib|g|gigs?|gigabytes?)\b"
# "rtx 3060 laptop gpu (6gb)": a laptop chip shares the desktop's name, not its memory.
_LAPTOP = re.compile(r"\s*(?:laptop|mobile|notebook|max-?q)(?:\s+(?:gpu|version|edition))?")
# The memory of laptop chips where it differs from the desktop card (NVIDIA's laptop GPU specs).
LAPTOP_GB = {"RTX 3050": 4, "RTX 3060": 6, "RTX 3070": 8, "RTX 3070 Ti": 8, "RTX 3080": 8, "RTX 3080 Ti": 16,
             "RTX 4050": 6, "RTX 4060": 8, "RTX 4070": 8, "RTX 4080": 12, "RTX 4090": 16, "RTX 5090": 24}
# Words between a service and the card it rents: "colab pro w/ the a100", "runpod: 4090".
_SERVICE_TO_CARD = re.compile(r"[\s,:(/-]*(?:(?:with|w/|using|on|an?|the|my|rented|rent|gpu|card)[\s,:(/-]*){0,3}")
# "A100 80GB", "A100-80G", "a 3060 with 12gb", and device names such as "A100-SXM4-80GB"
_MEMORY_AFTER = re.compile(r"\s*[-,(/]?\s*(?:with\s+)?(?:(?:sxm\d?|pcie)\s*[-,]?\s*)?" + _MEMORY)
_MEMORY_BEFORE = re.compile(_MEMORY + r"\s*(?:of\s+vram\s+)?(?:on\s+(?:an?|my|the)\s+)?[-(]?\s*$")


def _nv(number: str, suffix: str = "") -> str:
    """Regex for a GeForce model: optional rtx/gtx prefix, the number, the exact suffix.

    The lookahead keeps "3060" from also matching "3060 Ti"; `(?<![\\d.])` keeps it from
    matching inside a longer number.
    """
    tail = r"\s*-?\s*" + r"\s*".join(suffix.split()) if suffix else ""
    if suffix == "":
        guard = r"(?!\s*-?\s*(?:ti|super))"
    elif suffix == "ti":
        guard = r"(?!\s*-?\s*super)"
    else:
        guard = ""
    return (r"(?:\b(?P<brand>(?:geforce\s*)?(?:rtx|gtx)|geforce)\s*-?\s*)?(?<![\d.])" + number + tail
            + guard + r"(?!\d)")


def _amd(model: str) -> str:
    """Regex for a Radeon: "rx 7900 xtx", "radeon 7900xtx", "amd 7900 xtx" (a bare number needs a suffix)."""
    return r"\b(?:(?:amd\s*)?(?:radeon\s*)?rx\s*-?\s*|(?:amd|radeon)\s*)" + model + r"\b"


def _row(name: str, gb: float, number: str, suffix: str = "", variants: tuple = ()) -> Gpu:
    # GeForce 30xx and newer are Ampere or later: bf16 (10xx, 16xx and 20xx are not)
    return Gpu(name=name, gb=gb, pattern=_nv(number, suffix), variants=variants, keys=(number,),
               bf16=number[:2] in ("30", "40", "50"), fp16_nan=number[:2] == "16")


# Consumer NVIDIA cards, 10xx to 50xx. Memory is the common retail size.
_GEFORCE = [
    _row("GTX 1050", 2, "1050", variants=(3,)), _row("GTX 1050 Ti", 4, "1050", "ti"),
    _row("GTX 1060", 6, "1060", variants=(3,)), _row("GTX 1070", 8, "1070"),
    _row("GTX 1070 Ti", 8, "1070", "ti"), _row("GTX 1080", 8, "1080"),
    _row("GTX 1080 Ti", 11, "1080", "ti"), _row("GTX 1650", 4, "1650"),
    _row("GTX 1660", 6, "1660"), _row("GTX 1660 Ti", 6, "1660", "ti"),
    _row("GTX 1660 Super", 6, "1660", "super"),
    _row("RTX 2060", 6, "2060", variants=(12,)), _row("RTX 2060 Super", 8, "2060", "super"),
    _row("RTX 2070", 8, "2070"), _row("RTX 2070 Super", 8, "2070", "super"),
    _row("RTX 2080", 8, "2080"), _row("RTX 2080 Super", 8, "2080", "super"),
    _row("RTX 2080 Ti", 11, "2080", "ti"),
    _row("RTX 3050", 8, "3050", variants=(6,)), _row("RTX 3060", 12, "3060", variants=(8,)),
    _row("RTX 3060 Ti", 8, "3060", "ti"), _row("RTX 3070", 8, "3070"),
    _row("RTX 3070 Ti", 8, "3070", "ti"), _row("RTX 3080", 10, "3080", variants=(12,)),
    _row("RTX 3080 Ti", 12, "3080", "ti"), _row("RTX 3090", 24, "3090"),
    _row("RTX 3090 Ti", 24, "3090", "ti"),
    _row("RTX 4060", 8, "4060"), _row("RTX 4060 Ti", 8, "4060", "ti", variants=(16,)),
    _row("RTX 4070", 12, "4070"), _row("RTX 4070 Super", 12, "4070", "super"),
    _row("RTX 4070 Ti", 12, "4070", "ti"), _row("RTX 4070 Ti Super", 16, "4070", "ti super"),
    _row("RTX 4080", 16, "4080"), _row("RTX 4080 Super", 16, "4080", "super"),
    _row("RTX 4090", 24, "4090"),
    _row("RTX 5060", 8, "5060"), _row("RTX 5060 Ti", 8, "5060", "ti", variants=(16,)),
    _row("RTX 5070", 12, "5070"), _row("RTX 5070 Ti", 16, "5070", "ti"),
    _row("RTX 5080", 16, "5080"), _row("RTX 5090", 32, "5090"),
]

# Datacenter and workstation cards, cloud notebooks, and machines without CUDA.
_OTHERS = [
    # Free Colab's T4 has 16 GB but reports about 15 GB usable.
    # The services give a T4 (free Colab, Kaggle) or the slowest of several cards (Colab Pro).
    Gpu("free Colab (T4)", 15, r"\b(?:free\s+)?(?:google\s+)?colab\b(?!\s*pro)", card="Tesla T4"),
    Gpu("Colab Pro (T4 / L4 / A100)", 15, r"\bcolab\s*pro\+?", card="Tesla T4"),
    Gpu("Kaggle (T4 / P100)", 16, r"\bkaggle\b", card="Tesla T4"),
    Gpu("Tesla T4", 16, r"\b(?:tesla\s*|nvidia\s*)?t4\b"),
    Gpu("Tesla P100", 16, r"\b(?:tesla\s*)?p100\b", variants=(12,)),
    Gpu("Tesla V100", 16, r"\b(?:tesla\s*)?v100\b", variants=(32,)),
    Gpu("A10G", 24, r"\ba10g\b", bf16=True),
    Gpu("A10", 24, r"\ba10\b(?!\d)", bf16=True),
    Gpu("L4", 24, r"\bl4\b", bf16=True),
    Gpu("L40S", 48, r"\bl40s?\b", bf16=True),
    Gpu("RTX A4000", 16, r"\b(?:rtx\s*)?a4000\b", bf16=True),
    Gpu("RTX A5000", 24, r"\b(?:rtx\s*)?a5000\b", bf16=True),
    Gpu("RTX A6000", 48, r"\b(?:rtx\s*)?a6000\b", bf16=True),
    Gpu("RTX 6000 Ada", 48, r"\brtx\s*6000\s*ada\b", bf16=True),
    Gpu("A100", 40, r"\ba100\b", variants=(80,), bf16=True),
    Gpu("H100", 80, r"\bh100\b", bf16=True),
    Gpu("H200", 141, r"\bh200\b", bf16=True),
    # AMD: Radeon RX 6000/7000/9000 and Instinct, with the memory they are sold with.
    Gpu("Radeon RX 7900 XTX", 24, _amd(r"7900\s*-?\s*xtx"), note=AMD),
    Gpu("Radeon RX 7900 XT", 20, _amd(r"7900\s*-?\s*xt(?!x)"), note=AMD),
    Gpu("Radeon RX 7900 GRE", 16, _amd(r"7900\s*-?\s*gre"), note=AMD),
    Gpu("Radeon RX 7800 XT", 16, _amd(r"7800\s*-?\s*xt"), note=AMD),
    Gpu("Radeon RX 7700 XT", 12, _amd(r"7700\s*-?\s*xt"), note=AMD),
    Gpu("Radeon RX 7600", 8, _amd(r"7600(?:\s*-?\s*xt)?"), variants=(16,), note=AMD),
    Gpu("Radeon RX 9070 XT", 16, _amd(r"9070\s*-?\s*xt"), note=AMD),
    Gpu("Radeon RX 9070", 16, _amd(r"9070(?!\s*-?\s*xt)"), note=AMD),
    Gpu("Radeon RX 6950 XT", 16, _amd(r"6950\s*-?\s*xt"), note=AMD),
    Gpu("Radeon RX 6900 XT", 16, _amd(r"6900\s*-?\s*xt"), note=AMD),
    Gpu("Radeon RX 6800 XT", 16, _amd(r"6800\s*-?\s*xt"), note=AMD),
    Gpu("Radeon RX 6800", 16, _amd(r"6800(?!\s*-?\s*xt)"), note=AMD),
    Gpu("Radeon RX 6700 XT", 12, _amd(r"6700\s*-?\s*xt"), note=AMD),
    Gpu("Instinct MI300X", 192, r"\b(?:amd\s*)?(?:instinct\s*)?mi\s*-?\s*300x\b", note=AMD),
    Gpu("Instinct MI250X", 128, r"\b(?:amd\s*)?(?:instinct\s*)?mi\s*-?\s*250x?\b", note=AMD),
    Gpu("Apple silicon (M-series)", None,
        r"\b(?:apple\s+)?m[1-4](?:\s*(?:pro|max|ultra))?\b(?=.{0,40}\b(?:mac|apple|chip|macbook)\b)"
        r"|\b(?:apple\s+)?m[1-4]\s*(?:pro|max|ultra)\b|\bapple\s+(?:silicon|m[1-4])\b"
        r"|\b(?:a\s+|my\s+)?mac(?:book|\s*mini|\s*studio|book\s*(?:air|pro))?\b",
        note=NO_CUDA),
    Gpu("a CPU-only machine", None,
        r"\b(?:cpu[- ]only|only\s+(?:a|my)\s+cpu|just\s+(?:a|my|the)\s+cpu|no\s+(?:nvidia\s+)?gpu"
        r"|(?:don't|do not|dont)\s+have\s+a\s+gpu|without\s+a\s+gpu|integrated\s+graphics)\b",
        note=NO_CUDA),
]

GPUS: tuple[Gpu, ...] = tuple(_GEFORCE + _OTHERS)
GPU_BY_NAME: dict[str, Gpu] = {gpu.name: gpu for gpu in GPUS}


def card_of(gpu: Gpu) -> Gpu:
    """The card a row stands for: a service's card (free Colab: the Tesla T4), else the row itself."""
    return GPU_BY_NAME[gpu.card] if gpu.card else gpu
_COMPILED = [(gpu, re.compile(gpu.pattern)) for gpu in GPUS]
# The GeForce rows all start with a model number; one cheap search for any 4-digit number
# lets a message without one skip the 40 patterns whose optional prefix is slow to scan.
_ANY_MODEL_NUMBER = re.compile(r"(?<!\d)1[0-6][5-8]0|(?<!\d)[2-5]0[5-9]0")


@dataclass(frozen=True)
class GpuMatch:
    name: str            # display name, with the memory when the card comes in several sizes
    gb: float | None     # None: not a CUDA device (see note)
    start: int           # span in the lowercased text, so callers can blank it out
    end: int
    note: str = ""
    gpu: Gpu | None = None  # the table's row


def find_gpus(text: str) -> list[GpuMatch]:
    """Every GPU named in `text`, in the order they appear (overlaps resolved left-first)."""
    low = text.lower()
    hits: list[GpuMatch] = []
    has_number = bool(_ANY_MODEL_NUMBER.search(low))
    for gpu, rx in _COMPILED:
        if gpu.keys and not (has_number and any(k in low for k in gpu.keys)):
            continue
        for m in rx.finditer(low):
            hit = _match(gpu, m, low)
            if hit is not None:
                hits.append(hit)
    # Longest match first at the same start, then drop anything overlapping a kept match.
    hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
    kept: list[GpuMatch] = []
    for h in hits:
        if not kept or h.start >= kept[-1].end:
            kept.append(h)
    # A service followed by its card ("colab pro w/ the A100", "kaggle p100") is that card.
    return [h for h, nxt in zip(kept, kept[1:] + [None])
            if not (h.gpu is not None and h.gpu.card and nxt is not None and nxt.gpu is not None
                    and nxt.gpu.gb is not None and _SERVICE_TO_CARD.fullmatch(low[h.end:nxt.start]))]


def lookup_gpu(text: str) -> tuple[str, float | None] | None:
    """The first GPU named in `text` as `(name, gb)`, or None.

    `gb` is None for machines without CUDA (Apple M-series, CPU only); `gpu_note(name)`
    says why.
    """
    hits = find_gpus(text)
    return (hits[0].name, hits[0].gb) if hits else None


def find_gpu(name: str | None) -> GpuMatch | None:
    """The table's row for one stored name: what the chat stored ("RTX 3060 12GB", "free Colab
    (T4)") or a device name from a run ("NVIDIA A100-SXM4-80GB", "Tesla T4", "t4-small");
    None for a name the table does not know."""
    if not name:
        return None
    hits = find_gpus(name)
    return hits[0] if hits else None


def gpu_note(name: str) -> str:
    """What to tell the user about a card, e.g. that a Mac cannot run the trainer."""
    for gpu in GPUS:
        if name.startswith(gpu.name):
            return gpu.note.format(name=gpu.name)
    return ""


def _match(gpu: Gpu, m: re.Match, low: str) -> GpuMatch | None:
    start, end = m.span()
    is_geforce = "brand" in m.re.groupindex
    if is_geforce and not m.group("brand"):
        # A bare number is only a card when it is not a count, a resolution or a price.
        if _NOT_A_CARD_AFTER.match(low, end) or low[max(0, start - 1):start] in ("$", "#"):
            return None
    gb = None if gpu.gb is None else float(gpu.gb)
    name = gpu.name
    laptop = _LAPTOP.match(low, end) if is_geforce else None
    if laptop:  # a laptop chip has its own memory: the size said beside it, else the usual one
        end = laptop.end()
        after = _MEMORY_AFTER.match(low, end)
        stated = float(after.group(1)) if after and 2 <= float(after.group(1)) <= 24 else None
        gb = stated or float(LAPTOP_GB.get(gpu.name, gb))
        end = after.end() if stated else end
        return GpuMatch(name=f"{gpu.name} Laptop {gb:g}GB", gb=gb, start=start, end=end,
                        note=gpu.note.format(name=gpu.name), gpu=gpu)
    after = _MEMORY_AFTER.match(low, end)
    before = _MEMORY_BEFORE.search(low[max(0, start - 24):start])
    stated = float(after.group(1)) if after else float(before.group(1)) if before else None
    if gb is not None and stated is not None and (stated == gb or stated in gpu.variants):
        if after:
            end = after.end()
        gb = stated
    if gpu.variants and gb is not None:
        name = f"{name} {gb:g}GB"
    return GpuMatch(name=name, gb=gb, start=start, end=end, note=gpu.note.format(name=gpu.name), gpu=gpu)

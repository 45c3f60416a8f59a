"""The shapes world: scenes with ground truth, their renders and their captions.

A scene is one object (a shape in a colour, a size, a pattern and a rendering style) in one of nine
cells of a plain background. Everything the caption says can be measured back from the image
(`trainer.shapes.checker`), so a model trained on this world can be scored against the truth.

Two concepts are held out of everything `sample_scenes` draws unless asked: a subject (a new shape)
and a style (a new way of rendering). They are what a fine-tune is meant to teach.

Deterministic: `sample_scenes` uses `random.Random(seed)` (stable across Python versions) and
`render` draws with PIL only, so the same scene gives the same pixels.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

# Colours as RGB; every pair is far apart, and so is each colour's pattern shade from every
# other colour (tests/trainer/test_shapes_world.py checks both), so they measure back from pixels.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "yellow": (240, 210, 50),
    "purple": (150, 60, 190),
    "white": (240, 240, 240),
}
SHADE = 0.55                  # a pattern's second colour is the object's colour times this
SHAPES = ("circle", "square", "triangle", "diamond", "star")
SIZES = {"small": 0.14, "large": 0.20}   # half the side of the object's box, as a fraction of the image
PATTERNS = ("solid", "striped", "dotted")
STYLES = ("filled", "outline")
CELL_CENTRES = (0.25, 0.5, 0.75)         # object box centre per column / row, as a fraction of the image
JITTER = 0.03                 # the most a box centre moves off its cell's centre (fraction of the image)
RESOLUTION = 64               # default pixel side; 32-64 works
_SUPERSAMPLE = 4              # draw this many times larger, then average down (smooth edges)
_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "center", "right")


@dataclass(frozen=True)
class Concept:
    """Something a scene can show: `kind` is "shape" or "style", `value` one of SHAPES / STYLES."""
    kind: str
    value: str

    def __post_init__(self):
        allowed = {"shape": SHAPES, "style": STYLES}
        if self.kind not in allowed:
            raise ValueError(f"Concept.kind={self.kind!r}; pick one of {sorted(allowed)}")
        if self.value not in allowed[self.kind]:
            raise ValueError(f"Concept.value={self.value!r}; a {self.kind} is one of {allowed[self.kind]}")


SUBJECT = Concept("shape", "star")       # held-out subject: pretraining never sees a star
STYLE = Concept("style", "outline")      # held-out style: pretraining never sees outline-only drawings
HELD_OUT = (SUBJECT, STYLE)


@dataclass(frozen=True)
class Scene:
    shape: str = "circle"            # one of SHAPES
    color: str = "red"               # the object's colour, a key of PALETTE
    background: str = "blue"         # a key of PALETTE other than `color`
    cell: tuple[int, int] = (1, 1)   # (column, row), each 0-2: left/center/right, top/middle/bottom
    size: str = "large"              # a key of SIZES
    pattern: str = "solid"           # one of PATTERNS (ignored when style="outline")
    style: str = "filled"            # one of STYLES
    offset: tuple[float, float] = (0.0, 0.0)   # box centre minus cell centre, each within +-JITTER

    def __post_init__(self):
        for name, value, allowed in (("shape", self.shape, SHAPES), ("color", self.color, tuple(PALETTE)),
                                     ("background", self.background, tuple(PALETTE)),
                                     ("size", self.size, tuple(SIZES)), ("pattern", self.pattern, PATTERNS),
                                     ("style", self.style, STYLES)):
            if value not in allowed:
                raise ValueError(f"Scene.{name}={value!r}; pick one of {list(allowed)}")
        if self.color == self.background:
            raise ValueError(f"Scene.color and Scene.background are both {self.color!r}; the object would vanish")
        if len(self.cell) != 2 or not all(c in (0, 1, 2) for c in self.cell):
            raise ValueError(f"Scene.cell={self.cell!r}; (column, row) with each in 0, 1, 2")
        if not all(abs(o) <= JITTER for o in self.offset):
            raise ValueError(f"Scene.offset={self.offset!r}; each within +-{JITTER}")

    def shows(self, concept: Concept) -> bool:
        return getattr(self, concept.kind) == concept.value

    @property
    def centre(self) -> tuple[float, float]:
        """The object's box centre (x, y) as fractions of the image side."""
        return (CELL_CENTRES[self.cell[0]] + self.offset[0], CELL_CENTRES[self.cell[1]] + self.offset[1])


def position_words(cell: tuple[int, int]) -> str:
    col, row = _COLS[cell[0]], _ROWS[cell[1]]
    if (col, row) == ("center", "middle"):
        return "in the center"
    if row == "middle":
        return f"on the {col}"
    return f"at the {row}" if col == "center" else f"at the {row} {col}"


def caption(scene: Scene) -> str:
    """'a large red striped circle on a blue background at the top left' (+ ', outline drawing')."""
    pattern = "" if scene.pattern == "solid" or scene.style == "outline" else f" {scene.pattern}"
    text = (f"a {scene.size} {scene.color}{pattern} {scene.shape} on a {scene.background} background "
            f"{position_words(scene.cell)}")
    return text + (", outline drawing" if scene.style == "outline" else "")


def sample_scenes(n: int, seed: int, *, concept: Concept | None = None,
                  exclude: tuple[Concept, ...] = HELD_OUT) -> list[Scene]:
    """`n` random scenes from `seed`. None shows a concept in `exclude` (by default both held-out
    ones); with `concept`, every scene shows it (and it is no longer excluded)."""
    if n < 0:
        raise ValueError(f"n={n}; a count of scenes is >= 0")
    exclude = tuple(c for c in exclude if c != concept)
    choices = {"shape": [s for s in SHAPES if Concept("shape", s) not in exclude],
               "style": [s for s in STYLES if Concept("style", s) not in exclude]}
    if concept is not None:
        choices[concept.kind] = [concept.value]
    rng = random.Random(seed)
    scenes = []
    for _ in range(n):
        color, background = rng.sample(sorted(PALETTE), 2)
        scenes.append(Scene(shape=rng.choice(choices["shape"]), color=color, background=background,
                            cell=(rng.randrange(3), rng.randrange(3)), size=rng.choice(sorted(SIZES)),
                            pattern=rng.choice(PATTERNS), style=rng.choice(choices["style"]),
                            offset=(round(rng.uniform(-JITTER, JITTER), 4), round(rng.uniform(-JITTER, JITTER), 4))))
    return scenes


def with_concept(scene: Scene, concept: Concept) -> Scene:
    """The same scene showing `concept` (a prompt for flexibility: the concept in this context)."""
    return replace(scene, **{concept.kind: concept.value})


# --------------------------------------------------------------------------- rendering

def _outline(shape: str, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """The polygon of a shape fitted to its box (left, top, right, bottom); apex up."""
    left, top, right, bottom = box
    cx, cy, w, h = (left + right) / 2, (top + bottom) / 2, right - left, bottom - top
    if shape == "square":
        return [(left, top), (right, top), (right, bottom), (left, bottom)]
    if shape == "triangle":
        return [(cx, top), (right, bottom), (left, bottom)]
    if shape == "diamond":
        return [(cx, top), (right, cy), (cx, bottom), (left, cy)]
    if shape == "star":   # five points, inner radius half the outer; scaled so its box fits and is centred
        pts = [((1.0 if i % 2 == 0 else 0.5) * math.sin(i * math.pi / 5),
                -(1.0 if i % 2 == 0 else 0.5) * math.cos(i * math.pi / 5)) for i in range(10)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        scale = min(w / (max(xs) - min(xs)), h / (max(ys) - min(ys)))
        mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        return [(cx + (x - mx) * scale, cy + (y - my) * scale) for x, y in pts]
    raise ValueError(f"no polygon for shape {shape!r}")


def _shape_mask(shape: str, box, side: int, line: int | None) -> Image.Image:
    """An L mask (255 inside) of the shape, filled, or only its outline `line` pixels wide."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse(box, fill=None if line else 255, outline=255 if line else None, width=line or 1)
    else:
        points = _outline(shape, box)
        draw.polygon(points, fill=None if line else 255, outline=255 if line else None, width=line or 1)
    return mask


def _pattern_mask(pattern: str, side: int, period: int) -> Image.Image:
    """An L mask (255 where the shade goes): horizontal stripes or a grid of dots, `period` px apart."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    if pattern == "striped":
        for y in range(0, side, period):
            draw.rectangle((0, y, side, y + period * 2 // 5 - 1), fill=255)
    elif pattern == "dotted":
        r = period * 0.22
        for y in range(period // 2, side, period):
            for x in range(period // 2, side, period):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return mask


def shade(color: str) -> tuple[int, int, int]:
    return tuple(int(c * SHADE) for c in PALETTE[color])


def render(scene: Scene, resolution: int = RESOLUTION) -> Image.Image:
    """The scene as an RGB image `resolution` pixels square (drawn larger, averaged down)."""
    if not 16 <= resolution <= 512:
        raise ValueError(f"resolution={resolution}; 16-512 pixels (the world is meant for 32-64)")
    side = resolution * _SUPERSAMPLE
    half = SIZES[scene.size] * side
    cx, cy = (c * side for c in scene.centre)
    box = (cx - half, cy - half, cx + half, cy + half)
    line = max(2, resolution // 32) * _SUPERSAMPLE if scene.style == "outline" else None
    image = Image.new("RGB", (side, side), PALETTE[scene.background])
    body = Image.new("RGB", (side, side), PALETTE[scene.color])
    if line is None and scene.pattern != "solid":
        period = max(5, resolution // 10) * _SUPERSAMPLE
        body.paste(shade(scene.color), mask=_pattern_mask(scene.pattern, side, period))
    image.paste(body, mask=_shape_mask(scene.shape, box, side, line))
    return image.resize((resolution, resolution), Image.Resampling.BOX)

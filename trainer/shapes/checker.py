"""What an image of the shapes world shows, measured from its pixels; the three factors against it.

No learned model: the background is the commonest palette colour along the border; the object is
the largest connected region that is far from it (holes filled, so an outline counts as its shape);
its colour is the commonest palette colour in its core; its shape comes from geometry of the
filled region (how much of its box it fills, how convex it is, where its mass sits); it is an
outline when its deepest interior is background. Robust to mild noise and blur (the tests measure
how robust), since generated images are imperfect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from .world import CELL_CENTRES, HELD_OUT, PALETTE, Concept, Scene, shade

INK_DISTANCE = 50.0     # RGB distance from the background above which a pixel belongs to the object
PURE_DISTANCE = 70.0  # a pixel further than this from every mixture counts as this far (noise, artefacts)
MIN_OBJECT_PIXELS = 12  # a smaller largest region is read as "no object" (at 64 px a small shape is ~250)
_NAMES = tuple(PALETTE)
_COLOURS = np.array([PALETTE[n] for n in _NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Measured:
    background: str
    color: str | None                      # None (and shape, cell, bbox None) when no object was found
    shape: str | None
    cell: tuple[int, int] | None           # (column, row) of the object's box centre
    bbox: tuple[int, int, int, int] | None  # left, top, right, bottom (exclusive), pixels
    style: str | None                      # "filled" or "outline"
    fill: float = 0.0                      # object pixels / box pixels
    solidity: float = 0.0                  # object pixels / convex hull area

    def shows(self, concept: Concept) -> bool:
        return getattr(self, concept.kind) == concept.value


def _nearest(pixels: np.ndarray) -> np.ndarray:
    """Index into PALETTE of the nearest colour for each RGB row of `pixels`."""
    d = ((pixels[:, None, :].astype(np.float32) - _COLOURS[None, :, :]) ** 2).sum(-1)
    return d.argmin(1)


def _commonest(pixels: np.ndarray) -> str:
    return _NAMES[np.bincount(_nearest(pixels), minlength=len(_NAMES)).argmax()]


def _reach(seeds: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Every pixel of `within` 4-connected to `seeds` (grown a step at a time until it stops)."""
    cur = seeds & within
    while True:
        p = np.pad(cur, 1)
        grown = (cur | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]) & within
        if (grown == cur).all():
            return cur
        cur = grown


def _neighbours(mask: np.ndarray, pad: bool) -> list[np.ndarray]:
    p = np.pad(mask, 1, constant_values=pad)
    h, w = mask.shape
    return [p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]


def _dilate(mask: np.ndarray) -> np.ndarray:
    return np.logical_or.reduce(_neighbours(mask, False))


def _close(mask: np.ndarray) -> np.ndarray:
    """3x3 dilation then erosion: bridges one-pixel gaps (a thin outline broken by noise)."""
    return np.logical_and.reduce(_neighbours(_dilate(mask), True))


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest region of `mask`, counting pixels one gap apart as connected (a thin diagonal
    line touches only at corners, so regions are found on the mask grown by a pixel)."""
    grown = _dilate(mask)
    left, best = grown.copy(), np.zeros_like(mask)
    while left.sum() > best.sum():
        seed = np.zeros_like(mask)
        seed[np.unravel_index(left.argmax(), left.shape)] = True
        region = _reach(seed, left)
        left &= ~region
        if (region & mask).sum() > best.sum():
            best = region & mask
    return best


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    border = np.zeros_like(mask)
    border[[0, -1], :] = border[:, [0, -1]] = True
    return ~_reach(border, ~mask)


def _erode(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _depth(mask: np.ndarray) -> np.ndarray:
    """How many 4-neighbour erosions each pixel survives (its distance from the outside)."""
    depth = np.zeros(mask.shape, dtype=np.int32)
    while mask.any():
        depth += mask
        mask = _erode(mask)
    return depth


def _hull_area(mask: np.ndarray) -> float:
    """Area of the convex hull of the mask's pixel squares (monotone chain over each row's ends)."""
    points = []
    for y in np.flatnonzero(mask.any(1)):
        xs = np.flatnonzero(mask[y])
        points += [(xs[0], y), (xs[0], y + 1), (xs[-1] + 1, y), (xs[-1] + 1, y + 1)]
    points = sorted(set((int(x), int(y)) for x, y in points))

    def half(pts):
        out = []
        for p in pts:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]
    hull = half(points) + half(points[::-1])
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1])))


def points(mask: np.ndarray, bins: int = 48, contrast: float = 1.3) -> int:
    """How many points stick out of the region: peaks of its outline's distance from the centroid
    over angle, each at least `contrast` times the lowest distance within 40 degrees either side
    (a star has 5; a triangle 3; a square or diamond 4; a circle or a shapeless blob few or none)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    edge = mask & ~_erode(mask)
    ey, ex = np.nonzero(edge)
    angle = ((np.arctan2(ey + 0.5 - cy - 0.5, ex + 0.5 - cx - 0.5) + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    radius = np.full(bins, np.nan)
    for a, r in zip(angle, np.hypot(ey - cy, ex - cx)):
        radius[a] = r if np.isnan(radius[a]) else max(radius[a], r)
    if np.isnan(radius).all():
        return 0
    known = np.flatnonzero(~np.isnan(radius))   # angles no edge pixel fell in: between their neighbours
    radius = np.interp(np.arange(bins), known, radius[known], period=bins)
    radius = (np.roll(radius, 1) + radius + np.roll(radius, -1)) / 3
    reach = max(1, bins * 40 // 360)
    window = np.stack([np.roll(radius, k) for k in range(-reach, reach + 1)])
    peak = (radius >= window.max(0)) & (radius >= contrast * window.min(0))
    # adjacent peak bins (a flat top) are one point
    return int((peak & ~np.roll(peak, 1)).sum()) if not peak.all() else 0


def classify_shape(fill: float, solidity: float, mass_below_centre: float, n_points: int = 5) -> str:
    """Shape from geometry. Ideal values: square fill 1; circle fill 0.79; triangle and diamond
    fill 0.5, the triangle's mass 1/6 of its height below its box centre, the diamond's on it;
    star fill 0.43, solidity 0.62 and five points (every other shape is convex, solidity ~1). A
    concave region without five or more points (a generated blob) is read by its fill."""
    if solidity < 0.8 and n_points >= 5:
        return "star"
    if fill > 0.88:
        return "square"
    if fill > 0.66:
        return "circle"
    return "triangle" if mass_below_centre > 0.08 else "diamond"


def _cell(centre: float, side: int) -> int:
    return int(np.abs(np.array(CELL_CENTRES) - centre / side).argmin())


def _segment_residual(rgb: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each pixel from the colour segment a-b (every mixture of the two)."""
    ab = b - a
    t = np.clip(((rgb - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    return np.sqrt(((rgb - a - t[:, None] * ab) ** 2).sum(-1))


def _object_colour(rgb: np.ndarray, background: str) -> str:
    """The palette colour that best explains the object's pixels as mixtures of it, its pattern
    shade and the background (blur mixes edges with the background: a blue line on red has
    purple-looking edges, which a nearest-colour vote would read as purple)."""
    bg = np.array(PALETTE[background], dtype=np.float32)
    best, best_cost = None, np.inf
    for name in _NAMES:
        if name == background:
            continue
        fg, sh = np.array(PALETTE[name], dtype=np.float32), np.array(shade(name), dtype=np.float32)
        residual = np.minimum.reduce([_segment_residual(rgb, bg, fg), _segment_residual(rgb, bg, sh),
                                      _segment_residual(rgb, sh, fg)])
        cost = float(np.minimum(residual, PURE_DISTANCE).sum())
        if cost < best_cost:
            best, best_cost = name, cost
    return best


def _distance_from(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.sqrt(((rgb - np.array(colour, dtype=np.float32)) ** 2).sum(-1))


def measure(image: Image.Image) -> Measured:
    """What `image` shows, by measurement (see the module docstring)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w, _ = rgb.shape
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = _commonest(border)
    from_bg = _distance_from(rgb, PALETTE[background])
    region = _largest_region(from_bg > INK_DISTANCE)
    if region.sum() < MIN_OBJECT_PIXELS:
        return Measured(background=background, color=None, shape=None, cell=None, bbox=None, style=None)
    color = _object_colour(rgb[region], background)
    # Now that both colours are known, a pixel is object when it is closer to the object's colour or
    # its shade than to the background: blur spreads an edge evenly both ways, so this puts the edge
    # back about where it was drawn.
    ink = (from_bg > INK_DISTANCE) & (from_bg > np.minimum(_distance_from(rgb, PALETTE[color]),
                                                           _distance_from(rgb, shade(color))))
    region = _largest_region(ink)
    if region.sum() < MIN_OBJECT_PIXELS:
        return Measured(background=background, color=None, shape=None, cell=None, bbox=None, style=None)
    solid = _fill_holes(_close(region))
    ys, xs = np.nonzero(solid)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    box_w, box_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    fill = float(solid.sum()) / (box_w * box_h)
    solidity = float(solid.sum()) / _hull_area(solid)
    below = (ys.mean() + 0.5 - (bbox[1] + bbox[3]) / 2) / box_h
    # Outline or filled: is the deepest part of the filled region ink?
    depth = _depth(solid)
    deepest = depth >= max(1, depth.max() - 1)
    style = "filled" if ink[deepest].mean() > 0.5 else "outline"
    return Measured(background=background, color=color,
                    shape=classify_shape(fill, solidity, below, points(solid) if solidity < 0.8 else 0),
                    cell=(_cell((bbox[0] + bbox[2]) / 2, w), _cell((bbox[1] + bbox[3]) / 2, h)),
                    bbox=bbox, style=style, fill=round(fill, 4), solidity=round(solidity, 4))


# --------------------------------------------------------------------------- the three factors

def agrees(measured: Measured, scene: Scene) -> bool:
    """The image shows what the scene asked for: shape, colour, background, cell and style."""
    return (measured.shape, measured.color, measured.background, measured.cell, measured.style) == \
        (scene.shape, scene.color, scene.background, scene.cell, scene.style)


def _check_pairs(images: Sequence, scenes: Sequence, what: str) -> None:
    if len(images) != len(scenes):
        raise ValueError(f"{what}: {len(images)} images for {len(scenes)} scenes; one image per scene")
    if not scenes:
        raise ValueError(f"{what}: no images to score")


def accuracy(images: Sequence[Image.Image], concept: Concept) -> float:
    """Fraction of `images` that show `concept` (whatever else they show)."""
    if not images:
        raise ValueError("accuracy: no images to score")
    return sum(measure(im).shows(concept) for im in images) / len(images)


def flexibility(images: Sequence[Image.Image], scenes: Sequence[Scene]) -> float:
    """Fraction of `images` that show everything their scene asked for: the concept in the asked
    colour, cell and background (the scenes are the prompts, each with the concept in a new context)."""
    _check_pairs(images, scenes, "flexibility")
    return sum(agrees(measure(im), s) for im, s in zip(images, scenes)) / len(scenes)


def preservation(base_images: Sequence[Image.Image], tuned_images: Sequence[Image.Image],
                 scenes: Sequence[Scene], held_out: tuple[Concept, ...] = HELD_OUT) -> float:
    """Fraction of the prompts without a held-out concept whose measured shape, colour and
    background are the same in the tuned model's image as in the base model's."""
    _check_pairs(base_images, scenes, "preservation")
    _check_pairs(tuned_images, scenes, "preservation")
    kept = [(b, t) for b, t, s in zip(base_images, tuned_images, scenes) if not any(s.shows(c) for c in held_out)]
    if not kept:
        raise ValueError("preservation: every scene shows a held-out concept; it needs prompts without one")
    same = 0
    for b, t in kept:
        mb, mt = measure(b), measure(t)
        same += (mb.shape, mb.color, mb.background) == (mt.shape, mt.color, mt.background)
    return same / len(kept)

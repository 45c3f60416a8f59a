"""Training images: find and check them before any model loads, read them one way, batch them.

`scan_dataset` turns a folder into a `DatasetReport` (usable images, captions, problems,
warnings) or raises `DataError` with one clear sentence; `load_image` is the single way an image
becomes RGB pixels (EXIF rotation, alpha over white, CMYK, 16-bit); `prepare_image` crops and
scales to a tensor; buckets group images of similar aspect ratio; `ImageDataset` ties it together
for a DataLoader. torch is imported only where tensors are made, so scanning stays light.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import CROP_MODES  # one list of crop modes for config and data

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp"}
_EXTS_SHOWN = ", ".join(sorted(IMAGE_EXTS, key=[".jpg", ".jpeg", ".png", ".webp"].index))
CAPTION_EXT = ".txt"              # sidecar caption: img_001.png + img_001.txt
METADATA_FILE = "metadata.jsonl"  # Hugging Face imagefolder captions: {"file_name": ..., "text": ...}
# Duplicates: images whose 16x16 grey thumbnails differ by less than this mean absolute value
# (0-255 scale). Re-encoding (PNG <-> JPEG q>=75) stays below ~2; different photos are far above.
_THUMB = 16
_DUP_MAX_DIFF = 3.0
_LIST_MAX = 10                    # how many names a warning lists before "and N more"
# Largest image decoded (width x height), checked from the header before any pixel is decoded: a
# 190 KB PNG can declare 13,000 x 13,000 pixels and cost a gigabyte. 64 MP is above every camera
# most people own (a 50 MP full-frame body is 8,688 x 5,792) and far above any training size.
MAX_IMAGE_PIXELS = 64_000_000


class DataError(ValueError):
    """The training data cannot be used as given; the message names the folder or file."""


@dataclass(frozen=True)
class ImageItem:
    path: Path
    width: int                    # after EXIF rotation, i.e. as the model will see it
    height: int
    caption: str | None = None    # None: the instance prompt is used


@dataclass
class DatasetReport:
    data_dir: Path
    images: list[ImageItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)     # "name: why", one per unreadable file
    skipped: list[str] = field(default_factory=list)      # names of unreadable files left out
    duplicates: list[tuple[str, ...]] = field(default_factory=list)  # groups of near-identical images
    warnings: list[str] = field(default_factory=list)     # sentences for the user; nothing fatal
    captions: int = 0                                     # images that have a caption

    def summary(self) -> str:
        """One line for logs and the UI."""
        parts = [f"{len(self.images)} image(s)", f"{self.captions} captioned"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate group(s)")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning(s)")
        return f"{self.data_dir}: " + ", ".join(parts)


# --- reading one image --------------------------------------------------------------------
class _BadImage(Exception):
    """Internal: why one file cannot be decoded (scan_dataset words it per file)."""


def load_image(path: str | Path, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Read `path` as an 8-bit RGB image, upright, transparent areas on white.

    `draft_size=(w, h)` lets the JPEG decoder skip detail: it decodes at 1/2, 1/4 or 1/8 scale
    while both sides stay >= (w, h), which makes 12-megapixel photos cheap to train at 512 px.
    Raises DataError naming the file when it is empty, not an image, corrupt or truncated.
    """
    try:
        return _decode(Path(path), draft_size)
    except _BadImage as e:
        raise DataError(f"cannot read image '{path}': {e}") from None


def image_problem(path: str | Path, *, draft_size: tuple[int, int] | None = None) -> str | None:
    """Why `path` cannot be read as a training image, in one line without the path; None if it can.

    The same decode as `load_image`, for a caller that checks a file before keeping it (the lab's
    uploads), so what it keeps is what training can read.
    """
    try:
        _decode(Path(path), draft_size)
    except _BadImage as e:
        return str(e)
    return None


def _decode(path: Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    try:
        if path.stat().st_size == 0:
            raise _BadImage("the file is empty (0 bytes)")
    except OSError as e:
        raise _BadImage(e.strerror or str(e)) from None
    try:
        with Image.open(path) as im:
            too_big = pixel_problem(im.size)
            if too_big:
                raise _BadImage(too_big)
            if draft_size is not None and im.format == "JPEG":
                im.draft(None, draft_size)
            im.load()  # decode now: truncation and corruption surface here, not mid-training
            return _to_rgb(ImageOps.exif_transpose(im))
    except _BadImage:
        raise
    except UnidentifiedImageError:
        raise _BadImage("not an image Pillow can read (corrupt, or the extension does not match the content)") from None
    except Image.DecompressionBombError as e:
        raise _BadImage(f"too many pixels to decode safely ({e})") from None
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error...
        raise _BadImage(f"corrupt or truncated ({type(e).__name__}: {e})") from None


def pixel_problem(size: tuple[int, int]) -> str | None:
    """Why an image of `size` (from its header) is too large to decode, or None."""
    w, h = size
    if w * h <= MAX_IMAGE_PIXELS:
        return None
    return (f"{w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of {MAX_IMAGE_PIXELS / 1e6:.0f}; "
            "scale it down first")


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_rgb(im)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        # Transparent pixels often hold black or junk colour; training on them teaches that
        # junk. Composite over white, the background most cut-out product shots assume.
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    try:
        return im.convert("RGB")  # RGB (a copy, detached from the file), L, 1, P, CMYK, YCbCr
    except ValueError as e:
        raise _BadImage(f"colour mode {mode!r} cannot be converted to RGB ({e})") from None


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float greyscale -> 8-bit, keeping the picture's contrast."""
    arr = np.asarray(im, dtype=np.float64)
    hi = float(arr.max()) if arr.size else 0.0
    if im.mode.startswith("I;16"):
        scale = 255.0 / 65535.0           # a 16-bit container: full range is 0..65535
    elif im.mode == "F" and hi <= 1.0:
        scale = 255.0                     # float images in 0..1
    elif hi <= 255.0:
        scale = 1.0                       # 8-bit data in a wider container
    elif hi <= 65535.0:
        scale = 255.0 / 65535.0           # 16-bit PNGs that Pillow opened as mode "I"
    else:
        scale = 255.0 / hi                # anything wider: stretch to fit
    grey = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


# --- scanning a folder ------------------------------------------------------------------------
def scan_dataset(data_dir: str | Path, *, min_images: int = 1, skip_bad: bool = False,
                 resolution: int | None = None) -> DatasetReport:
    """Check a training folder (top level only) and describe what training will use.

    Every image is decoded once here, so a bad file stops the run before a model loads.
    Captions come from `name.txt` beside `name.png`, or from `metadata.jsonl`; a sidecar wins.
    `resolution` (optional) adds a warning for images smaller than the training size.
    Raises DataError for a missing folder, a file, no images, unreadable images (unless
    `skip_bad`, which skips and lists them) and fewer than `min_images` usable images.
    """
    if isinstance(min_images, bool) or not isinstance(min_images, int) or min_images < 1:
        raise ValueError(f"min_images={min_images!r}; must be an integer >= 1")
    if not str(data_dir).strip():
        raise DataError("data_dir is empty; give the folder that holds the training images")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataError(f"data_dir '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"data_dir '{root}' is a file, not a folder; give the folder that holds the images")
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as e:
        raise DataError(f"data_dir '{root}' cannot be read: {e.strerror or e}") from None

    report = DatasetReport(data_dir=root)
    images, texts, others, subdirs, hidden = [], {}, [], [], []
    metadata = None
    for p in entries:
        if p.name.startswith("."):
            hidden.append(p.name)
        elif p.is_dir():
            subdirs.append(p.name + "/")
        elif p.suffix.lower() in IMAGE_EXTS:
            images.append(p)
        elif p.name == METADATA_FILE:
            metadata = p
        elif p.suffix.lower() == CAPTION_EXT:
            texts[p.stem] = p
        else:
            others.append(p.name)

    if not images:
        found = _names([p.name for p in entries if not p.name.startswith(".") and p.is_file()] + subdirs)
        msg = f"no images ({_EXTS_SHOWN}) in '{root}'; found: {found or 'nothing'}"
        if subdirs:
            msg += " (subfolders are not searched)"
        raise DataError(msg)

    meta_captions = _read_metadata(metadata, {p.name for p in images}, report.warnings) if metadata else {}
    captions = _pair_captions(images, texts, meta_captions, report.warnings)

    thumbs, bad = [], []
    for p in images:
        try:
            img = _decode(p)
        except _BadImage as e:
            report.problems.append(f"{p.name}: {e}")
            bad.append(p.name)
            continue
        report.images.append(ImageItem(p, img.width, img.height, captions.get(p.name)))
        thumbs.append(_thumbnail(img))

    if report.problems:
        if not skip_bad:
            raise DataError(f"{len(report.problems)} unreadable image(s) in '{root}': "
                            + "; ".join(report.problems)
                            + ". Fix or remove them, or skip them (skip_bad_images=True)")
        report.skipped = bad
        report.warnings.append(f"skipped {len(report.skipped)} unreadable image(s): {_names(report.skipped)}")

    if len(report.images) < min_images:
        extra = f" ({len(report.skipped)} unreadable skipped)" if report.skipped else ""
        raise DataError(f"{len(report.images)} usable image(s) in '{root}'{extra}; need at least {min_images}")

    report.captions = sum(1 for it in report.images if it.caption)
    report.duplicates = _find_duplicates([it.path.name for it in report.images], thumbs)
    if report.duplicates:
        groups = "; ".join(" = ".join(g) for g in report.duplicates)
        report.warnings.append(f"{len(report.duplicates)} group(s) of duplicate images: {groups} "
                               "(a duplicate counts twice in training; keep one of each)")
    if resolution is not None:
        small = [f"{it.path.name} ({it.width}x{it.height})" for it in report.images
                 if min(it.width, it.height) < resolution]
        if small:
            report.warnings.append(f"{len(small)} image(s) have a short side below the training resolution "
                                   f"{resolution} px and will be upscaled (soft results): {_names(small)}")
    for name in others[:_LIST_MAX]:
        report.warnings.append(f"{name} ignored: not an image")
    if len(others) > _LIST_MAX:
        report.warnings.append(f"{len(others) - _LIST_MAX} more non-image file(s) ignored")
    hidden_images = [n for n in hidden if Path(n).suffix.lower() in IMAGE_EXTS]
    if hidden_images:  # e.g. macOS "._photo.jpg" resource forks: not pictures
        report.warnings.append(f"hidden file(s) ignored: {_names(hidden_images)}")
    if subdirs:
        report.warnings.append(f"subfolders are not searched, only the top level of '{root}': {_names(subdirs)}")
    return report


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LIST_MAX])
    return shown + (f" and {len(names) - _LIST_MAX} more" if len(names) > _LIST_MAX else "")


def _read_metadata(path: Path, image_names: set[str], warnings: list[str]) -> dict[str, str]:
    """file_name -> caption from metadata.jsonl; each bad line becomes a warning with its number."""
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as e:
        warnings.append(f"{path.name} cannot be read ({e.strerror or e}); its captions are not used")
        return out
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            warnings.append(f"{where}: not valid JSON ({e.msg}); line ignored")
            continue
        if not isinstance(row, dict):
            warnings.append(f"{where}: expected an object like {{\"file_name\": ..., \"text\": ...}}; line ignored")
            continue
        name, text = row.get("file_name"), row.get("text")
        if not isinstance(name, str) or not name.strip():
            warnings.append(f"{where}: no \"file_name\"; line ignored")
            continue
        if not isinstance(text, str):
            warnings.append(f"{where}: no \"text\" string for '{name}'; line ignored")
            continue
        name = name.strip().removeprefix("./")
        if name not in image_names:
            warnings.append(f"{where}: '{name}' is not an image in the folder; line ignored")
            continue
        if name in out:
            warnings.append(f"{where}: '{name}' already has a caption from line {first_line[name]}; line ignored")
            continue
        out[name], first_line[name] = text.strip(), n
    return out


def _pair_captions(images: list[Path], texts: dict[str, Path], meta: dict[str, str],
                   warnings: list[str]) -> dict[str, str]:
    """image name -> caption; empty captions are left out (the instance prompt stands in)."""
    out: dict[str, str] = {}
    for p in images:
        sidecar = texts.get(p.stem)
        if sidecar is not None:
            try:
                text = sidecar.read_text(encoding="utf-8-sig", errors="replace").strip()
            except OSError as e:
                warnings.append(f"{sidecar.name} cannot be read ({e.strerror or e}); not used as a caption")
                text = ""
            if p.name in meta and meta[p.name] != text:
                warnings.append(f"{p.name} has captions in both {sidecar.name} and {METADATA_FILE}; "
                                f"using {sidecar.name}")
            if not text:
                warnings.append(f"{sidecar.name} is empty; {p.name} uses the instance prompt")
                continue
            out[p.name] = text
        elif meta.get(p.name):
            out[p.name] = meta[p.name]
    stems = {p.stem for p in images}
    orphans = sorted(t.name for s, t in texts.items() if s not in stems)
    for name in orphans[:_LIST_MAX]:
        warnings.append(f"{name} ignored: no image with the same name")
    return out


def _thumbnail(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((_THUMB, _THUMB), Image.Resampling.BOX), dtype=np.float32).ravel()


def _find_duplicates(names: list[str], thumbs: list[np.ndarray]) -> list[tuple[str, ...]]:
    """Groups of names whose thumbnails are near-identical (union-find over close pairs).

    |mean(a) - mean(b)| <= mean|a - b|, so sorting by mean brightness bounds the pairs worth
    comparing: near-linear for real datasets instead of all n^2 pairs.
    """
    if len(thumbs) < 2:
        return []
    t = np.stack(thumbs)
    means = t.mean(axis=1)
    order = np.argsort(means, kind="stable")
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sorted_means = means[order]
    for k, i in enumerate(order):
        end = int(np.searchsorted(sorted_means, sorted_means[k] + _DUP_MAX_DIFF, side="right"))
        cand = order[k + 1:end]
        if len(cand) == 0:
            continue
        close = cand[np.abs(t[cand] - t[i]).mean(axis=1) < _DUP_MAX_DIFF]
        for j in close:
            parent[find(int(j))] = find(int(i))
    groups: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        groups.setdefault(find(i), []).append(name)
    return sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)


# --- one image -> tensor ----------------------------------------------------------------------
def prepare_image(img: Image.Image, resolution: int, crop: str = "center", flip: bool = False,
                  rng: random.Random | None = None, bucket: tuple[int, int] | None = None):
    """Scale and crop `img` to a float tensor (3, H, W) in [-1, 1].

    center/random: shorter side -> `resolution`, then a square crop (middle, or drawn from `rng`).
    bucket: scale to cover `bucket=(width, height)` and centre-crop to it.
    `flip=True` mirrors horizontally with probability 1/2, drawn from `rng` (augmentation).
    Randomness only ever comes from `rng`, so the caller decides what is reproducible.
    """
    import torch

    if crop not in CROP_MODES:
        raise ValueError(f"crop={crop!r}; pick one of {list(CROP_MODES)}")
    if crop == "bucket":
        if bucket is None:
            raise ValueError("crop='bucket' needs bucket=(width, height); see make_buckets/assign_bucket")
        tw, th = _check_size("bucket", bucket)
    else:
        if bucket is not None:
            raise ValueError(f"bucket={bucket!r} is only used with crop='bucket', not crop={crop!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution={resolution!r}; must be a positive integer")
        tw = th = resolution
    if (crop == "random" or flip) and rng is None:
        raise ValueError("crop='random' and flip=True draw from rng; pass rng=random.Random(seed)")
    if img.mode != "RGB":
        img = img.convert("RGB")

    w, h = img.size
    scale = max(tw / w, th / h)  # cover the target; for a square this is "shorter side = resolution"
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    if crop == "random":
        left, top = rng.randint(0, nw - tw), rng.randint(0, nh - th)
    else:
        left, top = (nw - tw) // 2, (nh - th) // 2
    img = img.crop((left, top, left + tw, top + th))
    if flip and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _check_size(name: str, size: Any) -> tuple[int, int]:
    try:
        w, h = size
    except (TypeError, ValueError):
        raise ValueError(f"{name}={size!r}; must be (width, height)") from None
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (w, h)):
        raise ValueError(f"{name}={size!r}; width and height must be positive integers")
    return w, h


# --- aspect-ratio buckets -----------------------------------------------------------------------
def make_buckets(resolution: int, step: int | None = None, max_ratio: float = 2.0) -> list[tuple[int, int]]:
    """(width, height) sizes of about resolution^2 pixels, sides multiples of `step`.

    Training at one square size crops wide and tall pictures; buckets keep their framing at the
    same pixel cost. `step` defaults to 64 (8 below 256 px, where 64 leaves too few shapes).
    Sorted from tallest to widest.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8 or resolution % 8:
        raise ValueError(f"resolution={resolution!r}; must be a multiple of 8 and at least 8")
    if step is None:
        step = 64 if resolution >= 256 else 8
    if isinstance(step, bool) or not isinstance(step, int) or step < 8 or step % 8 or step > resolution:
        raise ValueError(f"step={step!r}; must be a multiple of 8 between 8 and resolution={resolution}")
    if not (isinstance(max_ratio, (int, float)) and math.isfinite(max_ratio) and max_ratio >= 1):
        raise ValueError(f"max_ratio={max_ratio!r}; must be a number >= 1")
    area = resolution * resolution
    buckets = {(resolution, resolution)}
    for w in range(step, area // step + 1, step):
        h = (area // w) // step * step  # largest height that keeps w * h <= area
        if h >= step and max(w / h, h / w) <= max_ratio + 1e-9:
            buckets.add((w, h))
    return sorted(buckets, key=lambda b: (b[0] / b[1], b[0]))


def assign_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to width/height (log scale; ties: larger area)."""
    if not buckets:
        raise ValueError("buckets is empty; build them with make_buckets(resolution)")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height}; width and height must be positive")
    target = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - target), -b[0] * b[1]))


def bucket_batches(items: Sequence[tuple[int, int]], batch_size: int, rng: random.Random,
                   drop_last: bool = False) -> list[list[int]]:
    """Index batches where every index shares a bucket; `items[i]` is example i's bucket.

    Indices are shuffled within each bucket and the batches shuffled across buckets, all from
    `rng`. A bucket's last batch may be smaller unless `drop_last` (small datasets need every image).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; must be an integer >= 1")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, b in enumerate(items):
        groups.setdefault(tuple(b), []).append(i)
    batches = []
    for b in sorted(groups):  # fixed order before shuffling, so only rng decides
        idx = groups[b]
        rng.shuffle(idx)
        for k in range(0, len(idx), batch_size):
            chunk = idx[k:k + batch_size]
            if len(chunk) == batch_size or not drop_last:
                batches.append(chunk)
    rng.shuffle(batches)
    return batches


# --- the dataset --------------------------------------------------------------------------------
class ImageDataset:
    """Map-style dataset over a scanned folder (works with torch's DataLoader without importing torch).

    Example i's crop and flip come from an RNG seeded by (seed, epoch, i), so results do not
    depend on access order or DataLoader workers; call `set_epoch` to vary them per epoch.
    With crop="bucket", batch with `batches()` (as a DataLoader `batch_sampler`).
    """

    def __init__(self, report: DatasetReport, resolution: int, crop: str = "center", flip: bool = False,
                 instance_prompt: str = "", seed: int = 0):
        if crop not in CROP_MODES:
            raise ValueError(f"crop={crop!r}; pick one of {list(CROP_MODES)}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
            raise ValueError(f"resolution={resolution!r}; must be an integer >= 8")
        if not report.images:
            raise DataError(f"no usable images in '{report.data_dir}'")
        self.report = report
        self.resolution = resolution
        self.crop = crop
        self.flip = flip
        self.instance_prompt = instance_prompt
        self.seed = seed
        self.epoch = 0
        self.items = list(report.images)
        missing = [it.path.name for it in self.items if not it.caption]
        if missing and not instance_prompt.strip():
            raise ValueError(f"instance_prompt is empty and {len(missing)} image(s) have no caption: "
                             f"{_names(missing)}")
        self.prompts = [it.caption or instance_prompt for it in self.items]
        if crop == "bucket":
            self.buckets = make_buckets(resolution)
            self.item_buckets = [assign_bucket(it.width, it.height, self.buckets) for it in self.items]
        else:
            self.buckets = [(resolution, resolution)]
            self.item_buckets = [(resolution, resolution)] * len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = range(len(self.items))[i]  # IndexError and negative indices as for a list
        item = self.items[i]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")  # str seeds are stable across runs
        bucket = self.item_buckets[i]
        side = max(bucket)
        img = load_image(item.path, draft_size=(side, side))
        pixels = prepare_image(img, self.resolution, self.crop, self.flip, rng,
                               bucket if self.crop == "bucket" else None)
        return {"pixel_values": pixels, "prompt": self.prompts[i], "path": str(item.path)}

    def batches(self, batch_size: int, epoch: int | None = None, drop_last: bool = False) -> list[list[int]]:
        """Shuffled same-size index batches for one epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        return bucket_batches(self.item_buckets, batch_size, random.Random(f"{self.seed}:batches:{epoch}"),
                              drop_last=drop_last)

    @staticmethod
    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        return collate(examples)


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack examples into {"pixel_values": (B, 3, H, W), "prompts": [...], "paths": [...]}."""
    import torch

    if not examples:
        raise ValueError("collate got an empty batch")
    shapes = sorted({tuple(e["pixel_values"].shape) for e in examples})
    if len(shapes) > 1:
        raise ValueError(f"collate got images of different sizes {shapes}; with crop='bucket' batch by "
                         "ImageDataset.batches() so each batch shares one bucket")
    return {"pixel_values": torch.stack([e["pixel_values"] for e in examples]).float().contiguous(),
            "prompts": [e["prompt"] for e in examples],
            "paths": [e["path"] for e in examples]}

"""A dataset folder, described before training: what is there, what is wrong, what the advisor thinks.

`dataset_report` runs the trainer's own check (`trainer.data.scan_dataset`, the same one a run
starts with), so the report never disagrees with what training will do. The advisor's opinion
compares the folder with the published image counts of the recommended method
(`advisor.rules.IMAGE_COUNTS`), the training resolution and the method's use of captions.
"""
from __future__ import annotations

import hashlib
import statistics
from pathlib import Path
from typing import Any

from trainer.vocabulary import METHOD_NAMES
from trainer.data import DataError, scan_dataset

MAX_THUMBNAILS = 48
THUMB_SIZE = 128           # px, longest side
_CAPTIONED_METHODS = ("lora", "full_finetune")  # train on captions; DreamBooth/TI use the instance prompt


def dataset_report(data_dir: str | Path, *, resolution: int | None = None, goal_profile: Any = None,
                   recommendation: Any = None, thumbs_dir: str | Path | None = None,
                   max_thumbnails: int = MAX_THUMBNAILS) -> dict[str, Any]:
    """Describe `data_dir` as training will see it; a JSON-ready dict (see `report_markdown`).

    `resolution` defaults to the recommendation's; `goal_profile` is an advisor Profile or its
    dict; `recommendation` a Recommendation or its `to_dict()`. Thumbnails (small JPEGs, cached by
    file name, size and time) go to `thumbs_dir`, which should be the session's own folder; without
    one no thumbnails are made (never inside a folder on the server that is not ours).
    A folder training cannot use at all gives `ok: False` and the reason in `error`.
    """
    rec = _as_dict(recommendation)
    profile = _as_dict(goal_profile)
    method = rec.get("method") if rec else None
    if method is not None and method not in METHOD_NAMES:
        raise ValueError(f"recommendation method={method!r}; pick one of {list(METHOD_NAMES)}")
    if resolution is None:
        resolution = ((rec.get("train_config") or {}).get("resolution")
                      or (rec.get("hyperparameters") or {}).get("resolution"))
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8):
        raise ValueError(f"resolution={resolution!r}; must be an integer >= 8")
    out: dict[str, Any] = {"data_dir": str(data_dir), "ok": False, "error": None, "count": 0, "sizes": None,
                           "thumbnails": [], "problems": [], "skipped": [], "duplicates": [], "warnings": [],
                           "captions": 0, "method": method, "resolution": resolution, "verdict": None, "opinion": []}
    try:
        report = scan_dataset(data_dir, skip_bad=True, resolution=resolution)
    except DataError as e:
        out["error"] = str(e)
        out["opinion"] = [_no_images_advice(method, profile.get("subject_type"))]
        return out
    items = report.images
    out.update(ok=True, count=len(items), problems=list(report.problems), skipped=list(report.skipped),
               duplicates=[list(g) for g in report.duplicates], warnings=list(report.warnings),
               captions=report.captions, sizes=_sizes(items))
    if thumbs_dir is not None:
        out["thumbnails"] = _thumbnails(items, Path(thumbs_dir), max_thumbnails)
    verdict, opinion = _opinion(items, report, method, resolution, profile)
    out["verdict"], out["opinion"] = verdict, opinion
    return out


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise ValueError(f"expected a dict or an object with to_dict(), got {type(obj).__name__}")


def _sizes(items) -> dict[str, Any]:
    """Smallest, median and largest image by pixel count, as "WxH", plus the short sides."""
    by_area = sorted(items, key=lambda it: (it.width * it.height, it.width))
    pick = lambda it: f"{it.width}x{it.height}"  # noqa: E731
    shorts = [min(it.width, it.height) for it in items]
    return {"min": pick(by_area[0]), "median": pick(by_area[len(by_area) // 2]), "max": pick(by_area[-1]),
            "short_side_min": min(shorts), "short_side_median": statistics.median(shorts),
            "short_side_max": max(shorts)}


def _thumbnails(items, folder: Path, limit: int) -> list[list[str]]:
    """[[path, caption], ...] for the first `limit` images; made once, reused while unchanged."""
    from trainer.data import load_image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for it in items[:limit]:
        st = it.path.stat()
        key = hashlib.sha1(f"{it.path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
        thumb = folder / f"{key}.jpg"
        if not thumb.is_file():
            img = load_image(it.path, draft_size=(THUMB_SIZE, THUMB_SIZE))
            img.thumbnail((THUMB_SIZE, THUMB_SIZE))
            tmp = thumb.with_suffix(".tmp")
            img.save(tmp, "JPEG", quality=85)
            tmp.replace(thumb)  # a reader never sees half a thumbnail
        caption = f"{it.path.name} ({it.width}x{it.height})"
        out.append([str(thumb), caption + (f": {it.caption}" if it.caption else "")])
    return out


def _no_images_advice(method: str | None, subject_type: str | None = None) -> str:
    if method:
        from advisor.recommendation.rules import image_counts

        lo, hi, said = image_counts(method, subject_type)
        return f"Add images: {said}."
    return "Add images (JPEG, PNG or WebP) to the folder, or upload them."


def _opinion(items, report, method: str | None, resolution: int | None,
             profile: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(count verdict: too_few | good | more_than_needed | None, short sentences)."""
    n = len(items)
    verdict, out = None, []
    if method:
        from advisor.recommendation.rules import image_counts

        lo, hi, said = image_counts(method, profile.get("subject_type"))
        if n < lo:
            verdict = "too_few"
            out.append(f"Too few images for {method}: {n}; {said}. Add at least {lo - n} more.")
        elif n > hi:
            verdict = "more_than_needed"
            out.append(f"More images than {method} needs: {n}; {said}. Pick the best {hi}, or expect "
                       "longer training.")
        else:
            verdict = "good"
            out.append(f"Image count is good for {method}: {n} ({said}).")
    else:
        out.append(f"{n} usable image(s). Get a recommendation to compare this with the method's published counts.")
    said_n = profile.get("n_images")
    if isinstance(said_n, int) and said_n != n:
        out.append(f"You told the advisor {said_n} images; the folder has {n} usable. The recommendation's steps "
                   "assumed your number: ask again if it differs much.")
    if resolution:
        small = [it for it in items if min(it.width, it.height) < resolution]
        if small:
            out.append(f"{len(small)} of {n} image(s) are smaller than the training resolution ({resolution} px) "
                       "and will be upscaled, which softens results; use larger originals where you can.")
        else:
            out.append(f"Every image is at least {resolution} px on its short side: good.")
    subject = profile.get("subject_type")
    from advisor.recommendation.rules import ONE_SUBJECT

    one_subject_lora = method == "lora" and subject in ONE_SUBJECT  # trains with an identifier prompt
    if one_subject_lora:
        out.append("Every image trains with the instance prompt, as a LoRA of one subject usually does; captions "
                   "are optional." if report.captions == 0 else
                   f"{report.captions} of {n} images have captions; they replace the instance prompt for those "
                   "images.")
    elif method in _CAPTIONED_METHODS or subject == "style":
        if report.captions == 0:
            why = "a style" if subject == "style" else f"{method}"
            out.append(f"No captions: for {why} caption each image (a .txt beside it with the same name) so the "
                       "model learns what varies; uncaptioned images train with the instance prompt.")
        elif report.captions < n:
            out.append(f"{report.captions} of {n} images have captions; the rest train with the instance prompt.")
        else:
            out.append("Every image has a caption: good.")
    elif method and report.captions:
        out.append(f"{method} trains every image with the instance prompt; the {report.captions} caption(s) "
                   "are not used.")
    if report.duplicates:
        out.append(f"{len(report.duplicates)} group(s) of duplicates: keep one image of each (a duplicate "
                   "counts twice and pushes towards overfitting).")
    if report.skipped:
        out.append(f"{len(report.skipped)} file(s) cannot be read and will be skipped only with "
                   "skip_bad_images=True; better fix or remove them.")
    return verdict, out


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown for the dataset panel."""
    if not report.get("ok"):
        lines = [f"**Dataset not usable:** {report.get('error') or 'unknown problem'}"]
        lines += [f"- {s}" for s in report.get("opinion", [])]
        return "\n".join(lines)
    sizes = report["sizes"]
    lines = [f"**{report['count']} image(s)** in `{report['data_dir']}`, {report['captions']} captioned. "
             f"Sizes: smallest {sizes['min']}, median {sizes['median']}, largest {sizes['max']}."]
    if report.get("opinion"):
        lines += ["", "**What the advisor thinks**"] + [f"- {s}" for s in report["opinion"]]
    if report.get("problems"):
        lines += ["", "**Problems**"] + [f"- {p}" for p in report["problems"]]
    if report.get("duplicates"):
        lines += ["", "**Duplicates**"] + [f"- {' = '.join(g)}" for g in report["duplicates"]]
    other = [w for w in report.get("warnings", []) if "duplicate" not in w and "unreadable" not in w]
    if other:
        lines += ["", "**Notes**"] + [f"- {w}" for w in other]
    return "\n".join(lines)

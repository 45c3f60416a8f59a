"""Class images for DreamBooth's prior preservation, generated with the base model when missing.

The folder is `class_data_dir` when the config gives one, else a shared cache folder keyed by
base model, class prompt and resolution, so a second run of the same class reuses the images
instead of paying for them again. Image i is drawn with seed `seed + i`: the set is
reproducible, and topping up a folder never redraws the images already there.
`prepare_class_images` is the run's step (find, top up, report); `class_pixels` reads one
image the way the training batch needs it.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable

from .data import IMAGE_EXTS, load_image, prepare_image

GEN_BATCH = 4  # images per pipeline call: faster on a GPU, small enough for any card


def class_images_dir(class_data_dir: str, base_folder: Path, class_prompt: str, resolution: int,
                     cache_root: Path | None = None) -> Path:
    """Where the class images live: the given folder, or the shared cache entry for this class."""
    if class_data_dir.strip():
        return Path(class_data_dir).expanduser()
    from .tiny import default_cache_root

    key = hashlib.sha256(f"{Path(base_folder).resolve()}|{class_prompt}|{resolution}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9]+", "-", class_prompt.lower()).strip("-")[:40] or "class"
    return (cache_root or default_cache_root()) / "class_images" / f"{slug}-{key}"


def existing_class_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


def generate_class_images(folder: Path, *, base_folder: Path, class_prompt: str, num_images: int,
                          resolution: int, seed: int, inference_steps: int, device: str = "cpu",
                          dtype=None, on_progress: Callable[[int, int], None] | None = None,
                          should_stop: Callable[[], bool] | None = None) -> int:
    """Top `folder` up to `num_images` images of `class_prompt`; return how many were made.

    Each image is written to a hidden temporary name and renamed, so a run that is killed
    mid-way leaves only whole images, and the next run continues from there.
    """
    import torch

    from .models import load_pipeline, place_pipeline, sampling_kwargs, with_pipeline

    folder.mkdir(parents=True, exist_ok=True)
    have = existing_class_images(folder)
    missing = num_images - len(have)
    if missing <= 0:
        return 0
    (folder / "class_prompt.json").write_text(json.dumps(
        {"class_prompt": class_prompt, "base_model": str(base_folder), "resolution": resolution}) + "\n")
    taken = {p.stem for p in have}
    todo = [i for i in range(num_images + len(have)) if f"class-{i:05d}" not in taken][:missing]

    def draw(pipe) -> int:
        made = 0
        for start in range(0, len(todo), GEN_BATCH):
            if should_stop is not None and should_stop():
                break
            chunk = todo[start:start + GEN_BATCH]
            generators = [torch.Generator(device="cpu").manual_seed(seed + i) for i in chunk]
            images = pipe(prompt=[class_prompt] * len(chunk), num_inference_steps=inference_steps,
                          height=resolution, width=resolution, generator=generators,
                          **sampling_kwargs(pipe, len(chunk))).images
            for i, image in zip(chunk, images):
                tmp = folder / f".class-{i:05d}.png.tmp"
                image.save(tmp, format="PNG")
                tmp.rename(folder / f"class-{i:05d}.png")
                made += 1
            if on_progress is not None:
                on_progress(len(have) + made, num_images)
        return made

    return with_pipeline(lambda: place_pipeline(load_pipeline(base_folder, torch_dtype=dtype), device, dtype), draw)


def prepare_class_images(accelerator, *, class_data_dir: str, base_folder: Path, class_prompt: str, num_images: int,
                         resolution: int, seed: int, inference_steps: int, mixed_precision: str,
                         status: Callable[..., None], should_stop: Callable[[], bool]) -> list[Path]:
    """Find or generate the class images (main process generates; the others wait).

    `status(phase, message, **fields)` reports progress as run events.
    """
    from .training_utils import weight_dtype

    folder = class_images_dir(class_data_dir, base_folder, class_prompt, resolution)
    have = len(existing_class_images(folder))
    if accelerator.is_main_process and have < num_images:
        status("class_images", f"generating {num_images - have} class image(s) of "
               f"'{class_prompt}' in {folder}", done=have, total=num_images)
        # the CPU has no fp16 matmul: weights saved in fp16 (most checkpoints) load as fp32 there
        dtype = weight_dtype(mixed_precision if accelerator.device.type == "cuda" else "no")
        generate_class_images(
            folder, base_folder=base_folder, class_prompt=class_prompt, num_images=num_images,
            resolution=resolution, seed=seed, inference_steps=inference_steps, device=str(accelerator.device),
            dtype=dtype, should_stop=should_stop,
            on_progress=lambda done, total: status("class_images", f"{done}/{total} class images",
                                                   done=done, total=total))
    accelerator.wait_for_everyone()
    images = existing_class_images(folder)[:num_images]
    status("class_images_ready", f"{len(images)} class image(s) in {folder}", folder=str(folder), count=len(images))
    return images


def class_pixels(path: Path, size: tuple[int, int], *, resolution: int, crop: str):
    """One class image as a tensor of the instance batch's `size`."""
    # class images are centre-cropped to the instance batch's shape, so both halves stack
    crop = "bucket" if crop == "bucket" else "center"
    return prepare_image(load_image(path), resolution, crop, False, None, size if crop == "bucket" else None)

"""A run's data: the checked training set, and which images each process takes at each micro-step.

`load_training_data` is the run's data step (scan, warn, build the `ImageDataset`, report).
The index helpers are pure functions of (seed, micro-step, process), so a resumed run, or a
run on more processes, draws what the plan says without replaying the steps before it.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from .training_utils import epoch_order

if TYPE_CHECKING:
    from .data import ImageDataset


def load_training_data(data_dir: str, *, method, method_name: str, resolution: int, crop: str, random_flip: bool,
                       instance_prompt: str, seed: int, skip_bad: bool,
                       status: Callable[..., None]) -> ImageDataset:
    """Scan `data_dir` and build the dataset, reporting through `status(phase, message, **fields)`.

    A method that trains every image with `instance_prompt` drops the captions (with a warning),
    so what trains is what the run's events say.
    """
    from .data import ImageDataset, scan_dataset

    status("scanning_data", f"checking images in {data_dir}")
    report = scan_dataset(data_dir, min_images=1, skip_bad=skip_bad, resolution=resolution)
    for warning in report.warnings:
        status("data_warning", warning, warning=True)
    if not method.uses_captions and report.captions:
        status("data_warning", f"{method_name} trains every image with instance_prompt; "
               f"{report.captions} caption(s) are not used", warning=True)
        report = replace(report, images=[replace(it, caption=None) for it in report.images], captions=0)
    dataset = ImageDataset(report, resolution, crop, random_flip, instance_prompt, seed)
    method.check_prompts(dataset.prompts)
    status("data_ready", report.summary(), num_images=len(dataset))
    return dataset


def batches_per_epoch(n_batches: int, num_processes: int) -> int:
    """Micro-batches each process takes per epoch (the last ones wrap round to the start)."""
    return max(1, math.ceil(n_batches / num_processes))


def rank_batches(every: list[list[int]], per_epoch: int, num_processes: int, process_index: int) -> list[list[int]]:
    """This process's share of one epoch's batches: rank p takes every P-th batch, wrapping."""
    P, p = num_processes, process_index
    return [every[(j * P + p) % len(every)] for j in range(per_epoch)]


def class_picks(n_class: int, micro: int, n: int, num_processes: int, process_index: int, seed: int) -> list[int]:
    """Indices of the `n` class images paired with micro-batch `micro` of this process.

    One fixed shuffle of the class images is walked in order by all processes together, so
    every class image is used before any repeats.
    """
    order = epoch_order(n_class, 0, seed + 1)
    first = (micro * num_processes + process_index) * n
    return [order[(first + j) % len(order)] for j in range(n)]

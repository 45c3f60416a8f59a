"""A run's data: the checked training set, and which images each process takes at each micro-step.

`load_training_data` is the run's data step (scan, warn, build the `ImageDataset`, report).
The index helpers are pure functions of (seed, micro-step, process), so a resumed run, or a
run on more processes, draws what the plan says without replaying the steps before it.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

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


class MicroBatchPlan:
    """Which images and prompts micro-batch number `micro` of this process takes.

    Instance images (a key for the latent cache and a loader of their pixels) and, for
    DreamBooth with prior preservation, one class image per instance image at the same
    shape, with the class prompt. A pure function of (seed, micro): resuming at any step
    draws what the uninterrupted run drew.
    """

    def __init__(self, dataset: "ImageDataset", *, batch_size: int, num_processes: int, process_index: int,
                 seed: int, class_images: list | None = None, class_prompt: str = "", resolution: int = 512,
                 crop: str = "center"):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_processes, self.process_index = num_processes, process_index
        self.class_images, self.class_prompt = list(class_images or []), class_prompt
        self.resolution, self.crop = resolution, crop
        self.per_epoch = batches_per_epoch(len(dataset.batches(batch_size, epoch=0)), num_processes)
        self._epoch: tuple[int, list[list[int]]] = (-1, [])

    def take(self, micro: int) -> dict[str, Any]:
        """{"images": [(key, load_pixels)], "prompts", "n_instance", "epoch"} for `micro`."""
        from .prior import class_pixels

        ds = self.dataset
        epoch, k = divmod(micro, self.per_epoch)
        if self._epoch[0] != epoch:
            every = ds.batches(self.batch_size, epoch=epoch)
            self._epoch = (epoch, rank_batches(every, self.per_epoch, self.num_processes, self.process_index))
        ds.set_epoch(epoch)
        indices = self._epoch[1][k]
        images = [(str(ds.items[i].path), lambda i=i: ds[i]["pixel_values"]) for i in indices]
        prompts = [ds.prompts[i] for i in indices]
        if self.class_images:
            size = ds.item_buckets[indices[0]]
            for j in class_picks(len(self.class_images), micro, len(indices), self.num_processes,
                                 self.process_index, self.seed):
                path = self.class_images[j]
                images.append(((str(path), size), lambda path=path, size=size: class_pixels(
                    path, size, resolution=self.resolution, crop=self.crop)))
                prompts.append(self.class_prompt)
        return {"images": images, "prompts": prompts, "n_instance": len(indices), "epoch": epoch}

"""The training loop: one run, from a TrainConfig to a run folder, for every method.

batch -> latents (VAE, or cached) -> noise (+ offset) -> timesteps -> UNet prediction ->
loss (MSE, optional min-SNR weights; DreamBooth's prior loss on the class half of the batch) ->
backward (accelerate: mixed precision, accumulation, DDP) -> clip -> step -> event.

The method object (trainer.methods) decides which weights train and how they are saved; this
file never branches on the method's name. Everything random is derived from (seed, step), so
a resumed run draws what the uninterrupted run would have drawn. Setup steps live beside what
they set up: batches.py (data and the micro-batch plan), prompt_embeddings.py, prior.py (class
images), samples.py, signals.py (stop requests), memory.py (GPU memory held, out-of-memory advice).
"""
from __future__ import annotations

import math
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .batches import MicroBatchPlan, load_training_data
from .config import TrainConfig
from .events import emit, error_line
from .memory import is_out_of_memory, out_of_memory_message, vram_fields
from .checkpoints import (check_run_folder, load_checkpoint, register_trainable_checkpointing, resume_path,
                          save_checkpoint, trained_parameters)
from .prompt_embeddings import PromptEmbeddings
from .signals import StopRequest
from .training_utils import (cast_weights, check_8bit_adam_available, make_accelerator, make_lr_scheduler,
                             make_optimizer, min_snr_weights, seed_everything, step_generator, vae_latents,
                             weight_dtype)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss stopped being a finite number)."""


def train(config: TrainConfig, *, resume: str | None = None, progress: bool = True) -> str:
    """Run one training run into `config.output_dir`; return "completed" or "stopped".

    Failures are recorded in the run folder (an `error` and an `end` event with status
    "failed", the traceback in `error.log`) and then re-raised.
    """
    return TrainingRun(config, resume=resume, progress=progress).run()


class TrainingRun:
    def __init__(self, config: TrainConfig, *, resume: str | None = None, progress: bool = True):
        self.config = config
        self.resume = resume
        self.progress = progress
        self.run_dir = Path(config.output_dir)
        self.step = 0
        self.stop = StopRequest()  # SIGINT/SIGTERM: finish the step, save, end "stopped"
        self.saved_step = -1   # step of the newest checkpoint this process wrote or loaded
        self.accelerator = None

    # --- entry point and bookkeeping --------------------------------------------------------
    def run(self) -> str:
        import torch

        check_run_folder(self.run_dir, self.resume)
        with self.stop:
            self.started_at = time.time()
            try:
                self.accelerator = acc = make_accelerator(self.config.mixed_precision,
                                                          self.config.gradient_accumulation_steps)
                if acc.is_main_process:
                    self.config.save(self.run_dir / "config.json")
                self.log("start", 0, pid=os.getpid(), host=socket.gethostname(), method=self.config.method,
                         base_model=self.config.base_model, max_train_steps=self.config.max_train_steps,
                         resume=self.resume, device=str(acc.device), num_processes=acc.num_processes,
                         mixed_precision=self.config.mixed_precision, torch=torch.__version__)
                status = self._train()
                self.log("end", self.step, status=status, outputs=getattr(self, "outputs", []),
                         **vram_fields(acc.device, "peak_vram_gb"))
                return status
            except BaseException as e:
                self._record_failure(e)
                raise

    def log(self, kind: str, step: int, **fields: Any) -> None:
        if self.accelerator is None or self.accelerator.is_main_process:
            emit(self.run_dir, kind, step, **fields)

    def status(self, phase: str, message: str, **fields: Any) -> None:
        self.log("status", self.step, phase=phase, message=message, **fields)

    def _record_failure(self, e: BaseException) -> None:
        acc = self.accelerator
        memory = vram_fields(acc.device, "peak_vram_gb") if acc is not None else {}
        message = error_line(e)
        if isinstance(e, KeyboardInterrupt):
            message = "interrupted a second time; stopped without saving a checkpoint"
        elif is_out_of_memory(e):
            message = out_of_memory_message(self.config, self.step, memory.get("peak_vram_gb"))
        if acc is not None and not acc.is_main_process:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "error.log").write_text("".join(traceback.format_exception(e)))
        self.log("error", self.step, error=message, log="error.log")
        self.log("end", self.step, status="failed", error=message, **memory)

    # --- the run, phase by phase --------------------------------------------------------------
    def _train(self) -> str:
        from .methods.registry import get_method
        from .models import load_components, resolve_base_model
        from .prior import prepare_class_images
        from .tiny import TINY_MODELS

        cfg = self.config
        seed_everything(cfg.seed + self.accelerator.process_index)
        if cfg.use_8bit_adam:
            check_8bit_adam_available()
        self.method = get_method(cfg)
        self.dataset = load_training_data(
            cfg.data_dir, method=self.method, method_name=cfg.method, resolution=cfg.resolution, crop=cfg.crop,
            random_flip=cfg.random_flip, instance_prompt=cfg.instance_prompt, seed=cfg.seed,
            skip_bad=cfg.skip_bad_images, status=self.status)
        self.base_folder = resolve_base_model(cfg.base_model)
        if self.accelerator.device.type == "cpu" and cfg.base_model not in TINY_MODELS:
            self.status("device_warning", "no GPU: a full-size model trains on the CPU, which takes hours "
                        "per hundred steps", warning=True)
        self.class_images = []
        if cfg.prior_preservation:
            self.class_images = prepare_class_images(
                self.accelerator, class_data_dir=cfg.class_data_dir, base_folder=self.base_folder,
                class_prompt=cfg.class_prompt, num_images=cfg.num_class_images, resolution=cfg.resolution,
                seed=cfg.seed, inference_steps=cfg.validation_inference_steps,
                mixed_precision=cfg.mixed_precision, status=self.status, should_stop=lambda: self.stop.requested)
        if self.stop.requested:
            return "stopped"
        self.status("loading_model", f"loading {cfg.base_model}")
        self.components = load_components(self.base_folder)
        groups = self.method.setup(self.components)
        self._place_and_prepare(groups)
        self._resume_if_asked()
        status = self._loop()
        if status == "completed":
            self._finish()
        return status

    def _place_and_prepare(self, groups: list[dict[str, Any]]) -> None:
        """Move modules to the device (frozen weights in the mixed-precision dtype, trained ones in
        fp32), build optimizer and schedule, and hand the trained modules to accelerate."""
        import torch

        cfg, acc, c = self.config, self.accelerator, self.components
        dtype = weight_dtype(cfg.mixed_precision)
        modules = c.modules()
        # SDXL's VAE overflows in fp16; diffusers' scripts keep it in fp32 too
        fp32 = ["vae"] if c.arch == "sdxl" and dtype == torch.float16 else []
        cast_weights(modules, acc.device, dtype, fp32_modules=fp32)
        self.trained = [n for n, m in modules.items() if any(p.requires_grad for p in m.parameters())]
        if cfg.gradient_checkpointing:
            c.unet.enable_gradient_checkpointing()
            for name in self.trained:
                if name.startswith("text_encoder"):
                    modules[name].gradient_checkpointing_enable()
        self.method.place(c, acc.device)
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = make_optimizer(groups, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay,
                                        use_8bit_adam=cfg.use_8bit_adam)
        self.lr_scheduler = make_lr_scheduler(self.optimizer, cfg.lr_scheduler, cfg.lr_warmup_steps,
                                              cfg.max_train_steps)
        prepared = acc.prepare(*[modules[n] for n in self.trained], self.optimizer)
        self.wrapped = dict(zip(self.trained, prepared[:-1]))
        self.optimizer = prepared[-1]
        for name, module in modules.items():
            module.train(name in self.trained)
        register_trainable_checkpointing(acc, lambda: trained_parameters(c.modules(), self.trained),
                                         [self.lr_scheduler, *self.method.checkpoint_objects()])
        self.text = PromptEmbeddings(c, self.method, self.wrapped)
        deterministic = cfg.crop != "random" and not cfg.random_flip
        self.vae_cache: dict[Any, Any] | None = {} if (cfg.cache_latents or deterministic) else None
        self.plan = MicroBatchPlan(self.dataset, batch_size=cfg.train_batch_size, num_processes=acc.num_processes,
                                   process_index=acc.process_index, seed=cfg.seed, class_images=self.class_images,
                                   class_prompt=cfg.class_prompt, resolution=cfg.resolution, crop=cfg.crop)

    # --- batches -------------------------------------------------------------------------------
    def _batch(self, micro: int) -> dict[str, Any]:
        """The micro-batch number `micro` of this process: a pure function of (seed, micro)."""
        acc = self.accelerator
        batch = self.plan.take(micro)
        latents = self._latents(batch.pop("images"), step_generator(self.config.seed + 1, micro, acc.process_index))
        f = self._vae_factor()
        return {**batch, "latents": latents, "pixel_size": (latents.shape[-2] * f, latents.shape[-1] * f)}

    def _vae_factor(self) -> int:
        return 2 ** (len(self.components.vae.config.block_out_channels) - 1)

    def _latents(self, images: list[tuple[Any, Any]], generator):
        """VAE latents of (key, load_pixels) pairs, through this run's cache (see vae_latents)."""
        return vae_latents(self.components.vae, images, generator, self.vae_cache, self.config.cache_latents)

    # --- one step ------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any], micro: int):
        import torch
        import torch.nn.functional as F

        from .models import added_conditions

        cfg, c, acc = self.config, self.components, self.accelerator
        sched, latents = c.noise_scheduler, batch["latents"]
        g = step_generator(cfg.seed, micro, acc.process_index)
        b, ch = latents.shape[:2]
        noise = torch.randn(latents.shape, generator=g)
        if cfg.noise_offset:  # a per-channel shift lets the model learn overall brightness
            noise = noise + cfg.noise_offset * torch.randn((b, ch, 1, 1), generator=g)
        noise = noise.to(latents.device)
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=g).to(latents.device)
        noisy = sched.add_noise(latents, noise, t)
        target = noise if c.prediction_type == "epsilon" else sched.get_velocity(latents, noise, t)
        embeds, pooled = self.text(batch["prompts"])
        added = added_conditions(c, pooled, *batch["pixel_size"]) if pooled is not None else None
        with acc.autocast():
            pred = self.wrapped.get("unet", c.unet)(noisy, t, embeds, added_cond_kwargs=added).sample.float()
        n = batch["n_instance"]
        per_sample = F.mse_loss(pred[:n], target[:n], reduction="none").mean(dim=(1, 2, 3))
        if cfg.snr_gamma is not None:
            per_sample = per_sample * min_snr_weights(sched, t[:n], cfg.snr_gamma, c.prediction_type)
        loss = per_sample.mean()
        if n < b:  # DreamBooth: the class half keeps the model's prior for the class
            loss = loss + cfg.prior_loss_weight * F.mse_loss(pred[n:], target[n:])
        return loss

    def _loop(self) -> str:
        from tqdm.auto import tqdm

        cfg, acc = self.config, self.accelerator
        bar = tqdm(total=cfg.max_train_steps, initial=self.step, desc=cfg.method, file=sys.stderr,
                   disable=not (self.progress and acc.is_main_process), dynamic_ncols=True)
        micro, losses, sec_per_step = self.step * cfg.gradient_accumulation_steps, [], None
        tick = time.perf_counter()
        while self.step < cfg.max_train_steps:
            batch = self._batch(micro)
            with acc.accumulate(*self.wrapped.values()):
                loss = self._loss(batch, micro)
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            micro += 1
            losses.append(float(loss.detach().item()))
            if not acc.sync_gradients:
                continue
            lr = self.lr_scheduler.get_last_lr()[0]  # the rate this step used
            self.lr_scheduler.step()
            self.step += 1
            self.method.after_step(self.components)
            mean_loss, losses = sum(losses) / len(losses), []
            if not math.isfinite(mean_loss):
                raise TrainingError(f"loss became {mean_loss} at step {self.step}; lower learning_rate "
                                    f"(now {cfg.learning_rate}) or use mixed_precision='no'")
            now = time.perf_counter()
            sec_per_step = now - tick if sec_per_step is None else 0.9 * sec_per_step + 0.1 * (now - tick)
            self.log("step", self.step, loss=round(mean_loss, 6), lr=lr, sec_per_step=round(sec_per_step, 4),
                     eta_s=round(sec_per_step * (cfg.max_train_steps - self.step), 1), epoch=batch["epoch"],
                     **vram_fields(acc.device, "vram_gb"))
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
            if cfg.validation_steps and self.step % cfg.validation_steps == 0 and self.step < cfg.max_train_steps:
                self._sample()
            if cfg.checkpointing_steps and self.step % cfg.checkpointing_steps == 0:
                self._save_checkpoint("interval")
            if self.stop.agreed(acc):
                if self.saved_step != self.step:
                    self._save_checkpoint("stop")
                bar.close()
                return "stopped"
            tick = time.perf_counter()  # sampling and saving are not part of a step's time
        bar.close()
        return "completed"

    # --- samples, checkpoints, outputs ------------------------------------------------------------
    def _sample(self) -> None:
        """Validation images at fixed seeds into samples/step-NNNNNN/ (main process only)."""
        from .samples import write_samples

        cfg = self.config
        if not cfg.validation_prompts or not self.accelerator.is_main_process:
            return
        made = write_samples(self.run_dir / "samples" / f"step-{self.step:06d}", self.components, self.method,
                             self.accelerator, prompts=cfg.validation_prompts, num_images=cfg.num_validation_images,
                             inference_steps=cfg.validation_inference_steps, resolution=cfg.resolution,
                             seed=cfg.seed, trained=self.trained)
        self.log("sample", self.step, paths=[str(p.relative_to(self.run_dir)) for p, _ in made],
                 prompts=[prompt for _, prompt in made])

    def _save_checkpoint(self, reason: str) -> None:
        path = save_checkpoint(self.accelerator, self.run_dir / "checkpoints", self.step,
                               {"method": self.config.method}, keep=self.config.checkpoints_total_limit)
        self.log("checkpoint", self.step, path=str(path.relative_to(self.run_dir)), reason=reason)
        self.saved_step = self.step

    def _resume_if_asked(self) -> None:
        if not self.resume:
            return
        path = resume_path(self.run_dir / "checkpoints", self.resume)
        if path is None:
            self.status("resume", "no checkpoint to resume from; starting at step 0")
            return
        self.step = self.saved_step = load_checkpoint(self.accelerator, path, self.config.method)
        self.status("resume", f"resumed from {path.name} at step {self.step}", checkpoint=str(path))

    def _finish(self) -> None:
        from .models import base_model_version

        cfg, acc = self.config, self.accelerator
        self._sample()
        if cfg.checkpointing_steps == 0 and self.saved_step != self.step:
            self._save_checkpoint("final")
        acc.wait_for_everyone()
        self.outputs = []
        if acc.is_main_process:
            self.status("saving", "saving outputs")
            info = {"config": cfg.to_dict(), "num_train_images": len(self.dataset),
                    "num_class_images": len(self.class_images), "steps": self.step,
                    "base_model_version": base_model_version(self.components),
                    "started_at": self.started_at, "output_name": self.run_dir.name}
            paths = self.method.save(self.components, self.run_dir / "output", info)
            self.outputs = [str(Path(p).relative_to(self.run_dir)) for p in paths]
        acc.wait_for_everyone()

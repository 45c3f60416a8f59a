"""The training loop: one run, from a TrainConfig to a run folder, for every method.

batch -> latents (VAE, or cached) -> noise (+ offset) -> noisy input, timesteps and target ->
denoiser's prediction -> loss (MSE, optional min-SNR weights; DreamBooth's prior loss on the
class half of the batch) -> backward (accelerate: mixed precision, accumulation, DDP) -> clip ->
step -> event.

The method object (trainer.methods) decides which weights train and how they are saved; the
family object (trainer.families) how the model noises, predicts and samples; this file never
branches on either's name. Everything random is derived from (seed, step), so
a resumed run draws what the uninterrupted run would have drawn. One setup function builds a
`RunSetup` (method, data, modules, optimizer, batch plan: everything the steps read); a
`TrainingRun` holds it beside the few things that move (step, last checkpoint) and declares all of
its state in `__init__`. Setup steps live beside what they set up: batches.py (data and the
micro-batch plan), prompt_embeddings.py, prior.py (class images), samples.py, signals.py (stop
requests), memory.py (GPU memory held, out-of-memory advice).
"""
from __future__ import annotations

import math
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batches import MicroBatchPlan, load_training_data
from .config import TrainConfig
from .events import emit, error_line
from .memory import is_out_of_memory, out_of_memory_message, savings_on, vram_fields
from .checkpoints import (CheckpointParts, check_run_folder, load_checkpoint, resume_path, save_checkpoint,
                          trained_parameters)
from .prompt_embeddings import CachedText, PromptEmbeddings, cache_text_outputs
from .signals import StopRequest
from .training_utils import (check_8bit_adam_available, check_quantization_available, load_dtype,
                             make_accelerator, make_lr_scheduler, make_optimizer, seed_everything, step_generator,
                             vae_latents, weight_dtype)

if TYPE_CHECKING:
    from accelerate import Accelerator

    from .checkpoint_eval import CheckpointScorer
    from .data import ImageDataset
    from .families.base import Components
    from .methods.registry import Method


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss stopped being a finite number)."""


def train(config: TrainConfig, *, resume: str | None = None, progress: bool = True) -> str:
    """Run one training run into `config.output_dir`; return "completed" or "stopped".

    Failures are recorded in the run folder (an `error` and an `end` event with status
    "failed", the traceback in `error.log`) and then re-raised. With
    `config.evaluate_after_training` the main process then scores a completed run
    (trainer.evaluate.evaluate_after_training: metrics.json and an `eval` event after the `end`);
    with `score_checkpoints="after"` it first scores every checkpoint (trainer.checkpoint_eval).
    """
    run = TrainingRun(config, resume=resume, progress=progress)
    status, main_process = run.run(), run.accelerator.is_main_process
    del run  # the training modules and optimizer go before scoring loads its pipelines
    if status == "completed" and config.score_checkpoints == "after" and main_process:
        from .checkpoint_eval import score_after_training

        score_after_training(config.output_dir)
    if status == "completed" and config.evaluate_after_training and main_process:
        from .evaluate import evaluate_after_training

        evaluate_after_training(config.output_dir)
    return status


@dataclass
class RunSetup:
    """What setup builds for one run, before its first step; the steps read it and change only
    what lives inside these objects (weights, optimizer state, the VAE cache filling up)."""
    method: Method                    # which weights train, how they are saved
    dataset: ImageDataset             # the instance images and the prompt each trains with
    class_images: list[Any]           # prior preservation's class images ([] without it)
    components: Components            # denoiser, VAE, text encoders, tokenizers, schedulers; its family
    trained: list[str]                # names of the modules with weights that train
    params: list[Any]                 # every parameter that trains (gradient clipping)
    optimizer: Any                    # as accelerate prepared it
    lr_scheduler: Any                 # stepped once per optimizer step; checkpointed
    wrapped: dict[str, Any]           # the trained modules as accelerate prepared them (DDP)
    text: PromptEmbeddings            # prompts -> embeddings (cached while the text encoders are frozen)
    plan: MicroBatchPlan              # micro-batch number -> this process's images and prompts
    vae_cache: dict[Any, Any] | None  # per image: VAE moments or a drawn latent (None: encode every time)
    checkpoint: CheckpointParts       # what a checkpoint saves and restores (safetensors + JSON, no pickle)
    prompt_calls: dict[tuple, dict[str, Any]]  # cached text: the coming pipeline calls' arguments (_call_keys)



class TrainingRun:
    def __init__(self, config: TrainConfig, *, resume: str | None = None, progress: bool = True):
        self.config = config
        self.resume = resume
        self.progress = progress
        self.run_dir = Path(config.output_dir)
        self.stop = StopRequest()  # SIGINT/SIGTERM: finish the step, save, end "stopped"
        self.accelerator: Accelerator | None = None  # made first thing in run()
        self.setup: RunSetup | None = None  # built by _set_up() once the data and the model load
        self.step = 0              # optimizer steps done (a resumed run starts at its checkpoint's)
        self.saved_step = -1       # step of the newest checkpoint this process wrote or loaded
        self.started_at: float | None = None  # when run() began (unix seconds)
        self.outputs: list[str] = []  # what _finish saved, relative to the run folder
        self.scorer: CheckpointScorer | None = None  # score_checkpoints="during", main process only
        self.early_stop: str | None = None  # why the run stopped early (early_stop_patience)

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
                early = {"early_stop": self.early_stop} if self.early_stop else {}
                self.log("end", self.step, status=status, outputs=self.outputs, **early,
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
        oom = is_out_of_memory(e)  # a flag in the events, so no reader has to match the wording
        if isinstance(e, KeyboardInterrupt):
            message = "interrupted a second time; stopped without saving a checkpoint"
        elif oom:
            message = out_of_memory_message(self.config, self.step, memory.get("peak_vram_gb"))
        if acc is not None and not acc.is_main_process:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "error.log").write_text("".join(traceback.format_exception(e)))
        self.log("error", self.step, error=message, log="error.log", out_of_memory=oom)
        self.log("end", self.step, status="failed", error=message, out_of_memory=oom, **memory)

    # --- the run, phase by phase --------------------------------------------------------------
    def _train(self) -> str:
        self.setup = self._set_up()
        if self.setup is None:
            return "stopped"
        self._resume_if_asked()
        self._start_scoring()
        status = self._loop()
        if status == "completed":
            self._finish()
        return status

    def _set_up(self) -> RunSetup | None:
        """Data, class images, model and trainable weights: the run's whole state before its first
        step, as one RunSetup; None when a stop was asked while class images were being drawn."""
        from .families.base import detect_family
        from .methods.registry import get_method
        from .models import load_components, resolve_base_model
        from .prior import prepare_class_images
        from .tiny import BUILTIN_MODELS

        cfg, acc = self.config, self.accelerator
        seed_everything(cfg.seed + acc.process_index)
        if cfg.use_8bit_adam:
            check_8bit_adam_available()
        check_quantization_available(cfg.quantize_base)
        method = get_method(cfg)
        dataset = load_training_data(
            cfg.data_dir, method=method, method_name=cfg.method, resolution=cfg.resolution, crop=cfg.crop,
            random_flip=cfg.random_flip, instance_prompt=cfg.instance_prompt, seed=cfg.seed,
            skip_bad=cfg.skip_bad_images, status=self.status)
        base_folder = resolve_base_model(cfg.base_model)
        family = detect_family(base_folder)
        family.check(cfg)
        for warning in family.warnings(cfg):
            self.status("config_warning", warning, warning=True)
        if acc.device.type == "cpu" and cfg.base_model not in BUILTIN_MODELS:
            self.status("device_warning", "no GPU: a full-size model trains on the CPU, which takes hours "
                        "per hundred steps", warning=True)
        class_images = []
        if cfg.prior_preservation:
            class_images = prepare_class_images(
                acc, class_data_dir=cfg.class_data_dir, base_folder=base_folder,
                class_prompt=cfg.class_prompt, num_images=cfg.num_class_images, resolution=cfg.resolution,
                seed=cfg.seed, inference_steps=cfg.validation_inference_steps,
                mixed_precision=cfg.mixed_precision, status=self.status, should_stop=lambda: self.stop.requested)
        if self.stop.requested:
            return None
        self.status("loading_model", f"loading {cfg.base_model} ({family.label})", family=family.name)
        components = load_components(base_folder, cfg.family, cfg.quantize_base,
                                     frozen_dtype=load_dtype(cfg.mixed_precision),
                                     as_saved=method.parts_trained_whole(family))
        cached = None
        if cfg.cache_text_encoder_outputs:
            cached = cache_text_outputs(components, method, acc, mixed_precision=cfg.mixed_precision,
                                        prompts=[*dataset.prompts, *([cfg.class_prompt] if class_images else [])],
                                        call_keys=self._call_keys(), status=self.status)
        setup = self._prepare(method, dataset, class_images, components, cached)
        savings = savings_on(cfg)
        self.status("memory", "memory savings on: " + (", ".join(savings) or "none"), savings=savings)
        return setup

    def _call_keys(self) -> list[tuple[str, ...]]:
        """The prompts of every pipeline call the main process will make while the text encoders are
        away: the samples', one prompt each, and checkpoint scoring's during training."""
        from .checkpoint_eval import scoring_call_keys

        cfg = self.config
        if not self.accelerator.is_main_process:
            return []
        keys = [(p,) for p in cfg.validation_prompts]
        return keys + (scoring_call_keys(cfg) if cfg.score_checkpoints == "during" else [])

    def _prepare(self, method: Method, dataset: ImageDataset, class_images: list[Any],
                 components: Components, cached: CachedText | None) -> RunSetup:
        """Make the method's weights trainable, move modules to the device (frozen weights in the
        mixed-precision dtype, trained ones in fp32; text encoders whose outputs are `cached` stay on
        the CPU), build optimizer and schedule, and hand the trained modules to accelerate."""
        from .families.base import text_encoder_names
        from .methods.registry import set_up_method

        cfg, acc, c = self.config, self.accelerator, components
        on_cpu = text_encoder_names(len(c.text_encoders)) if cached else []
        groups, trained = set_up_method(method, c, acc.device, weight_dtype(cfg.mixed_precision), on_cpu=on_cpu)
        modules = c.modules()
        if cfg.gradient_checkpointing:
            c.denoiser.enable_gradient_checkpointing()
            for name in trained:
                if name.startswith("text_encoder"):
                    modules[name].gradient_checkpointing_enable()
        optimizer = make_optimizer(groups, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay,
                                   use_8bit_adam=cfg.use_8bit_adam, use_adafactor=cfg.use_adafactor)
        lr_scheduler = make_lr_scheduler(optimizer, cfg.lr_scheduler, cfg.lr_warmup_steps, cfg.max_train_steps)
        prepared = acc.prepare(*[modules[n] for n in trained], optimizer)
        wrapped = dict(zip(trained, prepared[:-1]))
        for name, module in modules.items():
            module.train(name in trained)
        deterministic = cfg.crop != "random" and not cfg.random_flip
        plan = MicroBatchPlan(dataset, batch_size=cfg.train_batch_size, num_processes=acc.num_processes,
                              process_index=acc.process_index, seed=cfg.seed, class_images=class_images,
                              class_prompt=cfg.class_prompt, resolution=cfg.resolution, crop=cfg.crop)
        return RunSetup(method=method, dataset=dataset, class_images=class_images, components=c, trained=trained,
                        params=[p for g in groups for p in g["params"]], optimizer=prepared[-1],
                        lr_scheduler=lr_scheduler, wrapped=wrapped,
                        text=PromptEmbeddings(c, method, wrapped, cached=cached and cached.embeddings),
                        prompt_calls=cached.calls if cached else {},
                        plan=plan, vae_cache={} if (cfg.cache_latents or deterministic) else None,
                        checkpoint=CheckpointParts(lambda: trained_parameters(c.modules(), trained), prepared[-1],
                                                   [lr_scheduler, *method.checkpoint_objects()]))

    # --- batches -------------------------------------------------------------------------------
    def _batch(self, micro: int) -> dict[str, Any]:
        """The micro-batch number `micro` of this process: a pure function of (seed, micro)."""
        acc = self.accelerator
        batch = self.setup.plan.take(micro)
        latents = self._latents(batch.pop("images"), step_generator(self.config.seed + 1, micro, acc.process_index))
        c = self.setup.components
        f = c.family.vae_scale_factor(c.vae)
        return {**batch, "latents": latents, "pixel_size": (latents.shape[-2] * f, latents.shape[-1] * f)}

    def _latents(self, images: list[tuple[Any, Any]], generator):
        """VAE latents of (key, load_pixels) pairs, through this run's cache (see vae_latents)."""
        s = self.setup
        c = s.components
        return c.family.model_latents(c, vae_latents(c.vae, images, generator, s.vae_cache, self.config.cache_latents,
                                                     frames=c.family.vae_frames))

    # --- one step ------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any], micro: int):
        import torch
        import torch.nn.functional as F

        cfg, s, acc = self.config, self.setup, self.accelerator
        c = s.components
        latents = batch["latents"]
        g = step_generator(cfg.seed, micro, acc.process_index)
        b, ch = latents.shape[:2]
        noise = torch.randn(latents.shape, generator=g)
        if cfg.noise_offset:  # a per-channel shift lets the model learn overall brightness
            noise = noise + cfg.noise_offset * torch.randn((b, ch, 1, 1), generator=g)
        noised = c.family.noised(c, latents, noise.to(latents.device), g)
        embeds, pooled = s.text(batch["prompts"])
        with acc.autocast():
            denoiser = s.wrapped.get(c.family.denoiser, c.denoiser)
            pred = c.family.predict(c, denoiser, noised, embeds, pooled, batch["pixel_size"]).float()
        n, target = batch["n_instance"], noised.target
        per_sample = F.mse_loss(pred[:n], target[:n], reduction="none").mean(dim=(1, 2, 3))
        weights = c.family.loss_weights(c, noised.timesteps[:n], cfg.snr_gamma) if cfg.snr_gamma is not None else None
        if weights is not None:
            per_sample = per_sample * weights
        loss = per_sample.mean()
        if n < b:  # DreamBooth: the class half keeps the model's prior for the class
            loss = loss + cfg.prior_loss_weight * F.mse_loss(pred[n:], target[n:])
        return loss

    def _loop(self) -> str:
        from tqdm.auto import tqdm

        cfg, acc, s = self.config, self.accelerator, self.setup
        bar = tqdm(total=cfg.max_train_steps, initial=self.step, desc=cfg.method, file=sys.stderr,
                   disable=not (self.progress and acc.is_main_process), dynamic_ncols=True)
        micro, losses, sec_per_step = self.step * cfg.gradient_accumulation_steps, [], None
        tick = time.perf_counter()
        while self.step < cfg.max_train_steps:
            batch = self._batch(micro)
            with acc.accumulate(*s.wrapped.values()):
                loss = self._loss(batch, micro)
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(s.params, cfg.max_grad_norm)
                s.optimizer.step()
                s.optimizer.zero_grad(set_to_none=True)
            micro += 1
            losses.append(float(loss.detach().item()))
            if not acc.sync_gradients:
                continue
            lr = s.lr_scheduler.get_last_lr()[0]  # the rate this step used
            s.lr_scheduler.step()
            self.step += 1
            s.method.after_step(s.components)
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
                if self._stop_early():
                    bar.close()
                    return "completed"
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

        cfg, s = self.config, self.setup
        if not cfg.validation_prompts or not self.accelerator.is_main_process:
            return
        made = write_samples(self.run_dir / "samples" / f"step-{self.step:06d}", s.components, s.method,
                             self.accelerator, prompts=cfg.validation_prompts, num_images=cfg.num_validation_images,
                             inference_steps=cfg.validation_inference_steps, resolution=cfg.resolution,
                             seed=cfg.seed, trained=s.trained, prompt_calls=s.prompt_calls)
        self.log("sample", self.step, paths=[str(p.relative_to(self.run_dir)) for p, _ in made],
                 prompts=[prompt for _, prompt in made])

    def _save_checkpoint(self, reason: str) -> None:
        path = save_checkpoint(self.accelerator, self.setup.checkpoint, self.run_dir / "checkpoints", self.step,
                               {"method": self.config.method}, keep=self.config.checkpoints_total_limit)
        self.log("checkpoint", self.step, path=str(path.relative_to(self.run_dir)), reason=reason)
        self.saved_step = self.step
        if reason != "stop":  # a stop request wants the process gone, not scored
            self._score_checkpoint()

    # --- scores along the run (score_checkpoints="during") -------------------------------------------
    def _start_scoring(self) -> None:
        """The scorer, on the main process; before the first step the model is the base model, so
        preservation's reference images come from it (a resumed run loads the base instead)."""
        from .checkpoint_eval import CheckpointScorer
        from .samples import inference_pipeline

        cfg, acc, s = self.config, self.accelerator, self.setup
        if cfg.score_checkpoints != "during" or not acc.is_main_process:
            return
        self.status("scoring_setup", "preparing checkpoint scoring: drawing the base model's images")
        self.scorer = CheckpointScorer(self.run_dir, cfg, device=str(acc.device))
        self.scorer.prompt_calls = s.prompt_calls
        if self.step == 0:
            with inference_pipeline(s.components, s.method, acc.autocast(), s.trained,
                                    text_encoders=not s.prompt_calls) as pipe:
                self.scorer.set_base(pipe)

    def _score_checkpoint(self) -> None:
        """Score the model as it is now; a failure is an event and ends scoring, not training."""
        from .samples import inference_pipeline

        s, acc = self.setup, self.accelerator
        if self.scorer is None or self.step in self.scorer.results:
            return
        self.status("scoring", f"scoring the checkpoint at step {self.step}")
        try:
            with inference_pipeline(s.components, s.method, acc.autocast(), s.trained,
                                    text_encoders=not s.prompt_calls) as pipe:
                self.scorer.score(self.step, pipe)
        except Exception as e:
            self.log("checkpoint_eval", self.step, error=error_line(e))
            self.scorer = None

    def _stop_early(self) -> bool:
        """Whether the scores so far say to stop (trainer.checkpoint_scores.early_stop_reason),
        agreed by every process; the reason goes into a status event and the end event."""
        from .checkpoint_scores import early_stop_reason

        cfg, acc = self.config, self.accelerator
        reason = None
        if self.scorer is not None and cfg.early_stop_patience:
            reason = early_stop_reason(list(self.scorer.results.values()), cfg.early_stop_patience)
        if acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            reason = broadcast_object_list([reason])[0]
        if reason and self.step < cfg.max_train_steps:
            self.early_stop = reason
            self.status("early_stop", f"stopped early at step {self.step}: {reason}", reason=reason)
            return True
        return False

    def _resume_if_asked(self) -> None:
        if not self.resume:
            return
        path = resume_path(self.run_dir / "checkpoints", self.resume)
        if path is None:
            self.status("resume", "no checkpoint to resume from; starting at step 0")
            return
        self.step = self.saved_step = load_checkpoint(self.accelerator, self.setup.checkpoint, path, self.config.method)
        self.status("resume", f"resumed from {path.name} at step {self.step}", checkpoint=str(path))

    def _finish(self) -> None:
        cfg, acc, s = self.config, self.accelerator, self.setup
        self._sample()
        if (cfg.checkpointing_steps == 0 or cfg.score_checkpoints != "off") and self.saved_step != self.step:
            self._save_checkpoint("final")  # scored runs: the last step is a checkpoint like the others
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.status("saving", "saving outputs")
            info = {"config": cfg.to_dict(), "num_train_images": len(s.dataset),
                    "num_class_images": len(s.class_images), "steps": self.step,
                    "family": s.components.family.name,
                    "base_model_version": s.components.family.kohya_version(s.components),
                    "started_at": self.started_at, "output_name": self.run_dir.name}
            paths = s.method.save(s.components, self.run_dir / "output", info)
            self.outputs = [str(Path(p).relative_to(self.run_dir)) for p in paths]
        acc.wait_for_everyone()

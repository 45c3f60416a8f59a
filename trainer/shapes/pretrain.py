"""Pretrain the shapes demo model from a seed; writes `demo_weights.safetensors`.

    python -m trainer.shapes.pretrain [--out PATH] [--seed 0] [--scenes 20000] [--vae-steps 2000] [--steps 5000]
    python -m trainer.shapes.pretrain --vae-from OLD.safetensors ...   # keep a trained VAE, train the rest

Two stages, each one plain loop:
1. the VAE learns to reconstruct renders of the world (crops around the object, L1 loss plus a
   tiny KL term), then every scene is encoded once and the latents' scale is measured;
2. the UNet and the text encoder learn together to denoise those latents given the captions
   (v-prediction on Stable Diffusion's schedule with min-SNR weighting, which made the
   prompt's colours and shapes take hold several times sooner; 10% empty captions, so
   classifier-free guidance works; exponential moving averages of both are what ships).

The shipped weights were made in three runs while this recipe was found: the defaults of the time
(epsilon prediction, peak 1e-3, 4000 steps; prompts barely followed), then with min-SNR weighting
and peak 2e-3 for 5000 steps from that VAE (`--vae-from`), then 1800 steps moving that model to
v-prediction (`--init-from`, peak 1e-3, 12000 scenes), which made it follow the prompt's shape and
colours. One default run (v-prediction from the first
step) is what the recipe now is; it has not been timed end to end. The held-out concepts (a star, outline drawings) are never drawn. At the end it draws fresh
prompts of the world and prints how often the checker reads back what was asked. The same seed
and thread count give the same result.
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..training_utils import min_snr_weights
from . import demo_model
from .checker import measure
from .world import caption, render, sample_scenes

FIELDS = ("shape", "color", "background", "cell")


def renders(scenes, resolution: int = demo_model.DEMO_RESOLUTION) -> torch.Tensor:
    """uint8 (N, 3, H, W)."""
    return torch.from_numpy(np.stack([np.asarray(render(s, resolution)) for s in scenes])).permute(0, 3, 1, 2).contiguous()


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 127.5 - 1.0


def _lr(step: int, steps: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_vae(pixels: torch.Tensor, centres: list[tuple[float, float]], steps: int, seed: int,
              batch: int = 32, crop: int = 32, peak_lr: float = 2e-3, log=print):
    """The VAE, trained on `crop`-pixel crops that hold the object (the background alone is easy)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = demo_model.new_vae()
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=peak_lr, weight_decay=0.0)
    side = pixels.shape[-1]
    start = time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, len(pixels), batch)
        crops = []
        for i in idx:
            cx, cy = centres[i]
            jx, jy = rng.integers(-crop // 4, crop // 4 + 1, 2)
            ox = int(np.clip(round(cx * side) - crop // 2 + jx, 0, side - crop))
            oy = int(np.clip(round(cy * side) - crop // 2 + jy, 0, side - crop))
            crops.append(pixels[i, :, oy:oy + crop, ox:ox + crop])
        x = to_unit(torch.stack(crops))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = (recon - x).abs().mean() + 1e-6 * posterior.kl().mean()
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, peak_lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
    vae.eval()
    return vae


@torch.no_grad()
def encode(vae, pixels: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Posterior means (unscaled) of every image."""
    return torch.cat([vae.encode(to_unit(pixels[i:i + batch])).latent_dist.mean
                      for i in range(0, len(pixels), batch)])


def token_ids(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def train_denoiser(latents: torch.Tensor, ids: torch.Tensor, empty_ids: torch.Tensor, steps: int, seed: int,
                   batch: int = 64, peak_lr: float = 1e-3, drop_caption: float = 0.1, ema_decay: float = 0.999,
                   snr_gamma: float | None = 5.0, prediction_type: str = "v_prediction", init=None,
                   log=print, raw: dict | None = None):
    """(UNet, text encoder), moving averages of the two trained together on scaled `latents` and their
    captions' `ids`; `raw`, when given, receives the last step's own weights."""
    from diffusers import DDPMScheduler
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    if init is not None:   # (unet, text_encoder) to go on from
        unet, text_encoder = init
    else:
        unet = demo_model.new_unet()
        text_encoder = CLIPTextModel(demo_model.text_config(demo_model.demo_tokenizer()))
    # The shipped weights are moving averages of both parts: a UNet averaged over the last ~1000 steps
    # paired with the text encoder's last step would read embeddings it was not averaged over.
    ema = copy.deepcopy(unet).requires_grad_(False)
    ema_text = copy.deepcopy(text_encoder).requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_config(demo_model.new_scheduler(prediction_type).config)
    params = [{"params": unet.parameters(), "lr": peak_lr},
              {"params": text_encoder.parameters(), "lr": peak_lr / 2}]
    opt = torch.optim.AdamW(params, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    unet.train()
    text_encoder.train()
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(latents), (batch,), generator=gen)
        z0 = latents[idx]
        cond = ids[idx].clone()
        dropped = torch.rand(batch, generator=gen) < drop_caption
        cond[dropped] = empty_ids
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,), generator=gen)
        noisy = noise_scheduler.add_noise(z0, noise, t)
        hidden = text_encoder(cond)[0]
        target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(z0, noise, t)
        per_sample = F.mse_loss(unet(noisy, t, hidden).sample, target, reduction="none").mean(dim=(1, 2, 3))
        if snr_gamma:
            per_sample = per_sample * min_snr_weights(noise_scheduler, t, snr_gamma, prediction_type)
        loss = per_sample.mean()
        scale = _lr(step, steps, 1.0, warmup=200)
        for group, base in zip(opt.param_groups, (peak_lr, peak_lr / 2)):
            group["lr"] = base * scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip([*ema.parameters(), *ema_text.parameters()], [*unet.parameters(), *text_encoder.parameters()]):
                e.lerp_(p, 1 - decay)
        if step % 250 == 0 or step == steps - 1:
            log(f"denoiser step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
    if raw is not None:
        raw.update(unet=unet.eval(), text_encoder=text_encoder.eval())
    return ema.eval(), ema_text.eval()


def world_accuracy(pipe, n: int, seed: int, **draw_args) -> dict[str, float]:
    """Fraction of `n` fresh world prompts whose image the checker reads back right, per field and all."""
    scenes = sample_scenes(n, seed)
    measured = [measure(im) for im in demo_model.draw(pipe, [caption(s) for s in scenes], seed, **draw_args)]
    right = {f: float(np.mean([getattr(m, f) == getattr(s, f) for m, s in zip(measured, scenes)])) for f in FIELDS}
    right["all"] = float(np.mean([all(getattr(m, f) == getattr(s, f) for f in FIELDS)
                                  for m, s in zip(measured, scenes)]))
    return right


def pretrain(out: Path, seed: int = 0, n_scenes: int = 20000, vae_steps: int = 2000, steps: int = 5000,
             peak_lr: float = 2e-3, vae_from: Path | None = None, init_from: Path | None = None,
             log=print) -> dict[str, float]:
    start = time.perf_counter()
    scenes = sample_scenes(n_scenes, seed)
    pixels = renders(scenes)
    log(f"{n_scenes} scenes rendered ({time.perf_counter() - start:.0f} s)")
    vae_from = vae_from or init_from
    if vae_from is not None:
        vae = demo_model.load_part("vae", *demo_model.read_weights(vae_from))
        raw = encode(vae, pixels)
        scaling = float(vae.config.scaling_factor)
        log(f"VAE from {vae_from}")
    else:
        vae = train_vae(pixels, [s.centre for s in scenes], vae_steps, seed, log=log)
        raw = encode(vae, pixels)
        scaling = float(1.0 / raw.std())
        vae.register_to_config(scaling_factor=scaling)
    latents = raw * scaling
    tokenizer = demo_model.demo_tokenizer()
    ids = token_ids(tokenizer, [caption(s) for s in scenes])
    empty = token_ids(tokenizer, [""])[0]
    log(f"latents {tuple(latents.shape)}, scaling factor {scaling:.4f} ({time.perf_counter() - start:.0f} s)")
    init = None
    if init_from is not None:
        tensors, meta = demo_model.read_weights(init_from)
        unet = demo_model.new_unet()
        unet_tensors = demo_model.part_state("unet", tensors)
        own = unet.state_dict()
        # every tensor whose name and shape still fit (an earlier UNet layout may differ: a block that
        # gained or lost attention keeps its convolutions and starts its new attention fresh)
        fitting = {k: v for k, v in unet_tensors.items() if k in own and own[k].shape == v.shape}
        unet.load_state_dict(fitting, strict=False)
        init = (unet, demo_model.load_part("text_encoder", tensors, meta))
        log(f"text encoder and {len(fitting)} of {len(own)} UNet tensors from {init_from}")
    unet, text_encoder = train_denoiser(latents, ids, empty, steps, seed, peak_lr=peak_lr, init=init, log=log)
    minutes = (time.perf_counter() - start) / 60
    demo_model.save_weights(out, unet, vae, text_encoder, {
        "seed": seed, "scenes": n_scenes, "vae_steps": 0 if vae_from else vae_steps, "steps": steps,
        "peak_lr": peak_lr, "vae_from": vae_from.name if vae_from else "", "scaling_factor": scaling,
        "init_from": init_from.name if init_from else "", "prediction_type": "v_prediction",
        "minutes": f"{minutes:.1f}", "threads": torch.get_num_threads()})
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) after {minutes:.1f} min")
    scores = world_accuracy(demo_model.build_demo_pipeline(out), 100, seed + 1_000_003)
    log("checker reads back, on 100 fresh prompts: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=demo_model.WEIGHTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=20000)
    parser.add_argument("--vae-steps", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=2e-3, help="the denoiser's peak learning rate")
    parser.add_argument("--vae-from", type=Path, default=None, help="take the VAE from this weights file")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="go on from this weights file (VAE, text encoder, and the UNet tensors that still fit)")
    args = parser.parse_args(argv)
    pretrain(args.out, args.seed, args.scenes, args.vae_steps, args.steps, args.lr, args.vae_from, args.init_from,
             log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()

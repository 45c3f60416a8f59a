"""Writing a run's outputs, all `.safetensors`, in the formats other tools load.

- LoRA: diffusers/PEFT format (`pytorch_lora_weights.safetensors`, `pipe.load_lora_weights`)
  plus, for the UNet families, a kohya-format copy (`<name>_kohya.safetensors`) for AUTOMATIC1111
  and ComfyUI, carrying kohya's `ss_*` training metadata so a run log can import it like any kohya
  LoRA. The flow families' LoRAs (SD3, Flux, Z-Image, Qwen-Image) are written in diffusers' format
  only, as diffusers' scripts write them: ComfyUI reads that format for them ('transformer.<module>'
  keys; comfy/lora.py, whose Lumina2 branch maps Z-Image's to_q / to_k / to_v into its fused qkv).
- Textual inversion: `learned_embeds.safetensors`, `{token: (num_vectors, dim)}` as
  `pipe.load_textual_inversion(path, token=...)` reads it; SDXL: `{"clip_l", "clip_g"}`.
- DreamBooth / full fine-tune: a complete diffusers pipeline folder.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
LYCORIS_WEIGHTS = "lycoris_weights.safetensors"
TI_WEIGHTS = "learned_embeds.safetensors"


def _peft_state(module) -> dict[str, Any]:
    """The adapter weights of `module` under PEFT's saved names (`…q_proj.lora_A.weight`, DoRA's
    `…lora_magnitude_vector`, LoHa's `…hada_w1_a`, LoKr's `…lokr_w1`): every tensor of the
    adapter named "default", without that name.

    Read from the parameters, as get_peft_model_state_dict does, because the text encoders get
    their adapters from peft's inject_adapter_in_model, without a peft_config.
    """
    return {k.replace(".default", ""): v.detach().contiguous()
            for k, v in module.state_dict().items() if ".default." in k or k.endswith(".default")}


def _text_encoder_state(te) -> dict[str, Any]:
    state = _peft_state(te)
    if not any(k.startswith("text_model.") for k in state):
        # transformers 5 dropped CLIPTextModel's `text_model.` level; LoRA files everywhere
        # (diffusers, kohya, A1111) name it, and diffusers maps it back when loading.
        state = {f"text_model.{k}": v for k, v in state.items()}
    return state


def save_lora(c, out_dir: Path, *, alpha: float, text_encoder_config=None, info: dict[str, Any]) -> list[Path]:
    """Save the denoiser's adapter of `c` (and the CLIP encoders', when `text_encoder_config` is the
    LoraConfig they were trained with) in diffusers' format, plus kohya's where the family has one."""
    import diffusers
    from diffusers.utils import convert_state_dict_to_diffusers

    from .families.base import text_encoder_names

    family = c.family
    out_dir.mkdir(parents=True, exist_ok=True)
    denoiser_state = _peft_state(c.denoiser)
    te_states = [_text_encoder_state(te) for te in c.clip_encoders] if text_encoder_config is not None else []
    layers = denoiser_state
    if family.lora_keys_to_diffusers:
        layers = convert_state_dict_to_diffusers(denoiser_state)
        if any(".lora_A." in k or ".lora_B." in k for k in layers):
            # diffusers' table renames the attention layers' keys only: with the convolutions adapted
            # too (conv_lora) the file would mix two namings, and its loader reads one of them; PEFT's
            # names throughout load whole
            layers = denoiser_state
    kwargs: dict[str, Any] = {
        f"{family.denoiser}_lora_layers": layers,
        # the adapter config (rank, alpha, targets) rides along so loading restores the scale
        f"{family.denoiser}_lora_adapter_metadata": c.denoiser.peft_config["default"].to_dict(),
    }
    te_names = text_encoder_names(family.clip_encoders)
    for name, state in zip(te_names, te_states):
        kwargs[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(state)
        kwargs[f"{name}_lora_adapter_metadata"] = text_encoder_config.to_dict()
    getattr(diffusers, family.pipeline_class).save_lora_weights(out_dir, weight_name=LORA_WEIGHTS,
                                                                 safe_serialization=True, **kwargs)
    if family.kohya_version(c) is None:   # no kohya layout for this family here yet
        return [out_dir / LORA_WEIGHTS]
    peft_all = {f"unet.{k}": v for k, v in denoiser_state.items()}
    for name, state in zip(te_names, te_states):
        peft_all.update({f"{name}.{k}": v for k, v in state.items()})
    kohya_path = out_dir / f"{info.get('output_name', 'lora')}_kohya.safetensors"
    save_kohya_copy(peft_all, kohya_path, arch=family.name, alpha=alpha,
                    metadata=kohya_metadata({**info, "lora_alpha": alpha}))
    return [out_dir / LORA_WEIGHTS, kohya_path]


def save_lycoris(c, out_dir: Path, *, text_encoder_config=None, alpha: float, rank: int,
                 info: dict[str, Any]) -> list[Path]:
    """LoHa / LoKr: the adapters' PEFT weights, prefixed by module ("unet.", "text_encoder."), with
    each module's peft config in the file's metadata (`load_lycoris` puts them back); for the UNet
    families also a kohya / LyCORIS copy (`<name>_kohya.safetensors`) as ComfyUI and A1111 read it,
    for SD3, Flux.1, Z-Image and Qwen-Image a LyCORIS copy in the names ComfyUI reads for them
    (`<name>_comfyui.safetensors`, 'lycoris_<module>' keys; the transformer's adapter only, so not
    written when CLIP encoders trained too)."""
    from safetensors.torch import save_file

    from .families.base import text_encoder_names

    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {c.family.denoiser: (c.denoiser, c.denoiser.peft_config["default"])}
    if text_encoder_config is not None:
        parts.update({n: (te, text_encoder_config) for n, te in zip(text_encoder_names(c.family.clip_encoders),
                                                                   c.clip_encoders)})
    peft_states = {name: _peft_state(module) for name, (module, _) in parts.items()}
    state = {f"{name}.{k}": v for name, part in peft_states.items() for k, v in part.items()}
    configs = {name: {"peft_type": str(config.peft_type.value), **_plain(config.to_dict())}
               for name, (_, config) in parts.items()}
    path = out_dir / LYCORIS_WEIGHTS
    save_file(state, str(path), metadata={"adapter_configs": json.dumps(configs, sort_keys=True)})
    if c.family.kohya_version(c) is not None:
        suffix, prefix = "kohya", "lora_unet_"
    elif c.family.comfy_lycoris_prefix and text_encoder_config is None:
        # the flow families: ComfyUI maps SimpleTuner's LyCORIS names ('lycoris_<diffusers module>') for them
        suffix, prefix = "comfyui", c.family.comfy_lycoris_prefix
    else:
        return [path]
    copy_path = out_dir / f"{info.get('output_name', 'lycoris')}_{suffix}.safetensors"
    algo = "loha" if "LOHA" in str(c.denoiser.peft_config["default"].peft_type) else "lokr"
    meta = kohya_metadata({**info, "lora_alpha": alpha})
    meta.update(ss_network_module="lycoris.kohya", ss_network_args=json.dumps({"algo": algo}))
    save_file(to_lycoris_kohya(peft_states, arch=c.family.name, alpha=alpha, rank=rank, denoiser_prefix=prefix),
              str(copy_path), metadata=meta)
    return [path, copy_path]


def to_lycoris_kohya(states: dict[str, dict[str, Any]], *, arch: str, alpha: float, rank: int,
                     denoiser_prefix: str = "lora_unet_") -> dict[str, Any]:
    """{part: PEFT LoHa / LoKr state} -> LyCORIS's kohya keys (`lora_unet_<module>.hada_w1_a`, ...,
    `.alpha`), module names as kohya_state_dict names them for LoRA (the denoiser's prefix is
    `denoiser_prefix`: 'lycoris_' for the flow families, as SimpleTuner writes them). Readers (ComfyUI's
    weight_adapter, LyCORIS) scale by alpha / rank where a factor is split in two, as peft does; a
    LoKr module whose factors are both whole gets no such scale there, so peft's alpha / rank is
    folded into its w1 instead."""
    import torch

    te = {"text_encoder": "lora_te1_" if arch == "sdxl" else "lora_te_", "text_encoder_2": "lora_te2_"}
    out: dict[str, Any] = {}
    for part, state in states.items():
        modules: dict[str, dict[str, Any]] = {}
        for key, value in state.items():
            module, _, tensor = key.rpartition(".")
            modules.setdefault(module, {})[tensor] = value
        for module, tensors in modules.items():
            if part in te:
                name = te[part] + (module if module.startswith("text_model.") else f"text_model.{module}").replace(".", "_")
            else:
                name = denoiser_prefix + module.replace(".", "_")
            if any(t in tensors for t in ("hada_w1_b", "lokr_w1_b", "lokr_w2_b")):
                out[f"{name}.alpha"] = torch.tensor(float(alpha))
            elif "lokr_w1" in tensors:
                tensors = {**tensors, "lokr_w1": tensors["lokr_w1"] * (alpha / rank)}
            out.update({f"{name}.{t}": v.contiguous() for t, v in tensors.items()})
    return out


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """A peft config dict as JSON (sets as sorted lists; peft_type and task metadata left out)."""
    out = {}
    for k, v in config.items():
        if k in ("peft_type", "task_type", "auto_mapping", "base_model_name_or_path", "revision", "peft_version"):
            continue
        out[k] = sorted(v) if isinstance(v, (set, frozenset)) else v
    return out


def load_lycoris(pipe, out_dir: Path):
    """Put `save_lycoris`'s adapters into a pipeline of the base model (each module as trained)."""
    import peft
    from peft import inject_adapter_in_model, set_peft_model_state_dict
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(out_dir) / LYCORIS_WEIGHTS
    with safe_open(str(path), framework="pt") as f:
        configs = json.loads((f.metadata() or {})["adapter_configs"])
    state = load_file(str(path))
    kinds = {"LOHA": peft.LoHaConfig, "LOKR": peft.LoKrConfig}
    for name, values in configs.items():
        values = dict(values)
        config = kinds[values.pop("peft_type")](**values)
        module = getattr(pipe, name)
        inject_adapter_in_model(config, module)
        prefix = f"{name}."
        set_peft_model_state_dict(module, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return pipe


def to_kohya_state_dict(peft_state: dict[str, Any], *, arch: str, alpha: float) -> dict[str, Any]:
    """PEFT keys (`unet.…lora_A.weight`) -> kohya keys (`lora_unet_…lora_down.weight` + `.alpha`).

    diffusers names SD 1.x/2.x's single text encoder `lora_te1_`; kohya and A1111 call it
    `lora_te_` there (SDXL keeps te1/te2). `alpha` is ours, not diffusers' default of rank. DoRA's
    magnitude (PEFT `lora_magnitude_vector`, one value per output feature) is kohya's and ComfyUI's
    `dora_scale`, shaped (out, 1).
    """
    import torch
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    kohya = convert_state_dict_to_kohya(peft_state)
    out = {}
    for key, value in kohya.items():
        if arch != "sdxl" and key.startswith("lora_te1_"):
            key = "lora_te_" + key[len("lora_te1_"):]
        if key.endswith(".alpha"):
            value = torch.tensor(float(alpha))
        if key.endswith(".lora_magnitude_vector.weight"):
            key = key[:-len(".lora_magnitude_vector.weight")] + ".dora_scale"
            value = value.reshape(-1, 1) if value.ndim == 1 else value
        out[key] = value.contiguous()
    return out


def save_kohya_copy(peft_state: dict[str, Any], path: Path, *, arch: str, alpha: float,
                    metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    save_file(to_kohya_state_dict(peft_state, arch=arch, alpha=alpha), str(path), metadata=metadata)
    return path


def kohya_metadata(info: dict[str, Any]) -> dict[str, str]:
    """kohya's `ss_*` keys (strings, as kohya writes them) plus our full config as JSON."""
    cfg = info["config"]
    res = cfg["resolution"]
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": cfg["rank"],
        "ss_network_alpha": info["lora_alpha"],
        "ss_learning_rate": cfg["learning_rate"],
        "ss_unet_lr": cfg["learning_rate"],
        "ss_text_encoder_lr": (cfg["text_encoder_lr"] or cfg["learning_rate"]) if cfg["train_text_encoder"] else 0,
        "ss_max_train_steps": cfg["max_train_steps"],
        "ss_steps": info.get("steps", cfg["max_train_steps"]),
        "ss_lr_scheduler": cfg["lr_scheduler"],
        "ss_lr_warmup_steps": cfg["lr_warmup_steps"],
        "ss_batch_size_per_device": cfg["train_batch_size"],
        "ss_gradient_accumulation_steps": cfg["gradient_accumulation_steps"],
        "ss_mixed_precision": cfg["mixed_precision"],
        "ss_gradient_checkpointing": cfg["gradient_checkpointing"],
        "ss_cache_latents": cfg["cache_latents"],
        "ss_flip_aug": cfg["random_flip"],
        "ss_max_grad_norm": cfg["max_grad_norm"],
        "ss_seed": cfg["seed"],
        "ss_resolution": f"({res}, {res})",
        "ss_num_train_images": info.get("num_train_images", 0),
        "ss_num_reg_images": info.get("num_class_images", 0),
        "ss_prior_loss_weight": cfg["prior_loss_weight"],
        "ss_min_snr_gamma": cfg["snr_gamma"] if cfg["snr_gamma"] is not None else "None",
        "ss_noise_offset": cfg["noise_offset"],
        "ss_base_model_version": info.get("base_model_version", "sd_v1"),
        "ss_sd_model_name": cfg["base_model"],
        "ss_output_name": info.get("output_name", "lora"),
        "ss_training_started_at": info.get("started_at", time.time()),
        "ss_training_finished_at": time.time(),
        "ss_training_comment": f"trained with the fine-tune lab, method {cfg['method']}",
        "ss_v2": info.get("base_model_version") == "sd_v2",
        "ss_optimizer": ("bitsandbytes.optim.AdamW8bit" if cfg["use_8bit_adam"] else
                         "transformers.optimization.Adafactor" if cfg.get("use_adafactor") else "torch.optim.AdamW"),
        "finetune_lab_method": cfg["method"],
        "finetune_lab_config": json.dumps(cfg, sort_keys=True),
    }
    return {k: str(v) for k, v in meta.items()}


def save_textual_inversion(out_dir: Path, *, token: str, embeddings: list[Any]) -> list[Path]:
    """`embeddings`: one (num_vectors, dim) tensor per text encoder, in pipeline order (two: SDXL's)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = [e.detach().float().cpu().contiguous() for e in embeddings]
    state = {"clip_l": tensors[0], "clip_g": tensors[1]} if len(tensors) == 2 else {token: tensors[0]}
    path = out_dir / TI_WEIGHTS
    save_file(state, str(path), metadata={"token": token, "num_vectors": str(tensors[0].shape[0])})
    return [path]


def save_pipeline(c, out_dir: Path, trained: dict[str, Any]) -> list[Path]:
    """Save a complete diffusers folder: `trained` modules (name -> module) replace the base's.

    Untouched parts are re-read from the base folder, so they keep their stored precision even
    when training held them in fp16 (and the base's safety checker, if any, is kept).
    """
    from diffusers import DiffusionPipeline

    from .families.base import weights_kw

    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = DiffusionPipeline.from_pretrained(c.source, local_files_only=True, **weights_kw(), **trained)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return [out_dir / "model_index.json"]

"""Single-file checkpoints: the one `.safetensors` file model sites hand out (Pony, Illustrious,
NoobAI, Juggernaut, Realistic Vision), read into a diffusers folder the trainer loads like any
other; and a diffusers SD / SDXL folder written back as such a file (what AUTOMATIC1111, Forge
and ComfyUI load from their checkpoints folder).

Reading: the family is told by the file's own keys (`checkpoint_info`): SDXL's second text
encoder lives under `conditioner.embedders.1.model.`, SD 1.x's CLIP under
`cond_stage_model.transformer.`, SD 2.x's OpenCLIP under `cond_stage_model.model.`. The
prediction type by the markers ComfyUI reads (comfy/supported_models.py, SDXL.model_type): a
`v_pred` key means v-prediction, `ztsnr` beside it zero terminal SNR ("some zsnr anime
checkpoints", ComfyUI's comment); kohya's `modelspec.prediction_type` metadata ("v") says the
same. A file with neither is read as epsilon (an SD 2.x-768 file without a marker is not told
apart here; name the hub id instead). The weights are read by
the key maps below into modules built from a layout's configs: the family's built-in tiny model's
when the file fits it, else the published base model's (a few kB of configs and tokenizer files
from the hub or its cache: what diffusers' `from_single_file` fetches too). The folder is written
once per file (keyed by its path, size and modification time) under the cache, with the
scheduler set to the file's prediction type.

Writing (`write_single_file`) follows diffusers' scripts/convert_diffusers_to_original_sdxl.py
and convert_diffusers_to_original_stable_diffusion.py, with the block counts read from the
UNet's and VAE's configs instead of fixed to SD's, so every layout (the tiny models included)
round-trips. Only .safetensors are read or written: no pickle.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .families.base import ModelError

# key prefix in the file -> (family, the diffusers pipeline class that reads it)
SDXL_TEXT_2 = "conditioner.embedders.1.model."
SDXL_TEXT_1 = "conditioner.embedders.0.transformer."
SD1_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."
UNET = "model.diffusion_model."
VAE = "first_stage_model."
V_PRED_KEY, ZERO_SNR_KEY = "v_pred", "ztsnr"    # ComfyUI's markers
SINGLE_FILE_DIR = "single-file"                 # under the cache root: one diffusers folder per file


@dataclass(frozen=True)
class CheckpointInfo:
    """What a single-file checkpoint says about itself."""
    family: str             # "sd" | "sdxl"
    prediction_type: str    # "epsilon" | "v_prediction"
    zero_terminal_snr: bool
    sd2: bool = False       # SD 2.x (OpenCLIP text encoder)


def checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Family and prediction type from the file's keys and metadata; ModelError in one line when
    the file is not a safetensors checkpoint of a family read here."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"'{path.name}' is not a .safetensors file; only safetensors checkpoints are read "
                         "(a .ckpt can run code when loaded)")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys, metadata = set(f.keys()), f.metadata() or {}
    except Exception as e:   # safetensors raises several kinds for a damaged or foreign file
        raise ModelError(f"'{path.name}' is not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    if any(k.startswith(SDXL_TEXT_2) for k in keys):
        family, sd2 = "sdxl", False
    elif any(k.startswith(SD2_TEXT) for k in keys):
        family, sd2 = "sd", True
    elif any(k.startswith(SD1_TEXT) for k in keys):
        family, sd2 = "sd", False
    elif any(k.startswith("double_blocks.") or k.startswith(UNET + "double_blocks.") for k in keys):
        raise ModelError(f"'{path.name}' is a Flux transformer file; give the diffusers folder or hub id "
                         "(black-forest-labs/FLUX.1-dev) instead: single files are read for SD 1.x/2.x and SDXL")
    elif any(k.startswith(UNET + "joint_blocks.") for k in keys):
        raise ModelError(f"'{path.name}' is an SD 3.x file; give the diffusers folder or hub id instead: single "
                         "files are read for SD 1.x/2.x and SDXL")
    elif not any(k.startswith(UNET) for k in keys):
        raise ModelError(f"'{path.name}' holds no model weights (a LoRA or an embedding?); a base model is a "
                         "full checkpoint or a diffusers folder")
    else:
        raise ModelError(f"'{path.name}' is a checkpoint without a text encoder this trainer knows")
    v_meta = str(metadata.get("modelspec.prediction_type", "")).strip().lower() in ("v", "v_prediction", "v-prediction")
    v_pred = V_PRED_KEY in keys or v_meta
    return CheckpointInfo(family, "v_prediction" if v_pred else "epsilon", v_pred and ZERO_SNR_KEY in keys, sd2)


def _read_with_known_layout(path: Path, info: CheckpointInfo, cache_root: Path, config, offline: bool):
    """(config folder, modules): the file read with the first layout it fits: `config` when given,
    else the family's built-in tiny model's, then its published base model's (from the hub)."""
    from .tiny import ensure_tiny_model

    if config is not None:
        return Path(config), read_single_file(path, Path(config), info)
    problems = []
    tiny_arch = {"sd": None if info.sd2 else "sd15", "sdxl": "sdxl"}[info.family]
    candidates = [lambda: ensure_tiny_model(cache_root, arch=tiny_arch)] if tiny_arch else []
    candidates.append(lambda: config_folder(info, offline=offline))
    for candidate in candidates:
        try:
            layout = candidate()
            return layout, read_single_file(path, layout, info)
        except ModelError as e:
            problems.append(str(e))
    raise ModelError(problems[-1])


def config_folder(info: CheckpointInfo, *, offline: bool) -> Path:
    """The configs, tokenizers and scheduler of the family's published base model (no weights:
    a few kB), from the hub cache or the hub."""
    from huggingface_hub import snapshot_download

    from .vocabulary import BASE_MODELS

    base = BASE_MODELS["sdxl" if info.family == "sdxl" else "sd21" if info.sd2 else "sd15"]
    try:
        return Path(snapshot_download(base.hub_id, allow_patterns=["*.json", "*.txt", "tokenizer*/*"],
                                      local_files_only=offline))
    except Exception:   # hub errors come in many classes; the user needs one sentence
        where = "is not in the local hub cache and the hub is offline" if offline else "could not be downloaded"
        raise ModelError(f"reading a single-file checkpoint needs {base.title}'s config files ({base.hub_id}), which "
                         f"{where}; or convert the file to a diffusers folder") from None


def single_file_folder(path: str | Path, cache_root: str | Path | None = None, *, config: str | Path | None = None,
                       offline: bool = False) -> Path:
    """The diffusers folder read from a single-file checkpoint, made once under the cache.
    `offline`: the family's config files come from the local hub cache (or `config`) only."""
    from .families.base import FAMILIES
    from .tiny import build_cached, default_cache_root

    path = Path(path).expanduser()
    info = checkpoint_info(path)
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    final = root / SINGLE_FILE_DIR / f"{re.sub(r'[^A-Za-z0-9._-]', '_', path.stem)[:60]}-{key}"

    def make(folder: Path) -> None:
        import diffusers

        family = FAMILIES[info.family]
        layout, modules = _read_with_known_layout(path, info, root, config, offline)
        pipe = getattr(diffusers, family.pipeline_class).from_pretrained(
            layout, local_files_only=True, **modules, **family.pipeline_extras)
        pipe.save_pretrained(folder, safe_serialization=True)
        scheduler_file = folder / "scheduler" / "scheduler_config.json"
        sched = json.loads(scheduler_file.read_text())
        sched["prediction_type"] = info.prediction_type
        if info.zero_terminal_snr:   # as diffusers' docs set up a zero-SNR model: trailing timesteps
            sched.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
        scheduler_file.write_text(json.dumps(sched, indent=2))
        (folder / "single_file_source.json").write_text(json.dumps({"file": str(path), "size": stat.st_size,
                                                                    **info.__dict__}, indent=2))

    return build_cached(final, lambda folder: (folder / "single_file_source.json").is_file(), make)


# --- the key maps: diffusers name -> (original name, how the tensor changes) --------------------------
# how: None (as is), "conv" (a linear weight stored as a 1x1 convolution), "T" (transposed), or
# 0 / 1 / 2 (this q / k / v is that third of OpenCLIP's fused in_proj).
_RESNET = (("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"), ("out_layers.3", "conv2"),
           ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut"))
_UNET_TOP = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
             "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2."}
_OPENCLIP = (("text_model.encoder.layers.", "transformer.resblocks."), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
             (".mlp.fc1.", ".mlp.c_fc."), (".mlp.fc2.", ".mlp.c_proj."), (".self_attn.out_proj.", ".attn.out_proj."),
             ("text_model.final_layer_norm.", "ln_final."),
             ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
             ("text_model.embeddings.position_embedding.weight", "positional_embedding"))
Plan = dict[str, tuple[str, Any]]


def unet_plan(keys, config: dict[str, Any]) -> Plan:
    """UNet2DConditionModel keys -> the original (LDM) keys, for any block layout in `config`."""
    layers, levels = config["layers_per_block"], len(config["block_out_channels"])
    up_has_attention = ["CrossAttn" in t for t in config["up_block_types"]]
    prefixes: list[tuple[str, str]] = []
    for i in range(levels):
        for j in range(layers):
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.0."))
            prefixes.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.1."))
        if i < levels - 1:
            prefixes.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(layers + 1) * (i + 1)}.0.op."))
        for j in range(layers + 1):
            prefixes.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(layers + 1) * i + j}.0."))
            prefixes.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(layers + 1) * i + j}.1."))
        if i < levels - 1:
            prefixes.append((f"up_blocks.{i}.upsamplers.0.",
                             f"output_blocks.{(layers + 1) * i + layers}.{2 if up_has_attention[i] else 1}."))
    prefixes += [("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0."),
                 ("mid_block.resnets.1.", "middle_block.2.")]
    plan: Plan = {}
    for key in keys:
        new = next((o + key[len(d):] for d, o in _UNET_TOP.items() if key.startswith(d)), None)
        if new is None:
            hit = next(((d, o) for d, o in prefixes if key.startswith(d)), None)
            if hit is None:
                raise ModelError(f"UNet weight {key!r} has no single-file name")
            rest = key[len(hit[0]):]
            if ".resnets." in hit[0]:
                for original, diffusers_name in _RESNET:
                    rest = rest.replace(diffusers_name, original)
            new = hit[1] + rest
        plan[key] = (UNET + new, None)
    return plan


def vae_plan(keys, config: dict[str, Any]) -> Plan:
    """AutoencoderKL keys -> the original keys (the mid attention's linear layers as 1x1 convs)."""
    levels = len(config["block_out_channels"])
    prefixes: list[tuple[str, str]] = []
    for i in range(levels):
        for j in range(config["layers_per_block"] + 1):
            prefixes.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}."))
            prefixes.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{levels - 1 - i}.block.{j}."))
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{levels - 1 - i}.upsample."))
    for part in ("encoder", "decoder"):
        prefixes += [(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."),
                     (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."),
                     (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
                     (f"{part}.conv_norm_out.", f"{part}.norm_out.")]
    attention = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    plan: Plan = {}
    for key in keys:
        hit = next(((d, o) for d, o in prefixes if key.startswith(d)), None)
        new, how = key, None
        if hit is not None:
            rest = key[len(hit[0]):]
            if hit[1].endswith(".mid.attn_1."):
                rest = next((o + rest[len(d):] for d, o in attention.items() if rest.startswith(d)), rest)
                how = "conv" if rest.endswith("weight") and not rest.startswith("norm.") else None
            new = hit[1] + rest
        plan[key] = (VAE + new.replace("conv_shortcut", "nin_shortcut"), how)
    return plan


def clip_plan(keys, prefix: str) -> Plan:
    """transformers CLIPTextModel keys -> OpenAI CLIP's as SD 1.x / SDXL files hold them."""
    return {k: (prefix + (k if k.startswith("text_model.") else f"text_model.{k}"), None) for k in keys}


def openclip_plan(keys, prefix: str) -> Plan:
    """CLIPTextModelWithProjection keys -> OpenCLIP's (q, k, v fused into in_proj; projection transposed)."""
    plan: Plan = {}
    for key in keys:
        if key == "text_projection.weight":
            plan[key] = (prefix + "text_projection", "T")
            continue
        m = re.match(r"(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$", key)
        name = m.group(1) if m else key
        for d, o in _OPENCLIP:
            name = name.replace(d, o)
        plan[key] = (prefix + f"{name}.attn.in_proj_{m.group(3)}", "qkv".index(m.group(2))) if m else (prefix + name, None)
    return plan


def _plans(family: str, parts: dict[str, tuple[list[str], dict[str, Any]]]) -> dict[str, Plan]:
    """Per pipeline part: its key plan. `parts`: name -> (state-dict keys, config)."""
    plans = {"unet": unet_plan(*parts["unet"]), "vae": vae_plan(*parts["vae"])}
    plans["text_encoder"] = clip_plan(parts["text_encoder"][0], SDXL_TEXT_1 if family == "sdxl" else SD1_TEXT)
    if family == "sdxl":
        plans["text_encoder_2"] = openclip_plan(parts["text_encoder_2"][0], SDXL_TEXT_2)
    return plans


# --- writing: a diffusers folder as one file ------------------------------------------------------
def write_single_file(folder: str | Path, path: str | Path, *, v_prediction: bool | None = None,
                      zero_terminal_snr: bool | None = None, half: bool = False) -> Path:
    """An SD 1.x or SDXL diffusers folder as one original-layout .safetensors file (`half`: in fp16,
    as checkpoints are shared); the file carries ComfyUI's `v_pred` / `ztsnr` markers when the
    folder's scheduler says v-prediction / zero terminal SNR (or when asked)."""
    import torch
    from safetensors.torch import load_file, save_file

    from .families.base import detect_family

    folder, path = Path(folder), Path(path)
    family = detect_family(folder).name
    if family not in ("sd", "sdxl"):
        raise ModelError(f"single files are written for SD 1.x and SDXL, not {family}")
    names = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    weights = {}
    for name in names:
        files = sorted((folder / name).glob("*.safetensors"))
        if not files:
            raise ModelError(f"'{folder}' has no {name} weights in safetensors")
        weights[name] = {k: v for f in files for k, v in load_file(str(f)).items() if not k.endswith("position_ids")}
    plans = _plans(family, {n: (list(weights[n]), json.loads((folder / n / "config.json").read_text())) for n in names})
    state: dict[str, Any] = {}
    fused: dict[str, dict[int, Any]] = {}
    for name in names:
        for key, (original, how) in plans[name].items():
            value = weights[name][key]
            if isinstance(how, int):
                fused.setdefault(original, {})[how] = value
            else:
                state[original] = (value.T if how == "T" else value.reshape(*value.shape, 1, 1) if how == "conv"
                                   else value).contiguous()
    state.update({k: torch.cat([parts[i] for i in range(3)]) for k, parts in fused.items()})
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    if v_prediction is None:
        v_prediction = sched.get("prediction_type") == "v_prediction"
    if zero_terminal_snr is None:
        zero_terminal_snr = bool(sched.get("rescale_betas_zero_snr"))
    if v_prediction:
        state[V_PRED_KEY] = torch.tensor([])
        if zero_terminal_snr:
            state[ZERO_SNR_KEY] = torch.tensor([])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


# --- reading: one file into the family's modules ----------------------------------------------------
def _empty_module(folder: Path, name: str):
    """The part `name` of the diffusers folder `folder`, built from its config with weights on the
    meta device (nothing allocated until the file's tensors are assigned)."""
    from accelerate import init_empty_weights

    from .families.base import part_class, read_model_index

    cls = part_class(read_model_index(folder), name, folder)
    if hasattr(cls, "config_class") and cls.__module__.startswith("transformers"):
        config = cls.config_class.from_pretrained(folder, subfolder=name, local_files_only=True)
        with init_empty_weights():
            return cls(config), config.to_dict()
    config = cls.load_config(folder, subfolder=name, local_files_only=True)
    with init_empty_weights():
        return cls.from_config(config), dict(config)


def read_single_file(path: Path, config_folder: Path, info: CheckpointInfo) -> dict[str, Any]:
    """The weighted parts of the checkpoint at `path`, built with the configs of the diffusers
    folder `config_folder` (same family and layout): name -> module."""
    from safetensors import safe_open

    names = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if info.family == "sdxl" else [])
    built = {n: _empty_module(config_folder, n) for n in names}
    plans = _plans(info.family, {n: (list(m.state_dict()), cfg) for n, (m, cfg) in built.items()})
    modules = {}
    with safe_open(str(path), framework="pt") as f:
        have = set(f.keys())
        for name in names:
            module = built[name][0]
            shapes = {k: v.shape for k, v in module.state_dict().items()}
            state = {}
            for key, (original, how) in plans[name].items():
                if original not in have:
                    raise ModelError(f"'{path.name}' lacks {original}: not a whole checkpoint of this layout "
                                     f"({name} of {config_folder.name})")
                value = f.get_tensor(original)
                if how == "T":
                    value = value.T
                elif isinstance(how, int):
                    third = value.shape[0] // 3
                    value = value[how * third:(how + 1) * third]
                if value.numel() != shapes[key].numel():
                    raise ModelError(f"'{path.name}': {original} has shape {tuple(value.shape)}, the {name} of "
                                     f"{config_folder.name} needs {tuple(shapes[key])}: another layout")
                state[key] = value.reshape(shapes[key]).contiguous()
            module.load_state_dict(state, strict=True, assign=True)
            modules[name] = module.eval()
    return modules

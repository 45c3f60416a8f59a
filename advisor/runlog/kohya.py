"""Seed the run log from LoRA files a user already has.

kohya-ss/sd-scripts writes its training settings into the `.safetensors` header as string
pairs (`ss_learning_rate`, `ss_network_dim`, ...; research/evaluation.md §5.1). A user's
folder of past LoRAs is therefore a folder of past experiments: this module turns each
file into a `RunRecord` with our flat hyperparameter names (those of
`trainer.config.TrainConfig`), so the user only has to rate them.

No torch here: a safetensors file is an 8-byte little-endian header length, a JSON header
(tensor names, dtypes, shapes, byte offsets, and an optional `__metadata__` object), then
raw tensor bytes. Reading the header is enough for everything but the LoRA alpha of files
without metadata, which is one scalar tensor we read by offset.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trainer.vocabulary import METHOD_NAMES
from trainer.safe_json import loads as json_loads

from .records import RunRecord, check_hyperparameters, hyperparameters_from_config

# safetensors itself refuses headers above 100 MB; a bigger "length" means not safetensors.
MAX_HEADER_BYTES = 100_000_000

# Metadata keys whose presence makes the metadata unique to one saved file, so hashing the
# metadata gives a stable id without reading the (large) tensor data.
_IDENTITY_KEYS = ("ss_session_id", "ss_training_started_at", "sshs_model_hash", "modelspec.hash_sha256")

# Metadata we do not keep in the run log: a base64 preview image can be megabytes.
_DROPPED_KEYS = ("modelspec.thumbnail",)


class SafetensorsError(ValueError):
    """The file is not a readable safetensors file; the message names it."""


@dataclass(frozen=True)
class SafetensorsHeader:
    path: str
    metadata: dict[str, str]          # the `__metadata__` string pairs ({} when absent)
    tensors: dict[str, dict]          # name -> {"dtype", "shape", "data_offsets"}
    data_start: int                   # byte offset where tensor data begins


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """Parse the header of a safetensors file; SafetensorsError naming the file if it is not one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise SafetensorsError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
                raise SafetensorsError(f"{path}: not a safetensors file (header length {n} does not fit "
                                       f"a {size}-byte file)")
            raw = f.read(n)
    except OSError as e:
        raise SafetensorsError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        header = json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SafetensorsError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: not a safetensors file (header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise SafetensorsError(f"{path}: __metadata__ is not a JSON object")
    tensors = {}
    for name, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("dtype"), str)
                and isinstance(info.get("shape"), list) and isinstance(info.get("data_offsets"), list)
                and len(info["data_offsets"]) == 2):
            raise SafetensorsError(f"{path}: tensor entry {name!r} is malformed")
        tensors[name] = info
    # The format says metadata values are strings; other writers sometimes put numbers.
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    return SafetensorsHeader(str(path), metadata, tensors, 8 + n)


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The `__metadata__` string pairs of a safetensors file ({} when it has none)."""
    return read_safetensors_header(path).metadata


# --- facts from tensor names and shapes (files saved without metadata) -----------------------
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", ".lora_A.default.weight")
_SCALAR_FORMATS = {"F64": "<d", "F32": "<f", "F16": "<e"}
# width of the text embedding the UNet cross-attends to -> model family
_CONTEXT_DIM_FAMILY = {768: "sd15", 1024: "sd21", 2048: "sdxl"}


def _read_scalars(header: SafetensorsHeader, names: list[str]) -> list[float]:
    values = []
    with open(header.path, "rb") as f:
        for name in names:
            info = header.tensors[name]
            begin, end = info["data_offsets"]
            if math.prod(info["shape"]) != 1:
                continue
            f.seek(header.data_start + begin)
            raw = f.read(end - begin)
            if info["dtype"] == "BF16" and len(raw) == 2:
                # bfloat16 is the top half of a float32
                values.append(struct.unpack("<f", b"\x00\x00" + raw)[0])
            elif info["dtype"] in _SCALAR_FORMATS and len(raw) == struct.calcsize(_SCALAR_FORMATS[info["dtype"]]):
                values.append(struct.unpack(_SCALAR_FORMATS[info["dtype"]], raw)[0])
    return [v for v in values if math.isfinite(v)]


def tensor_facts(header: SafetensorsHeader) -> dict[str, Any]:
    """What the tensors alone say: method, rank, alpha, text-encoder training, model family."""
    tensors = header.tensors
    facts: dict[str, Any] = {}
    # Textual inversion files hold only the new embedding vectors.
    if "emb_params" in tensors or {"clip_l", "clip_g"} <= set(tensors):
        facts["method"] = "textual_inversion"
        emb = tensors.get("emb_params") or tensors["clip_l"]
        facts["num_vectors"] = emb["shape"][0] if emb["shape"] else 1
        width = emb["shape"][-1] if emb["shape"] else None
        facts["base_model"] = "sdxl" if "clip_g" in tensors else {768: "sd15", 1024: "sd21"}.get(width)
        return {k: v for k, v in facts.items() if v is not None}
    downs = {name: t["shape"] for name, t in tensors.items()
             if name.endswith(_DOWN_SUFFIXES) and len(t["shape"]) >= 2}
    if not downs:
        return facts
    facts["method"] = "lora"
    facts["rank"] = Counter(shape[0] for shape in downs.values()).most_common(1)[0][0]
    alphas = _read_scalars(header, [n for n in tensors if n.endswith(".alpha")])
    if alphas:
        facts["lora_alpha"] = Counter(alphas).most_common(1)[0][0]
    facts["train_text_encoder"] = any(n.startswith(("lora_te", "text_encoder")) for n in downs)
    # kohya names SDXL modules after the original (SGM) UNet and has two text encoders.
    if any(n.startswith(("lora_te2_", "lora_unet_input_blocks", "lora_unet_output_blocks")) for n in downs):
        facts["base_model"] = "sdxl"
    else:
        for name, shape in downs.items():
            if "attn2" in name and "to_k" in name and shape[1] in _CONTEXT_DIM_FAMILY:
                facts["base_model"] = _CONTEXT_DIM_FAMILY[shape[1]]
                break
    return facts


# --- ss_* metadata -> our names -----------------------------------------------------------------
def _unset(raw: str) -> bool:
    return raw.strip() in ("", "None", "null")


def _int(raw: str) -> int:
    value = float(raw)
    if not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


def _float(raw: str) -> float:
    text = raw.strip()
    if text.startswith("["):  # newer kohya allows one LR per text encoder: "[0.0001, 5e-05]"
        items = json_loads(text)
        if not items:
            raise ValueError("empty list")
        text = str(items[0])
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _bool(raw: str) -> bool:
    if raw.strip().lower() in ("true", "1"):
        return True
    if raw.strip().lower() in ("false", "0"):
        return False
    raise ValueError("not True/False")


def _str(raw: str) -> str:
    return raw.strip()


# (kohya key, our hyperparameter name, parser). The first block are TrainConfig fields; the
# second are kohya-only knobs kept under their own names so the learner can still use them.
HYPERPARAMETER_MAP: list[tuple[str, str, Callable[[str], Any]]] = [
    ("ss_max_train_steps", "max_train_steps", _int),
    ("ss_batch_size_per_device", "train_batch_size", _int),
    ("ss_gradient_accumulation_steps", "gradient_accumulation_steps", _int),
    ("ss_network_dim", "rank", _int),
    ("ss_network_alpha", "lora_alpha", _float),
    ("ss_text_encoder_lr", "text_encoder_lr", _float),
    ("ss_mixed_precision", "mixed_precision", _str),
    ("ss_seed", "seed", _int),
    ("ss_lr_scheduler", "lr_scheduler", _str),
    ("ss_lr_warmup_steps", "lr_warmup_steps", _int),
    ("ss_gradient_checkpointing", "gradient_checkpointing", _bool),
    ("ss_cache_latents", "cache_latents", _bool),
    ("ss_noise_offset", "noise_offset", _float),
    ("ss_min_snr_gamma", "snr_gamma", _float),
    ("ss_max_grad_norm", "max_grad_norm", _float),
    ("ss_prior_loss_weight", "prior_loss_weight", _float),
    ("ss_flip_aug", "random_flip", _bool),
    ("ss_num_train_images", "num_train_images", _int),  # images x repeats, as kohya counts
    ("ss_num_epochs", "num_epochs", _int),
    ("ss_optimizer", "optimizer", _str),
    ("ss_network_module", "network_module", _str),
    ("ss_network_dropout", "network_dropout", _float),
    ("ss_clip_skip", "clip_skip", _int),
    ("ss_caption_dropout_rate", "caption_dropout_rate", _float),
    ("ss_loss_type", "loss_type", _str),
]

# ss_base_model_version prefix -> our base-model family (kohya: sd_v1, sd_v1_v, sd_v2,
# sd_v2_v, sdxl_base_v1-0; the `_v` suffix means v-parameterization).
_VERSION_FAMILY = (("sdxl", "sdxl"), ("sd_v2", "sd21"), ("sd_v1", "sd15"))
_ARCH_FAMILY = (("stable-diffusion-xl", "sdxl"), ("stable-diffusion-v2", "sd21"), ("stable-diffusion-v1", "sd15"))


def _base_model(meta: dict[str, str], facts: dict[str, Any]) -> str | None:
    version = meta.get("ss_base_model_version", "").strip()
    if version and not _unset(version):
        for prefix, family in _VERSION_FAMILY:
            if version.startswith(prefix):
                return family
        return version  # flux1, sd3, ...: kept as written, not forced into a family
    arch = meta.get("modelspec.architecture", "").strip()
    if arch:
        for prefix, family in _ARCH_FAMILY:
            if arch.startswith(prefix):
                return family
        return arch.split("/")[0]
    if meta.get("ss_v2", "").strip() in ("True", "False"):  # files from before SDXL support
        return "sd21" if meta["ss_v2"].strip() == "True" else "sd15"
    return facts.get("base_model")


def _resolution(meta: dict[str, str], datasets: list[dict]) -> tuple[int, int] | None:
    for raw in (meta.get("ss_resolution", ""), meta.get("modelspec.resolution", "")):
        sides = [int(s) for s in re.findall(r"\d+", raw)]
        if len(sides) in (1, 2):
            return (sides[0], sides[-1])
    for ds in datasets:
        res = ds.get("resolution")
        if isinstance(res, list) and len(res) == 2 and all(isinstance(s, int) for s in res):
            return (res[0], res[1])
    return None


def _json_field(meta: dict[str, str], key: str, kind: type) -> Any:
    try:
        value = json_loads(meta.get(key) or "null")
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, kind) else None


def _n_images(meta: dict[str, str], datasets: list[dict]) -> int | None:
    """Distinct training images (not x repeats): from the dataset description kohya writes."""
    dirs = _json_field(meta, "ss_dataset_dirs", dict)
    if dirs:
        counts = [d.get("img_count") for d in dirs.values() if isinstance(d, dict)]
        if counts and all(isinstance(c, int) for c in counts):
            return sum(counts)
    counts = [s.get("img_count") for ds in datasets for s in ds.get("subsets", [])
              if isinstance(s, dict) and not s.get("is_reg")]
    if counts and all(isinstance(c, int) for c in counts):
        return sum(counts)
    return None


def _run_id(path: Path, meta: dict[str, str]) -> str:
    """Stable across re-imports: the metadata when it identifies the file, else the bytes."""
    digest = hashlib.sha1()
    if any(meta.get(k) for k in _IDENTITY_KEYS):
        digest.update(json.dumps(meta, sort_keys=True).encode("utf-8"))
    else:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return "kohya-" + digest.hexdigest()[:16]


def _opt_float(meta: dict[str, str], key: str) -> float | None:
    raw = meta.get(key)
    if raw is None or _unset(raw):
        return None
    try:
        return _float(raw)
    except (ValueError, json.JSONDecodeError):
        return None


def record_from_kohya(path: str | Path, metadata: dict[str, str],
                      tensor_facts: dict[str, Any] | None = None) -> RunRecord:
    """Map one file's ss_*/modelspec.* metadata (plus optional tensor facts) to a RunRecord."""
    path = Path(path)
    meta = {k: v for k, v in metadata.items() if k not in _DROPPED_KEYS}
    facts = tensor_facts or {}
    notes: list[str] = []
    hp: dict[str, Any] = {}

    for key, name, parse in HYPERPARAMETER_MAP:
        raw = meta.get(key)
        if raw is None or _unset(raw):
            continue
        try:
            hp[name] = parse(raw)
        except (ValueError, json.JSONDecodeError):
            notes.append(f"ignored {key}={raw!r} (unreadable)")
    # kohya: unet_lr overrides learning_rate for the UNet; ours is the UNet/adapter LR.
    lr = _opt_float(meta, "ss_unet_lr") or _opt_float(meta, "ss_learning_rate")
    if lr is not None:
        hp["learning_rate"] = lr
    datasets = _json_field(meta, "ss_datasets", list) or []
    datasets = [d for d in datasets if isinstance(d, dict)]
    if "train_batch_size" not in hp and datasets and isinstance(datasets[0].get("batch_size_per_device"), int):
        hp["train_batch_size"] = datasets[0]["batch_size_per_device"]
    res = _resolution(meta, datasets)
    if res is not None:
        hp["resolution"] = max(res)
        if res[0] != res[1]:
            notes.append(f"resolution {res[0]}x{res[1]} is not square; resolution holds the longer side")
    if hp.get("text_encoder_lr") == 0:
        # kohya: a text-encoder LR of 0 freezes it (TrainConfig wants text_encoder_lr > 0)
        del hp["text_encoder_lr"]
        hp["train_text_encoder"] = False
    if "optimizer" in hp:
        hp["use_8bit_adam"] = "8bit" in hp["optimizer"].lower()
        hp["use_adafactor"] = "adafactor" in hp["optimizer"].lower()
    version = meta.get("ss_base_model_version", "")
    if version.startswith("sd_v") and version.endswith("_v"):
        hp["v_parameterization"] = True
    # Tensor shapes fill what the metadata left out (files saved with --no_metadata, converted files).
    for name in ("rank", "lora_alpha", "train_text_encoder", "num_vectors"):
        if name not in hp and name in facts:
            hp[name] = facts[name]

    reg = None
    raw_reg = meta.get("ss_num_reg_images")
    if raw_reg is not None and not _unset(raw_reg):
        try:
            reg = _int(raw_reg)
        except ValueError:
            notes.append(f"ignored ss_num_reg_images={raw_reg!r} (unreadable)")
    elif datasets and all(isinstance(d.get("num_reg_images"), int) for d in datasets):
        reg = sum(d["num_reg_images"] for d in datasets)
    has_training_metadata = any(k.startswith("ss_") for k in meta)
    arch = meta.get("modelspec.architecture", "")
    if arch.endswith("/textual-inversion") or facts.get("method") == "textual_inversion":
        method = "textual_inversion"
        for name in ("rank", "lora_alpha"):
            hp.pop(name, None)
    elif reg:
        # Regularisation images are DreamBooth's prior preservation; TrainConfig only allows
        # prior_preservation with a dreambooth method, so the record says dreambooth_lora.
        method = "dreambooth_lora"
        hp["prior_preservation"] = True
        hp["num_class_images"] = reg
    elif has_training_metadata or arch.endswith("/lora") or facts.get("method") == "lora":
        method = "lora"
        if reg == 0:
            hp["prior_preservation"] = False
    else:
        method = None  # no metadata and no LoRA tensors: unknown, not guessed

    if not has_training_metadata:
        notes.append("no kohya training metadata (ss_*) in the file"
                     + ("; method/rank/alpha read from tensor shapes" if facts else
                        "; only what the file name says is known"))

    base_model = _base_model(meta, facts)
    # Files exported by this lab (trainer/export.py) carry the exact TrainConfig: it wins
    # over the ss_* translation; kohya-only knobs stay.
    lab_config = _json_field(meta, "finetune_lab_config", dict)
    if lab_config:
        hp.update(hyperparameters_from_config(lab_config))
        if meta.get("finetune_lab_method") in METHOD_NAMES:
            method = meta["finetune_lab_method"]
        if isinstance(lab_config.get("base_model"), str):
            base_model = lab_config["base_model"]
    profile = {}
    n_images = _n_images(meta, datasets)
    if n_images:
        profile["n_images"] = n_images
    if base_model in ("sd15", "sd21", "sdxl"):
        profile["base_model"] = base_model

    started = _opt_float(meta, "ss_training_started_at")
    finished = _opt_float(meta, "ss_training_finished_at")
    steps_done = None
    if meta.get("ss_steps") and not _unset(meta["ss_steps"]):
        try:
            steps_done = _int(meta["ss_steps"])
        except ValueError:
            notes.append(f"ignored ss_steps={meta['ss_steps']!r} (unreadable)")
    status = "completed"
    if steps_done is not None and hp.get("max_train_steps") and steps_done < hp["max_train_steps"]:
        status = "intermediate"  # an every-N-epochs save, not the final file
    try:
        check_hyperparameters(hp)
    except ValueError as e:
        raise SafetensorsError(f"{path}: {e}") from None

    return RunRecord(
        run_id=_run_id(path, metadata),
        source="kohya",
        name=path.stem,
        method=method,
        base_model=base_model,
        status=status,
        hyperparameters=hp,
        profile=_valid_profile(profile),
        config={"format": "kohya_safetensors", "file": path.name, "metadata": meta},
        started_at=started,
        finished_at=finished,
        duration_s=(finished - started) if started is not None and finished is not None and finished >= started else None,
        steps_done=steps_done,
        output_path=str(path.resolve()),
        note="; ".join(notes) or None,
    )


def _valid_profile(data: dict[str, Any]) -> dict[str, Any] | None:
    if not data:
        return None
    from ..profile import Profile, ProfileError

    try:
        return Profile.from_dict(data).to_dict()
    except ProfileError:
        return None


def import_file(path: str | Path) -> RunRecord:
    """Read one .safetensors file into a RunRecord (SafetensorsError if it is not one)."""
    header = read_safetensors_header(path)
    return record_from_kohya(path, header.metadata, tensor_facts(header))

"""Image and text encoders for evaluation: CLIP (image + text) and DINO (image), by name or path.

The metrics follow the DreamBooth paper: CLIP-I and DINO are mean pairwise cosine similarities
of image embeddings, CLIP-T the cosine between a prompt's and an image's CLIP embedding. DINO
is the CLS token of the last layer (ViT-S/16 in the paper; Dinov2 works too).

Preprocessing is done here with PIL and torch (resize the short side, centre-crop, normalise)
rather than with transformers' image processors, so an encoder folder needs only its config
and weights (plus tokenizer files for CLIP-T). Loading never raises: an encoder that cannot be
loaded comes back as None with a one-line reason, and the evaluation falls back to its
weight-free proxies. torch/transformers are imported inside functions only.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

CLIP_DEFAULT = "openai/clip-vit-base-patch32"   # the DreamBooth paper's CLIP-T / CLIP-I model family
DINO_DEFAULT = "facebook/dino-vits16"            # the paper's DINO ViT-S/16
DOWNLOAD_ENV = "FTA_EVAL_DOWNLOAD"               # "0": never download the default encoders (default: fetch
                                                  # them once into the hub cache when the hub is reachable)
ENCODER_NAMES = ("clip", "dino")
DISABLED = ("none", "off", "")                   # a spec that turns an encoder off

# Normalisation constants from the models' own preprocessing configs.
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_BATCH = 16
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass
class Encoder:
    """One loaded encoder: the model and how to feed it."""
    kind: str                 # "clip" | "dino"
    spec: str                 # the name or path it was loaded from
    model: Any
    crop: int                 # side of the centre crop the model sees
    resize: int               # short side before cropping
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    tokenizer: Any = None     # CLIP only; None when the folder has no tokenizer (no CLIP-T then)
    device: str = "cpu"

    def embed_images(self, images: Sequence[Any]):
        """L2-normalised embeddings, one row per PIL image."""
        import torch

        rows = []
        with torch.no_grad():
            for i in range(0, len(images), _BATCH):
                pixels = to_pixels(images[i:i + _BATCH], self.crop, self.resize, self.mean, self.std).to(self.device)
                if self.kind == "clip":
                    out = self.model.vision_model(pixel_values=pixels).pooler_output
                    rows.append(self.model.visual_projection(out))
                else:
                    rows.append(self.model(pixel_values=pixels).last_hidden_state[:, 0])
        return torch.nn.functional.normalize(torch.cat(rows).float(), dim=-1)

    def embed_texts(self, texts: Sequence[str]):
        """L2-normalised CLIP text embeddings, one row per text."""
        import torch

        if self.kind != "clip" or self.tokenizer is None:
            raise ValueError(f"encoder {self.spec!r} cannot embed text (a CLIP model with tokenizer files is needed)")
        limit = min(int(self.tokenizer.model_max_length), int(self.model.config.text_config.max_position_embeddings))
        with torch.no_grad():
            tok = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=limit,
                                 return_tensors="pt").to(self.device)
            out = self.model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output
            return torch.nn.functional.normalize(self.model.text_projection(out).float(), dim=-1)


def to_pixels(images: Sequence[Any], crop: int, resize: int, mean, std):
    """PIL images -> normalised float tensor (N, 3, crop, crop): bicubic resize of the short
    side to `resize`, centre crop, scale to [0, 1], subtract mean, divide by std."""
    import numpy as np
    import torch
    from PIL import Image

    out = []
    for img in images:
        img = img.convert("RGB")
        scale = resize / min(img.size)
        w, h = max(crop, round(img.width * scale)), max(crop, round(img.height * scale))
        img = img.resize((w, h), Image.Resampling.BICUBIC)
        left, top = (w - crop) // 2, (h - crop) // 2
        arr = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
        out.append((arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


# --- similarities (DreamBooth's definitions) ----------------------------------------------------
def mean_cosine(a, b, *, paired: bool = False) -> float:
    """Mean cosine of normalised rows: over all pairs (a_i, b_j), or row by row when `paired`."""
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired similarity needs equal counts, got {a.shape[0]} and {b.shape[0]}")
        return float((a * b).sum(-1).mean())
    return float((a @ b.T).mean())


def self_similarity(emb) -> float:
    """Mean cosine over distinct pairs of one set (the 'real images' ceiling of the paper)."""
    n = emb.shape[0]
    if n < 2:
        return float("nan")
    sims = emb @ emb.T
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def clip_image_similarity(clip: Encoder, images_a, images_b, *, paired: bool = False) -> float:
    """CLIP-I: mean cosine of CLIP image embeddings (all pairs, or image by image when `paired`)."""
    return mean_cosine(clip.embed_images(images_a), clip.embed_images(images_b), paired=paired)


def dino_similarity(dino: Encoder, images_a, images_b, *, paired: bool = False) -> float:
    """DINO: mean cosine of DINO CLS embeddings (all pairs, or image by image when `paired`)."""
    return mean_cosine(dino.embed_images(images_a), dino.embed_images(images_b), paired=paired)


def clip_text_similarity(clip: Encoder, images, texts: Sequence[str]) -> float:
    """CLIP-T: mean cosine between each image and its own prompt (`texts[i]` for `images[i]`)."""
    if len(images) != len(texts):
        raise ValueError(f"clip_text_similarity needs one text per image, got {len(texts)} for {len(images)}")
    return mean_cosine(clip.embed_images(images), clip.embed_texts(texts), paired=True)


# --- loading -------------------------------------------------------------------------------------
def parse_encoder_specs(text: str) -> dict[str, str]:
    """"clip=PATH_OR_NAME,dino=PATH_OR_NAME" -> {"clip": ..., "dino": ...}; "none" turns one off."""
    specs: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ENCODER_NAMES:
            raise ValueError(f"--encoders item {part!r}; expected clip=NAME_OR_PATH or dino=NAME_OR_PATH "
                             "(\"none\" turns one off)")
        specs[key] = value.strip()
    return specs


def _hub_offline() -> bool:
    from .models import hub_offline

    return hub_offline()


def _from_pretrained(cls, spec: str, allow_download: bool = True, weights: bool = False):
    """Local folder, then the local cache; the hub only when it is online and the user asked
    for this encoder by name (no download the user did not ask for)."""
    from .families.base import weights_kw

    kw = weights_kw() if weights else {}  # model weights: safetensors only, unless opted in
    path = Path(spec).expanduser()
    if path.is_dir():
        return cls.from_pretrained(str(path), local_files_only=True, **kw)
    if not _HUB_ID.match(spec):
        raise FileNotFoundError(f"'{spec}' is neither an existing folder nor a hub id like 'org/name'")
    try:
        if not _in_cache(spec):  # transformers may still probe the hub with local_files_only
            raise FileNotFoundError(spec)
        return cls.from_pretrained(spec, local_files_only=True, **kw)
    except Exception:
        if _hub_offline():
            raise FileNotFoundError(f"'{spec}' is not a local folder nor in the local cache, and the hub "
                                    "is offline (HF_HUB_OFFLINE=1)") from None
        if not allow_download:
            raise FileNotFoundError(f"'{spec}' is not in the local cache and {DOWNLOAD_ENV}=0 forbids "
                                    "downloading it; name it with --encoders to download it") from None
        if not hub_reachable():
            raise FileNotFoundError(f"'{spec}' is not in the local cache and the hub cannot be reached from "
                                    "here") from None
    return cls.from_pretrained(spec, **kw)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers a TCP connection within `timeout` seconds (asked once per
    process). Without it, a machine with no network spends about 100 s in retries per model
    before failing, on every scoring."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _in_cache(repo_id: str) -> bool:
    """Whether the model's config.json is in the local hub cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _reason(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(error).__name__


def load_clip(spec: str, device: str = "cpu", allow_download: bool = True) -> Encoder:
    """A CLIP model (transformers CLIPModel) by hub name or local folder; raises on failure."""
    from transformers import AutoTokenizer, CLIPModel

    model = _from_pretrained(CLIPModel, spec, allow_download, weights=True).to(device).eval()
    try:
        tokenizer = _from_pretrained(AutoTokenizer, spec, allow_download)
    except Exception:
        tokenizer = None  # image similarity still works; CLIP-T falls back to its proxy
    vocab = int(model.config.text_config.vocab_size)
    if tokenizer is not None and not 0.9 * vocab <= len(tokenizer) <= vocab:
        tokenizer = None  # transformers builds an empty tokenizer for a folder without tokenizer files
    size = int(model.config.vision_config.image_size)
    return Encoder("clip", spec, model, crop=size, resize=size, mean=CLIP_MEAN, std=CLIP_STD,
                   tokenizer=tokenizer, device=device)


def load_dino(spec: str, device: str = "cpu", allow_download: bool = True) -> Encoder:
    """A DINO ViT (ViTModel) or Dinov2 model by hub name or local folder; raises on failure."""
    from transformers import AutoModel

    model = _from_pretrained(AutoModel, spec, allow_download, weights=True).to(device).eval()
    config = model.config
    if config.model_type not in ("vit", "dinov2", "dinov2_with_registers"):
        raise ValueError(f"'{spec}' is a {config.model_type} model, not a ViT/DINO image encoder")
    # Dinov2 configs carry the 518 px position grid; its own preprocessing crops 224 (and resizes 256).
    crop = 224 if config.model_type.startswith("dinov2") else int(config.image_size)
    return Encoder("dino", spec, model, crop=crop, resize=round(crop * 256 / 224), mean=IMAGENET_MEAN,
                   std=IMAGENET_STD, device=device)


def load_encoders(clip_spec: str | None = None, dino_spec: str | None = None,
                  device: str = "cpu") -> tuple[dict[str, Encoder | None], dict[str, str]]:
    """({"clip": Encoder | None, "dino": Encoder | None}, {"clip": note, "dino": note}).

    A note is the spec when the encoder loaded ("openai/clip-vit-base-patch32"; "... (no
    tokenizer: no CLIP-T)" when only the image half works) or "none: <reason>" when it did not.
    A spec of None means the default encoder: from the local cache, else downloaded once into it
    (huggingface_hub shows its progress on stderr, which the lab's log shows) when the hub is
    reachable, unless $FTA_EVAL_DOWNLOAD=0; HF_HUB_OFFLINE=1 (the tests) never downloads.
    """
    encoders: dict[str, Encoder | None] = {}
    notes: dict[str, str] = {}
    download_defaults = os.environ.get(DOWNLOAD_ENV, "").strip().lower() not in ("0", "false", "no")
    for kind, spec, loader in (("clip", clip_spec, load_clip), ("dino", dino_spec, load_dino)):
        # Scores without the encoders are stand-ins: fetch the defaults unless the owner said no.
        allow_download = spec is not None or download_defaults
        spec = (CLIP_DEFAULT if kind == "clip" else DINO_DEFAULT) if spec is None else spec.strip()
        if spec.lower() in DISABLED:
            encoders[kind], notes[kind] = None, "none: turned off"
            continue
        try:
            encoders[kind] = loader(spec, device, allow_download)
            notes[kind] = spec
            if kind == "clip" and encoders[kind].tokenizer is None:
                notes[kind] = f"{spec} (no tokenizer files: no CLIP-T)"
        except Exception as e:  # any failure means "use the proxies", never a crashed evaluation
            encoders[kind], notes[kind] = None, f"none: {spec} could not be loaded ({_reason(e)})"
    return encoders, notes

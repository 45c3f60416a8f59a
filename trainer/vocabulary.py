"""The project's vocabulary: every domain fact defined once, as data.

- the three factors a run is judged on;
- the fine-tuning methods, with what each one trains and needs;
- the base models, with their family, hub id, native resolution and the names people use.

Stdlib only: the advisor, the lab and the trainer all import it (the advisor's import path
must stay free of torch). A new method or base model is a new row here; everything that lists
methods or base models (config validation, the advisor's rules, the run log, the UI) reads
these tables instead of keeping its own copy.
"""
from __future__ import annotations

from dataclasses import dataclass

# How a run is judged (design.md): how exactly the subject is replicated, how far it travels
# from the training images, how much of the base model stays intact. 1-5 each.
FACTORS = ("accuracy", "flexibility", "preservation")


@dataclass(frozen=True)
class MethodFacts:
    key: str                  # the name in configs, profiles and the run log
    title: str                # the name on the recommendation card ("DreamBooth (full UNet)")
    phrase: str               # the name inside a sentence ("a full fine-tune")
    family: str               # what trains: "embedding" (a new word), "adapter" (LoRA), "full" (every UNet weight)
    uses_class_images: bool   # DreamBooth's recipe: an identifier prompt, optional class images (prior preservation)
    uses_captions: bool       # False: every image trains with the instance prompt (DreamBooth)
    invasiveness: int         # 1 = changes the base model least (a new word) ... 5 = most

    @property
    def adapter(self) -> bool:
        return self.family == "adapter"

    @property
    def trains_all_weights(self) -> bool:
        return self.family == "full"


METHOD_FACTS: dict[str, MethodFacts] = {m.key: m for m in (
    MethodFacts("lora", "LoRA", "LoRA", "adapter", uses_class_images=False, uses_captions=True, invasiveness=2),
    MethodFacts("dreambooth", "DreamBooth (full UNet)", "DreamBooth", "full", uses_class_images=True,
                uses_captions=False, invasiveness=4),
    MethodFacts("dreambooth_lora", "DreamBooth-LoRA", "DreamBooth-LoRA", "adapter", uses_class_images=True,
                uses_captions=False, invasiveness=3),
    MethodFacts("textual_inversion", "Textual inversion", "textual inversion", "embedding", uses_class_images=False,
                uses_captions=True, invasiveness=1),
    MethodFacts("full_finetune", "Full fine-tune", "a full fine-tune", "full", uses_class_images=False,
                uses_captions=True, invasiveness=5),
)}
METHOD_NAMES = tuple(METHOD_FACTS)  # the keys, in the order lists and error messages show them
INVASIVENESS = tuple(sorted(METHOD_NAMES, key=lambda m: METHOD_FACTS[m].invasiveness))  # least first
ADAPTERS = tuple(m for m in METHOD_NAMES if METHOD_FACTS[m].adapter)
CLASS_IMAGE_METHODS = tuple(m for m in METHOD_NAMES if METHOD_FACTS[m].uses_class_images)
ALL_WEIGHT_METHODS = tuple(m for m in METHOD_NAMES if METHOD_FACTS[m].trains_all_weights)


# The adapter kinds LoRA and DreamBooth-LoRA can train (peft, `TrainConfig.adapter`): plain LoRA;
# DoRA (LoRA with the weight's magnitude learned apart, Liu et al. 2024, arXiv 2402.09353); LoHa and
# LoKr (LyCORIS: Hadamard and Kronecker products of low-rank factors, arXiv 2309.14859).
ADAPTER_KINDS = ("lora", "dora", "loha", "lokr")

# How the frozen base weights of an adapter run can be quantized (`TrainConfig.quantize_base`):
# not; int8 weight-only (torchao, CPU or GPU); NF4 (bitsandbytes, CUDA: the QLoRA recipe of
# Dettmers et al. 2023, arXiv 2305.14314, and of the Hugging Face Flux QLoRA post).
QUANTIZE_BASE = ("no", "int8", "nf4")

# The model families the trainer trains (trainer.families, one module per kind of denoiser),
# recognised from a model's own files: SD 1.x/2.x and SDXL (UNet; noise or v prediction read
# from the scheduler), SD 3.5, Flux.1, Flux.2 klein, Z-Image and Qwen-Image (rectified-flow
# transformers). A config names one or "auto".
FAMILY_NAMES = ("sd", "sdxl", "sd3", "flux", "flux2", "zimage", "qwenimage")
# The methods the trainer runs on each family: textual inversion only where the trainer adds a
# token to a CLIP encoder the denoiser reads directly (the UNet families).
FAMILY_METHODS: dict[str, tuple[str, ...]] = {
    "sd": METHOD_NAMES, "sdxl": METHOD_NAMES,
    **{name: tuple(m for m in METHOD_NAMES if m != "textual_inversion")
       for name in ("sd3", "flux", "flux2", "zimage", "qwenimage")},
}


@dataclass(frozen=True)
class BaseModel:
    key: str          # the name in profiles, recommendations and the run log
    title: str        # the name on the recommendation card
    short: str        # the name in the chat
    family: str       # the trainer's model family (FAMILY_NAMES); SD 2.x's v-prediction is read from its scheduler
    hub_id: str       # where the published weights live
    resolution: int   # the side length it was trained at (methods §13)
    hub_aliases: tuple[str, ...] = ()  # other hub ids of the same model (older copies, sibling releases)
    licence: str = ""  # what its publisher's licence allows, where it restricts use ("" = permissive or see card)


BASE_MODELS: dict[str, BaseModel] = {b.key: b for b in (
    BaseModel("sd15", "Stable Diffusion 1.5", "SD 1.5", "sd", "stable-diffusion-v1-5/stable-diffusion-v1-5", 512,
              hub_aliases=("runwayml/stable-diffusion-v1-5", "CompVis/stable-diffusion-v1-4")),
    BaseModel("sd21", "Stable Diffusion 2.1", "SD 2.1", "sd", "stabilityai/stable-diffusion-2-1", 768,
              hub_aliases=("stabilityai/stable-diffusion-2-1-base", "stabilityai/stable-diffusion-2")),
    BaseModel("sdxl", "SDXL 1.0", "SDXL", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0", 1024),
    # Guidance-distilled 12 B rectified-flow transformer; gated on the hub (accept its licence first).
    BaseModel("flux1dev", "FLUX.1 [dev]", "Flux.1 dev", "flux", "black-forest-labs/FLUX.1-dev", 1024,
              licence="the FLUX.1 [dev] Non-Commercial License: the weights, and LoRAs trained on them, are for "
                      "non-commercial use; read it before any commercial use"),
    # 8.1 B MMDiT (rectified flow) with CLIP-L, CLIP-G and T5-XXL; gated on the hub.
    BaseModel("sd35large", "Stable Diffusion 3.5 Large", "SD 3.5 Large", "sd3", "stabilityai/stable-diffusion-3.5-large",
              1024, licence="the Stability AI Community License: free for research, non-commercial use and "
                            "organisations under US$1M annual revenue; larger ones need Stability's enterprise licence"),
    # 6 B single-stream transformer (rectified flow) with a Qwen3-4B text encoder; Apache 2.0. The
    # undistilled base LoRAs are trained on (Z-Image-Turbo is its 8-step distillation).
    BaseModel("zimage", "Z-Image", "Z-Image", "zimage", "Tongyi-MAI/Z-Image", 1024),
    # 3.9 B double/single-stream transformer with a Qwen3-4B text encoder; Apache 2.0 (the 9 B is
    # non-commercial). The undistilled base LoRAs are trained on (klein 4B itself samples in 4 steps).
    BaseModel("klein4b", "FLUX.2 [klein] 4B", "Flux.2 klein 4B", "flux2", "black-forest-labs/FLUX.2-klein-base-4B",
              1024),
    # 20 B MMDiT with a Qwen2.5-VL-7B text encoder and a causal 3-D VAE; Apache 2.0. Generates at
    # 1328 px; LoRAs are trained at 1024 (diffusers' README_qwen, musubi-tuner).
    BaseModel("qwenimage", "Qwen-Image", "Qwen-Image", "qwenimage", "Qwen/Qwen-Image", 1328),
)}


def base_model_key(value: object) -> str | None:
    """The base-model key for a key or a published hub id ("stabilityai/stable-diffusion-2-1" ->
    "sd21"; hub ids are case-blind, as on the hub); None for anything else (a local folder,
    another model). Nothing is guessed from parts of a name."""
    if not isinstance(value, str):
        return None
    if value in BASE_MODELS:
        return value
    wanted = value.strip().lower()
    return next((b.key for b in BASE_MODELS.values()
                 if wanted in (b.hub_id.lower(), *(a.lower() for a in b.hub_aliases))), None)

"""The newer base-model families people fine-tune in 2026: what is published about training each
one (shared/research/models-2026.md, figures as published, none measured here), so the chat can
answer "a qwen-image lora on my 4090" with the facts and the nearest plan it can make, instead of
only "not here". Five of them (Flux.1, SD 3.5, Flux.2 klein, Z-Image, Qwen-Image) the trainer trains already
(`trained_as`: trainer.families), from their hub id or a diffusers folder; the advisor plans Flux.1
dev, SD 3.5 Large, Z-Image, Flux.2 klein 4B and Qwen-Image (`base_model`, a row of
trainer.vocabulary.BASE_MODELS).

Each row: the names people write (a regex), the diffusers training script, the lowest published
memory for a LoRA and how it was reached, with its source, and the licence where its publisher
states one (Flux.1 dev's forbids commercial use; other cards: check the model card).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    names: str                  # regex over the user's lower-cased words
    script: str                 # diffusers examples/dreambooth training script ("" when none)
    lowest_lora: str            # the lowest published memory for a LoRA, and how
    source: str
    trainers: str               # trainers that train it (models-2026.md's trainer table and sources)
    licence: str = ""           # as published; "" when the sources name none
    trained_as: str = ""        # the trainer's family (trainer.vocabulary.FAMILY_NAMES) when it trains it
    hub_id: str = ""            # the published diffusers weights, for base_model
    base_model: str = ""        # the trainer.vocabulary.BASE_MODELS key the advisor plans it as ("" = not planned)

    def matches(self, text: str) -> bool:
        return re.search(self.names, text) is not None

    def sentence(self) -> str:
        script = f"diffusers' {self.script}" if self.script else "no diffusers script"
        licence = f" Licence: {self.licence}." if self.licence else " Check its model card for the licence."
        return (f"{self.title} LoRA, as published: {self.lowest_lora} ({self.source}); trained by {script}, "
                f"and by {self.trainers}.{licence}")


# Order matters: the first family whose names match is the one meant ("flux 2 klein" before "flux").
FAMILIES: tuple[Family, ...] = (
    Family("flux2-klein", "Flux.2 klein", r"\bflux[\s.-]*2[\s.-]*klein|\bklein\b", "train_dreambooth_lora_flux2_klein.py",
           "4B about 12 GB in bf16 and 8 GB with an int8 base, 9B about 22 GB and 14 GB", "SimpleTuner FLUX2 quickstart", "SimpleTuner and musubi-tuner",
           "4B Apache 2.0; 9B the FLUX non-commercial licence", trained_as="flux2",
           hub_id="black-forest-labs/FLUX.2-klein-base-4B", base_model="klein4b"),
    Family("flux2", "Flux.2 dev", r"\bflux[\s.-]*2\b", "train_dreambooth_lora_flux2.py",
           "about 22 GB with an int4 text encoder and an int8 transformer; SimpleTuner calls several GPUs "
           "essentially required", "SimpleTuner FLUX2 quickstart", "SimpleTuner and musubi-tuner"),
    Family("flux1", "Flux.1 dev", r"\bflux(?:[\s.-]*1)?(?:[\s.-]*(?:dev|schnell|kontext))?\b", "train_dreambooth_lora_flux.py",
           "about 9 GB peak as an NF4 QLoRA on a 4090 (700 steps in about 41 min), 26 GB as a plain bf16 LoRA",
           "Hugging Face blog 'flux-qlora'", "kohya sd-scripts, ai-toolkit, SimpleTuner and fluxgym",
           "Flux.1 dev's forbids commercial use (schnell is Apache 2.0)", trained_as="flux",
           hub_id="black-forest-labs/FLUX.1-dev", base_model="flux1dev"),
    Family("sd3", "Stable Diffusion 3.5", r"\bsd\s*3(?:\.5)?\b|\bstable diffusion 3(?:\.5)?\b", "train_dreambooth_lora_sd3.py",
           "under 16 GB with an 8-bit T5 and precomputed text embeddings; about 13.9 GB at int2",
           "diffusers research_projects/sd3_lora_colab; SimpleTuner SD3 quickstart",
           "kohya sd-scripts and SimpleTuner", trained_as="sd3", hub_id="stabilityai/stable-diffusion-3.5-large",
           base_model="sd35large"),
    Family("qwen-image", "Qwen-Image", r"\bqwen[\s-]?image\b", "train_dreambooth_lora_qwen_image.py",
           "24 GB at the limit (3-bit base with an accuracy-recovery adapter); musubi-tuner 42 GB, 30 GB in fp8, "
           "24 GB with 16 blocks swapped", "ai-toolkit; musubi-tuner docs/qwen_image.md", "ai-toolkit and musubi-tuner",
           "Apache 2.0", trained_as="qwenimage", hub_id="Qwen/Qwen-Image", base_model="qwenimage"),
    Family("z-image", "Z-Image", r"\bz[\s-]?image\b", "train_dreambooth_lora_z_image.py",
           "10-12 GB with an NF4 base; Turbo needs a de-distill adapter", "SimpleTuner ZIMAGE quickstart; "
           "ostris/ai-toolkit#550; tdrussell/diffusion-pipe#462",
           "SimpleTuner, ai-toolkit and musubi-tuner", "Apache 2.0 (Tongyi-MAI's model cards)", trained_as="zimage",
           hub_id="Tongyi-MAI/Z-Image", base_model="zimage"),
    Family("hidream", "HiDream I1", r"\bhidream\b", "train_dreambooth_lora_hidream.py",
           "about 37 GB with NF4 against 60 GB without; 20-22 GB in SimpleTuner", "diffusers README_hidream", "SimpleTuner"),
    Family("chroma", "Chroma", r"\bchroma\b", "", "about 8 GB with NF4, 16 GB in int8", "SimpleTuner CHROMA quickstart", "SimpleTuner"),
    Family("lumina2", "Lumina 2", r"\blumina\s*2?\b", "train_dreambooth_lora_lumina2.py", "12-14 GB", "SimpleTuner", "kohya sd-scripts and SimpleTuner"),
    Family("sana", "Sana", r"\bsana\b", "train_dreambooth_lora_sana.py", "about 12 GB", "SimpleTuner", "SimpleTuner"),
)


def family_named(text: str) -> Family | None:
    """The family `text` (a user's words) names, or None."""
    low = text.lower()
    return next((f for f in FAMILIES if f.matches(low)), None)

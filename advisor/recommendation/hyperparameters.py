"""Starting hyperparameters per method x subject type x base model, from the published recipes.

Each value carries the knowledge card it comes from (shared/research/methods-and-
hyperparameters.md, "methods §n", has the primary sources). Values that are arithmetic on
published numbers say "derived" next to them. Memory and speed switches start at the safe
defaults (fp32, no checkpointing, no 8-bit Adam): `costs.fit_memory` turns them on when the
card needs them, and says so.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from trainer.config import DEFAULTS as TRAIN_DEFAULTS
from trainer.vocabulary import ADAPTERS, BASE_MODELS, CLASS_IMAGE_METHODS, FAMILY_METHODS, METHOD_FACTS

from ..profile import SETTING_LABELS, SWITCH_SETTINGS, Profile, setting_value

IDENTIFIER = "sks"             # the diffusers README's rare token; any rare word works (HF blog)
TI_TOKEN = "<sks>"             # textual inversion's new token
DEFAULT_NOUN = {"person": "person", "animal": "animal", "object": "object", "style": "painting",
                "concept": "thing", "general": "image"}
EPOCHS = 100                   # OneTrainer's default epoch count (methods §4), for dataset methods

# Recipe rows: (method, key) -> (card, values), where key is "*", a base model or a subject
# type; rows apply in the order "*" -> base model -> subject type, later values winning.
RECIPES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    # diffusers DreamBooth: 5e-6 constant, batch 1, 400 steps (800 with prior preservation).
    ("dreambooth", "*"): ("method-dreambooth", {"learning_rate": 5e-6, "max_train_steps": 400,
                                                "train_batch_size": 1, "gradient_accumulation_steps": 1}),
    # HF DreamBooth blog, faces: lower LR (1e-6 or 2e-6), 800-1,200 steps at batch 2. 2e-6 pairs
    # with TheLastBen's face recipe (UNet 2e-6, text encoder 1e-6).
    ("dreambooth", "person"): ("subject-people-faces", {"learning_rate": 2e-6, "max_train_steps": 800,
                                                        "train_batch_size": 2}),
    # diffusers DreamBooth-LoRA: 1e-4, 500 steps, batch 1, rank 4.
    ("dreambooth_lora", "*"): ("method-dreambooth-lora", {"learning_rate": 1e-4, "max_train_steps": 500,
                                                          "train_batch_size": 1, "gradient_accumulation_steps": 1,
                                                          "rank": 4}),
    # diffusers SDXL DreamBooth-LoRA: 1e-4 constant, 500 steps, batch 1 x 4 at 1024 px.
    ("dreambooth_lora", "sdxl"): ("sdxl-specifics", {"gradient_accumulation_steps": 4}),
    # Flux.1 dev DreamBooth-LoRA: diffusers README_flux trains 500 steps at batch 1 x 4, 512 px; with
    # AdamW (not Prodigy, which this trainer lacks) the flux-qlora blog's 1e-4 constant, rank 4.
    ("dreambooth_lora", "flux1dev"): ("base-flux1-dev", {"gradient_accumulation_steps": 4, "resolution": 512,
                                                         "lr_scheduler": "constant"}),
    # SD 3.5 Large: diffusers README_sd3's DreamBooth-LoRA (500 steps, batch 1 x 4, constant) at
    # SimpleTuner's "stable configuration" learning rate for 3.5 Large, 1e-4 (README_sd3's 4e-4 is
    # for the 2 B Medium; SimpleTuner: "4e-5 could explode" for full training).
    ("dreambooth_lora", "sd35large"): ("base-sd35-large", {"gradient_accumulation_steps": 4,
                                                           "lr_scheduler": "constant"}),
    # Z-Image: diffusers README_z_image's DreamBooth-LoRA (1024 px, batch 1 x 4, 1e-4 constant, 500
    # steps, 8-bit AdamW, latents cached); Tongyi-MAI/Z-Image#36 reports 1e-4 to 2e-4 working.
    ("dreambooth_lora", "zimage"): ("base-z-image", {"gradient_accumulation_steps": 4, "lr_scheduler": "constant"}),
    # Flux.2 klein 4B: diffusers README_flux2's AdamW DreamBooth-LoRA (1024 px, batch 1 x 4, 1e-4
    # constant, 500 steps, 8-bit AdamW, latents cached), which train_dreambooth_lora_flux2_klein.py shares.
    ("dreambooth_lora", "klein4b"): ("base-flux2-klein", {"gradient_accumulation_steps": 4,
                                                          "lr_scheduler": "constant"}),
    # Qwen-Image: musubi-tuner's documented LoRA (5e-5, rank 16, 8-bit AdamW, 1024 px; its VRAM table's
    # setup) at README_qwen's batch 1 x 4, constant (README_qwen's 2e-4 is its Sana example's value).
    ("dreambooth_lora", "qwenimage"): ("base-qwen-image", {"gradient_accumulation_steps": 4, "resolution": 1024,
                                                           "learning_rate": 5e-5, "lr_scheduler": "constant",
                                                           "rank": 16}),
    # diffusers captioned LoRA: 1e-4 cosine, batch 1 x 4, rank 4.
    ("lora", "*"): ("method-lora", {"learning_rate": 1e-4, "train_batch_size": 1, "gradient_accumulation_steps": 4,
                                    "lr_scheduler": "cosine", "rank": 4}),
    # Flux.1 dev captioned LoRA: the flux-qlora blog's style run, 1e-4 constant, batch 1 x 4, rank 4,
    # 512 px wide (512 x 768).
    ("lora", "flux1dev"): ("base-flux1-dev", {"resolution": 512, "lr_scheduler": "constant"}),
    # SD 3.5 Large captioned LoRA: SimpleTuner's stable configuration, 1e-4, constant.
    ("lora", "sd35large"): ("base-sd35-large", {"lr_scheduler": "constant"}),
    # Z-Image captioned LoRA: README_z_image's 1e-4 constant.
    ("lora", "zimage"): ("base-z-image", {"lr_scheduler": "constant"}),
    # Flux.2 klein 4B captioned LoRA: README_flux2's 1e-4 constant.
    ("lora", "klein4b"): ("base-flux2-klein", {"lr_scheduler": "constant"}),
    # Qwen-Image captioned LoRA: musubi-tuner's 5e-5, rank 16, at 1024 px, constant.
    ("lora", "qwenimage"): ("base-qwen-image", {"resolution": 1024, "learning_rate": 5e-5, "lr_scheduler": "constant",
                                                "rank": 16}),
    # diffusers textual inversion: 5e-4, 3,000 steps, batch 1 x 4.
    ("textual_inversion", "*"): ("method-textual-inversion", {"learning_rate": 5e-4, "max_train_steps": 3000,
                                                              "train_batch_size": 1, "gradient_accumulation_steps": 4}),
    # diffusers text-to-image (SD1.x): 1e-5 constant, EMA, batch 1 x 4, random flip, 15,000 steps.
    ("full_finetune", "*"): ("method-full-finetune", {"learning_rate": 1e-5, "max_train_steps": 15000,
                                                      "train_batch_size": 1, "gradient_accumulation_steps": 4,
                                                      "use_ema": True, "random_flip": True}),
    # EveryDream2 halves the LR at 768 px (derived: 1e-5 / 2).
    ("full_finetune", "sd21"): ("sd21-specifics", {"learning_rate": 5e-6}),
    # diffusers SDXL text-to-image: 1e-6 constant, 10,000 steps, batch 1 x 4, no EMA.
    ("full_finetune", "sdxl"): ("sdxl-specifics", {"learning_rate": 1e-6, "max_train_steps": 10000, "use_ema": False}),
}
# The knowledge card of each base model with one (its recipes, memory, licence).
BASE_CARDS = {"sd21": "sd21-specifics", "sdxl": "sdxl-specifics", "flux1dev": "base-flux1-dev",
              "sd35large": "base-sd35-large", "zimage": "base-z-image", "klein4b": "base-flux2-klein",
              "qwenimage": "base-qwen-image"}

# Methods the advisor does not plan on a base model although the trainer runs them: no published
# recipe or cost figure for them is in the knowledge base. Each with the reason the card gives.
UNPLANNED: dict[str, dict[str, str]] = {
    "flux1dev": {
        "full_finetune": "a full fine-tune of Flux.1 dev needs about 120 GB (flux-qlora blog) and has no published "
                         "recipe in the knowledge base",
        "dreambooth": "DreamBooth of every Flux.1 dev weight needs about 120 GB (flux-qlora blog) and has no "
                      "published recipe in the knowledge base",
    },
    "sd35large": {
        "full_finetune": "a full fine-tune of SD 3.5 Large has no published recipe or memory figure in the knowledge "
                         "base (SimpleTuner warns its training is unstable)",
        "dreambooth": "DreamBooth of every SD 3.5 Large weight has no published recipe or memory figure in the "
                      "knowledge base (SimpleTuner warns its training is unstable)",
    },
    "zimage": {
        "full_finetune": "a full fine-tune of Z-Image has no published recipe or memory figure in the knowledge base "
                         "(diffusers' README calls Z-Image fine-tuning experimental)",
        "dreambooth": "DreamBooth of every Z-Image weight has no published recipe or memory figure in the knowledge "
                      "base (diffusers' README calls Z-Image fine-tuning experimental)",
    },
    "klein4b": {
        "full_finetune": "a full fine-tune of Flux.2 klein has no published recipe or memory figure in the knowledge "
                         "base (diffusers' README calls Flux.2 fine-tuning experimental)",
        "dreambooth": "DreamBooth of every Flux.2 klein weight has no published recipe or memory figure in the "
                      "knowledge base (diffusers' README calls Flux.2 fine-tuning experimental)",
    },
    "qwenimage": {
        "full_finetune": "a full fine-tune of Qwen-Image's 20 B weights has no published memory figure in the knowledge "
                         "base (musubi-tuner's needs bf16 weights, Adafactor and block swapping even on 48 GB)",
        "dreambooth": "DreamBooth of every Qwen-Image weight has no published memory figure in the knowledge base "
                      "(musubi-tuner's full fine-tune needs bf16 weights, Adafactor and block swapping even on 48 GB)",
    },
}


def unplanned(method: str, base_model: str) -> str | None:
    """Why the advisor makes no plan for `method` on `base_model`, or None when it does."""
    base = BASE_MODELS[base_model]
    if method not in FAMILY_METHODS[base.family]:
        return f"{METHOD_FACTS[method].title} is not trained on {base.short} here (it trains on the UNet models only)"
    return UNPLANNED.get(base_model, {}).get(method)


# Everything the recipes do not set starts at TrainConfig's default, the safe portable path
# (the style guide's "simple over easy"), with the card that explains the knob; no class
# images are made until prior preservation asks for them.
BASELINE_CARDS: dict[str, str] = {
    "lr_scheduler": "lr-schedules-warmup", "lr_warmup_steps": "lr-schedules-warmup",
    "mixed_precision": "memory-savings", "gradient_checkpointing": "memory-savings",
    "use_8bit_adam": "memory-savings", "cache_latents": "caching",
    "use_ema": "method-full-finetune", "random_flip": "dataset-preparation",
    "train_text_encoder": "text-encoder-training", "text_encoder_lr": "text-encoder-training",
    "prior_preservation": "prior-preservation", "num_class_images": "class-images", "crop": "resolution-bucketing",
    "prior_loss_weight": "prior-preservation", "snr_gamma": "min-snr-noise-offset",
}
BASELINE: dict[str, Any] = {**{k: TRAIN_DEFAULTS[k] for k in BASELINE_CARDS}, "num_class_images": 0}
VALIDATION = {  # DreamBench-style prompts (google/dreambooth prompt list), by subject kind
    "live": ("a {s} in the jungle", "a {s} wearing a red hat", "a {s} in a chef outfit"),
    "thing": ("a {s} in the jungle", "a {s} on the beach", "a {s} with a city in the background"),
    "style": ("a city street in the style of {s}", "a portrait of a woman in the style of {s}",
              "a mountain lake in the style of {s}"),
    "general": ("a photo of a city street at night", "a portrait of an old man", "a bowl of fruit on a table"),
}


@dataclass
class Start:
    values: dict[str, Any]                                    # TrainConfig field names
    sources: dict[str, str]                                   # key -> knowledge card id
    notes: list[tuple[str, str]] = field(default_factory=list)  # (sentence, card id)


def class_noun(profile: Profile) -> str:
    """The DreamBooth class: the user's word, else a generic one for the subject type."""
    return (profile.class_noun or "").strip() or DEFAULT_NOUN[profile.subject_type or "object"]


def _round50(x: float) -> int:
    return max(50, int(math.ceil(x / 50.0)) * 50)


def _steps(method: str, base: int, n_images: int, batch: int, accum: int, notes: list,
           subject_type: str | None = None) -> int:
    """Scale the recipe's steps with the image count where the sources give a range."""
    if method in CLASS_IMAGE_METHODS:
        # The recipes cover up to ~10 images (TheLastBen's faces; DreamBooth-LoRA 5-10); the face
        # range 800-1,200 steps allows up to 1.5x for larger sets (derived).
        scale = min(1.5, max(1.0, n_images / 10))
        if scale > 1:
            where = ("within the published 800-1,200 face range" if subject_type == "person" else
                     "as more images need more steps, up to 1.5x the recipe's")
            notes.append((f"Steps x{scale:.2f} for {n_images} images, {where} (derived).", "hp-steps"))
        return _round50(base * scale)
    if method == "textual_inversion":
        return base  # no published scaling with image count
    # Dataset methods: ~100 epochs (OneTrainer's default) between the recipe's bounds (derived).
    lo, hi = (500, 15000 * 4) if method == "lora" else (1000 * 4, base * 4)
    views = min(hi, max(lo, EPOCHS * n_images))
    notes.append((f"{_round50(views / (batch * accum))} steps: about {views / n_images:.0f} passes over "
                  f"{n_images} images, from OneTrainer's 100-epoch default within the recipe's range (derived).",
                  "hp-steps"))
    return _round50(views / (batch * accum))


def with_identifier(prompt: str, subject: str, noun: str) -> str:
    """The user's dream prompt, naming the trained subject the way training named it:
    "my cat as an astronaut" -> "sks cat as an astronaut" (otherwise the samples would show
    any cat). A prompt that already holds the subject is kept; one that never names the noun
    gets the subject in front ("sks cat, as an astronaut")."""
    prompt = " ".join(prompt.split())
    if not prompt or subject in prompt:
        return prompt
    words = [re.escape(w) for w in noun.split()]
    pattern = re.compile(r"\b(?:(?:my|our|his|her|their|the|a|an)\s+)?" + r"\s+".join(words) + r"\b",
                         re.IGNORECASE) if words else None
    m = pattern.search(prompt) if pattern else None
    if m is None:
        return f"{subject}, {prompt}"
    return prompt[:m.start()] + subject + prompt[m.end():]


def _prompts(method: str, profile: Profile, noun: str) -> dict[str, Any]:
    kind = profile.subject_type or "object"
    token = TI_TOKEN if method == "textual_inversion" else IDENTIFIER
    subject = token if method == "textual_inversion" else f"{token} {noun}"
    if kind == "style":
        instance = f"a painting in the style of {token}"  # kohya's TI style template
        group = "style"
    elif kind == "general" and method != "textual_inversion":
        instance, group = "an image", "general"  # captions carry the content; no identifier
    else:
        instance = f"a photo of {subject}"
        group = "live" if kind in ("person", "animal") else "thing"
    dream = [with_identifier(d, subject, noun) for d in profile.dream_prompts[:4]] if group != "general" else \
        list(profile.dream_prompts[:4])
    prompts = dream or [p.format(s=subject) for p in VALIDATION[group]]
    out = {"instance_prompt": instance, "validation_prompts": prompts}
    if method == "textual_inversion":
        init = noun.split()[-1].lower()
        out.update(placeholder_token=TI_TOKEN, initializer_token=init if init.isalpha() else "object", num_vectors=1)
    return out


def starting_hyperparameters(method: str, profile: Profile,
                             advice: dict[str, tuple[Any, str]] | None = None) -> Start:
    """The published starting point for `method` on a filled profile.

    `advice` maps hyperparameter -> (value, card id) from the matched rules (prior
    preservation, text encoder, rank, min-SNR); advice a method has no knob for is ignored.
    """
    if method not in {m for m, _ in RECIPES}:
        raise ValueError(f"method={method!r}; pick one of {sorted({m for m, _ in RECIPES})}")
    if profile.base_model not in BASE_MODELS or profile.n_images is None:
        raise ValueError("starting_hyperparameters needs a filled profile (use profile.with_defaults())")
    values = dict(BASELINE)
    sources = dict(BASELINE_CARDS)
    base = BASE_MODELS[profile.base_model]
    values["resolution"], sources["resolution"] = base.resolution, "dataset-preparation"   # a recipe may lower it
    for key in ("*", profile.base_model, profile.subject_type):
        card, row = RECIPES.get((method, key), ("", {}))
        values.update(row)
        sources.update(dict.fromkeys(row, card))
    notes: list[tuple[str, str]] = []
    if base.licence:
        notes.append((f"Licence: {base.title} comes under {base.licence}.", BASE_CARDS[base.key]))
    _apply_advice(method, profile, values, sources, advice or {})
    if method == "dreambooth" and values["prior_preservation"] and profile.subject_type != "person":
        values["max_train_steps"] = 800  # diffusers: 800 steps with prior preservation
    if "max_train_steps" not in values:
        values["max_train_steps"] = 0
        sources["max_train_steps"] = "hp-steps"
    named = sorted((k for k in profile.settings if k != "max_train_steps"), key=lambda k: k == "lora_alpha")
    _named_settings(method, profile, named, values, sources, notes)   # a named batch size changes the steps
    values["max_train_steps"] = _steps(method, values["max_train_steps"], profile.n_images,
                                       values["train_batch_size"], values["gradient_accumulation_steps"], notes,
                                       profile.subject_type)
    if "max_train_steps" in profile.settings:
        notes[:] = [n for n in notes if n[1] != "hp-steps"]   # the derived count is replaced
        _named_settings(method, profile, ["max_train_steps"], values, sources, notes)
    noun = class_noun(profile)
    values.update(_prompts(method, profile, noun))
    if values["prior_preservation"]:
        values["class_prompt"] = f"a photo of a {noun}"  # the bare class, as in the diffusers README
    values["validation_steps"] = values["checkpointing_steps"] = _round50(values["max_train_steps"] / 4)
    return Start(values=values, sources=sources, notes=notes)


# The settings a user may name (profile.SETTING_BOUNDS) that only some methods have, and the
# card that explains each knob.
SETTING_METHODS: dict[str, tuple[str, ...]] = {
    "rank": ADAPTERS, "lora_alpha": ADAPTERS, "prior_preservation": CLASS_IMAGE_METHODS,
    "train_text_encoder": tuple(m for m, f in METHOD_FACTS.items() if f.family != "embedding"),  # as TrainConfig
    "conv_lora": ADAPTERS}
SETTING_CARDS = {"rank": "hp-lora-rank-alpha", "lora_alpha": "hp-lora-rank-alpha", "learning_rate": "hp-learning-rate",
                 "max_train_steps": "hp-steps", "train_batch_size": "hp-batch-accumulation",
                 "resolution": "resolution-bucketing", "prior_preservation": "prior-preservation",
                 "train_text_encoder": "text-encoder-training", "conv_lora": "lycoris-variants"}
FAR_FROM_RECIPE = 3.0  # a named value this many times above or below the recipe's gets a caution


def _named_settings(method: str, profile: Profile, keys: list[str], values: dict, sources: dict,
                    notes: list) -> None:
    """The named settings `keys` replace the recipe's, where the method has the knob; each one
    gets a sentence with the recipe's value beside it (and a caution when it is far from it)."""
    for key in keys:
        wanted = profile.settings[key]
        said = f"{SETTING_LABELS[key]} {setting_value(key, wanted)}"
        if method not in SETTING_METHODS.get(key, (method,)):
            notes.append((f"You set {said}, but {METHOD_FACTS[method].title} has no {SETTING_LABELS[key]}, so it "
                          "does not apply to this plan.", SETTING_CARDS[key]))
            continue
        # the recipe's value (alpha = rank since _apply_advice); a knob no recipe sets (LoCon) is at
        # the trainer's default
        recipe = values.get(key, TRAIN_DEFAULTS[key])
        values[key], sources[key] = wanted, SETTING_CARDS[key]
        if key in SWITCH_SETTINGS:
            _switch(key, wanted, values, sources)
            label = SETTING_LABELS[key]
            sentence = (f"You asked for {label}, so the plan uses it" if wanted else
                        f"You asked for no {label}, so the plan goes without it")
            if wanted != recipe:
                sentence += (f"; the rules would not: {_CAUTION[key][0]}" if wanted else
                             f"; the rules would use it, and without it {_CAUTION[key][1]}")
            notes.append((sentence if wanted != recipe else sentence + ".", SETTING_CARDS[key]))
            continue
        if key == "learning_rate" and values.get("text_encoder_lr"):
            values["text_encoder_lr"] = values["text_encoder_lr"] * wanted / recipe  # keep their ratio
        if key == "rank" and "lora_alpha" not in profile.settings:
            values["lora_alpha"] = float(wanted)  # alpha = rank, as the recipe pairs them
        if key == "lora_alpha":   # what alpha does is alpha / rank: the recipe's is 1 (alpha = rank)
            ratio = wanted / values["rank"]
            sentence = f"You set {said}, so the plan uses it: alpha / rank is {ratio:g} where the recipe's is 1"
            sentence += ("." if ratio == 1 else f", {_CAUTION[key][0 if ratio > 1 else 1]}")
            notes.append((sentence, SETTING_CARDS[key]))
            continue
        sentence = f"You set {said}, so the plan uses it (the recipe's is {recipe:g})."
        if wanted == recipe:
            sentence = f"You set {said}, the recipe's own value."
        elif wanted >= recipe * FAR_FROM_RECIPE:
            sentence += f" That is {wanted / recipe:.0f}x the recipe's: {_CAUTION[key][0]}"
        elif wanted * FAR_FROM_RECIPE <= recipe:
            sentence += f" That is 1/{recipe / wanted:.0f} of the recipe's: {_CAUTION[key][1]}"
        notes.append((sentence, SETTING_CARDS[key]))


def _switch(key: str, on: bool, values: dict, sources: dict) -> None:
    """What goes with a switch the user named: class images with prior preservation (diffusers:
    200-300), half the UNet's learning rate for a trained text encoder (as the rules pair them)."""
    if key == "prior_preservation":
        values["num_class_images"] = max(200, values.get("num_class_images") or 0) if on else 0
        sources["num_class_images"] = "class-images"
    elif key == "train_text_encoder":
        values["text_encoder_lr"] = values["learning_rate"] / 2 if on else None
        sources["text_encoder_lr"] = "text-encoder-training"


# What a value far above / far below the recipe's risks (the overfitting and underfitting cards).
_CAUTION = {
    "rank": ("more capacity to memorise the training photos and a larger file.",
             "less capacity for detail; fine for a style, thin for a face."),
    "lora_alpha": ("a stronger update at the same learning rate, like raising the learning rate.",
                   "a weaker update at the same learning rate, like lowering the learning rate."),
    "learning_rate": ("watch for burned, noisy samples or every prompt returning the training photos.",
                      "it learns slowly; expect to need more steps."),
    "max_train_steps": ("watch the samples for overfitting and keep an earlier checkpoint if they burn.",
                        "watch for underfitting: the subject may not be learnt yet."),
    "train_batch_size": ("more memory per step; the learning rate may need raising with it.",
                         "noisier gradients; fine with gradient accumulation."),
    "resolution": ("memory and time grow with the square of the side.",
                   "fine detail suffers below the model's native size."),
    # switches: (what turning it on costs, what turning it off risks)
    "prior_preservation": ("class images take minutes to generate and more memory per step.",
                           "other members of the class may drift toward your subject (PRES 0.664 -> 0.493)."),
    "train_text_encoder": ("more memory, and the text encoder overfits first: watch for prompts being ignored.",
                           "a smaller quality gain for faces (HF DreamBooth blog)."),
    "conv_lora": ("the file grows (SD1.5 at rank 4: about 11 MB against 3 MB) and it can learn more than you want; "
                  "the LyCORIS study puts LoCon in LoRA's quality class, and plain LoRA is its first choice.",
                  "a plain LoRA leaves the convolutions alone."),
}


def _apply_advice(method: str, profile: Profile, values: dict, sources: dict, advice: dict) -> None:
    def take(key: str) -> bool:
        if key in advice:
            values[key], sources[key] = advice[key]
            return True
        return False

    if method in CLASS_IMAGE_METHODS and take("prior_preservation") and values["prior_preservation"]:
        values["num_class_images"], sources["num_class_images"] = 200, "class-images"  # diffusers: 200-300
    if method != "textual_inversion" and take("train_text_encoder") and values["train_text_encoder"]:
        # The text encoder overfits first, so it gets half the UNet LR: the published pairs are
        # 1e-4 / 5e-5 (advanced SDXL blog, kohya) and 2e-6 / 1e-6 (TheLastBen faces) (derived).
        values["text_encoder_lr"], sources["text_encoder_lr"] = values["learning_rate"] / 2, "text-encoder-training"
    if method in ADAPTERS:
        take("rank")
        values["lora_alpha"], sources["lora_alpha"] = float(values["rank"]), "hp-lora-rank-alpha"  # alpha = rank
    if method != "textual_inversion":
        take("snr_gamma")
    take("crop")

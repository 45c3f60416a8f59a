"""The advisor's rules, as data: which method a profile points to, and why.

A `Rule` is one row: conditions over profile fields, an effect (score deltas per method
and/or hyperparameter advice), a one-line reason and the knowledge card it comes from.
`match` is the whole engine. A new rule is a new row (and a row in tests/test_rules.py).

Preservation rules keep one invariant the tests check: a rule that switches on as
preservation rises never favours a more invasive method over a less invasive one.
The published factor standings of each method (for `predicted`) and the published dataset
guidance (for `dataset_advice`) are data here too.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any

from trainer.vocabulary import BASE_MODELS, INVASIVENESS, METHOD_NAMES

from ..profile import Profile

CARD_IDS = (
    "method-lora", "method-dreambooth", "method-dreambooth-lora", "method-textual-inversion",
    "method-full-finetune", "factors-framework", "choosing-a-method", "hp-learning-rate", "hp-steps",
    "hp-batch-accumulation", "hp-lora-rank-alpha", "prior-preservation", "class-images",
    "text-encoder-training", "dataset-preparation", "captions", "instance-prompt", "overfitting-signs",
    "underfitting-signs", "memory-savings", "caching", "vram-by-method", "time-and-money", "output-size",
    "sdxl-specifics", "sd21-specifics", "evaluation-metrics", "subject-people-faces", "subject-styles",
    "subject-objects-animals", "min-snr-noise-offset", "lr-schedules-warmup", "iteration-plan",
    "lycoris-variants", "resolution-bucketing", "multi-gpu-accelerate", "gpu-cards", "spaces-deployment",
)
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq, "!=": operator.ne, "in": lambda a, b: a in b, "not in": lambda a, b: a not in b}
PROFILE_FIELDS = tuple(f.name for f in fields(Profile))
# Hyperparameter advice a rule may give (TrainConfig names); hyperparams.py applies it where
# the method has the knob.
ADVICE_KEYS = ("prior_preservation", "train_text_encoder", "rank", "snr_gamma", "crop")
# The base models the advisor plans on a UNet (DDPM) and on a rectified-flow transformer
UNET_BASES = tuple(k for k, b in BASE_MODELS.items() if b.family in ("sd", "sdxl"))
FLOW_BASES = tuple(k for k in BASE_MODELS if k not in UNET_BASES)


@dataclass(frozen=True)
class Rule:
    id: str
    conditions: tuple[tuple[str, str, Any], ...]  # all must hold; a None profile value never holds
    effect: dict[str, Any]                        # {method: score delta, ..., "hp": {key: value}}
    why: str                                      # one line, shown to the user
    source: str                                   # a knowledge card id
    scores: dict[str, float] = field(init=False, repr=False, compare=False)
    advice: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id or not self.why:
            raise ValueError(f"rule {self.id!r}: id and why must be non-empty")
        if self.source not in CARD_IDS:
            raise ValueError(f"rule {self.id!r}: source={self.source!r} is not a knowledge card id")
        for cond in self.conditions:
            if len(cond) != 3 or cond[0] not in PROFILE_FIELDS or cond[1] not in OPS:
                raise ValueError(f"rule {self.id!r}: condition {cond!r} must be (profile field, op, value) "
                                 f"with op in {list(OPS)}")
        unknown = sorted(set(self.effect) - set(METHOD_NAMES) - {"hp"})
        bad_hp = sorted(set(self.effect.get("hp", {})) - set(ADVICE_KEYS))
        if unknown or bad_hp:
            raise ValueError(f"rule {self.id!r}: unknown effect key(s) {unknown + bad_hp}")
        object.__setattr__(self, "scores", {m: float(self.effect[m]) for m in METHOD_NAMES if m in self.effect})
        object.__setattr__(self, "advice", dict(self.effect.get("hp", {})))


def holds(profile: Profile, condition: tuple[str, str, Any]) -> bool:
    name, op, value = condition
    actual = getattr(profile, name)
    return actual is not None and bool(OPS[op](actual, value))


def match(rules, profile: Profile) -> list[Rule]:
    """The rules whose every condition holds for `profile`, in table order."""
    return [r for r in rules if all(holds(profile, c) for c in r.conditions)]


def score(matched: list[Rule]) -> list[tuple[str, float]]:
    """(method, total score) best first; ties go to the less invasive method."""
    totals = {m: sum(r.scores.get(m, 0.0) for r in matched) for m in METHOD_NAMES}
    return sorted(totals.items(), key=lambda kv: (-kv[1], INVASIVENESS.index(kv[0])))


def advice(matched: list[Rule]) -> dict[str, tuple[Any, Rule]]:
    """Hyperparameter advice of the matched rules; a later row overrides an earlier one."""
    out: dict[str, tuple[Any, Rule]] = {}
    for r in matched:
        for key, value in r.advice.items():
            out[key] = (value, r)
    return out


PREFERENCE_BONUS = 3.0   # score for the method the user asked for: about two typical rules

R = Rule
DEFAULT_RULES: tuple[Rule, ...] = (
    # --- the three factors -----------------------------------------------------------------
    R("accuracy-high", (("accuracy", ">=", 4),),
      {"dreambooth": 2, "dreambooth_lora": 1.5, "full_finetune": 1, "lora": 0.5, "textual_inversion": -2},
      "High accuracy needs trained weights: DreamBooth reaches DINO 0.668 where textual inversion reaches 0.569.",
      "choosing-a-method"),
    R("accuracy-max", (("accuracy", ">=", 5),), {"dreambooth": 1, "full_finetune": 0.5},
      "The strictest accuracy: full-weight training has the best fidelity (LyCORIS guidelines; DreamBooth's DINO "
      "is the best in the DreamBooth paper).", "method-dreambooth"),
    R("accuracy-low", (("accuracy", "<=", 2),), {"textual_inversion": 1.5, "lora": 0.5},
      "When a rough likeness is enough, a learned word or a small adapter is the cheapest route.",
      "method-textual-inversion"),
    R("flexibility-high", (("flexibility", ">=", 4),),
      {"textual_inversion": -1.5, "lora": 1, "dreambooth_lora": 1, "dreambooth": 0.5},
      "Textual inversion follows prompts worst (CLIP-T 0.255 vs 0.305 for DreamBooth); trained weights at "
      "moderate steps keep the subject editable.", "factors-framework"),
    R("flexibility-low", (("flexibility", "<=", 2),), {"dreambooth": 0.5, "full_finetune": 0.5},
      "When the subject need not leave its photos, stronger training costs little flexibility you need.",
      "factors-framework"),
    R("preservation-high", (("preservation", ">=", 4),),
      {"textual_inversion": 2, "lora": 1, "dreambooth_lora": 1, "dreambooth": -2, "full_finetune": -3},
      "High preservation: textual inversion changes no weights and a LoRA (DreamBooth-LoRA is one too) can be "
      "switched off, while full DreamBooth drifts the class most (KID 32.53 vs 22.27 for textual inversion).",
      "factors-framework"),
    R("preservation-max", (("preservation", ">=", 5),),
      {"textual_inversion": 1.5, "lora": 0.5, "dreambooth_lora": 0.5, "dreambooth": -1, "full_finetune": -1},
      "Strictest preservation: textual inversion leaves every weight of the base model untouched.",
      "method-textual-inversion"),
    R("preservation-low", (("preservation", "<=", 2),),
      {"textual_inversion": -0.5, "dreambooth_lora": 0.5, "dreambooth": 1, "full_finetune": 1},
      "The base model may drift, so full-weight training, which has the best fidelity (LyCORIS guidelines), "
      "is open.", "factors-framework"),
    # --- the data --------------------------------------------------------------------------
    R("very-few-images", (("n_images", "<", 3),), {"dreambooth_lora": 1, "dreambooth": 0.5, "full_finetune": -3},
      "Fewer images than any published recipe (DreamBooth uses 3-5): start with few trained weights and add "
      "images if you can.", "dataset-preparation"),
    R("few-images", (("n_images", ">=", 3), ("n_images", "<=", 10)), {"dreambooth_lora": 2, "dreambooth": 1},
      "3-5 images suffice for DreamBooth and 5-10 for DreamBooth-LoRA.", "method-dreambooth-lora"),
    R("small-set-no-full", (("n_images", "<", 50),), {"full_finetune": -4},
      "A full fine-tune on a small set overfits and forgets (the diffusers README warns of catastrophic "
      "forgetting).", "method-full-finetune"),
    R("medium-set", (("n_images", ">=", 20), ("n_images", "<", 100)), {"lora": 1.5, "dreambooth_lora": 0.5},
      "A few dozen images is LoRA territory: the advanced SDXL rule of thumb is about 30 images.",
      "method-lora"),
    R("large-set", (("n_images", ">=", 100),),
      {"full_finetune": 1.5, "lora": 1.5, "dreambooth": -1.5, "dreambooth_lora": -1, "textual_inversion": -1},
      "Hundreds of images are a dataset, not a subject: the captioned LoRA and full fine-tune recipes fit; "
      "DreamBooth is built for 3-10.", "choosing-a-method"),
    R("huge-set", (("n_images", ">=", 1000),), {"full_finetune": 2},
      "Thousands of images are what the full fine-tune recipe (15,000 steps at 1x4) was made for.",
      "method-full-finetune"),
    R("captioned-set", (("captions", "==", True), ("n_images", ">=", 20)), {"lora": 1, "full_finetune": 1},
      "Captioned sets suit the captioned LoRA (1e-4) and full fine-tune (1e-5) recipes.", "captions"),
    R("uncaptioned-set", (("captions", "==", False), ("n_images", ">=", 100)), {"full_finetune": -1.5, "lora": -0.5},
      "Large uncaptioned sets train poorly: captions matter more than hyperparameters, so caption first.",
      "captions"),
    # --- the subject -----------------------------------------------------------------------
    R("faces-fidelity", (("subject_type", "==", "person"),),
      {"dreambooth_lora": 1.5, "dreambooth": 1, "textual_inversion": -1.5},
      "Faces need high fidelity: DreamBooth(-LoRA) is the published face recipe (HF DreamBooth blog).",
      "subject-people-faces"),
    R("objects-animals", (("subject_type", "in", ("object", "animal")),), {"dreambooth_lora": 1, "dreambooth": 0.5},
      "Objects and pets are DreamBooth's home ground: 3-5 images and the correct class noun.",
      "subject-objects-animals"),
    R("style-adapter", (("subject_type", "==", "style"),),
      {"lora": 2, "textual_inversion": 0.5, "dreambooth_lora": -0.5, "dreambooth": -1},
      "Styles are trained as LoRAs on a few dozen images (the Y2K example: 27 images, rank 4-32).",
      "subject-styles"),
    R("concept-word", (("subject_type", "==", "concept"),), {"textual_inversion": 1, "lora": 1},
      "A concept is a new word for the model: textual inversion or a LoRA learns it cheaply.",
      "method-textual-inversion"),
    R("general-dataset", (("subject_type", "==", "general"),),
      {"full_finetune": 1.5, "lora": 1, "dreambooth_lora": -1, "dreambooth": -1.5},
      "Improving the model over many concepts is what the captioned full fine-tune recipe is for.",
      "method-full-finetune"),
    # --- the costs -------------------------------------------------------------------------
    R("tiny-output", (("max_output_mb", "<", 1),),
      {"textual_inversion": 3, "lora": -1, "dreambooth_lora": -1, "dreambooth": -4, "full_finetune": -4},
      "Under 1 MB only textual inversion fits: a few kilobytes per token.", "output-size"),
    R("small-output", (("max_output_mb", "<", 2000),),
      {"textual_inversion": 0.5, "lora": 1, "dreambooth_lora": 1, "dreambooth": -3, "full_finetune": -3},
      "Full models are 2-4 GB; LoRA files are 3-75 MB.", "output-size"),
    R("small-card", (("vram_gb", "<", 10),),
      {"textual_inversion": 0.5, "lora": 0.5, "dreambooth_lora": 0.5, "dreambooth": -2, "full_finetune": -2},
      "Below 10 GB full-weight training needs DeepSpeed offload (DreamBooth measured 9.92 GB on a T4 with every "
      "saving).", "vram-by-method"),
    R("big-card", (("vram_gb", ">=", 24),), {"dreambooth": 0.5, "full_finetune": 0.5},
      "24 GB or more fits full-weight training, even with the text encoder.", "vram-by-method"),
    R("short-budget", (("time_budget_min", "<", 20),),
      {"dreambooth_lora": 0.5, "lora": 0.5, "textual_inversion": -2, "full_finetune": -2},
      "Textual inversion needs about 3,000 steps (about 1 h on a V100); a short budget suits short subject runs.",
      "time-and-money"),
    R("long-budget", (("time_budget_min", ">=", 240), ("n_images", ">=", 100)), {"full_finetune": 1},
      "Hours of GPU time and a real dataset make a full fine-tune practical.", "time-and-money"),
    R("sdxl-lora", (("base_model", "==", "sdxl"),),
      {"dreambooth_lora": 1, "lora": 0.5, "dreambooth": -1, "full_finetune": -1},
      "On SDXL the published subject recipe is DreamBooth-LoRA; full SDXL training needs 24 GB at batch 1.",
      "sdxl-specifics"),
    # --- a method asked for by name (Profile.preferred_method) -----------------------------
    # About two typical rows' worth: it settles close calls, but a clearly poor fit still loses,
    # and recommend() never returns a plan over budget whatever the score.
    R("asked-lora", (("preferred_method", "==", "lora"),), {"lora": PREFERENCE_BONUS},
      "You asked for LoRA.", "choosing-a-method"),
    R("asked-dreambooth", (("preferred_method", "==", "dreambooth"),), {"dreambooth": PREFERENCE_BONUS},
      "You asked for DreamBooth.", "choosing-a-method"),
    R("asked-dreambooth-lora", (("preferred_method", "==", "dreambooth_lora"),), {"dreambooth_lora": PREFERENCE_BONUS},
      "You asked for DreamBooth-LoRA.", "choosing-a-method"),
    R("asked-textual-inversion", (("preferred_method", "==", "textual_inversion"),),
      {"textual_inversion": PREFERENCE_BONUS}, "You asked for textual inversion.", "choosing-a-method"),
    R("asked-full-finetune", (("preferred_method", "==", "full_finetune"),), {"full_finetune": PREFERENCE_BONUS},
      "You asked for a full fine-tune.", "choosing-a-method"),
    # --- hyperparameter advice -------------------------------------------------------------
    R("prior-for-living", (("subject_type", "in", ("person", "animal")), ("preservation", ">=", 3),
                           ("base_model", "in", UNET_BASES)),
      {"hp": {"prior_preservation": True}},
      "Prior preservation keeps other people or animals from turning into your subject (PRES 0.664 -> 0.493).",
      "prior-preservation"),
    # On the flow transformers the published DreamBooth-LoRA recipes skip it: its class images are
    # drawn by the 4-20 B model itself (hours on one card), so it is kept for a top preservation wish.
    R("prior-skipped-on-flow", (("subject_type", "in", ("person", "animal")), ("preservation", ">=", 3),
                                ("preservation", "<", 5), ("base_model", "in", FLOW_BASES)),
      {"hp": {"prior_preservation": False}},
      "No prior preservation: the published DreamBooth-LoRA recipes for Flux.1, SD 3.5, Z-Image, Flux.2 and "
      "Qwen-Image (diffusers' READMEs) train without it, as its class images would be drawn by this large model "
      "itself, hours of sampling before training (say 'preservation 5' to add it anyway).", "prior-preservation"),
    R("prior-kept-on-flow", (("subject_type", "in", ("person", "animal")), ("preservation", ">=", 5),
                             ("base_model", "in", FLOW_BASES)),
      {"hp": {"prior_preservation": True}},
      "Preservation is your top wish, so prior preservation stays on, although on this model the published recipes "
      "skip it: drawing its class images takes hours of sampling before training.", "prior-preservation"),
    R("faces-text-encoder", (("subject_type", "==", "person"), ("accuracy", ">=", 4),
                             ("base_model", "in", ("sd15", "sd21"))),
      {"hp": {"train_text_encoder": True}},
      "Training the text encoder gave the largest quality gain for faces (HF DreamBooth blog), memory permitting.",
      "text-encoder-training"),
    R("flexible-frozen-text", (("flexibility", ">=", 5),), {"hp": {"train_text_encoder": False}},
      "Maximum flexibility: the text encoder overfits first and then prompts get ignored, so keep it frozen.",
      "text-encoder-training"),
    R("style-rank", (("subject_type", "==", "style"),), {"hp": {"rank": 16}},
      "Styles take a higher LoRA rank than a single subject (the advanced blog compared 4, 16 and 32).",
      "hp-lora-rank-alpha"),
    R("sdxl-rank", (("base_model", "==", "sdxl"), ("n_images", ">=", 20)), {"hp": {"rank": 32}},
      "The advanced SDXL rule of thumb: rank 32 for about 30 images.", "hp-lora-rank-alpha"),
    R("bucket-sets", (("n_images", ">=", 50),), {"hp": {"crop": "bucket"}},
      "A set this size has portrait and landscape shots: aspect-ratio bucketing (kohya, OneTrainer, SimpleTuner "
      "and ai-toolkit do it) trains whole images instead of centre-cropped squares.", "resolution-bucketing"),
    R("bucket-styles", (("subject_type", "in", ("style", "general")),), {"hp": {"crop": "bucket"}},
      "A style or a domain lives in the whole frame: bucketing keeps each image's composition, where a centre crop "
      "teaches square framing.", "resolution-bucketing"),
    R("min-snr", (("n_images", ">=", 100),), {"hp": {"snr_gamma": 5.0}},
      "Min-SNR weighting (gamma 5) helps on larger sets; its effect is small on a few images.",
      "min-snr-noise-offset"),
)
del R

# --- published standing of each method on the three factors (1-5), for `predicted` ---------------
STANDING: dict[str, dict[str, tuple[float, str]]] = {
    "textual_inversion": {
        "accuracy": (2.5, "DreamBooth paper Table 1: DINO 0.569 vs 0.668 for DreamBooth; users preferred "
                          "DreamBooth's subject fidelity 68% to 22%"),
        "flexibility": (2.0, "DreamBooth paper Table 1: CLIP-T 0.255 vs 0.305; lowest text alignment in "
                             "Custom Diffusion Table 1 (0.670)"),
        "preservation": (5.0, "no base weight changes; Custom Diffusion Table 1 KID 22.27 vs 32.53 for DreamBooth"),
    },
    "lora": {
        "accuracy": (3.5, "LyCORIS guidelines: LoRA has middle fidelity"),
        "flexibility": (3.5, "LyCORIS guidelines: LoRA has middle flexibility"),
        "preservation": (4.0, "an adapter the base model loads or leaves out; LyCORIS: middle diversity"),
    },
    "dreambooth_lora": {
        "accuracy": (4.0, "DreamBooth recipe at LoRA capacity (LyCORIS: LoRA fidelity below full training)"),
        "flexibility": (3.5, "LyCORIS guidelines: LoRA has middle flexibility"),
        "preservation": (3.5, "an adapter that can be switched off, trained on a subject"),
    },
    "dreambooth": {
        "accuracy": (4.5, "DreamBooth paper Table 1: best DINO among methods (0.668; real images 0.774)"),
        "flexibility": (4.0, "DreamBooth paper Table 1: CLIP-T 0.305; Custom Diffusion Table 1 text 0.781"),
        "preservation": (2.0, "rewrites the whole UNet; Custom Diffusion Table 1 KID 32.53, the worst"),
    },
    "full_finetune": {
        "accuracy": (4.5, "LyCORIS guidelines: native full training has the best fidelity"),
        "flexibility": (4.0, "LyCORIS guidelines: best flexibility, worst diversity"),
        "preservation": (1.5, "rewrites the whole UNet on a dataset; the diffusers README warns of "
                              "catastrophic forgetting"),
    },
}
# How settings move the standing: (hyperparameter condition, factor deltas, basis).
ADJUSTMENTS: tuple[tuple[tuple[str, str, Any], dict[str, float], str], ...] = (
    (("prior_preservation", "==", True), {"preservation": 1.0, "accuracy": -0.25},
     "prior preservation: PRES 0.664 -> 0.493, DINO 0.712 -> 0.684 (DreamBooth paper Table 3)"),
    (("train_text_encoder", "==", True), {"accuracy": 0.5, "flexibility": -0.5},
     "text encoder trained: largest gain for faces (HF blog), but it overfits first"),
    (("rank", ">=", 16), {"accuracy": 0.25, "preservation": -0.25},
     "higher rank learns more and leaks more (LyCORIS guidelines)"),
)

# --- published dataset guidance (dataset-preparation, subject-* cards) --------------------------------
IMAGE_COUNTS: dict[str, tuple[int, int, str]] = {  # (fewest, most, what the sources say)
    "dreambooth": (3, 10, "DreamBooth works from 3-5 images (DreamBooth paper)"),
    "dreambooth_lora": (5, 10, "5-10 images are usually enough for DreamBooth-LoRA (HF LoRA blog)"),
    "lora": (15, 100, "a style or concept LoRA wants a few dozen varied, captioned images (the advanced SDXL "
                      "blog used about 30)"),
    "textual_inversion": (3, 10, "DreamBench subjects have 4-6 images each"),
    "full_finetune": (100, 10**9, "full fine-tunes train on captioned datasets of hundreds of images or more"),
}
# A LoRA of one subject trains with an identifier prompt ("a photo of sks dog"), as DreamBooth-LoRA
# does without prior preservation: the subject counts apply, not a style's (dataset-preparation card).
SUBJECT_LORA_COUNTS = (5, 30, "5-10 images of one subject are usually enough for a LoRA with an identifier prompt "
                              "(HF LoRA blog); the advanced SDXL blog used about 30 of a person")
ONE_SUBJECT = ("person", "animal", "object")


def image_counts(method: str, subject_type: str | None = None) -> tuple[int, int, str]:
    """(fewest, most, what the sources say) for `method` on this kind of subject."""
    if method == "lora" and subject_type in ONE_SUBJECT:
        return SUBJECT_LORA_COUNTS
    return IMAGE_COUNTS[method]


DATASET_KINDS: dict[str, str] = {  # which images, by subject type
    "person": "Mostly close-ups plus some full-body shots, high resolution, no other faces in frame, varied "
              "occasions; avoid far-away shots (advanced SDXL LoRA blog).",
    "animal": "The same animal in varied poses and places; give the correct class noun (wrong class: DINO "
              "0.744 -> 0.454, DreamBooth paper Table 4).",
    "object": "The object from several angles and backgrounds; give the correct class noun (wrong class: DINO "
              "0.744 -> 0.454, DreamBooth paper Table 4).",
    "style": "Many different subjects in the one style, so only the style is common to all images.",
    "concept": "Varied examples of the concept so that only the concept is common to all images.",
    "general": "A broad, captioned set; dataset and captions matter more than hyperparameters.",
}

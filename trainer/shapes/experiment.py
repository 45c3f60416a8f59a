"""Fine-tunes of the shapes demo model on a held-out concept, scored against the ground truth.

One experiment: write a few renders of the concept with their captions (`write_concept_data`),
fine-tune the demo model on them with the project's own trainer (`fine_tune`, any of the five
methods), then draw prompts the checker can read back (`ground_truth`):

- accuracy: prompts asking for the concept; the fraction of images that show it;
- flexibility: the same prompts; the fraction that show everything asked (the concept in the
  asked colour, background and place);
- preservation: prompts of the rest of the world; the fraction the fine-tuned model draws as the
  base did (same shape, colour and background at the same seed).

The prompts are fresh scenes (seeds apart from the training data's), so accuracy needs the
concept learned, not the training images copied.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..tiny import DEMO_MODEL
from . import checker
from .demo_model import DEMO_RESOLUTION, draw
from .world import HELD_OUT, SUBJECT, Concept, caption, render, sample_scenes

TRAIN_SEED = 101          # training images' scenes
PROMPT_SEED = 202         # the concept in new contexts (accuracy, flexibility)
OTHER_SEED = 303          # the rest of the world (preservation)
DRAW_SEED = 404           # noise seeds of every drawing
N_PROMPTS = 24            # prompts per factor by default

# What each concept is called in the evaluation's own prompts (instance prompt, class prompt).
PROMPT_WORDS = {SUBJECT: ("a star", "a shape"), HELD_OUT[1]: ("an outline drawing", "a drawing")}


@dataclass(frozen=True)
class GroundTruth:
    accuracy: float
    flexibility: float
    preservation: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def prompt(scene, concept: Concept, word: str | None = None) -> str:
    """The scene's caption, with the concept's own word ("star", "outline") replaced by `word`
    (textual inversion's placeholder token, say) when one is given."""
    return with_word(caption(scene), concept, word)


def with_word(text: str, concept: Concept, word: str | None) -> str:
    """`text` with the concept's own word replaced by `word` (unchanged when `word` is None)."""
    return text if word is None else re.sub(rf"\b{re.escape(concept.value)}\b", word, text)


def write_concept_data(folder: str | Path, concept: Concept = SUBJECT, n_images: int = 8,
                       seed: int = TRAIN_SEED, word: str | None = None) -> Path:
    """`n_images` renders showing `concept`, each with its caption (see `prompt`) as a .txt sidecar."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(sample_scenes(n_images, seed, concept=concept)):
        render(scene, DEMO_RESOLUTION).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(prompt(scene, concept, word) + "\n")
    return folder


RECIPE_STEPS = 600        # a fine-tune of the demo model: 600 steps of 4 images (~40 s of LoRA on two cores)
RECIPE_BATCH = 4

# Per method: the settings a fine-tune of the demo model starts from (600 steps of 4 images; star
# accuracy and preservation over 12 prompts each, measured 2026-12-06).
# - LoRA needs the convolutions (conv_lora): the demo UNet's attention sits at 8 and 4 latent px,
#   too coarse to draw a new outline. Attention only: 2e-3 at rank 16 drew 3 in 12 (preservation
#   0.25); 1e-3, 5e-4, min-SNR, the text encoder, 16 images did no better. With the convolutions,
#   rank 16: 1e-3 draws 4 in 12 (0.75; over 24 prompts 7 in 24, 0.83), 5e-4 7 in 24 (0.88),
#   2e-3 4 in 12 (0.25), 1e-3 x 1000 steps 8 in 24 (0.71).
# - Full fine-tune: 1e-4 draws 5 in 12 (0.92), 3e-4 4 in 12 (0.33).
# - DreamBooth at 1e-4 with prior: 0 (1.00). DreamBooth-LoRA with prior, attention only, 1e-3 -
#   2e-3: 0 (0.58-0.75); with the convolutions: not yet measured. Textual inversion at 5e-3: 0
#   (1.00): a new word cannot make the model draw an outline it never learned.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "lora": {"learning_rate": 1e-3, "rank": 16, "conv_lora": True},
    "dreambooth_lora": {"learning_rate": 1e-3, "rank": 16, "conv_lora": True, "prior_preservation": True},
    "dreambooth": {"learning_rate": 1e-4, "prior_preservation": True},
    "full_finetune": {"learning_rate": 1e-4},
    "textual_inversion": {"learning_rate": 5e-3},
}


def trigger_word(method: str, concept: Concept) -> str | None:
    """The word captions and prompts use for the concept: textual inversion's new token
    ("<star>"), else None (the concept's own word, which the base model never learned)."""
    return f"<{concept.value}>" if method == "textual_inversion" else None


def fine_tune_config(data_dir: str | Path, output_dir: str | Path, concept: Concept = SUBJECT,
                     method: str = "lora", **settings: Any):
    """The TrainConfig of one fine-tune of the demo model (`settings` override the defaults here)."""
    from ..config import TrainConfig

    prompts = {k: v for k, v in demo_prompts(method, concept).items() if k != "validation_prompts"}
    defaults = dict(base_model=DEMO_MODEL, method=method, data_dir=str(data_dir), output_dir=str(output_dir),
                    resolution=DEMO_RESOLUTION, max_train_steps=RECIPE_STEPS, train_batch_size=RECIPE_BATCH, validation_steps=0,
                    checkpointing_steps=0, checkpoints_total_limit=1, validation_inference_steps=20,
                    num_class_images=16, seed=0, **prompts, **METHOD_DEFAULTS[method])
    return TrainConfig(**{**defaults, **settings})


def demo_prompts(method: str, concept: Concept = SUBJECT, n_validation: int = 3) -> dict[str, Any]:
    """The prompt settings of a fine-tune on `concept`: instance and class prompts, the new
    token for textual inversion, and validation prompts that put the concept somewhere new."""
    instance, klass = PROMPT_WORDS[concept]
    word = trigger_word(method, concept)
    return {"instance_prompt": with_word(instance, concept, word), "class_prompt": klass, "placeholder_token": word or "<sks>",
            "initializer_token": klass.split()[-1],
            "validation_prompts": [prompt(s, concept, word) for s in concept_scenes(concept, n_validation, seed=505)]}


def fine_tune(config) -> Path:
    """Train `config` in this process; the run folder. Raises when the run does not complete."""
    from ..loop import train

    status = train(config, progress=False)
    if status != "completed":
        raise RuntimeError(f"fine-tune {config.output_dir} ended {status}")
    return Path(config.output_dir)


def concept_scenes(concept: Concept, n: int = N_PROMPTS, seed: int = PROMPT_SEED):
    return sample_scenes(n, seed, concept=concept)


def other_scenes(n: int = N_PROMPTS, seed: int = OTHER_SEED):
    return sample_scenes(n, seed)


def ground_truth(tuned_pipe, base_images: list, concept: Concept = SUBJECT, n: int = N_PROMPTS,
                 word: str | None = None) -> GroundTruth:
    """The three factors of `tuned_pipe` by the checker; `base_images` are the base model's
    drawings of `other_scenes(n)` (`base_drawings`), drawn once per experiment; `word` as in
    `prompt`."""
    asked = concept_scenes(concept, n)
    images = draw(tuned_pipe, [prompt(s, concept, word) for s in asked], DRAW_SEED)
    others = other_scenes(n)
    tuned_others = draw(tuned_pipe, [caption(s) for s in others], DRAW_SEED)
    return GroundTruth(accuracy=checker.accuracy(images, concept), flexibility=checker.flexibility(images, asked),
                       preservation=checker.preservation(base_images, tuned_others, others))


def base_drawings(base_pipe, n: int = N_PROMPTS) -> list:
    return draw(base_pipe, [caption(s) for s in other_scenes(n)], DRAW_SEED)


def load_tuned(run_dir: str | Path):
    """The fine-tuned pipeline of a completed run, on the CPU in float32."""
    import torch

    from ..methods.registry import load_trained_pipeline

    return load_trained_pipeline(Path(run_dir), torch.float32)

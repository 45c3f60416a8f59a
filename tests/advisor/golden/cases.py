"""The inputs of the advisor's golden test: profiles, one run log, and conversations.

Written before advisor/ was reshaped by job (issue 10) and kept as data: the recommendation JSON
and the chat transcripts these produce are stored beside this file, and tests/advisor/test_golden.py
checks that the advisor still produces them byte for byte. A change that moves a golden on
purpose regenerates them (python tests/advisor/golden/regenerate.py) in a commit that says why.
"""
from __future__ import annotations

import itertools
import random

SUBJECTS = ("person", "animal", "object", "style", "concept", "general")
BASES = ("sd15", "sd21", "sdxl", None)
GPUS = (("RTX 4090", 24.0), ("RTX 3060 12GB", 12.0), ("Tesla T4", 16.0), ("GTX 1660 Ti", 6.0),
        ("A100 80GB", 80.0), (None, 8.0), (None, None), ("free Colab (T4)", 15.0), ("RTX 3060 8GB", 8.0),
        ("H100", 80.0))
NOUNS = {"person": ("woman", "man", None), "animal": ("dog", "cat", None), "object": ("sneaker", "teapot", None),
         "style": (None, "watercolor"), "concept": (None,), "general": (None,)}
METHODS = (None, None, None, "lora", "dreambooth", "dreambooth_lora", "textual_inversion", "full_finetune")


def profiles() -> list[dict]:
    """48 profiles (plain dicts, the Profile JSON contract) spread over every slot."""
    rng = random.Random(20261206)
    out = []
    for i, (subject, base) in enumerate(itertools.product(SUBJECTS, BASES)):
        for variant in range(2):
            gpu, vram = rng.choice(GPUS)
            p = {
                "goal": f"golden case {i}-{variant}",
                "subject_type": subject,
                "class_noun": rng.choice(NOUNS[subject]),
                "n_images": rng.choice((3, 5, 8, 12, 20, 30, 60, 150, 400, 2000, None)),
                "captions": rng.choice((True, False, None)),
                "accuracy": rng.choice((1, 2, 3, 4, 5, None)),
                "flexibility": rng.choice((1, 2, 3, 4, 5, None)),
                "preservation": rng.choice((1, 2, 3, 4, 5, None)),
                "vram_gb": vram,
                "gpu_name": gpu,
                "time_budget_min": rng.choice((10.0, 30.0, 60.0, 120.0, 240.0, 600.0, None)),
                "n_runs": rng.choice((1, 2, 3, 5, None)),
                "base_model": base,
                "max_output_mb": rng.choice((None, None, None, 0.1, 10.0, 200.0)),
                "preferred_method": rng.choice(METHODS),
                "dream_prompts": rng.choice(([], [], ["my subject on the moon", "a watercolor of it"])),
            }
            out.append(p)
    return out


# The run log for the learned goldens: a user whose DreamBooth-LoRA face runs lost preservation at
# high learning rates, whose style LoRAs liked more steps, whose runs took 1.4x the estimate, and
# one 12 GB run that ran out of memory.
LEARNED_PROFILES = [
    {"subject_type": "person", "class_noun": "woman", "n_images": 8, "base_model": "sd15", "vram_gb": 24.0,
     "gpu_name": "RTX 4090", "time_budget_min": 240.0, "accuracy": 3, "flexibility": 3, "preservation": 5},
    {"subject_type": "person", "class_noun": "man", "n_images": 12, "base_model": "sd15", "vram_gb": 12.0,
     "gpu_name": "RTX 3060 12GB", "time_budget_min": 120.0, "accuracy": 4, "flexibility": 3, "preservation": 4},
    {"subject_type": "style", "n_images": 40, "captions": True, "base_model": "sd15", "vram_gb": 12.0,
     "gpu_name": "RTX 3060 12GB", "time_budget_min": 120.0, "accuracy": 3, "flexibility": 4, "preservation": 3},
    {"subject_type": "animal", "class_noun": "dog", "n_images": 6, "base_model": "sd15", "vram_gb": 12.0,
     "time_budget_min": 60.0, "accuracy": 5, "flexibility": 2, "preservation": 2},
    {"subject_type": "object", "class_noun": "sneaker", "n_images": 15, "base_model": "sdxl", "vram_gb": 24.0,
     "gpu_name": "RTX 4090", "time_budget_min": 90.0, "accuracy": 4, "flexibility": 4, "preservation": 3},
    {"subject_type": "person", "class_noun": "woman", "n_images": 10, "base_model": "sd15", "vram_gb": 12.0,
     "time_budget_min": 30.0, "accuracy": 4, "flexibility": 4, "preservation": 4, "n_runs": 5},
]


def learned_runs() -> list[dict]:
    """Run-log rows (RunRecord fields) for the learned goldens."""
    face = LEARNED_PROFILES[0]
    style = LEARNED_PROFILES[2]
    rows = []
    for i, (lr, pres, acc) in enumerate([(2e-4, 1.6, 3.7), (1e-4, 2.1, 3.6), (2e-4, 1.5, 3.8), (1e-4, 2.0, 3.5),
                                         (1e-4, 2.2, 3.6), (5e-5, 4.1, 3.4), (5e-5, 4.3, 3.5), (5e-5, 4.0, 3.3)]):
        rows.append({"run_id": f"face-{i}", "source": "manual", "method": "dreambooth_lora", "base_model": "sd15",
                     "status": "completed", "profile": face,
                     "hyperparameters": {"learning_rate": lr, "max_train_steps": 500, "rank": 4,
                                         "train_batch_size": 1, "gradient_accumulation_steps": 1,
                                         "prior_preservation": True, "num_class_images": 200,
                                         "resolution": 512, "mixed_precision": "fp16"},
                     "score_accuracy": acc, "score_flexibility": 3.5, "score_preservation": pres,
                     "duration_s": 28.0 * 60, "steps_done": 500})
    for i, (steps, acc) in enumerate([(1000, 2.5), (2000, 3.4), (3000, 4.1), (4000, 4.2)]):
        rows.append({"run_id": f"style-{i}", "source": "manual", "method": "lora", "base_model": "sd15",
                     "status": "completed", "profile": style,
                     "hyperparameters": {"learning_rate": 1e-4, "max_train_steps": steps, "rank": 8,
                                         "train_batch_size": 1, "gradient_accumulation_steps": 4,
                                         "resolution": 512, "mixed_precision": "fp16"},
                     "score_accuracy": acc, "score_flexibility": 3.8, "score_preservation": 3.0,
                     "rating_accuracy": round(acc), "duration_s": steps * 0.9, "steps_done": steps})
    rows.append({"run_id": "oom-12gb", "source": "run_folder", "method": "dreambooth", "base_model": "sd15",
                 "status": "failed", "profile": LEARNED_PROFILES[1],
                 "error": "CUDA out of memory. Tried to allocate 2.00 GiB", "out_of_memory": True,
                 "hyperparameters": {"learning_rate": 2e-6, "max_train_steps": 800, "train_batch_size": 2,
                                     "resolution": 512, "mixed_precision": "fp16"}})
    return rows


# Conversations in the words people use in trainer issue trackers and forums.
CHATS: list[list[str]] = [
    ["30 pictures of my cat, 12GB card, I want it in all kinds of scenes"],
    ["I want a LoRA of my dog, 5 photos, 24GB card", "You decide"],
    ["hi", "a person", "20", "RTX 3060", "must look exactly like her", "not sure", "an hour"],
    ["my watercolor paintings as a style, 40 images, free colab", "actually 8GB and SDXL", "You decide"],
    ["30 photos of my dog, 24GB card, must look exactly like him", "actually I only have 6GB"],
    ["train sdxl on my face, 15 selfies, 4090", "what is prior preservation?", "keep the base model intact"],
    ["product shots of our sneaker, 25 images, A100 80GB, we need it exact and in many scenes",
     "the file has to stay under 50 MB"],
    ["I have a 1660 ti with 6gb and 10 pictures of my grandmother", "high accuracy please", "2 hours"],
    ["style of my comic drawings, 200 images with captions, 3090", "dreambooth please", "You decide"],
    ["textual inversion of my teddy bear, 6 photos, T4", "not sure", "not sure", "not sure"],
    ["I want to fine-tune on 5000 photos of interiors with captions", "48GB A6000", "a full fine-tune", "You decide"],
    ["a concept: glowing runes, 12 images", "8gb", "You decide"],
    ["-3 images of my dog and a 10000 GB card", "ok 12 images and a 12GB card", "You decide"],
    ["I'm on a macbook M2 and want a lora of my cat", "20 photos", "You decide"],
    ["my son, 8 photos, rtx 2080 ti, he should be recognisable in fantasy scenes", "one run only", "You decide"],
    ["what is a LoRA?", "ok, my dog, 10 pics, 16GB"],
    ["a person", "actually a style", "30 images", "12GB", "5", "3", "2"],
    ["SD 2.1, my cat, 12 pictures, 24GB, 30 minutes", "You decide"],
    ["🐱🐶🚀", "30 pictures of my cat, 12GB card"],
    ["character LoRA for my OC, 25 images, 8GB 3070, flexible poses", "actually 4070 ti super"],
    ["my shoes, 40 photos, L4 on a space", "keep it small please, under 10 MB", "You decide"],
    ["I need my company logo style in SDXL, 60 images captioned, H100", "preservation doesn't matter"],
]

"""Candidate generation for advisor.adapt: the rules' plans and their one-step neighbours.

A Move changes one setting of a plan (learning rate x0.5/x2, steps x0.6/x1.5, rank x0.5/x2,
prior preservation and text encoder on/off where the method has them); `neighbour()` applies
it and keeps the result only where it still fits the card, the time budget (at the user's
pace, when the log gives one) and the size cap; `candidate_plans()` lists every fitting plan
and neighbour once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..recommendation import costs
from ..recommendation.hyperparameters import ADAPTERS, DB_FAMILY, class_noun
from ..profile import Profile
from ..recommendation.recommend import Plan


@dataclass(frozen=True)
class Move:
    """One step to a neighbour: multiply a number by `factor`, or switch a yes/no setting."""
    key: str
    factor: float | None = None                # None: switch on/off
    methods: tuple[str, ...] | None = None     # the methods that have this knob (None: all)

    def applies(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def apply(self, hp: dict[str, Any], method: str, profile: Profile) -> dict[str, Any] | None:
        """The new hyperparameters, or None when the move makes no sense here."""
        if not self.applies(method):
            return None
        h = dict(hp)
        if self.key == "learning_rate":
            h["learning_rate"] = hp["learning_rate"] * self.factor
            if h.get("text_encoder_lr"):  # keep the text encoder's ratio to the UNet
                h["text_encoder_lr"] = hp["text_encoder_lr"] * self.factor
        elif self.key == "max_train_steps":
            steps = max(50, int(round(hp["max_train_steps"] * self.factor / 50.0)) * 50)
            if steps == hp["max_train_steps"]:
                return None
            h["max_train_steps"] = steps
            for k in ("validation_steps", "checkpointing_steps"):  # a quarter of the run, as the rules set
                if h.get(k):
                    h[k] = max(50, int(math.ceil(steps / 4 / 50.0)) * 50)
        elif self.key == "rank":
            rank = int(hp.get("rank", 4) * self.factor)
            if not 1 <= rank <= 128 or rank == hp.get("rank"):
                return None
            h["rank"], h["lora_alpha"] = rank, float(rank)  # alpha = rank, as the rules set it
        elif self.key == "prior_preservation":
            on = not hp.get("prior_preservation")
            h["prior_preservation"] = on
            h["num_class_images"] = max(200, hp.get("num_class_images") or 0) if on else 0  # diffusers: 200-300
            if on:
                h["class_prompt"] = f"a photo of a {class_noun(profile)}"
            else:
                h.pop("class_prompt", None)
        elif self.key == "train_text_encoder":
            on = not hp.get("train_text_encoder")
            h["train_text_encoder"] = on
            h["text_encoder_lr"] = hp["learning_rate"] / 2 if on else None  # half the UNet LR (rules' choice)
        return h


MOVES: tuple[Move, ...] = (
    Move("learning_rate", 0.5), Move("learning_rate", 2.0),
    Move("max_train_steps", 0.6), Move("max_train_steps", 1.5),
    Move("rank", 0.5, ADAPTERS), Move("rank", 2.0, ADAPTERS),
    Move("prior_preservation", None, DB_FAMILY),
    Move("train_text_encoder", None, ("lora", "dreambooth", "dreambooth_lora", "full_finetune")),
)
CARDS = {"learning_rate": "hp-learning-rate", "max_train_steps": "hp-steps", "rank": "hp-lora-rank-alpha",
         "prior_preservation": "prior-preservation", "train_text_encoder": "text-encoder-training"}
SHOWN_HP = ("learning_rate", "max_train_steps", "rank", "prior_preservation", "train_text_encoder")


def neighbour(origin: Plan, move: Move, profile: Profile, gpu, vram: float, pace=None) -> Plan | None:
    """`origin` moved one step, memory-fitted, or None when the move does not apply or the
    result is over the card, the time budget or the size cap. `pace(method, hp)`, when given,
    is the factor the log puts on the estimated minutes (LogLearner.pace)."""
    hp = move.apply(origin.hp, origin.method, profile)
    if hp is None:
        return None
    fitted, savings = costs.fit_memory(origin.method, profile.base_model, hp, vram, gpu=gpu)
    if fitted.get(move.key) != hp.get(move.key):
        return None  # memory fitting undid the move (e.g. the text encoder does not fit)
    est = costs.estimate(origin.method, profile.base_model, fitted, profile.n_images, gpu=gpu)
    minutes = est.minutes * (pace(origin.method, fitted) if pace is not None else 1.0)
    if (est.vram_gb > vram or minutes > profile.time_budget_min
            or (profile.max_output_mb is not None and est.output_mb > profile.max_output_mb)):
        return None
    rest = origin.changes[origin.n_savings:]
    notes = origin.notes
    if move.key == "max_train_steps":  # the recipe's step arithmetic no longer describes this run
        rest = [c for c in rest if "steps instead of" not in c]
        notes = [n for n in notes if n[1] != "hp-steps"]
    return Plan(origin.candidate, fitted, {**origin.sources, move.key: CARDS[move.key]}, list(notes),
                origin.changes[:origin.n_savings] + savings + rest, origin.n_savings + len(savings), est, [])


def _signature(plan: Plan) -> tuple:
    return (plan.method,) + tuple(plan.hp.get(k) for k in SHOWN_HP)


def candidate_plans(profile: Profile, plans: list[Plan], gpu, vram: float,
                    pace=None) -> list[tuple[Plan, Plan, tuple]]:
    """(plan, origin, moves) for every fitting rules plan and each fitting neighbour, no duplicates
    (minutes times `pace(method, hp)` where the log corrects the time estimate)."""
    out, seen = [], set()
    for origin in plans:
        if origin.problems:
            continue
        for plan, moves in [(origin, ())] + [(neighbour(origin, m, profile, gpu, vram, pace), (m,)) for m in MOVES]:
            if plan is not None and _signature(plan) not in seen:
                seen.add(_signature(plan))
                out.append((plan, origin, moves))
    return out

"""Candidate plans for the learner: the rules' plans, their one-step neighbours, and the
time budget at the user's logged pace.

A Move changes one setting of a plan (learning rate x0.5/x2, steps x0.6/x1.5, rank x0.5/x2,
prior preservation and text encoder on/off where the method has them); `neighbour()` applies
it and keeps the result only where it still fits the card, the time budget (at the user's
pace, when the log gives one) and the size cap; `candidate_plans()` lists every fitting plan
and neighbour once.

The pace: LogLearner.pace gives, per configuration, the factor the user's logged runs took
over the published-speed estimate. The rules' plans are checked against the time budget at
that pace (shortened or marked over budget, `rebudget`), the choice among them is redone as
recommend does it (`choose`), and the recommended plan's minutes are corrected and said so
(`at_pace`, `budget_note`, `over_at_pace`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from trainer.vocabulary import ADAPTERS, CLASS_IMAGE_METHODS, METHOD_FACTS, METHOD_NAMES

from ..profile import Profile
from ..recommendation import costs
from ..recommendation.hyperparameters import class_noun
from ..recommendation.recommend import Plan, recommend, time_limit

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
        if not self.applies(method) or self.key in profile.settings:  # the user's own value stays
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
    Move("prior_preservation", None, CLASS_IMAGE_METHODS),
    Move("train_text_encoder", None, tuple(m for m in METHOD_NAMES if METHOD_FACTS[m].family != "embedding")),
)
CARDS = {"learning_rate": "hp-learning-rate", "max_train_steps": "hp-steps", "rank": "hp-lora-rank-alpha",
         "prior_preservation": "prior-preservation", "train_text_encoder": "text-encoder-training"}
SHOWN_HP = tuple(dict.fromkeys(m.key for m in MOVES))  # the settings the moves change, shown in explanations


def neighbour(origin: Plan, move: Move, profile: Profile, gpu, vram: float, pace=None) -> Plan | None:
    """`origin` moved one step, memory-fitted, or None when the move does not apply or the
    result is over the card, the time budget or the size cap. `pace(method, hp)`, when given,
    is the factor the log puts on the estimated minutes (LogLearner.pace)."""
    hp = move.apply(origin.hp, origin.method, profile)
    if hp is None:
        return None
    fitted, savings = costs.fit_memory(origin.method, profile.base_model, hp, vram, gpu=gpu,
                                       keep=frozenset(profile.settings))
    if fitted.get(move.key) != hp.get(move.key):
        return None  # memory fitting undid the move (e.g. the text encoder does not fit)
    est = costs.estimate(origin.method, profile.base_model, fitted, profile.n_images, gpu=gpu)
    minutes = est.minutes * (pace(origin.method, fitted) if pace is not None else 1.0)
    if (costs.memory_problem(est.vram_gb, vram) or minutes > time_limit(profile)
            or (profile.max_output_mb is not None and est.output_mb > profile.max_output_mb)):
        return None
    rest = origin.changes[origin.n_savings:]
    notes = origin.notes
    if move.key == "max_train_steps":  # the recipe's step arithmetic no longer describes this run
        rest = [c for c in rest if "steps instead of" not in c]
        notes = [n for n in notes if n[1] != "hp-steps"]
    return Plan(origin.candidate, fitted, {**origin.sources, move.key: CARDS[move.key]}, list(notes),
                origin.changes[:origin.n_savings] + savings + rest, origin.n_savings + len(savings), est, [])


def signature(plan: Plan) -> tuple:
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
            if plan is not None and signature(plan) not in seen:
                seen.add(signature(plan))
                out.append((plan, origin, moves))
    return out


class _PlanProbe:
    """A learner that only records what recommend() planned."""

    def adapt(self, profile, plans, chosen, *, gpu, vram):
        self.seen = (profile, plans, gpu, vram)
        return None


def candidate_space(profile: Profile) -> list[tuple[str, dict[str, Any]]]:
    """(method, hyperparameters) of every candidate the learner weighs for `profile`: the rules'
    fitting plans and their neighbours, as recommend() plans them (for benchmarks and studies)."""
    probe = _PlanProbe()
    recommend(profile, learner=probe)
    filled, plans, gpu, vram = probe.seen
    return [(p.method, p.hp) for p, _, _ in candidate_plans(filled, plans, gpu, vram)]


# --------------------------------------------------------------------------- the user's pace
def pace_factor(pace):
    """LogLearner.pace's (factor, std) as the factor alone, for candidate_plans."""
    def factor(method: str, hp: dict[str, Any]) -> float:
        return pace(method, hp)[0]
    return factor


def _problems(est: costs.Estimate, ratio: float, profile: Profile, vram: float) -> list[str]:
    """recommend's three limits, with the time at the user's pace (`ratio` x the estimate)."""
    out = []
    memory = costs.memory_problem(est.vram_gb, vram)
    if memory:
        out.append(memory)
    if est.minutes * ratio > time_limit(profile):
        out.append(f"takes about {est.minutes * ratio:.0f} min at your logged runs' pace ({ratio:.1f}x the "
                   f"estimate), over your {profile.time_budget_min:g}-minute budget")
    if profile.max_output_mb is not None and est.output_mb > profile.max_output_mb:
        out.append(f"writes about {est.output_mb:.0f} MB, over your {profile.max_output_mb:g} MB cap")
    return out


def rebudget(plan: Plan, profile: Profile, gpu, vram: float, pace) -> Plan:
    """A rules plan checked against the time budget at the user's pace: shortened as the rules
    shorten (advisor.costs.fit_time against budget / pace) when it runs over, and its problems
    worked out again with the corrected minutes (a faster pace can also lift a time problem)."""
    hp, changes, est = plan.hp, list(plan.changes), plan.estimate
    budget = time_limit(profile)
    ratio = pace(plan.method, hp)[0]
    if est.minutes * ratio > budget and not costs.memory_problem(est.vram_gb, vram):
        target = budget / ratio
        shorter, timing = costs.fit_time(plan.method, profile.base_model, hp, profile.n_images, target, gpu=gpu,
                                         keep=frozenset(profile.settings))
        if timing:
            hp = shorter
            changes += [t.replace(f"to fit {target:g} minutes", f"to fit your {budget:g} minutes at your logged "
                                                                  "runs' pace") for t in timing]
            est = costs.estimate(plan.method, profile.base_model, hp, profile.n_images, gpu=gpu)
            ratio = pace(plan.method, hp)[0]
    problems = _problems(est, ratio, profile, vram)
    if hp is plan.hp and problems == plan.problems:
        return plan
    return replace(plan, hp=hp, changes=changes, estimate=est, problems=problems)


def choose(plans: list[Plan], profile: Profile, vram: float, pace) -> Plan:
    """recommend's choice at the user's pace: the first plan that fits, else the closest
    (memory first, then the larger of the time and size overruns)."""
    fitting = next((p for p in plans if not p.problems), None)
    if fitting is not None:
        return fitting

    def overflow(p: Plan) -> tuple[float, float]:
        e = p.estimate
        minutes = e.minutes * pace(p.method, p.hp)[0]
        return max(e.vram_gb / vram, 1.0), max(minutes / time_limit(profile),
                                               e.output_mb / (profile.max_output_mb or float("inf")))
    return min(plans, key=overflow)


def _num(v: float) -> str:
    """A factor or a few minutes as people say them: 2.0, 0.35, 12."""
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}" if v >= 0.95 else f"{v:.2f}"


def at_pace(plan: Plan, pace, n_timed: int) -> tuple[Plan, str, dict[str, Any]]:
    """(plan with its minutes at the user's pace, the sentence that says so, learned["time"])."""
    ratio, std = pace(plan.method, plan.hp)
    plus = ratio * std  # the log ratio's standard deviation, as a spread of the factor
    est = plan.estimate
    minutes = round(est.minutes * ratio, 1)
    spread = f"{plus:.1f}" if plus >= 0.05 else f"{plus:.2f}"
    sentence = (f"Your {n_timed} logged run(s) took {_num(ratio)}x (±{spread}) the published-speed estimate, so this "
                f"estimate is {_num(ratio)}x too: about {_num(minutes)} min instead of {_num(est.minutes)} "
                "(your run log).")
    # the plan's problems already use this pace (rebudget for rules plans, neighbour's check)
    corrected = replace(est, minutes=minutes, breakdown=est.breakdown + [sentence])
    new = replace(plan, estimate=corrected, changes=plan.changes + [sentence], problems=list(plan.problems))
    time = {"n_runs": n_timed, "factor": round(ratio, 3), "factor_std": round(plus, 3),
            "minutes_published_speed": est.minutes, "minutes": minutes}
    return new, sentence, time


def budget_note(rules_chosen: Plan, plans: list[Plan], plan: Plan) -> str:
    """What the pace did to the rules' own choice, when it did something."""
    mine = next(p for p in plans if p.method == rules_chosen.method)
    if rules_chosen.problems or mine is rules_chosen:
        return ""
    if mine.problems:
        if plan.method == mine.method:  # nothing fits: the closest plan is still this one
            return f" It {mine.problems[0]}."
        return f" The rules' {rules_chosen.method} plan {mine.problems[0]}, so {plan.method} instead."
    if plan.method != mine.method:
        return ""
    shortened = " ".join(mine.changes[len(rules_chosen.changes):])
    return f" At that pace the rules' plan runs over your time budget, so it is shortened: {shortened}"


def over_at_pace(originals: list[Plan], plans: list[Plan], plan: Plan) -> dict[str, str]:
    """why_not for the alternatives the user's pace put over a limit."""
    return {after.method: f"It {after.problems[0]}." for before, after in zip(originals, plans)
            if after.method != plan.method and after.problems and not before.problems}

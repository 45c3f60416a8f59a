"""Scoring for advisor.adapt: each candidate's predicted factors, utility and score.

A candidate's factors blend the rules' prior with the LogLearner's correction, weighted by
how many logged runs are relevant to it; its utility weighs them by the user's importance;
its score takes off what leaving the rules' plan costs until the data outweighs the prior.
advisor.adapt's module docstring gives the formulas.
"""
from __future__ import annotations

from dataclasses import dataclass

from .log_learner import LogLearner, rules_prior
from .moves import Move, candidate_plans
from ..profile import FACTORS, Profile
from ..recommendation.recommend import Plan

# Utility points (1-5 scale) the prior asks before leaving the rules' plan: the published
# recipes are tuned, so a one-step move is assumed to cost DEPART until runs near it show
# otherwise; another method than the rules' first choice costs SWITCH.
DEPART = 0.1
SWITCH = 0.25
UNCERTAIN = 0.3  # utility points the prior is unsure by where no run is near (the exploration bonus)


@dataclass
class Scored:
    """One candidate configuration with what the rules and the log predict for it."""
    plan: Plan
    origin: Plan                         # the rules' plan it is a neighbour of (itself for a rules plan)
    moves: tuple[Move, ...]
    prior: dict[str, float]              # the rules' predicted factors
    model: dict[str, float]              # the log's correction to the prior, per factor
    model_std: dict[str, float]
    n_context: float                     # runs of the same method (family), subject, base model
    n_local: float                       # ... also near in the settings
    weight: float                        # how much the log counts here (w_local; w_context for o)
    predicted: dict[str, float]          # the blend in advisor.adapt's docstring, clipped to 1-5
    utility: float
    score: float


def importance_weights(profile: Profile) -> dict[str, float]:
    """The user's 1-5 importance of each factor, normalised to sum to 1."""
    raw = {f: float(getattr(profile, f) or 3) for f in FACTORS}
    total = sum(raw.values())
    return {f: v / total for f, v in raw.items()}


def score_candidates(profile: Profile, plans: list[Plan], chosen: Plan, gpu, vram: float, learner: LogLearner,
                     weights: dict[str, float] | None = None, pace=None) -> list[Scored]:
    """Every fitting candidate scored as advisor.adapt's module docstring says, best first
    (`pace` as in candidate_plans)."""
    weights = weights or importance_weights(profile)
    found = candidate_plans(profile, plans, gpu, vram, pace)
    if not found:
        return []
    X, mean, std = learner.correction(profile, [p for p, _, _ in found])
    n_context, n_local = learner.relevance(profile, [p.method for p, _, _ in found], X)
    row = {id(p): i for i, (p, _, _) in enumerate(found)}

    def u(f: dict[str, float]) -> float:
        return sum(weights[k] * f[k] for k in FACTORS)

    priors = [rules_prior(p.method, p.hp, p.changes) for p, _, _ in found]
    chosen_u = u(priors[row[id(chosen)]])
    out = []
    for i, (plan, origin, moves) in enumerate(found):
        o = row[id(origin)]
        w_ctx = n_context[o] / (n_context[o] + learner.k)
        w_loc = n_local[i] / (n_local[i] + learner.k)
        model = {f: float(mean[i, j]) for j, f in enumerate(FACTORS)}
        base = {f: float(mean[o, j]) for j, f in enumerate(FACTORS)}
        blend = {f: priors[i][f] + w_ctx * base[f] + (w_loc * (model[f] - base[f]) if moves else 0.0)
                 for f in FACTORS}
        predicted = {f: min(5.0, max(1.0, v)) for f, v in blend.items()}
        method_cost = (SWITCH + max(0.0, u(priors[o]) - chosen_u)) if plan.method != chosen.method else 0.0
        move_cost = (DEPART * len(moves) + max(0.0, u(priors[i]) - u(priors[o]))) if moves else 0.0
        utility = u(predicted)
        score = utility - (1 - w_ctx) * method_cost - (1 - w_loc) * move_cost
        score += learner.explore * UNCERTAIN * (1 - w_loc)
        out.append(Scored(plan, origin, moves, priors[i], model, {f: float(std[i, j]) for j, f in enumerate(FACTORS)},
                          float(n_context[o]), float(n_local[i]), w_loc if moves else w_ctx, predicted, utility,
                          score))
    # a stable sort: on equal scores the rules' order stands (their plan, then its neighbours)
    return sorted(out, key=lambda s: -s.score)


def _unscored(chosen: Plan, learner: LogLearner, profile: Profile, weights: dict[str, float]) -> Scored:
    prior = rules_prior(chosen.method, chosen.hp, chosen.changes)
    u = sum(weights[f] * prior[f] for f in FACTORS)
    zero = dict.fromkeys(FACTORS, 0.0)
    n = float(sum(learner.similarity(profile, chosen.method)))
    return Scored(chosen, chosen, (), prior, zero, zero, n, 0.0, 0.0, prior, u, u)

"""The run log meets the rules: re-score the rules' plans and their neighbours with what
the user's own runs say, within the same budget.

`adapt()` takes the rules' fitting plans (the chosen one and its alternatives), builds
neighbours in hyperparameter space (MOVES: learning rate x0.5/x2, steps x0.6/x1.5, rank
x0.5/x2, prior preservation and text encoder on/off where the method has them), keeps
those that fit the card, the time and the size cap, and scores each by predicted utility
(the user's importance weights over the three predicted 1-5 factors).

A factor's prediction starts from the rules' prior (recommend's `predicted`) and adds the
log's model (advisor.learner.RunOutcomeModel, fitted on what the prior missed), each part
weighted by how much of the log is relevant, w = n / (n + DATA_K):

    rules' plan o:    prior(o) + w_context(o) x model(o)
    neighbour c of o: prior(c) + w_context(o) x model(o) + w_local(c) x (model(c) - model(o))

n_context counts runs of the same method (family), subject and base model; n_local also
asks them to be near c in the settings (recipe-relative learning rate and image views,
rank, prior preservation, text encoder). A neighbour therefore beats its rules' plan only
where runs near it say so. The prior keeps the rules' choice until the data outweighs it:

    score = utility - (1 - w_context(o)) x method departure - (1 - w_local(c)) x move departure

(method departure: SWITCH plus any prior gain over the rules' choice; move departure:
DEPART plus any prior gain over o). An empty log gives w = 0 and the rules' plan, byte for
byte.

Time: with at least COST_MIN_RUNS completed runs with durations the learner also fits
advisor.learner.RunCostModel, the log ratio of a run's actual minutes to advisor.costs'
published-speed estimate. Every budget check then uses estimate x exp(predicted log ratio):
the rules' plans are shortened (advisor.costs.fit_time) or marked over budget at the user's
pace, the choice among them is redone as recommend does it, neighbours over the corrected
budget are dropped, and the recommended plan's minutes are the corrected ones, said so in a
reason and in estimates.savings. No such runs: nothing about time changes, byte for byte.

`LogLearner` holds the fitted models and the rows; `recommend(profile, learner=...)`
calls its `adapt`. `learner_for_log()` builds one for the chat, cached on the file's stamp.
Heavy imports (numpy, scikit-learn via advisor.learner) stay inside functions: importing
this module is as light as importing advisor.recommend.

Modules: advisor.adapt_moves (MOVES, neighbours, candidate_plans), advisor.adapt_log_learner
(LogLearner, rules_prior), advisor.adapt_scoring (Scored, importance_weights,
score_candidates), advisor.adapt_pace (the user's pace: rebudget, choose, at_pace),
advisor.adapt_explain (reasons, why_not, similar_runs), advisor.adapt_log_cache
(learner_for_log). This module holds `adapt()` and re-exports their public names.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .explain import N_SIMILAR_SHOWN, _changes, _predicted_blend, _reason, _why_not, fmt, similar_runs
from .log_cache import learner_for_log
from .log_learner import CONTEXT, COST_MIN_RUNS, DATA_K, FAMILY, LOCAL_CONTEXT, NEAR_LOG10, NEAR_RANK, NEAR_SWITCH, LogLearner, rules_prior
from .moves import CARDS, MOVES, SHOWN_HP, Move, _signature, candidate_plans, neighbour
from .pace import _budget_note, _factor, _over_at_pace, at_pace, choose, rebudget
from .scoring import DEPART, SWITCH, UNCERTAIN, Scored, _unscored, importance_weights, score_candidates
from ..profile import Profile
from ..recommendation.recommend import Plan

__all__ = [
    "adapt", "AdaptResult",
    # re-exported: what callers import from advisor.adapt
    "MOVES", "Move", "CARDS", "SHOWN_HP", "candidate_plans", "neighbour",
    "LogLearner", "rules_prior", "DATA_K", "COST_MIN_RUNS", "CONTEXT", "LOCAL_CONTEXT", "FAMILY",
    "NEAR_LOG10", "NEAR_RANK", "NEAR_SWITCH",
    "Scored", "importance_weights", "score_candidates", "DEPART", "SWITCH", "UNCERTAIN",
    "rebudget", "choose", "at_pace",
    "fmt", "similar_runs", "N_SIMILAR_SHOWN",
    "learner_for_log",
    "_signature",  # tests/test_adapt.py checks candidates for duplicates with it
]


@dataclass
class AdaptResult:
    plan: Plan                            # what to recommend (may be the rules' plan itself)
    replaces: Plan                        # the rules' plan of the same method it stands in for
    predicted: dict[str, dict[str, Any]]  # Recommendation.predicted, rules blended with the log
    reasons: list[str]                    # what the log changed and why, with numbers
    why_not: dict[str, str]               # method -> a why_not that replaces the rules' one
    similar_runs: list[dict[str, Any]]
    learned: dict[str, Any]
    scored: list[Scored] = field(default_factory=list, repr=False)  # every candidate, best first


def adapt(profile: Profile, plans: list[Plan], chosen: Plan, *, gpu, vram: float, learner: LogLearner,
          weights: dict[str, float] | None = None) -> AdaptResult | None:
    """The rules' recommendation re-scored with the run log, its minutes at the user's logged
    pace; None for a log with neither scored nor timed runs (the rules stand, byte for byte)."""
    pace = learner.pace(profile)
    if learner.n_runs == 0 and pace is None:
        return None
    weights = weights or importance_weights(profile)
    rules_chosen, originals = chosen, plans
    factor = None
    if pace is not None:  # every budget check below uses the minutes at the user's pace
        plans = [rebudget(p, profile, gpu, vram, pace) for p in plans]
        chosen = choose(plans, profile, vram, pace)
        factor = _factor(pace)
    scored = [] if chosen.problems or learner.n_runs == 0 else \
        score_candidates(profile, plans, chosen, gpu, vram, learner, weights, factor)
    rules_pick = next((s for s in scored if s.plan is chosen), None)
    best = scored[0] if scored else None
    if best is None or rules_pick is None:  # nothing fits: the log cannot make it fit
        best = rules_pick = _unscored(chosen, learner, profile, weights)
    replaces = next(p for p in originals if p.method == best.plan.method)
    changed = _changes(best, chosen)
    reasons = [_reason(best, rules_pick, changed, learner, profile, weights)] if learner.n_runs else []
    why_not = _why_not(best, rules_pick)
    learned = {"n_runs": learner.n_runs, "n_left_out": len(learner.dropped),
               "n_similar": round(best.n_context, 2), "n_near": round(best.n_local, 2),
               "data_weight": round(best.weight, 3),
               "changed": changed, "weights": {f: round(v, 3) for f, v in weights.items()},
               "utility": {"rules": round(rules_pick.utility, 3), "recommended": round(best.utility, 3)},
               "n_candidates": len(scored)}
    plan = best.plan
    if pace is not None:
        plan, sentence, learned["time"] = at_pace(best.plan, pace, learner.n_timed)
        reasons.append(sentence + _budget_note(rules_chosen, plans, plan))
        learned["changed"] = _changes(replace(best, plan=plan), rules_chosen, originals)
        why_not = {**_over_at_pace(originals, plans, plan), **why_not}
    return AdaptResult(plan=plan, replaces=replaces, predicted=_predicted_blend(best), reasons=reasons,
                       why_not=why_not, similar_runs=similar_runs(learner, profile, best.plan), learned=learned,
                       scored=scored)

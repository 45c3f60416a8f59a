"""The run log meets the rules: re-score the rules' plans and their neighbours with what
the user's own runs say, within the same budget.

`adapt()` takes the rules' fitting plans (the chosen one and its alternatives), builds
neighbours in hyperparameter space (MOVES: learning rate x0.5/x2, steps x0.6/x1.5, rank
x0.5/x2, prior preservation and text encoder on/off where the method has them), keeps
those that fit the card, the time and the size cap, and scores each by predicted utility
(the user's importance weights over the three predicted 1-5 factors).

A factor's prediction starts from the rules' prior (recommend's `predicted`) and adds the
log's model (advisor.learning.estimators.RunOutcomeModel, fitted on what the prior missed), each part
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
advisor.learning.estimators.RunCostModel, the log ratio of a run's actual minutes to
advisor.recommendation.costs'
published-speed estimate. Every budget check then uses estimate x exp(predicted log ratio):
the rules' plans are shortened (costs.fit_time) or marked over budget at the user's
pace, the choice among them is redone as recommend does it, neighbours over the corrected
budget are dropped, and the recommended plan's minutes are the corrected ones, said so in a
reason and in estimates.savings. No such runs: nothing about time changes, byte for byte.

Steps: where the user kept a checkpoint of similar runs (advisor.learning.peak), the rules'
plans first move their steps toward that peak; everything above then starts from those plans,
and the card says so in one sentence. No kept checkpoints: nothing changes, byte for byte.

`learner` is a LogLearner (advisor.learning.log_learner): it holds the fitted models and
the rows, and `recommend(profile, learner=...)` calls its `adapt`, which calls `adapt()` here.
Candidates and the pace come from advisor.learning.candidates. Heavy imports (numpy,
scikit-learn via advisor.learning.estimators) stay inside functions: importing this module
is as light as importing advisor.recommendation.recommend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from trainer.vocabulary import FACTORS

from ..profile import Profile
from ..recommendation.recommend import Plan, predicted
from .candidates import (SHOWN_HP, Move, at_pace, budget_note, candidate_plans, choose, over_at_pace, pace_factor,
                         rebudget)
from .peak import peak_plans

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


def score_candidates(profile: Profile, plans: list[Plan], chosen: Plan, gpu, vram: float, learner,
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


def _unscored(chosen: Plan, learner, profile: Profile, weights: dict[str, float]) -> Scored:
    prior = rules_prior(chosen.method, chosen.hp, chosen.changes)
    u = sum(weights[f] * prior[f] for f in FACTORS)
    zero = dict.fromkeys(FACTORS, 0.0)
    n = float(sum(learner.similarity(profile, chosen.method)))
    return Scored(chosen, chosen, (), prior, zero, zero, n, 0.0, 0.0, prior, u, u)


def rules_prior(method: str, hp: dict[str, Any], changes: list[str] | None = None) -> dict[str, float]:
    """The rules' predicted factor scores (recommend's `predicted`) for any configuration."""
    return {f: v["score"] for f, v in predicted(method, hp, list(changes or [])).items()}


# --------------------------------------------------------------------------- explanations
N_SIMILAR_SHOWN = 5


def _changes(best: Scored, chosen: Plan, plans: list[Plan] | None = None) -> list[dict[str, Any]]:
    """What differs from the rules' plan: the method (then the settings moved from the rules'
    plan of the new method, taken from `plans` when given, else best's origin), or the settings."""
    out, base = [], chosen
    if best.plan.method != chosen.method:
        out.append({"key": "method", "from": chosen.method, "to": best.plan.method})
        base = next((p for p in plans if p.method == best.plan.method), best.origin) if plans else best.origin
    for k in SHOWN_HP:
        if best.plan.hp.get(k) != base.hp.get(k):
            out.append({"key": k, "from": _plain(base.hp.get(k)), "to": _plain(best.plan.hp.get(k))})
    return out


def _plain(v: Any) -> Any:
    """numpy and pandas scalars as JSON-ready Python values."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _predicted_blend(s: Scored) -> dict[str, dict[str, Any]]:
    rules = predicted(s.plan.method, s.plan.hp, s.plan.changes)
    out = {}
    for f in FACTORS:
        basis = rules[f]["basis"]
        if s.weight > 0:
            basis += (f"; your run log ({s.n_context:.1f} similar runs, {s.n_local:.1f} near these settings, "
                      f"weight {s.weight:.2f}): {s.predicted[f] - s.prior[f]:+.2f} on the rules' {s.prior[f]:.2f} "
                      f"(model ± {s.model_std[f]:.2f})")
        out[f] = {"score": round(s.predicted[f], 2), "basis": basis}
    return out


def fmt(v: Any) -> str:
    """A setting as people write it: 1e-4, 500, on/off."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float) and 0 < abs(v) < 1e-2:
        mantissa, exp = f"{v:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _reason(best: Scored, rules: Scored, changed: list[dict], learner, profile: Profile,
            weights: dict[str, float], basis: str = "the rules") -> str:
    """`basis`: who made the plan the log started from (the rules, with the kept checkpoints' steps)."""
    n = learner.n_runs
    if best.plan.problems:
        return (f"Nothing fits your limits, so your run log ({n} runs) leaves the closest plan as the rules "
                "made it (your run log).")
    if not changed:
        if best.weight == 0:
            return (f"Your run log has {n} run(s), none like this plan, so {basis} decide alone "
                    "(your run log).")
        return (f"Your run log ({n} runs, {best.n_context:.1f} similar, weight {best.weight:.2f}) agrees with "
                f"{basis}: no nearby setting predicts higher for your priorities; it predicts "
                + ", ".join(f"{f} {best.predicted[f]:.1f}" for f in FACTORS) + " (your run log).")
    # the factor that moved the weighted utility most explains the change
    gain = {f: weights[f] * (best.predicted[f] - rules.predicted[f]) for f in FACTORS}
    f = max(gain, key=lambda k: abs(gain[k]) if gain[k] > 0 else -1)
    imp = getattr(profile, f) or 3
    what = " and ".join(f"the {c['key'].replace('_', ' ')} from {fmt(c['from'])} to {fmt(c['to'])}"
                        for c in changed)
    c = changed[0]
    if c["key"] == "method":
        past = _past(learner, profile, rules.plan.method, None, None, f)
    else:
        past = _past(learner, profile, rules.plan.method, c["key"], c["from"], f)
    seen = (f"your {past[0]} similar {_label(rules.plan.method, profile)} run(s) at {past[2]} scored "
            f"{past[1]:.1f} on {f}" if past else
            f"the log predicts {rules.predicted[f]:.1f} on {f} for the rules' setting")
    return (f"Your run log changed {what}: {seen} (you weight {f} {imp}/5); this one is predicted "
            f"{best.predicted[f]:.1f} ± {best.model_std[f]:.1f} (rules alone: {best.prior[f]:.1f}), a predicted "
            f"utility of {best.utility:.2f} against {rules.utility:.2f} ({best.n_local:.1f} of your {n} runs are near "
            f"these settings; weight {best.weight:.2f}).")


def _label(method: str, profile: Profile) -> str:
    return f"{profile.subject_type} {method.replace('_', ' ')}" if profile.subject_type else method


def _past(learner, profile: Profile, method: str, key: str | None, value: Any, factor: str):
    """(count, mean score on factor, setting text) of logged runs like the rules' plan."""
    rows = []
    for r in learner.records:
        if r["method"] != method or (r["subject_type"] not in (None, profile.subject_type)):
            continue
        if key is not None:
            v = r["hyperparameters"].get(key)
            if isinstance(value, bool) or value is None:
                if bool(v) != bool(value):
                    continue
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 or \
                    abs(math.log10(v / value)) > 0.05:
                continue
        rows.append(r[f"y_{factor}"])
    if not rows:
        return None
    where = fmt(value) if key is not None else "the rules' settings"
    if key in ("prior_preservation", "train_text_encoder"):
        where = f"{key.replace('_', ' ')} {fmt(value)}"
    elif key == "max_train_steps":
        where = f"{fmt(value)} steps"
    elif key == "rank":
        where = f"rank {fmt(value)}"
    return len(rows), sum(rows) / len(rows), where


def _why_not(best: Scored, rules: Scored) -> dict[str, str]:
    if best.plan.method == rules.plan.method:
        return {}
    return {rules.plan.method: f"The rules' first choice, but your run log predicts a utility of "
                               f"{rules.utility:.2f} for it against {best.utility:.2f} for {best.plan.method}."}


def similar_runs(learner, profile: Profile, plan: Plan, n: int = N_SIMILAR_SHOWN) -> list[dict]:
    """The logged runs most like `plan` for this profile, most similar first."""
    from .estimators import FEATURES, featurize

    sims = learner.similarity(profile, plan.method)
    x = featurize(profile.to_dict(), plan.hp, plan.method, profile.base_model)
    # closeness in the recipe-relative learning rate and image views (columns of FEATURES)
    cols = [FEATURES.index("log10_lr_vs_recipe"), FEATURES.index("log10_views_vs_recipe")]
    out = []
    for i, r in enumerate(learner.records):
        d2 = sum((learner.X[i, c] - x[c]) ** 2 for c in cols)
        sim = sims[i] * math.exp(-d2 / (2 * 0.3 ** 2))
        out.append({"id": r["run_id"], "method": r["method"], "base_model": r["base_model"],
                    "subject_type": r["subject_type"],
                    "hyperparameters": {k: _plain(r["hyperparameters"].get(k)) for k in SHOWN_HP
                                        if r["hyperparameters"].get(k) is not None},
                    "scores": {f: round(float(r[f"y_{f}"]), 2) for f in FACTORS},
                    "from": {f: r[f"target_from_{f}"] for f in FACTORS},
                    "similarity": round(sim, 3)})
    out.sort(key=lambda d: -d["similarity"])
    return out[:n]


# --------------------------------------------------------------------------- adapt
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


def adapt(profile: Profile, plans: list[Plan], chosen: Plan, *, gpu, vram: float, learner,
          weights: dict[str, float] | None = None) -> AdaptResult | None:
    """The rules' recommendation re-scored with the run log, its minutes at the user's logged
    pace and its steps toward the user's kept checkpoints; None for a log with neither scored nor
    timed runs nor a kept checkpoint that moves a plan (the rules stand, byte for byte)."""
    pace = learner.pace(profile)
    rules_plans = plans
    plans, peaks = peak_plans(profile, plans, gpu, vram, learner)  # steps toward the kept checkpoints first
    if learner.n_runs == 0 and pace is None and chosen.method not in peaks:
        return None  # nothing can pick another plan, and this one's steps stay
    chosen = plans[next(i for i, p in enumerate(rules_plans) if p is chosen)]
    weights = weights or importance_weights(profile)
    rules_chosen, originals = chosen, plans
    factor = None
    if pace is not None:  # every budget check below uses the minutes at the user's pace
        plans = [rebudget(p, profile, gpu, vram, pace) for p in plans]
        chosen = choose(plans, profile, vram, pace)
        factor = pace_factor(pace)
    scored = [] if chosen.problems or learner.n_runs == 0 else \
        score_candidates(profile, plans, chosen, gpu, vram, learner, weights, factor)
    rules_pick = next((s for s in scored if s.plan is chosen), None)
    best = scored[0] if scored else None
    if best is None or rules_pick is None:  # nothing fits: the log cannot make it fit
        best = rules_pick = _unscored(chosen, learner, profile, weights)
    replaces = next(p for p in rules_plans if p.method == best.plan.method)
    changed = _changes(best, chosen)
    peak = peaks.get(best.plan.method)
    basis = "the rules and your kept checkpoints" if peak else "the rules"
    reasons = ([peak.sentence] if peak else []) + \
        ([_reason(best, rules_pick, changed, learner, profile, weights, basis)] if learner.n_runs else [])
    why_not = _why_not(best, rules_pick)
    learned = {"n_runs": learner.n_runs, "n_left_out": len(learner.dropped),
               "n_similar": round(best.n_context, 2), "n_near": round(best.n_local, 2),
               "data_weight": round(best.weight, 3),
               "changed": changed, "weights": {f: round(v, 3) for f, v in weights.items()},
               "utility": {"rules": round(rules_pick.utility, 3), "recommended": round(best.utility, 3)},
               "n_candidates": len(scored)}
    if peak:
        learned["peak"] = peak.to_dict()
    plan = best.plan
    if pace is not None:
        plan, sentence, learned["time"] = at_pace(best.plan, pace, learner.n_timed)
        reasons.append(sentence + budget_note(rules_chosen, plans, plan))
        learned["changed"] = _changes(replace(best, plan=plan), rules_chosen, originals)
        why_not = {**over_at_pace(originals, plans, plan), **why_not}
    return AdaptResult(plan=plan, replaces=replaces, predicted=_predicted_blend(best), reasons=reasons,
                       why_not=why_not, similar_runs=similar_runs(learner, profile, best.plan), learned=learned,
                       scored=scored)

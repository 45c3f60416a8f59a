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
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import costs
from .hyperparams import ADAPTERS, DB_FAMILY, class_noun
from .profile import FACTORS, Profile
from .recommend import Candidate, Plan, _predicted

log = logging.getLogger(__name__)

DATA_K = 3.0    # relevant runs at which the log weighs as much as the rules
# Utility points (1-5 scale) the prior asks before leaving the rules' plan: the published
# recipes are tuned, so a one-step move is assumed to cost DEPART until runs near it show
# otherwise; another method than the rules' first choice costs SWITCH.
DEPART = 0.1
SWITCH = 0.25
# Closeness in settings for n_local: a run one move away from a candidate tells little about
# it. log10 scale of the recipe-relative learning rate and image views (0.1: a run at 2x
# counts 1%, at 1.5x 21%); factor per halving or doubling of the rank; factor for a different
# prior-preservation or text-encoder switch.
NEAR_LOG10 = 0.1
NEAR_RANK = 0.1
NEAR_SWITCH = 0.1
# What a run of another method, subject or base model says about this one, as a factor. For
# the level of the scores (n_context) they count little: a face LoRA's preservation says
# little about a style's. For the effect of a move (n_local: does halving the learning rate
# help?) other subjects and base models count more: differences transfer better than levels.
CONTEXT = {"family": 0.5, "method": 0.1, "subject": 0.3, "unknown subject": 0.5, "base model": 0.5}
LOCAL_CONTEXT = {"family": 0.5, "method": 0.1, "subject": 0.7, "unknown subject": 0.7, "base model": 0.7}
UNCERTAIN = 0.3  # utility points the prior is unsure by where no run is near (the exploration bonus)
N_SIMILAR_SHOWN = 5
COST_MIN_RUNS = 3  # completed runs with durations before the log corrects the time estimate
# Method families for similarity: what a run of one method says about another.
FAMILY = {"lora": "adapter", "dreambooth_lora": "adapter", "dreambooth": "full", "full_finetune": "full",
          "textual_inversion": "embedding"}


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


# --------------------------------------------------------------------------- candidates
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
    predicted: dict[str, float]          # the blend above, clipped to 1-5
    utility: float
    score: float


def importance_weights(profile: Profile) -> dict[str, float]:
    """The user's 1-5 importance of each factor, normalised to sum to 1."""
    raw = {f: float(getattr(profile, f) or 3) for f in FACTORS}
    total = sum(raw.values())
    return {f: v / total for f, v in raw.items()}


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


# --------------------------------------------------------------------------- the learner
def rules_prior(method: str, hp: dict[str, Any], changes: list[str] | None = None) -> dict[str, float]:
    """The rules' predicted factor scores (recommend's `predicted`) for any configuration."""
    plan = Plan(Candidate(method, 0.0), hp, {}, [], list(changes or []), 0, None, [])
    return {f: v["score"] for f, v in _predicted(plan).items()}


class LogLearner:
    """A RunOutcomeModel fitted on the run log, as what the rules' prior missed, and a
    RunCostModel (`cost_model`, None below COST_MIN_RUNS timed runs) for the time estimate.

    The model learns score - rules' prior (per factor), so away from the user's data its
    correction fades to the average miss rather than replacing the published standings.
    Build with `LogLearner.fit(log)` (a RunLog, its path, or its DataFrame). `explore` > 0
    adds explore x UNCERTAIN x (1 - w_local) to each candidate's score, a bonus for settings
    few logged runs are near: for simulated users who must try settings to learn anything
    (benchmarks/learner_sim.py); the advisor's recommendation uses 0.
    """

    def __init__(self, model, X, Y, meta, prior, *, k: float = DATA_K, explore: float = 0.0,
                 cost_model=None, cost_meta=None):
        self.model, self.X, self.Y, self.meta, self.prior = model, X, Y, meta, prior
        self.k, self.explore = k, explore
        self.records = meta.to_dict("records")  # read once: adapt() walks them per candidate method
        self.cost_model, self.cost_meta = cost_model, cost_meta

    @classmethod
    def fit(cls, log, *, model=None, k: float = DATA_K, explore: float = 0.0, cost_model=None) -> "LogLearner":
        import numpy as np

        from .learner import RunCostModel, RunOutcomeModel, _frame, load_costs, load_runs

        frame = _frame(log)  # read the log once for both models
        X, Y, meta = load_runs(frame)
        prior = np.array([[rules_prior(r["method"], _full_hp(r["hyperparameters"]))[f] for f in FACTORS]
                          for r in meta.to_dict("records")]).reshape(len(meta), len(FACTORS))
        model = model if model is not None else RunOutcomeModel(random_state=0)
        if len(X):
            model.fit(X, Y - prior)
        Xc, yc, cost_meta = load_costs(frame)
        if len(Xc) >= COST_MIN_RUNS:
            cost_model = (cost_model if cost_model is not None else RunCostModel(random_state=0)).fit(Xc, yc)
        else:
            cost_model = None
        return cls(model, X, Y, meta, prior, k=k, explore=explore, cost_model=cost_model, cost_meta=cost_meta)

    from_runlog = fit  # LogLearner.from_runlog(RunLog(...)) reads as what it does

    @property
    def n_runs(self) -> int:
        return len(self.meta)

    @property
    def dropped(self) -> list[tuple[str, str]]:
        return list(self.meta.attrs.get("dropped", []))

    @property
    def n_timed(self) -> int:
        """Completed runs with a usable duration (the cost model's rows)."""
        return len(self.cost_meta) if self.cost_meta is not None else 0

    def pace(self, profile: Profile):
        """None without a cost model; else `pace(method, hp) -> (factor, std)`: what the log
        multiplies the estimated minutes of that configuration by, and the standard deviation
        of ln(factor). Cached per configuration: the budget checks ask for the same plans often."""
        if self.cost_model is None:
            return None
        from .learner import featurize

        cache: dict[str, tuple[float, float]] = {}

        def pace(method: str, hp: dict[str, Any]) -> tuple[float, float]:
            key = repr((method, sorted(hp.items(), key=lambda kv: kv[0])))
            if key not in cache:
                x = featurize(profile.to_dict(), hp, method, profile.base_model)
                mean, std = self.cost_model.predict(x[None, :], return_std=True)
                cache[key] = (math.exp(float(mean[0])), float(std[0]))
            return cache[key]

        return pace

    def correction(self, profile: Profile, plans: list[Plan]):
        """(X, mean, std): the plans' feature rows and the model's correction to the prior,
        arrays (len(plans), 3)."""
        import numpy as np

        from .learner import featurize

        X = np.array([featurize(profile.to_dict(), p.hp, p.method, profile.base_model) for p in plans])
        mean, std = self.model.predict(X, return_std=True)
        return X, mean.reshape(len(plans), -1), std.reshape(len(plans), -1)

    def similarity(self, profile: Profile, method: str, weights: dict[str, float] = CONTEXT) -> list[float]:
        """How relevant each logged run is to `method` for this profile (0-1): 1 for the same
        method, subject and base model, times `weights` for each that differs."""
        out = []
        for r in self.records:
            m = 1.0 if r["method"] == method else \
                weights["family"] if FAMILY[r["method"]] == FAMILY[method] else weights["method"]
            s = weights["unknown subject"] if r["subject_type"] is None else \
                1.0 if r["subject_type"] == profile.subject_type else weights["subject"]
            b = 1.0 if r["base_model"] == profile.base_model else weights["base model"]
            out.append(m * s * b)
        return out

    def nearness(self, x) -> "Any":
        """How near each logged run's settings are to the feature row x (0-1)."""
        import numpy as np

        from .learner import FEATURES

        col = FEATURES.index
        d_lr = self.X[:, col("log10_lr_vs_recipe")] - x[col("log10_lr_vs_recipe")]
        d_views = self.X[:, col("log10_views_vs_recipe")] - x[col("log10_views_vs_recipe")]
        d_rank = np.abs(self.X[:, col("log2_rank")] - x[col("log2_rank")])
        switches = sum(self.X[:, col(k)] != x[col(k)] for k in ("prior_preservation", "train_text_encoder"))
        return (np.exp(-0.5 * (d_lr ** 2 + d_views ** 2) / NEAR_LOG10 ** 2) * NEAR_RANK ** d_rank
                * NEAR_SWITCH ** switches)

    def relevance(self, profile: Profile, methods: list[str], X):
        """(n_context, n_local) per candidate: summed similarity, and similarity x nearness."""
        import numpy as np

        sims = {m: np.asarray(self.similarity(profile, m)) for m in set(methods)}
        moves = {m: np.asarray(self.similarity(profile, m, LOCAL_CONTEXT)) for m in set(methods)}
        n_context = np.array([sims[m].sum() for m in methods])
        n_local = np.array([(moves[m] * self.nearness(x)).sum() for m, x in zip(methods, X)])
        return n_context, n_local

    def adapt(self, profile: Profile, plans: list[Plan], chosen: Plan, *, gpu, vram: float) -> "AdaptResult | None":
        return adapt(profile, plans, chosen, gpu=gpu, vram=vram, learner=self)


def _full_hp(hp: dict[str, Any]) -> dict[str, Any]:
    """Logged hyperparameters, cleaned to the types the rules' ADJUSTMENTS compare (a missing
    or unreadable switch is off, a missing rank is the recipe's 4)."""
    from .learner import _flag, _number

    return {**hp, "prior_preservation": _flag(hp.get("prior_preservation")),
            "train_text_encoder": _flag(hp.get("train_text_encoder")), "rank": _number(hp.get("rank")) or 4}


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


def score_candidates(profile: Profile, plans: list[Plan], chosen: Plan, gpu, vram: float, learner: LogLearner,
                     weights: dict[str, float] | None = None, pace=None) -> list[Scored]:
    """Every fitting candidate scored as the module docstring says, best first (`pace` as in
    candidate_plans)."""
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


# --------------------------------------------------------------------------- the user's pace
def _factor(pace):
    """LogLearner.pace's (factor, std) as the factor alone, for candidate_plans."""
    def factor(method: str, hp: dict[str, Any]) -> float:
        return pace(method, hp)[0]
    return factor


def _problems(est: costs.Estimate, ratio: float, profile: Profile, vram: float) -> list[str]:
    """recommend's three limits, with the time at the user's pace (`ratio` x the estimate)."""
    out = []
    if est.vram_gb > vram:
        out.append(f"needs about {est.vram_gb:.1f} GB of GPU memory, more than your {vram:g} GB")
    if est.minutes * ratio > profile.time_budget_min:
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
    budget = profile.time_budget_min
    ratio = pace(plan.method, hp)[0]
    if est.minutes * ratio > budget and est.vram_gb <= vram:
        target = budget / ratio
        shorter, timing = costs.fit_time(plan.method, profile.base_model, hp, profile.n_images, target, gpu=gpu)
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
        return max(e.vram_gb / vram, 1.0), max(minutes / profile.time_budget_min,
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


def _budget_note(rules_chosen: Plan, plans: list[Plan], plan: Plan) -> str:
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


def _over_at_pace(originals: list[Plan], plans: list[Plan], plan: Plan) -> dict[str, str]:
    """why_not for the alternatives the user's pace put over a limit."""
    return {after.method: f"It {after.problems[0]}." for before, after in zip(originals, plans)
            if after.method != plan.method and after.problems and not before.problems}


def _unscored(chosen: Plan, learner: LogLearner, profile: Profile, weights: dict[str, float]) -> Scored:
    prior = rules_prior(chosen.method, chosen.hp, chosen.changes)
    u = sum(weights[f] * prior[f] for f in FACTORS)
    zero = dict.fromkeys(FACTORS, 0.0)
    n = float(sum(learner.similarity(profile, chosen.method)))
    return Scored(chosen, chosen, (), prior, zero, zero, n, 0.0, 0.0, prior, u, u)


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
    rules = _predicted(s.plan)
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


def _reason(best: Scored, rules: Scored, changed: list[dict], learner: LogLearner, profile: Profile,
            weights: dict[str, float]) -> str:
    n = learner.n_runs
    if best.plan.problems:
        return (f"Nothing fits your limits, so your run log ({n} runs) leaves the closest plan as the rules "
                "made it (your run log).")
    if not changed:
        if best.weight == 0:
            return (f"Your run log has {n} run(s), none like this plan, so the rules decide alone "
                    "(your run log).")
        return (f"Your run log ({n} runs, {best.n_context:.1f} similar, weight {best.weight:.2f}) agrees with the "
                f"rules: no nearby setting predicts higher for your priorities; it predicts "
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


def _past(learner: LogLearner, profile: Profile, method: str, key: str | None, value: Any, factor: str):
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


def similar_runs(learner: LogLearner, profile: Profile, plan: Plan, n: int = N_SIMILAR_SHOWN) -> list[dict]:
    """The logged runs most like `plan` for this profile, most similar first."""
    from .learner import featurize

    sims = learner.similarity(profile, plan.method)
    x = featurize(profile.to_dict(), plan.hp, plan.method, profile.base_model)
    # closeness in the recipe-relative learning rate and image views (columns of FEATURES)
    from .learner import FEATURES
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


# --------------------------------------------------------------------------- the chat's learner
_cache: dict[str, tuple[tuple, Any, str | None]] = {}
_cache_lock = threading.Lock()


def _stamp(path: Path) -> tuple:
    """What changes when the log is written: the file and its WAL (writes land there first)."""
    out = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def learner_for_log(path: str | Path | None = None) -> tuple[LogLearner | None, str | None]:
    """(learner, note) for the run log at `path` ($FTA_RUNLOG or ./runlog.sqlite by default).

    (None, None) when there is no log or it has no usable runs: the rules decide alone.
    (None, note) when the log cannot be read: the note is one line for the user. Never
    raises and never creates a log file. Cached on the file's size and mtime (and its WAL's).
    """
    from .runlog import RunLog, default_db_path

    path = Path(path) if path is not None else default_db_path()
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None, None
        stamp = _stamp(path)
    except OSError as e:
        return None, f"Your run log {path} could not be read ({e}); this recommendation uses the rules only."
    key = str(path.resolve())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        try:
            with RunLog(path) as runlog:
                learner = LogLearner.fit(runlog) if len(runlog) else None
            if learner is not None and learner.n_runs == 0 and learner.cost_model is None:
                learner = None  # rows, but none with a score, a rating or enough durations yet
            note = None
        except Exception as e:  # corrupt, foreign, locked, or a learner bug: the chat must go on
            log.warning("run log %s not used: %s", path, e)
            learner, note = None, (f"Your run log could not be used ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:200]}); this recommendation uses the rules only.")
        _cache[key] = (_stamp(path), learner, note)
        return learner, note

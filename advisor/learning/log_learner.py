"""LogLearner: what the user's run log predicts for a configuration, next to the rules.

It holds advisor.learning.estimators' RunOutcomeModel, fitted on what the rules' prior (`rules_prior`)
missed, RunCostModel for the user's pace once COST_MIN_RUNS timed runs exist, and the runs
whose best checkpoint the user kept (advisor.learning.peak: where the next plan's steps go); it
also says how relevant each logged run is to a candidate (similarity in method, subject and base
model; nearness in the settings). advisor.learning.adapt turns these into scores and a
recommendation. `learner_for_log()` builds one for the chat, cached on the run log's stamp.
Heavy imports (numpy, scikit-learn via advisor.learning.estimators) stay inside functions.
"""
from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

from trainer.vocabulary import FACTORS, METHOD_FACTS

from ..profile import Profile
from ..recommendation.recommend import Plan
from .adapt import AdaptResult, adapt, rules_prior
from .peak import load_kept, peak_steps

log = logging.getLogger(__name__)

DATA_K = 3.0    # relevant runs at which the log weighs as much as the rules
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
COST_MIN_RUNS = 3  # completed runs with durations before the log corrects the time estimate


class LogLearner:
    """A RunOutcomeModel fitted on the run log, as what the rules' prior missed, and a
    RunCostModel (`cost_model`, None below COST_MIN_RUNS timed runs) for the time estimate.

    The model learns score - rules' prior (per factor), so away from the user's data its
    correction fades to the average miss rather than replacing the published standings.
    Build with `LogLearner.fit(log)` (a RunLog, its path, or a list of RunRecord). `explore` > 0
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
        self.memory_evidence = None  # set by fit: advisor.learning.memory
        self.kept: list[dict[str, Any]] = []   # set by fit: advisor.learning.peak.load_kept's rows
        self.kept_dropped: list[tuple[str, str]] = []

    @classmethod
    def fit(cls, log, *, model=None, k: float = DATA_K, explore: float = 0.0, cost_model=None) -> "LogLearner":
        import numpy as np

        from .estimators import RunCostModel, RunOutcomeModel, load_costs, load_runs, run_records
        from .memory import load_memory, memory_factor

        records = run_records(log)  # read the log once for every model
        X, Y, meta = load_runs(records)
        prior = np.array([[rules_prior(r["method"], _full_hp(r["hyperparameters"]))[f] for f in FACTORS]
                          for r in meta.to_dict("records")]).reshape(len(meta), len(FACTORS))
        model = model if model is not None else RunOutcomeModel(random_state=0)
        if len(X):
            model.fit(X, Y - prior)
        Xc, yc, cost_meta = load_costs(records)
        if len(Xc) >= COST_MIN_RUNS:
            cost_model = (cost_model if cost_model is not None else RunCostModel(random_state=0)).fit(Xc, yc)
        else:
            cost_model = None
        learner = cls(model, X, Y, meta, prior, k=k, explore=explore, cost_model=cost_model, cost_meta=cost_meta)
        learner.memory_evidence = memory_factor(load_memory(records))
        kept = load_kept(records)
        learner.kept, learner.kept_dropped = kept.to_dict("records"), list(kept.attrs["dropped"])
        return learner

    from_runlog = fit  # LogLearner.from_runlog(RunLog(...)) reads as what it does

    @property
    def n_runs(self) -> int:
        return len(self.meta)

    @property
    def dropped(self) -> list[tuple[str, str]]:
        return list(self.meta.attrs.get("dropped", []))

    def memory(self):
        """The factor the log sets on memory estimates (advisor.learned_memory.MemoryEvidence), or None."""
        return self.memory_evidence

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
        from .estimators import featurize

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

        from .estimators import featurize

        X = np.array([featurize(profile.to_dict(), p.hp, p.method, profile.base_model) for p in plans])
        mean, std = self.model.predict(X, return_std=True)
        return X, mean.reshape(len(plans), -1), std.reshape(len(plans), -1)

    def similarity(self, profile: Profile, method: str, weights: dict[str, float] = CONTEXT,
                   rows: list[dict[str, Any]] | None = None) -> list[float]:
        """How relevant each logged run is to `method` for this profile (0-1): 1 for the same
        method, subject and base model, times `weights` for each that differs. `rows`: other
        runs with a method, subject_type and base_model (by default the scored runs)."""
        out = []
        for r in self.records if rows is None else rows:
            m = 1.0 if r["method"] == method else \
                weights["family"] if METHOD_FACTS[r["method"]].family == METHOD_FACTS[method].family else weights["method"]
            s = weights["unknown subject"] if r["subject_type"] is None else \
                1.0 if r["subject_type"] == profile.subject_type else weights["subject"]
            b = 1.0 if r["base_model"] == profile.base_model else weights["base model"]
            out.append(m * s * b)
        return out

    def nearness(self, x) -> "Any":
        """How near each logged run's settings are to the feature row x (0-1)."""
        import numpy as np

        from .estimators import FEATURES

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

    def peak(self, profile: Profile, plan: Plan):
        """Where the kept checkpoints of this user's runs of plan's method move its steps
        (advisor.learning.peak.PeakEvidence), or None."""
        rows = [r for r in self.kept if r["method"] == plan.method]
        if not rows:
            return None
        return peak_steps(plan, profile, rows, self.similarity(profile, plan.method, rows=rows), self.k)

    def adapt(self, profile: Profile, plans: list[Plan], chosen: Plan, *, gpu, vram: float) -> AdaptResult | None:
        return adapt(profile, plans, chosen, gpu=gpu, vram=vram, learner=self)


def _full_hp(hp: dict[str, Any]) -> dict[str, Any]:
    """Logged hyperparameters, cleaned to the types the rules' ADJUSTMENTS compare (a missing
    or unreadable switch is off, a missing rank is the recipe's 4)."""
    from .estimators import as_flag, as_positive

    return {**hp, "prior_preservation": as_flag(hp.get("prior_preservation")),
            "train_text_encoder": as_flag(hp.get("train_text_encoder")), "rank": as_positive(hp.get("rank")) or 4}


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
    from ..runlog.store import RunLog
    from ..runlog.paths import default_db_path

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
            if learner is not None and learner.n_runs == 0 and learner.cost_model is None \
                    and learner.memory() is None and not learner.kept:
                learner = None  # rows, but nothing to learn from yet: no scores, durations, memory or kept steps
            note = None
        except Exception as e:  # corrupt, foreign, locked, or a learner bug: the chat must go on
            log.warning("run log %s not used: %s", path, e)
            learner, note = None, (f"Your run log could not be used ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:200]}); this recommendation uses the rules only.")
        _cache[key] = (_stamp(path), learner, note)
        return learner, note

"""The learner: what a configuration will score, learned from the user's own run log.

Three pieces, one job each:

- `featurize(profile, hyperparameters, method, base_model)`: one run as a row of numbers
  (FEATURES). Besides the raw settings it places the run relative to the published recipe
  for the same method, base model, subject and image count (`advisor.hyperparams`): "this
  user's subjects need twice the published steps" is then one offset the model can learn
  once and apply to every method.
- `load_runs(log)`: the run log's records (a RunLog, its file, or a list of RunRecord) as
  (X, Y, meta). A factor's target is the user's rating where given, else the automatic score;
  runs without a usable target, method or base model are left out and listed in
  `meta.attrs["dropped"]`.
- `RunOutcomeModel`: a scikit-learn regressor (one Gaussian process per output on standardised
  features) whose `predict(X, return_std=True)` also says how sure it is. With fewer than
  `min_samples` rows it predicts the mean with a wide standard deviation.
- `load_costs(log)` and `RunCostModel`: the cost side. For each completed run with a duration,
  y = ln(actual minutes / costs.estimate minutes) for its logged configuration and
  card; the model predicts that log ratio (0 = the published-speed estimate holds) with a
  standard deviation, shrunk towards 0 when few runs back it.

Imports scikit-learn at module level (it is light and torch-free); `advisor.chat` only
imports this module once a run log with rows exists.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any, get_type_hints

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from trainer.config import DEFAULTS as TRAIN_DEFAULTS
from trainer.config import HYPERPARAMETERS, MIXED_PRECISION, TrainConfig
from trainer.vocabulary import ADAPTERS, BASE_MODELS, FACTORS, METHOD_NAMES, base_model_key

from ..profile import DEFAULTS, SUBJECT_TYPES, Profile
from ..recommendation.hyperparameters import starting_hyperparameters
from ..runlog.records import RunRecord
from ..runlog.store import RunLog

# One column per name, in this order. Recipe-relative columns are log10 ratios to the
# published starting point for the same method, base model, subject and image count.
FEATURES: tuple[str, ...] = (
    *(f"method={m}" for m in METHOD_NAMES),
    *(f"base={b}" for b in BASE_MODELS),
    *(f"subject={s}" for s in SUBJECT_TYPES),
    "log10_learning_rate",
    "log10_image_views",          # steps x batch x accumulation
    "log10_passes",               # image views per training image (steps per image)
    "log10_lr_vs_recipe",
    "log10_views_vs_recipe",
    "log10_dose_vs_recipe",       # the two above together: learning rate x image views
    "log2_rank",                  # 0 for methods without a rank
    "prior_preservation",
    "train_text_encoder",
    "log10_n_images",
    "resolution_vs_native",       # training resolution / the base model's native one
)
TARGETS = FACTORS  # accuracy, flexibility, preservation (1-5)




def as_positive(v: Any) -> float | None:
    """v as a finite positive float, else None (text, bools, None, <= 0)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def as_flag(v: Any) -> bool:
    """A yes/no hyperparameter that may arrive as bool, 0/1 or text."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    x = as_positive(v)
    return bool(x) if x is not None else False


@lru_cache(maxsize=512)
def recipe(method: str, base_model: str, subject_type: str, n_images: int) -> tuple[float, float]:
    """(learning rate, image views) of the published starting point for this context."""
    profile, _ = Profile(subject_type=subject_type, n_images=n_images, base_model=base_model).with_defaults()
    v = starting_hyperparameters(method, profile).values
    return v["learning_rate"], v["max_train_steps"] * v["train_batch_size"] * v["gradient_accumulation_steps"]


def image_count(profile: dict | None, hyperparameters: dict | None) -> int | None:
    """A run's training images: the profile's n_images, else kohya's num_train_images; None
    when neither says."""
    n = as_positive((profile or {}).get("n_images")) or as_positive((hyperparameters or {}).get("num_train_images"))
    return max(1, int(round(n))) if n else None


def views_per_step(hyperparameters: dict | None) -> float:
    """Training images one optimiser step sees: batch x gradient accumulation (TrainConfig's
    defaults where the run does not say)."""
    hp = hyperparameters or {}
    batch = as_positive(hp.get("train_batch_size")) or TRAIN_DEFAULTS["train_batch_size"]
    return batch * (as_positive(hp.get("gradient_accumulation_steps")) or TRAIN_DEFAULTS["gradient_accumulation_steps"])


def context(profile: dict | None, hyperparameters: dict | None) -> tuple[str | None, int]:
    """(subject type or None, image count) of a run; the count falls back to kohya's
    num_train_images and then to the profile default."""
    profile = profile or {}
    subject = profile.get("subject_type") if profile.get("subject_type") in SUBJECT_TYPES else None
    return subject, image_count(profile, hyperparameters) or DEFAULTS["n_images"]


def featurize(profile: dict | None, hyperparameters: dict | None, method: str, base_model: str) -> np.ndarray:
    """One run as a float vector in FEATURES order. Pure: same input, same vector.

    `profile` and `hyperparameters` may miss keys or hold junk; a missing value takes its
    default (TrainConfig's, the profile's, or the recipe's for learning rate and steps).
    An unknown method or base model is a ValueError: no honest default exists for them, nor for
    values so far out of range that a feature is not finite.
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"method={method!r}; pick one of {list(METHOD_NAMES)}")
    if base_model not in BASE_MODELS:
        raise ValueError(f"base_model={base_model!r}; pick one of {list(BASE_MODELS)}")
    hp = dict(hyperparameters or {})
    subject, n_images = context(profile, hp)
    recipe_lr, recipe_views = recipe(method, base_model, subject or DEFAULTS["subject_type"], n_images)
    lr = as_positive(hp.get("learning_rate")) or recipe_lr
    steps = as_positive(hp.get("max_train_steps"))
    views = steps * views_per_step(hp) if steps else recipe_views
    rank = (as_positive(hp.get("rank")) or TRAIN_DEFAULTS["rank"]) if method in ADAPTERS else 1.0
    native = BASE_MODELS[base_model].resolution
    resolution = as_positive(hp.get("resolution")) or native
    lr_rel = math.log10(lr / recipe_lr)
    views_rel = math.log10(views / recipe_views)
    row = [float(method == m) for m in METHOD_NAMES]
    row += [float(base_model == b) for b in BASE_MODELS]
    row += [float(subject == s) for s in SUBJECT_TYPES]  # unknown subject: all zeros
    row += [math.log10(lr), math.log10(views), math.log10(views / n_images), lr_rel, views_rel,
            lr_rel + views_rel, math.log2(rank), float(as_flag(hp.get("prior_preservation"))),
            float(as_flag(hp.get("train_text_encoder"))), math.log10(n_images),
            resolution / native]
    x = np.asarray(row, dtype=float)
    if not np.all(np.isfinite(x)):   # learning_rate=1e308: one logged run must not stop the learner for all
        raise ValueError("settings out of any usable range (a feature is not finite)")
    return x


# --------------------------------------------------------------------------- the run log
def run_records(log) -> list[RunRecord]:
    """A RunLog, a path to its file, or a list of RunRecord -> the records, as the log holds them."""
    if isinstance(log, RunLog):
        return log.records()
    if isinstance(log, (str, bytes)) or hasattr(log, "__fspath__"):
        with RunLog(log) as opened:
            return opened.records()
    if isinstance(log, (list, tuple)) and all(isinstance(r, RunRecord) for r in log):
        return list(log)
    raise ValueError(f"log must be a RunLog, a path to one or a list of RunRecord, got {type(log).__name__}")


def _target(record: RunRecord, factor: str) -> tuple[float | None, str | None]:
    """The user's rating where given, else the automatic score (1-5); (value, where from)."""
    for kind in ("rating", "score"):
        v = as_positive(getattr(record, f"{kind}_{factor}"))
        if v is not None and 1 <= v <= 5:
            return v, kind
    return None, None


def identify(record: RunRecord) -> tuple[str, Any, str | None, str | None]:
    """(run_id, method, base-model key, why the run is unusable or None): what every loader
    checks first. The base model is the profile's key, else the record's key or hub id."""
    base = base_model_key((record.profile or {}).get("base_model")) or base_model_key(record.base_model)
    if not isinstance(record.method, str) or record.method not in METHOD_NAMES:
        return record.run_id, record.method, base, f"method {record.method!r} unknown"
    if base is None:
        return record.run_id, record.method, base, f"base model {record.base_model!r} is not {_BASE_LIST}"
    return record.run_id, record.method, base, None


_BASE_LIST = ", ".join(list(BASE_MODELS)[:-1]) + " or " + list(BASE_MODELS)[-1]


def load_runs(log) -> tuple[np.ndarray, np.ndarray, Any]:
    """The run log as (X, Y, meta) for the learner.

    X: one FEATURES row per usable run. Y: (n, 3) accuracy, flexibility, preservation, each
    the rating where given, else the automatic score. meta: a DataFrame aligned with the rows
    (run_id, method, base_model, subject_type, n_images, the key hyperparameters, `profile`
    and `hyperparameters` dicts, `target_from` per factor); `meta.attrs["dropped"]` lists
    (run_id, why) for each run left out. Never raises on a bad row.
    """
    import pandas as pd

    rows, ys, metas, dropped = [], [], [], []
    for record in run_records(log):
        run_id, method, base, why = identify(record)
        if why:
            dropped.append((run_id, why))
            continue
        targets = [_target(record, f) for f in TARGETS]
        if any(v is None for v, _ in targets):
            missing = [f for f, (v, _) in zip(TARGETS, targets) if v is None]
            dropped.append((run_id, f"no rating or score for {', '.join(missing)}"))
            continue
        profile = dict(record.profile or {})
        hp = {k: v for k, v in record.hyperparameters.items() if v is not None}
        try:
            x = featurize(profile, hp, method, base)
        except (ValueError, TypeError, OverflowError) as e:  # a junk value no default covers
            dropped.append((run_id, f"unreadable settings ({e})"))
            continue
        subject, n_images = context(profile, hp)
        rows.append(x)
        ys.append([v for v, _ in targets])
        metas.append({"run_id": run_id, "method": method, "base_model": base, "subject_type": subject,
                      "n_images": n_images, "learning_rate": as_positive(hp.get("learning_rate")),
                      "max_train_steps": as_positive(hp.get("max_train_steps")),
                      "rank": as_positive(hp.get("rank")) if method in ADAPTERS else None,
                      "prior_preservation": as_flag(hp.get("prior_preservation")),
                      "train_text_encoder": as_flag(hp.get("train_text_encoder")),
                      "profile": profile, "hyperparameters": hp,
                      **{f"target_from_{f}": how for f, (_, how) in zip(TARGETS, targets)},
                      **{f"y_{f}": v for f, (v, _) in zip(TARGETS, targets)}})
    X = np.asarray(rows, dtype=float).reshape(len(rows), len(FEATURES))
    Y = np.asarray(ys, dtype=float).reshape(len(ys), len(TARGETS))
    meta = pd.DataFrame(metas)
    meta.attrs["dropped"] = dropped
    return X, Y, meta


# --------------------------------------------------------------------------- the estimator
class _CappedLBFGS:
    """GaussianProcessRegressor's own optimiser (L-BFGS-B) with an iteration cap: on a few
    dozen rows the marginal likelihood is flat near its optimum, and the default 15,000
    iterations buy nothing but time. A class, not a closure, so fitted models pickle."""

    def __init__(self, max_iter: int):
        self.max_iter = max_iter
        self.n_iter = 0  # summed over restarts: the model's n_iter_

    def __call__(self, obj_func, initial_theta, bounds):
        from scipy.optimize import minimize

        result = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds,
                          options={"maxiter": self.max_iter})
        self.n_iter += max(1, int(result.nit))
        return result.x, result.fun


def _check_params(estimator, *, counts: tuple[str, ...], positives: tuple[str, ...]) -> None:
    """Validate constructor params in fit (scikit-learn's contract), naming the bad one."""
    for name in counts:
        v = getattr(estimator, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}; must be a whole number >= 1")
    for name in positives:
        v = getattr(estimator, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name}={v!r}; must be a positive number")


def _informative_columns(X: np.ndarray):
    """(columns, fitted StandardScaler) of X's non-constant columns. Columns constant in the
    training rows (a method never logged, say) carry no information for the kernel; leaving
    them out keeps the fit fast."""
    from sklearn.preprocessing import StandardScaler

    columns = np.flatnonzero(X.std(axis=0) > 0)
    if not len(columns):
        columns = np.arange(min(1, X.shape[1]))
    return columns, StandardScaler().fit(X[:, columns])


class RunOutcomeModel(RegressorMixin, BaseEstimator):
    """Predicts run outcomes (one column per factor) with a standard deviation.

    One Gaussian process per output: a constant times an RBF kernel with one length scale per
    feature (irrelevant features grow long scales), plus white noise for the scatter of
    ratings; features standardised and targets normalised inside. A GP suits a log of tens of
    runs: it interpolates between runs, returns to the mean away from them, and says so
    in its standard deviation. Fewer than `min_samples` rows: the mean with
    sqrt(variance + fallback_std^2) as the standard deviation.

    Parameters
    ----------
    length_scale : float, initial length scale (in standard deviations of a feature).
    noise_level : float, initial white-noise variance (in units of the target's variance).
    min_samples : int, fewest rows for which a GP is fitted.
    fallback_std : float, the extra standard deviation of the mean-only fallback.
    max_iter : int, iterations of the kernel optimiser (L-BFGS-B) per fit.
    n_restarts_optimizer : int, extra kernel-optimiser starts (GaussianProcessRegressor's).
    random_state : int, RandomState or None, for those restarts.
    """

    def __init__(self, length_scale=3.0, noise_level=0.1, min_samples=3, fallback_std=1.5, max_iter=100,
                 n_restarts_optimizer=0, random_state=None):
        self.length_scale = length_scale
        self.noise_level = noise_level
        self.min_samples = min_samples
        self.fallback_std = fallback_std
        self.max_iter = max_iter
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit on X (n, n_features) and y (n,) or (n, n_outputs); returns self."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
        _check_params(self, counts=("min_samples", "max_iter"), positives=("length_scale", "noise_level", "fallback_std"))
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        Y = y.reshape(len(y), -1).astype(float)
        self.mean_ = Y.mean(axis=0)
        self.std_ = Y.std(axis=0)
        self.columns_, self.scaler_ = _informative_columns(X)
        self.gps_ = []
        self.n_iter_ = np.zeros(self.n_outputs_, dtype=int)  # optimiser iterations per output
        if len(Y) < self.min_samples:
            return self
        Z = self.scaler_.transform(X[:, self.columns_])
        for j in range(self.n_outputs_):
            kernel = (ConstantKernel(1.0, (1e-2, 1e2))
                      * RBF(np.full(Z.shape[1], float(self.length_scale)), (1e-1, 1e3))
                      + WhiteKernel(float(self.noise_level), (1e-4, 1e1)))
            optimiser = _CappedLBFGS(self.max_iter)
            gp = GaussianProcessRegressor(kernel, normalize_y=True, optimizer=optimiser,
                                          n_restarts_optimizer=self.n_restarts_optimizer,
                                          random_state=self.random_state)
            # Single-threaded BLAS: on matrices this small, threads only contend (measured 7x
            # slower on 2 busy cores). A length scale at its bound is normal on a few rows.
            with threadpool_limits(limits=1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gp.fit(Z, Y[:, j])
            self.gps_.append(gp)
            self.n_iter_[j] = optimiser.n_iter
        return self

    def predict(self, X, return_std=False):
        """Predicted outcomes (n,) or (n, n_outputs); with return_std, also their std."""
        check_is_fitted(self, "mean_")
        X = validate_data(self, X, reset=False)
        n = X.shape[0]
        if not self.gps_:
            mean = np.tile(self.mean_, (n, 1))
            std = np.tile(np.sqrt(self.std_ ** 2 + self.fallback_std ** 2), (n, 1))
        else:
            Z = self.scaler_.transform(X[:, self.columns_])
            cols = [gp.predict(Z, return_std=True) for gp in self.gps_]
            mean = np.column_stack([m for m, _ in cols])
            std = np.column_stack([s for _, s in cols])
        if self.n_outputs_ == 1:
            mean, std = mean[:, 0], std[:, 0]
        return (mean, std) if return_std else mean


# --------------------------------------------------------------------------- the cost side
# The logged hyperparameters the time estimate reads, by TrainConfig's type. A missing or
# unreadable one takes TrainConfig's default, as costs does; the step count has no honest default.
_TYPES = get_type_hints(TrainConfig)
_COST_INTS = tuple(k for k in HYPERPARAMETERS if _TYPES[k] is int)
_COST_FLAGS = tuple(k for k in HYPERPARAMETERS if _TYPES[k] is bool)
# A run that took under 1/20 or over 20x its estimate is a unit slip (milliseconds, hours) or
# a run left paused, not a pace to learn: the speed table's assumed cards are off by 2-3x at most.
RATIO_RANGE = (0.05, 20.0)


def cost_hyperparameters(record: RunRecord) -> dict[str, Any]:
    """The logged settings costs.estimate reads, cleaned to the types it checks."""
    logged = record.hyperparameters
    hp: dict[str, Any] = {}
    for k in _COST_INTS:
        x = as_positive(logged.get(k))
        if x is not None and float(x).is_integer():
            hp[k] = int(x)
    for k in _COST_FLAGS:
        if logged.get(k) is not None:
            hp[k] = as_flag(logged[k])
    mp = logged.get("mixed_precision")
    if mp in MIXED_PRECISION:
        hp["mixed_precision"] = mp
    return hp


def run_gpu(profile: dict | None):
    """The speed-table card a logged run is timed for: the profile's named card, else the
    slowest card with its memory (the recommendation's own assumption, so ratios line up)."""
    from ..recommendation import costs

    profile = profile or {}
    gpu = costs.find_gpu(profile.get("gpu_name")) if isinstance(profile.get("gpu_name"), str) else None
    return gpu or costs.typical_gpu(as_positive(profile.get("vram_gb")) or DEFAULTS["vram_gb"])


def load_costs(log) -> tuple[np.ndarray, np.ndarray, Any]:
    """The run log as (X, y, meta) for the cost model.

    X: one FEATURES row per usable run; y: ln(actual minutes / estimated minutes), where the
    estimate is advisor.costs.estimate for the run's logged settings on its card (`run_gpu`)
    and the actual minutes are duration_s / 60. Only completed runs count: a failed or
    stopped run's duration says nothing about a whole run. meta: run_id, method, base_model,
    subject_type, n_images, gpu, max_train_steps, steps_done, estimated_minutes,
    actual_minutes, ratio; `meta.attrs["dropped"]` lists (run_id, why). Never raises on a bad row.
    """
    import pandas as pd

    from ..recommendation import costs

    rows, ys, metas, dropped = [], [], [], []
    for record in run_records(log):
        run_id, method, base, why = identify(record)
        status = record.status
        if status != "completed":
            dropped.append((run_id, f"status {status!r}, not completed"))
            continue
        if why:
            dropped.append((run_id, why))
            continue
        duration = as_positive(record.duration_s)
        if duration is None:
            dropped.append((run_id, f"duration_s {record.duration_s!r} missing or not a positive number"))
            continue
        hp = cost_hyperparameters(record)
        if "max_train_steps" not in hp:
            dropped.append((run_id, "max_train_steps missing: the estimate needs the step count"))
            continue
        profile = dict(record.profile or {})
        feature_hp = {k: v for k, v in record.hyperparameters.items() if v is not None}
        subject, n_images = context(profile, feature_hp)
        gpu = run_gpu(profile)
        try:
            estimated = costs.estimate(method, base, hp, n_images, gpu=gpu).minutes
            x = featurize(profile, feature_hp, method, base)
        except (ValueError, TypeError, OverflowError) as e:
            dropped.append((run_id, f"unreadable settings ({e})"))
            continue
        actual = duration / 60.0
        ratio = actual / estimated if estimated > 0 else math.inf
        if not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
            dropped.append((run_id, f"took {actual:.3g} min against an estimate of {estimated:.3g} min; "
                                    "not a plausible pace"))
            continue
        rows.append(x)
        ys.append(math.log(ratio))
        steps_done = as_positive(record.steps_done)
        metas.append({"run_id": run_id, "method": method, "base_model": base, "subject_type": subject,
                      "n_images": n_images, "gpu": gpu.name, "max_train_steps": hp["max_train_steps"],
                      "steps_done": int(steps_done) if steps_done is not None else None,
                      "estimated_minutes": estimated, "actual_minutes": actual, "ratio": ratio})
    X = np.asarray(rows, dtype=float).reshape(len(rows), len(FEATURES))
    y = np.asarray(ys, dtype=float)
    meta = pd.DataFrame(metas)
    meta.attrs["dropped"] = dropped
    return X, y, meta


class RunCostModel(RegressorMixin, BaseEstimator):
    """Predicts ln(actual minutes / estimated minutes) of a run, with a standard deviation.

    A Gaussian process with a zero prior mean (no correction until runs say otherwise) and
    three parts: a shared offset with prior standard deviation `prior_std` ("this user's card
    and setup run at a steady fraction of the speed table"), a term that varies with the
    configuration (an RBF over standardised features: short runs carry relatively more
    start-up time, say), and white noise for run-to-run jitter. Few or scattered runs give a
    correction shrunk towards 0 with a wide standard deviation; consistent runs give the
    pace they show. Fewer than `min_samples` rows: 0 with `prior_std` as the standard deviation.

    Parameters
    ----------
    prior_std : float, prior standard deviation of the shared log ratio (0.7: within about 2x).
    length_scale : float, initial length scale (in standard deviations of a feature).
    noise_level : float, initial white-noise variance (log-ratio units; 0.01 is 10% jitter).
    min_samples : int, fewest rows for which the process is fitted.
    max_iter : int, iterations of the kernel optimiser (L-BFGS-B) per fit.
    random_state : int, RandomState or None (the optimiser has no restarts; kept for clone).
    """

    def __init__(self, prior_std=0.7, length_scale=3.0, noise_level=0.01, min_samples=3, max_iter=100,
                 random_state=None):
        self.prior_std = prior_std
        self.length_scale = length_scale
        self.noise_level = noise_level
        self.min_samples = min_samples
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on X (n, n_features) and y (n,) log ratios; returns self."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        X, y = validate_data(self, X, y, y_numeric=True)
        _check_params(self, counts=("min_samples", "max_iter"), positives=("prior_std", "length_scale", "noise_level"))
        y = y.astype(float)
        self.columns_, self.scaler_ = _informative_columns(X)
        self.gp_ = None
        self.n_iter_ = 0
        if len(y) < self.min_samples:
            return self
        Z = self.scaler_.transform(X[:, self.columns_])
        noise = float(self.noise_level)
        kernel = (ConstantKernel(float(self.prior_std) ** 2, "fixed")
                  # the configuration term starts as large as the offset: started small, the
                  # optimiser settles on short length scales and calls everything noise
                  + ConstantKernel(float(self.prior_std) ** 2, (1e-4, 1e1))
                  * RBF(np.full(Z.shape[1], float(self.length_scale)), (1e-1, 1e3))
                  # timings jitter by a few percent at least: a floor keeps three identical
                  # runs from claiming certainty
                  + WhiteKernel(noise, (min(noise, 1e-3), max(noise, 1.0))))
        optimiser = _CappedLBFGS(self.max_iter)
        gp = GaussianProcessRegressor(kernel, normalize_y=False, optimizer=optimiser, random_state=self.random_state)
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a length scale at its bound is normal on a few rows
            gp.fit(Z, y)
        self.gp_ = gp
        self.n_iter_ = optimiser.n_iter
        return self

    def predict(self, X, return_std=False):
        """Predicted log ratios (n,); with return_std, also their standard deviation."""
        check_is_fitted(self, "scaler_")
        X = validate_data(self, X, reset=False)
        if self.gp_ is None:
            mean = np.zeros(X.shape[0])
            std = np.full(X.shape[0], float(self.prior_std))
        else:
            mean, std = self.gp_.predict(self.scaler_.transform(X[:, self.columns_]), return_std=True)
        return (mean, std) if return_std else mean

"""The whole loop on the shapes world, checked against the ground truth (issue 15).

The advisor plans a fine-tune for one profile (an object, 8 images, Stable Diffusion 1.5's
architecture): its rules' plans and their neighbours are the candidates (`candidate_runs`). Each
candidate is trained for real on the shapes demo model with the plan's hyperparameters (method,
learning rate, steps, batch, rank, prior preservation, text encoder) in the demo model's units
(`DemoScale`: learning rate x10, steps x3), on renders of the held-out star; then

- the ground-truth checker scores it (`trainer.shapes.experiment.ground_truth`), and
- the project scores it the way it scores every run (`trainer.evaluate.evaluate_run`: with no
  CLIP/DINO encoder offline, the weight-free stand-ins).

`rank_correlation` says how well our scores order the runs as the truth does, per factor.
`learner_regret` closes the loop: a simulated user logs runs one by one in a real run log (each
run folder ingested as the lab ingests it, with the user's rating from the truth on some), and
after 0, 10, 20, 40 logged runs the advisor's recommendation is looked up in the truth: regret is
the best candidate's true utility minus the recommendation's (the profile's importance weights
over the three factors, each 1 + 4 x the checker's fraction), beside the rules-only regret.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from advisor.learning.adapt import importance_weights
from advisor.learning.candidates import candidate_space
from advisor.learning.log_learner import LogLearner
from advisor.profile import Profile
from advisor.recommendation.recommend import recommend
from advisor.runlog.folders import record_from_run_dir
from advisor.runlog.store import RunLog
from trainer.shapes import experiment
from trainer.shapes.world import SUBJECT
from trainer.vocabulary import FACTORS

PROFILE = Profile(subject_type="object", n_images=8, base_model="sd15", vram_gb=16.0, gpu_name=None,
                  time_budget_min=60.0, accuracy=5, flexibility=3, preservation=3, captions=True)
# The plan's settings a demo-model run takes over unchanged; the rest are the demo model's own
# (resolution 64, fp32 on the CPU, no validation samples, one checkpoint at the end).
PLAN_KEYS = ("learning_rate", "max_train_steps", "train_batch_size", "gradient_accumulation_steps", "rank",
             "lora_alpha", "train_text_encoder", "prior_preservation", "prior_loss_weight", "lr_scheduler",
             "lr_warmup_steps", "snr_gamma")
# What a plan may leave out, at diffusers' defaults (not the demo defaults of `experiment`); what
# no plan names (64 px, conv_lora: the demo model draws a new outline only with its convolutions
# adapted) comes from `experiment.fine_tune_config`.
NEUTRAL_SETTINGS = {"rank": 4, "prior_preservation": False, "train_text_encoder": False}
COUNTS = (0, 10, 20, 40)     # logged runs after which the recommendation is scored
P_RATED = 0.3                # share of logged runs the simulated user rates (from the truth, +-noise)
RATING_NOISE = 0.4


@dataclass(frozen=True)
class Candidate:
    method: str
    hp: tuple[tuple[str, Any], ...]     # the plan's settings in PLAN_KEYS, as sorted items

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.hp)

    def label(self) -> str:
        s = self.settings
        extra = [k for k in ("prior_preservation", "train_text_encoder") if s.get(k)]
        rank = f" r{s['rank']}" if "rank" in s and self.method in ("lora", "dreambooth_lora") else ""
        per_step = s.get("train_batch_size", 1) * s.get("gradient_accumulation_steps", 1)
        return (f"{self.method} lr {s['learning_rate']:g} x {s['max_train_steps']} steps of {per_step}{rank}"
                + "".join(f" +{k.split('_')[0]}" for k in extra))


@dataclass(frozen=True)
class DemoScale:
    """How a plan written for SD 1.5 runs on the demo model: the same plan, in the demo model's units.

    - learning rate x `learning_rate`: SD 1.5 is 320-1280 channels wide, the demo model 32-64; the
      demo model's own LoRA recipe runs at 1e-3 where SD 1.5 LoRAs run at 1e-4;
    - steps (and warm-up) x `steps`: the demo model learns the star in ~300 epochs of its 8 images
      (its recipe: 600 steps of 4), the plans give SD 1.5 ~100 (200 steps of 4, 400 of 1);
    - batch x gradient accumulation runs as one batch: the same images per optimizer step, in one
      pass instead of several (half the time on the CPU).
    Every setting keeps its place in the plans' order, so what the learner learns about the plans
    carries over; only the scale is the demo model's.
    """
    learning_rate: float = 10.0
    steps: float = 3.0

    def apply(self, settings: dict[str, Any]) -> dict[str, Any]:
        out = dict(settings)
        out["learning_rate"] = settings["learning_rate"] * self.learning_rate
        for key in ("max_train_steps", "lr_warmup_steps"):
            if settings.get(key):
                out[key] = int(round(settings[key] * self.steps))
        if "train_batch_size" in settings:
            out["train_batch_size"] = settings["train_batch_size"] * settings.get("gradient_accumulation_steps", 1)
            out["gradient_accumulation_steps"] = 1
        return out


DEMO_SCALE = DemoScale()


def candidate_of(method: str, hp: dict[str, Any]) -> Candidate:
    return Candidate(method, tuple(sorted((k, hp[k]) for k in PLAN_KEYS if hp.get(k) is not None)))


def candidate_runs(profile: Profile = PROFILE) -> list[Candidate]:
    """The advisor's candidates for `profile`: every fitting rules plan and its neighbours."""
    return [candidate_of(method, hp) for method, hp in candidate_space(profile)]


@dataclass
class RunResult:
    candidate: Candidate
    run_dir: str
    truth: experiment.GroundTruth
    ours: dict[str, float | None]       # the project's 1-5 scores of the run (stand-ins offline)
    seconds: float

    def true_scores(self) -> dict[str, float]:
        """The truth on the run log's 1-5 scale."""
        return {f: 1.0 + 4.0 * getattr(self.truth, f) for f in FACTORS}


class World:
    """The demo model, its training data and the base drawings, set up once for many runs."""

    def __init__(self, work: Path, n_prompts: int = experiment.N_PROMPTS, profile: Profile = PROFILE,
                 scale: DemoScale = DEMO_SCALE, data: dict[str | None, Path] | None = None):
        """`data`: training folders another World already wrote (trigger word -> folder), for a
        World in a second process that must read them, not write them again."""
        from trainer.shapes.demo_model import build_demo_pipeline

        self.work, self.n, self.profile, self.scale = Path(work), n_prompts, profile, scale
        self.base = build_demo_pipeline()
        self.base_other = experiment.base_drawings(self.base, n_prompts)
        self.data = dict(data or {})

    def data_dir(self, method: str) -> Path:
        word = experiment.trigger_word(method, SUBJECT)
        if word not in self.data:
            self.data[word] = experiment.write_concept_data(self.work / f"data-{word or 'star'}".replace("<", "").replace(">", ""),
                                                            SUBJECT, self.profile.n_images, word=word)
        return self.data[word]

    def base_truth(self) -> experiment.GroundTruth:
        return experiment.ground_truth(self.base, self.base_other, SUBJECT, self.n)

    def run(self, candidate: Candidate, name: str) -> RunResult:
        """Train `candidate` on the demo model, score it both ways."""
        from trainer.evaluate import evaluate_run
        from trainer.metrics import read_metrics

        started = time.perf_counter()
        word = experiment.trigger_word(candidate.method, SUBJECT)
        run_dir = self.work / "runs" / name
        settings = self.scale.apply({**NEUTRAL_SETTINGS, **candidate.settings})
        config = experiment.fine_tune_config(self.data_dir(candidate.method), run_dir, SUBJECT, candidate.method,
                                             **settings)
        experiment.fine_tune(config)
        (run_dir / "profile.json").write_text(json.dumps(self.profile.to_dict()))
        evaluate_run(run_dir, clip="none", dino="none", num_images=1, steps=10)
        truth = experiment.ground_truth(experiment.load_tuned(run_dir), self.base_other, SUBJECT, self.n, word=word)
        return RunResult(candidate, str(run_dir), truth, dict(read_metrics(run_dir).scores),
                         time.perf_counter() - started)

    def run_many(self, jobs: list[tuple[Candidate, str]], workers: int = 1) -> Iterator[RunResult]:
        """`run` for each (candidate, run name), in order; with `workers` > 1 in that many processes
        at once (each one thread: the demo model is too small for threads to pay, processes do)."""
        if workers <= 1 or len(jobs) <= 1:
            yield from (self.run(c, name) for c, name in jobs)
            return
        for c, _ in jobs:   # every training folder is written here, before any worker reads one
            self.data_dir(c.method)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_start_worker,
                                 initargs=(self.work, self.n, self.profile, self.scale, self.data)) as pool:
            yield from pool.map(_run_in_worker, jobs)


_WORKER_WORLD: World | None = None


def _start_worker(work: Path, n_prompts: int, profile: Profile, scale: DemoScale, data: dict) -> None:
    import torch

    global _WORKER_WORLD
    torch.set_num_threads(1)
    _WORKER_WORLD = World(work, n_prompts, profile, scale, data)


def _run_in_worker(job: tuple[Candidate, str]) -> RunResult:
    assert _WORKER_WORLD is not None, "the worker's World is built by _start_worker"
    return _WORKER_WORLD.run(*job)


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(a: np.ndarray) -> np.ndarray:
    order = a.argsort(kind="mergesort")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a), dtype=float)
    for value in np.unique(a):
        tied = a == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(results: list[RunResult]) -> dict[str, float | None]:
    """Per factor: Spearman's rho between our scores and the ground truth over `results`."""
    out = {}
    for f in FACTORS:
        pairs = [(r.ours.get(f), getattr(r.truth, f)) for r in results if r.ours.get(f) is not None]
        out[f] = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    return out


def utility(profile: Profile, scores: dict[str, float]) -> float:
    w = importance_weights(profile)
    return sum(w[f] * scores[f] for f in FACTORS)


def learner_regret(results: dict[Candidate, RunResult], run: Callable[[Candidate], RunResult],
                   profile: Profile = PROFILE, counts: tuple[int, ...] = COUNTS, seed: int = 0,
                   log_path: Path | None = None, p_rated: float = P_RATED) -> dict[str, Any]:
    """Regret of the advisor's recommendation after each count of logged runs, and of the rules alone.

    The simulated user logs what an exploring advisor recommends (as the lab's "try next" does),
    each a real run folder ingested into a real run log. `results` holds the runs trained so far;
    `run` trains a candidate the advisor picks that is not among them. Regret is measured at the
    end against the best of every candidate trained by then (all of them, when `results` held
    the whole candidate space)."""
    rng = np.random.default_rng(seed)

    def trained(c: Candidate) -> RunResult:
        if c not in results:
            results[c] = run(c)
        return results[c]

    def pick(learner) -> Candidate:
        rec = recommend(profile, learner=learner)
        return candidate_of(rec.method, rec.hyperparameters)

    rules = pick(None)
    picks: dict[int, Candidate] = {}
    with tempfile.TemporaryDirectory() as tmp, RunLog(log_path or Path(tmp) / "runlog.sqlite") as log:
        for n in range(max(counts) + 1):
            plain = LogLearner.fit(log) if len(log) else None
            if n in counts:
                picks[n] = pick(plain)
            if n == max(counts):
                break
            explorer = None if plain is None else LogLearner(plain.model, plain.X, plain.Y, plain.meta, plain.prior,
                                                              explore=1.0)
            _log_run(log, trained(pick(explorer)), f"run-{n:03d}", rng, p_rated)
    for c in (rules, *picks.values()):
        trained(c)
    true_utility = {c: utility(profile, r.true_scores()) for c, r in results.items()}
    best = max(true_utility, key=true_utility.get)
    return {"rules": true_utility[best] - true_utility[rules], "rules_pick": rules.label(),
            "learned": {n: true_utility[best] - true_utility[c] for n, c in picks.items()},
            "picks": {n: c.label() for n, c in picks.items()}, "best_pick": best.label(),
            "utility": {"best": true_utility[best], "rules": true_utility[rules],
                        **{n: true_utility[c] for n, c in picks.items()}},
            "trained": len(results)}


def _log_run(log: RunLog, result: RunResult, run_id: str, rng: np.random.Generator, p_rated: float) -> None:
    """The run folder into the log under `run_id` (a rerun of the same settings is a new row),
    rated by the user on some runs (the truth, with noise, rounded to 1-5)."""
    record = record_from_run_dir(result.run_dir)
    # the plan as the advisor wrote it (the World ran it at the demo model's scale)
    hp = {**record.hyperparameters, **result.candidate.settings}
    record = dataclasses.replace(record, run_id=run_id, name=run_id, hyperparameters=hp)
    log.upsert_run(record)
    if rng.random() < p_rated:
        rating = {f: int(min(5, max(1, round(v + rng.normal(0, RATING_NOISE)))))
                  for f, v in result.true_scores().items()}
        log.rate(run_id, rating["accuracy"], rating["flexibility"], rating["preservation"])

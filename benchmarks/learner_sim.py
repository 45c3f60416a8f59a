"""Does the advisor learn from a run log? A SYNTHETIC world, simulated users, regret.

    python benchmarks/learner_sim.py [--seeds 4] [--eval 10] [--workers 2]

Everything scored here is SYNTHETIC: no model is trained. `World` turns a configuration
into accuracy / flexibility / preservation scores (1-5) with outcome functions that follow
the published trends (shared/research/methods-and-hyperparameters.md):

- at the published recipe a method scores its published standing (advisor.rules.STANDING:
  DreamBooth paper Table 1, Custom Diffusion Table 1, LyCORIS guidelines);
- training dose (learning rate x steps per image) against what the subject needs: accuracy
  rises then falls (under-training loses the subject; "DreamBooth overfits easily", diffusers
  docs), flexibility falls once past the need (prompts get ignored), preservation falls as
  the weights move past the published dose, most for full-weight methods and not at all for
  textual inversion (KID 32.53 for DreamBooth vs 22.27 for TI);
- prior preservation: preservation up (PRES 0.664 -> 0.493), accuracy slightly down (DINO
  0.712 -> 0.684) (DreamBooth paper Table 3); it matters most for faces (HF DreamBooth blog);
- training the text encoder: accuracy up, most for faces (HF blog), flexibility down (it
  overfits first);
- LoRA rank: fidelity up and more leakage as rank grows (LyCORIS guidelines); file size is
  the advisor's size cap;
- noise on every automatic score; some runs also get a 1-5 rating from the user.

Each simulated user has a HIDDEN trait the published guidance does not know (their subjects
need twice the published dose; their preservation suffers 2.5x the published drift; their
data overfits at half the dose). The user logs runs one by one: the advisor recommends for a
random profile from the user's distribution (with an exploration bonus for settings that few
logged runs are near, LogLearner(explore=1): a user trying the variations the iteration plan
suggests), the world scores the run, it goes into a real SQLite run log (advisor.runlog). After 0, 10, 30 and 100 logged runs the advisor's
plain recommendation (no exploration) is scored on a fixed set of held-out profiles of the
same user: regret = true utility of the best configuration in the candidate space (the
rules' fitting plans and their neighbours, same budget) minus that of the recommendation,
in utility points (the user's importance weights over the three 1-5 factors). Also printed:
the rules-only regret on the same profiles, and the cross-validated prediction error (MAE
per factor) of the learner at 100 runs beside the rules' prior alone.
Target: at 30 runs mean regret <= half the rules-only regret; at 0 runs equal to it.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny matrices: threads cost more than they give
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import math
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from advisor.learning.log_learner import LogLearner
from advisor.learning.candidates import candidate_space
from advisor.learning.adapt import importance_weights  # noqa: E402
from advisor.recommendation.hyperparameters import starting_hyperparameters  # noqa: E402
from trainer.vocabulary import ADAPTERS, CLASS_IMAGE_METHODS, FACTORS  # noqa: E402
from advisor.profile import Profile  # noqa: E402
from advisor.recommendation.recommend import recommend  # noqa: E402
from advisor.recommendation.rules import STANDING  # noqa: E402
from advisor.runlog.store import RunLog
from advisor.runlog.records import RunRecord  # noqa: E402

CHECKPOINTS = (0, 10, 30, 100)
EXPLORE = 1.0          # LogLearner.explore while logging (the advisor's own recommendations use 0)
SCORE_NOISE = 0.3      # sd of an automatic score (1-5 scale)
RATING_NOISE = 0.4     # sd of a user's rating before rounding
P_RATED = 0.3          # share of runs the user rates


# --------------------------------------------------------------------------- the world
# How far each method's weights move per unit of dose beyond the published one: full-weight
# training drifts most, adapters less, textual inversion not at all (no weight changes).
DRIFT = {"full_finetune": 2.0, "dreambooth": 1.5, "dreambooth_lora": 1.0, "lora": 1.0, "textual_inversion": 0.0}


@dataclass(frozen=True)
class User:
    name: str
    hidden: str                       # printed: what the published guidance does not know
    subjects: tuple[str, ...]
    n_images: tuple[int, int]
    importance: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # (lo, hi) per factor
    dose_need: float = 1.0            # dose their subjects need, x the published recipe's
    drift: float = 1.0                # their preservation loss per unit of drift, x the published
    bases: tuple[str, ...] = ("sd15", "sdxl")

    def profile(self, rng: np.random.Generator) -> Profile:
        gpu, vram = [("RTX 3060", 12), ("RTX 4090", 24), ("A100 40GB", 40), (None, 16)][rng.integers(4)]
        a, f, p = (int(rng.integers(lo, hi + 1)) for lo, hi in self.importance)
        subject = str(rng.choice(self.subjects))
        return Profile(subject_type=subject, n_images=int(rng.integers(self.n_images[0], self.n_images[1] + 1)),
                       base_model=str(rng.choice(self.bases)), vram_gb=float(vram), gpu_name=gpu,
                       time_budget_min=float(rng.choice([60, 120, 240])), accuracy=a, flexibility=f,
                       preservation=p, captions=subject in ("style", "concept"))


USERS = (
    User("needs-2x-dose", "their subjects need twice the published training dose",
         ("person", "animal", "object"), (4, 20), ((4, 5), (2, 4), (2, 3)), dose_need=2.0),
    User("drift-sensitive", "their preservation suffers 2.5x the published drift",
         ("person", "animal", "object"), (4, 20), ((2, 4), (2, 4), (4, 5)), drift=2.5),
    User("overfits-at-half", "their data overfits at half the published dose",
         ("style", "concept", "object"), (15, 60), ((2, 4), (4, 5), (2, 4)), dose_need=0.5),
)


def published_dose(method: str, profile: Profile) -> float:
    """Learning rate x image views per training image of the published starting point."""
    v = starting_hyperparameters(method, profile.with_defaults()[0]).values
    return v["learning_rate"] * v["max_train_steps"] * v["train_batch_size"] * v["gradient_accumulation_steps"] \
        / profile.n_images


def true_scores(user: User, profile: Profile, method: str, hp: dict) -> dict[str, float]:
    """The world's noise-free factor scores (1-5) of one configuration for this user."""
    dose = hp["learning_rate"] * hp["max_train_steps"] * hp["train_batch_size"] \
        * hp["gradient_accumulation_steps"] / profile.n_images
    published = published_dose(method, profile)
    x = math.log10(dose / (published * user.dose_need))   # against what this subject needs
    moved = math.log10(dose / published)                   # how far the weights move vs the recipe
    live = profile.subject_type in ("person", "animal")
    acc, flex, pres = (STANDING[method][f][0] for f in FACTORS)
    acc -= (8.0 if x < 0 else 2.0) * x * x                 # under-training loses the subject
    flex -= 2.5 * max(0.0, x)                               # over-training ignores the prompt
    pres -= DRIFT[method] * user.drift * max(0.0, moved)    # drift past the published dose
    if method in CLASS_IMAGE_METHODS and hp.get("prior_preservation"):
        pres += 1.0 if live else 0.4
        acc -= 0.25
    if method != "textual_inversion" and hp.get("train_text_encoder"):
        acc += 0.5 if profile.subject_type == "person" else 0.25
        flex -= 0.5 + 1.5 * max(0.0, x)
    if method in ADAPTERS:
        r = math.log2(hp.get("rank", 4) / 4)
        acc += 0.15 * max(-2.0, min(3.0, r))
        pres -= 0.1 * max(0.0, r) * user.drift
    return {f: min(5.0, max(1.0, v)) for f, v in zip(FACTORS, (acc, flex, pres))}


def utility(profile: Profile, scores: dict[str, float]) -> float:
    w = importance_weights(profile)
    return sum(w[f] * scores[f] for f in FACTORS)


# --------------------------------------------------------------------------- one simulated user
def regret(user: User, profile: Profile, space_best: float, rec) -> float:
    return space_best - utility(profile, true_scores(user, profile, rec.method, rec.hyperparameters))


def _record(i: int, user: User, profile: Profile, rec, rng: np.random.Generator) -> RunRecord:
    truth = true_scores(user, profile, rec.method, rec.hyperparameters)
    scores = {f"score_{f}": round(min(5.0, max(1.0, v + rng.normal(0, SCORE_NOISE))), 2) for f, v in truth.items()}
    rating = {}
    if rng.random() < P_RATED:
        rating = {f"rating_{f}": int(min(5, max(1, round(v + rng.normal(0, RATING_NOISE))))) for f, v in truth.items()}
    hp = {k: v for k, v in rec.hyperparameters.items() if v is not None}
    return RunRecord(run_id=f"sim-{i:03d}", source="manual", method=rec.method, base_model=profile.base_model,
                     status="completed", hyperparameters=hp, profile=profile.to_dict(), **scores, **rating)


def _learners(log: RunLog) -> tuple[LogLearner | None, LogLearner | None]:
    """(plain, exploring) learners sharing one fit of the log."""
    if not len(log):
        return None, None
    plain = LogLearner.fit(log)
    return plain, LogLearner(plain.model, plain.X, plain.Y, plain.meta, plain.prior, explore=EXPLORE)


def _refit_due(n: int) -> bool:
    """Refit after every run up to 10, every 2nd to 30, every 10th after (the app refits on
    every change; this keeps the benchmark to minutes)."""
    return n <= 10 or (n <= 30 and n % 2 == 0) or n % 10 == 0


def simulate(args: tuple[User, int, int]) -> dict:
    user, seed, n_eval = args
    rng = np.random.default_rng(seed)
    eval_rng = np.random.default_rng(10_000 + seed)
    held_out, best = [], []
    while len(held_out) < n_eval:
        p = user.profile(eval_rng)
        space = candidate_space(p)
        if space:  # a profile nothing fits has no regret to measure
            held_out.append(p)
            best.append(max(utility(p, true_scores(user, p, m, hp)) for m, hp in space))
    rules_regret = [regret(user, p, b, recommend(p)) for p, b in zip(held_out, best)]
    out = {"user": user.name, "seed": seed, "rules": statistics.mean(rules_regret), "learned": {}, "cv": None}
    with tempfile.TemporaryDirectory() as tmp, RunLog(Path(tmp) / "runlog.sqlite") as log:
        plain = exploring = None
        for n in range(CHECKPOINTS[-1] + 1):
            if _refit_due(n) or n in CHECKPOINTS:
                plain, exploring = _learners(log)
            if n in CHECKPOINTS:
                out["learned"][n] = statistics.mean(regret(user, p, b, recommend(p, learner=plain))
                                                    for p, b in zip(held_out, best))
            if n == CHECKPOINTS[-1]:
                break
            profile = user.profile(rng)
            rec = recommend(profile, learner=exploring)
            log.upsert_run(_record(n, user, profile, rec, rng))
        out["cv"] = cross_validate(log)
    return out


def cross_validate(log: RunLog, folds: int = 5) -> dict[str, dict[str, float]]:
    """MAE per factor of the learner (rules' prior + the model's correction) and of the prior alone."""
    from advisor.learning.estimators import RunOutcomeModel

    full = LogLearner.fit(log)
    X, Y, prior = full.X, full.Y, full.prior
    order = np.random.default_rng(0).permutation(len(X))
    errors = {"learner": [], "rules": []}
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        model = RunOutcomeModel(random_state=0).fit(X[train], (Y - prior)[train])
        errors["learner"].append(np.abs(prior[test] + model.predict(X[test]) - Y[test]))
        errors["rules"].append(np.abs(prior[test] - Y[test]))
    return {name: dict(zip(FACTORS, np.concatenate(e).mean(axis=0).round(3))) for name, e in errors.items()}


# --------------------------------------------------------------------------- report
def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4, help="simulated users per user type")
    ap.add_argument("--eval", type=int, default=10, help="held-out profiles per user")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    start = time.time()
    jobs = [(u, s, args.eval) for u in USERS for s in range(args.seeds)]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(simulate, jobs))
    else:
        results = [simulate(j) for j in jobs]
    print("# Learner benchmark — SYNTHETIC world (no model is trained; outcome functions follow the published "
          "trends, see the docstring)\n")
    print(f"{args.seeds} simulated users per type, {args.eval} held-out profiles each. Logged runs follow the "
          f"advisor's exploring recommendation (explore={EXPLORE:g}); regret is of its plain recommendation, in "
          "utility points (importance-weighted 1-5 factors) against the best configuration in the candidate space "
          "(the rules' fitting plans and their neighbours, same budget); mean ± sd over users.\n")
    print("| user type (hidden trait) | rules only | " + " | ".join(f"{n} runs" for n in CHECKPOINTS)
          + " | 30 runs / rules |")
    print("|---|---|" + "---|" * len(CHECKPOINTS) + "---|")
    rows = [(u.name + f" ({u.hidden})", [r for r in results if r["user"] == u.name]) for u in USERS]
    rows.append(("all", results))
    for name, rs in rows:
        rules = [r["rules"] for r in rs]
        cells = [_ms([r["learned"][n] for r in rs]) for n in CHECKPOINTS]
        ratio = statistics.mean(r["learned"][30] for r in rs) / max(1e-9, statistics.mean(rules))
        print(f"| {name} | {_ms(rules)} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    rules_all = statistics.mean(r["rules"] for r in results)
    at0 = statistics.mean(r["learned"][0] for r in results)
    at30 = statistics.mean(r["learned"][30] for r in results)
    print(f"\nTarget at 0 runs (equal to rules only): {'met' if abs(at0 - rules_all) < 1e-9 else 'NOT met'} "
          f"({at0:.3f} vs {rules_all:.3f}). Target at 30 runs (<= half of rules only): "
          f"{'met' if at30 <= rules_all / 2 else 'NOT met'} ({at30:.3f} vs {rules_all / 2:.3f}).\n")
    print("Cross-validated prediction error at 100 runs (5-fold MAE per factor, 1-5 scale, mean ± sd over users):\n")
    print("| predictor | " + " | ".join(FACTORS) + " |")
    print("|---|" + "---|" * len(FACTORS))
    for name, label in (("learner", "RunOutcomeModel on the rules' prior (the learner)"),
                        ("rules", "rules' prior alone")):
        print(f"| {label} | " + " | ".join(_ms([r["cv"][name][f] for r in results]) for f in FACTORS) + " |")
    print(f"\nRuntime {time.time() - start:.0f} s on {os.cpu_count()} CPU core(s), {args.workers} worker(s); "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

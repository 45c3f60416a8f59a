"""Where the user's runs peaked: the checkpoints they kept, as the next plan's step count.

Scoring the checkpoints along a run and keeping (exporting) the best one writes
kept_checkpoint.json (trainer.checkpoint_scores); the run log holds its step as `kept_step`,
the point where that run was best for this user. Counted as passes over the training images
(kept step x batch x accumulation / images) it carries over to a request with another image
count or batch size. `load_kept` reads those runs from the log.

For a plan, the kept runs of the same method count, each weighted as LogLearner.similarity
weighs a run of another subject or base model (its CONTEXT factors); n is their summed weight
and the peak their weighted mean passes. The plan's steps move from the rules' count toward
the peak by w = n / (n + k), k the learner's DATA_K as for the scores:

    steps = rules' steps + w x (peak passes x images / (batch x accumulation) - rules' steps)

clipped to PEAK_RANGE times the rules' steps and rounded to 50 (`peak_steps`); the plan is
then worked out again at that count (`peak_plan`, through candidates.neighbour: memory, time,
size), held to the most steps that fit the time budget when more were asked for. A run kept
at its last step says only that its peak was not earlier: it counts as its own passes or the
rules' passes, whichever is more. A step count the user named is never moved. Runs still
running, or without a kept step above 0 and within their steps done, or without an image
count, are left out and listed in `attrs["dropped"]`. adapt() moves the rules' plans this way
before it scores them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..profile import Profile
from ..recommendation.recommend import Plan
from .candidates import Move, neighbour

# The log moves the rules' steps to no less than a quarter and no more than twice their count
# (assumed): further out, a kept checkpoint more likely reflects another learning rate or data
# set than a need for that many steps.
PEAK_RANGE = (0.25, 2.0)
STEP_ROUNDING = 50       # steps are counted in fifties, as the rules and the moves count them
N_EXAMPLES = 3           # kept checkpoints the sentence names, the most similar runs first
UNFINISHED = ("created", "running")   # a later checkpoint of these may yet be better


def load_kept(log):
    """One row per logged run with a usable kept checkpoint: run_id, method, base_model,
    subject_type, n_images, kept_step, steps_done, passes (images seen per training image at the
    kept step) and at_end (kept at its last step). `attrs["dropped"]` lists (run_id, why) for runs
    with a kept step that could not be used."""
    import pandas as pd

    from .estimators import context, identify, image_count, run_records, views_per_step

    rows, dropped = [], []
    for record in run_records(log):
        if record.kept_step is None:
            continue
        run_id, method, base, why = identify(record)
        profile, hp = dict(record.profile or {}), record.hyperparameters
        n_images = image_count(profile, hp)
        if why is None:
            why = ("still running: a later checkpoint may yet be better" if record.status in UNFINISHED else
                   "kept step 0, before any training" if record.kept_step == 0 else
                   "no steps done to set the kept step against" if not record.steps_done else
                   f"kept step {record.kept_step} is past its {record.steps_done} steps done"
                   if record.kept_step > record.steps_done else
                   "no image count in its profile to scale its steps by" if n_images is None else None)
        if why:
            dropped.append((run_id, why))
            continue
        rows.append({"run_id": run_id, "method": method, "base_model": base,
                     "subject_type": context(profile, hp)[0], "n_images": n_images,
                     "kept_step": record.kept_step, "steps_done": record.steps_done,
                     "passes": record.kept_step * views_per_step(hp) / n_images,
                     "at_end": record.kept_step >= record.steps_done})
    meta = pd.DataFrame(rows, columns=["run_id", "method", "base_model", "subject_type", "n_images", "kept_step",
                                       "steps_done", "passes", "at_end"])
    meta.attrs["dropped"] = dropped
    return meta


@dataclass(frozen=True)
class PeakEvidence:
    """What the kept checkpoints of similar runs say about one plan's step count."""
    method: str
    rules_steps: int                 # the plan's steps as the rules set them
    steps: int                       # the steps after the move
    peak_passes: float               # the runs' weighted mean passes over their images at the kept step
    rules_passes: float              # the rules' plan's passes over this request's images
    n_runs: int
    n_similar: float                 # their summed similarity (LogLearner.similarity)
    weight: float                    # n_similar / (n_similar + k)
    fraction: float                  # mean kept step / steps done
    examples: tuple[tuple[int, int, int], ...]   # (kept step, steps done, runs), the most similar first
    run_ids: tuple[str, ...]
    held: str | None = None          # what stopped the move short of the blend, if anything

    @property
    def sentence(self) -> str:
        runs = "runs" if self.n_runs != 1 else "run"
        their = "their" if self.n_runs != 1 else "its"
        where = "; ".join(f"step {k:,} of {d:,}" + (f" in {n} runs" if n > 1 else "") for k, d, n in self.examples)
        held = f", held at {self.held}" if self.held else ""
        return (f"Steps {self.steps:,} instead of the rules' {self.rules_steps:,}: your {self.n_runs} similar {runs} "
                f"kept a checkpoint at about {self.fraction:.0%} of {their} steps ({where}), about "
                f"{_passes(self.peak_passes)} passes over {their} images where the rules' plan makes "
                f"{_passes(self.rules_passes)} (weight {self.weight:.2f} against the rules{held}; your run log).")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "examples": [list(e) for e in self.examples], "run_ids": list(self.run_ids),
                "sentence": self.sentence}


def _passes(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _round_steps(x: float) -> int:
    return max(STEP_ROUNDING, int(round(x / STEP_ROUNDING)) * STEP_ROUNDING)


def peak_steps(plan: Plan, profile: Profile, rows: list[dict], similarity: list[float],
               k: float) -> PeakEvidence | None:
    """Where `rows` (load_kept's rows of plan's method, `similarity` each) move the plan's steps,
    as the module docstring says, before the time budget; None without rows of any weight, or
    when the user named the steps."""
    from .estimators import views_per_step

    n = float(sum(similarity))
    if not rows or n <= 0 or "max_train_steps" in profile.settings:
        return None
    rules = int(plan.hp["max_train_steps"])
    per_step = views_per_step(plan.hp)
    rules_passes = rules * per_step / profile.n_images
    # a run kept at its last step: its peak was there or later
    passes = [max(r["passes"], rules_passes) if r["at_end"] else r["passes"] for r in rows]
    peak = sum(s * p for s, p in zip(similarity, passes)) / n
    w = n / (n + k)
    blend = rules + w * (peak * profile.n_images / per_step - rules)
    lo, hi = PEAK_RANGE
    steps = _round_steps(min(hi * rules, max(lo * rules, blend)))
    held = ("twice the rules' count" if blend > hi * rules else
            "a quarter of the rules' count" if blend < lo * rules else None)
    order = sorted(range(len(rows)), key=lambda i: -similarity[i])   # stable: the log's order on ties
    seen = Counter((int(rows[i]["kept_step"]), int(rows[i]["steps_done"])) for i in order)  # keeps first-seen order
    return PeakEvidence(
        method=plan.method, rules_steps=rules, steps=steps, peak_passes=round(float(peak), 2),
        rules_passes=round(rules_passes, 2), n_runs=len(rows), n_similar=round(n, 2), weight=round(w, 3),
        fraction=round(sum(r["kept_step"] / r["steps_done"] for r in rows) / len(rows), 3),
        examples=tuple((step, done, count) for (step, done), count in list(seen.items())[:N_EXAMPLES]),
        run_ids=tuple(str(rows[i]["run_id"]) for i in order), held=held)


def peak_plans(profile: Profile, plans: list[Plan], gpu, vram: float,
               learner) -> tuple[list[Plan], dict[str, PeakEvidence]]:
    """`plans` with each one's steps moved toward the user's kept checkpoints where the log has
    some for its method (learner.peak), and the PeakEvidence per method moved."""
    out, moved = [], {}
    for plan in plans:
        found = peak_plan(plan, learner.peak(profile, plan), profile, gpu, vram)
        if found is not None:
            plan, evidence = found
            moved[plan.method] = evidence
        out.append(plan)
    return out, moved


def peak_plan(plan: Plan, evidence: PeakEvidence | None, profile: Profile, gpu,
              vram: float) -> tuple[Plan, PeakEvidence] | None:
    """(`plan` worked out again at the evidence's step count, the evidence as applied), or None
    when the count is the rules' own or nothing above it fits. candidates.neighbour does the
    work: the notes on the rules' step arithmetic go, validation and checkpoints stay at a
    quarter of the run, and a count over the time budget is refused; then the most steps that
    fit are taken instead (time grows with the steps, so a bisection finds them)."""
    if evidence is None or evidence.steps == evidence.rules_steps or plan.problems:
        return None
    rules = evidence.rules_steps

    def at(steps: int) -> Plan | None:
        return neighbour(plan, Move("max_train_steps", steps / rules), profile, gpu, vram)

    moved = at(evidence.steps)
    if moved is None and evidence.steps > rules:
        counts = list(range(evidence.steps - STEP_ROUNDING, rules, -STEP_ROUNDING))   # most first
        lo, hi = 0, len(counts)
        while lo < hi:   # the first count (the largest) that fits
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if at(counts[mid]) is None else (lo, mid)
        if lo < len(counts):
            moved, evidence = at(counts[lo]), replace(evidence, steps=counts[lo], held="what fits your time budget")
    return (moved, evidence) if moved is not None else None

"""The recommendation: a profile in, one explained, cited, ready-to-run plan out.

Steps: fill unknown slots with defaults (reported as assumptions) -> match the rules ->
score the five methods -> for each method in score order: published starting point ->
fit memory -> fit time -> fit output size -> estimate. The first plan that fits the card,
the time budget and the size cap wins; if none does, the closest is returned with
`fits: false` and what would make it fit. Deterministic: same profile, same dict.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from trainer.config import HYPERPARAMETERS, TrainConfig
from trainer.vocabulary import ADAPTERS, BASE_MODELS, CLASS_IMAGE_METHODS, FACTORS, INVASIVENESS

from ..gpus import card_of
from ..gpus import find_gpu as find_stored_gpu
from ..knowledge.cards import get_card
from ..profile import Profile
from . import costs
from .hyperparameters import BASE_CARDS, BASELINE, SETTING_METHODS, class_noun, starting_hyperparameters, unplanned
from .render import method_title
from .rules import (ADJUSTMENTS, DATASET_KINDS, DEFAULT_RULES, FLOW_BASES, ONE_SUBJECT, OPS, PREFERENCE_BONUS, STANDING,
                    Rule, advice, image_counts, match, score)

JSON_KEYS = ("method", "base_model", "hyperparameters", "estimates", "predicted", "reasons", "citations",
             "alternatives", "dataset_advice", "iteration_plan", "assumptions", "train_config")
LEARNED_KEYS = ("similar_runs", "learned")  # added when a learner with a non-empty run log took part
LABELS = {"subject_type": "what you are training (person, animal, object, style, concept or general)",
          "n_images": "how many training images you have", "captions": "whether your images have captions",
          "accuracy": "how exactly the subject must be reproduced (1-5)",
          "flexibility": "how far from the training photos it must go (1-5)",
          "preservation": "how much of the base model must stay intact (1-5)", "vram_gb": "your GPU memory in GB",
          "time_budget_min": "how many GPU minutes one run may take", "n_runs": "how many runs you will try",
          "base_model": f"the base model ({', '.join(BASE_MODELS)})"}


@dataclass
class Candidate:
    method: str
    score: float
    rules: list[Rule] = field(default_factory=list)  # matched rules that moved this method's score


@dataclass
class Plan:
    candidate: Candidate
    hp: dict[str, Any]
    sources: dict[str, str]
    notes: list[tuple[str, str]]  # (derived choice, card) from the hyperparameter table
    changes: list[str]          # what fitting changed (memory savings first)
    n_savings: int              # how many of `changes` are memory savings
    estimate: costs.Estimate
    problems: list[str]         # empty when it fits

    @property
    def method(self) -> str:
        return self.candidate.method


@dataclass
class Estimates:
    """The chosen plan's costs, and whether they fit the user's limits."""
    vram_gb: float
    minutes: float
    output_mb: float
    fits: bool
    fits_reason: str                 # one sentence: how it fits, or what would make it fit
    savings: list[str]               # what fitting changed (memory savings first)
    timed_for: str                   # the card the minutes are for
    breakdown: list[str] = field(default_factory=list, repr=False)  # one sentence per part; not in JSON

    def to_dict(self) -> dict[str, Any]:
        return {"vram_gb": self.vram_gb, "minutes": self.minutes, "output_mb": self.output_mb, "fits": self.fits,
                "fits_reason": self.fits_reason, "savings": list(self.savings), "timed_for": self.timed_for}


@dataclass
class Recommendation:
    """One plan for one profile; `to_dict()` is the JSON contract (design.md)."""
    method: str
    base_model: str
    train_config: TrainConfig        # the run, ready to start
    advised: tuple[str, ...]         # the hyperparameters the plan chose; the others are TrainConfig's defaults
    estimates: Estimates
    predicted: dict[str, dict[str, Any]]
    reasons: list[str]
    citations: list[dict[str, str]]
    alternatives: list[dict[str, str]]
    dataset_advice: list[str]
    iteration_plan: list[str]
    assumptions: list[dict[str, Any]]
    similar_runs: list[dict[str, Any]] | None = None  # from the run log's learner; in JSON only with it
    learned: dict[str, Any] | None = None             # what the run log changed (advisor.learning)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The chosen hyperparameters, as the train config holds them, in its order."""
        return {k: getattr(self.train_config, k) for k in self.advised}

    def to_dict(self) -> dict[str, Any]:
        values = {"hyperparameters": self.hyperparameters, "estimates": self.estimates.to_dict(),
                  "train_config": self.train_config.to_dict()}
        keys = JSON_KEYS + (LEARNED_KEYS if self.learned is not None else ())
        return json.loads(json.dumps({k: values[k] if k in values else getattr(self, k) for k in keys}))


def recommend(profile: Profile, *, rules=DEFAULT_RULES, learner=None) -> Recommendation:
    """One recommendation for `profile`.

    `learner` may have `adjust(profile, candidates)` (re-rank the methods before planning),
    `adapt(profile, plans, chosen, gpu=, vram=)` (advisor.adapt.LogLearner: re-score the fitted
    plans and their neighbours with the run log; returns None to leave the rules' plan as is)
    and `memory()` (advisor.learned_memory.MemoryEvidence or None: raise memory estimates).
    """
    if not isinstance(profile, Profile):
        raise ValueError(f"profile must be an advisor.profile.Profile, got {type(profile).__name__}")
    if learner is not None and not any(hasattr(learner, m) for m in ("adjust", "adapt", "memory")):
        raise ValueError(f"learner must have adjust(), adapt() or memory(); {type(learner).__name__} has none")
    if profile.rent_gpu and profile.vram_gb is None:
        return _to_rent(profile, rules, learner)
    rec, best = _recommend(profile, rules, learner)
    if profile.base_model is None and rec.base_model == "sdxl":
        # SDXL is the default on a big card only where its plan is the rules' best, fits, and keeps
        # its recipe's steps; otherwise SD 1.5, and the card says why
        cut = _compromise(rec)
        if not (best and rec.estimates.fits and not cut):
            why = (f"it would need {cut}" if cut and rec.estimates.fits
                   else rec.estimates.fits_reason.rstrip(".") if not rec.estimates.fits
                   else f"its best plan ({method_title(rec.method)}) does not fit")
            rec = _recommend(profile, rules, learner, base_default="sd15", base_why=why)[0]
    if profile.base_model is None and (profile.accuracy or 0) >= LIKENESS_WISH:
        for base_key in LIKENESS_OFFERS:
            _offer_base(rec, profile, rules, learner, base_key)
    return rec


LIKENESS_WISH = 4   # a stated accuracy from which the card names the newer bases that fit and were not asked for
# The newer base models offered beside the default for a likeness wish: what they are, why they are
# not the default, and the words that plan them.
LIKENESS_OFFERS: dict[str, tuple[str, str, str]] = {
    "flux1dev": ("a 12 B transformer", "because of its licence, {licence}", "use Flux"),
    "zimage": ("a 6 B transformer, Apache 2.0", "because its fine-tuning is new (diffusers' README calls it "
               "experimental) and the advisor's figures for it are scaled from Flux's, not measured", "use Z-Image"),
}


def _offer_base(rec: Recommendation, profile: Profile, rules, learner, base_key: str) -> None:
    """Where the user wants likeness and named no base: when a plan on `base_key` fits their card too,
    one reason says so, with its cost and what keeps it from being the default."""
    plan, _ = _recommend(profile, rules, learner, base_default=base_key)
    if not plan.estimates.fits:
        return
    what, why_not, words = LIKENESS_OFFERS[base_key]
    hp = plan.hyperparameters
    quantized = {"int8": "int8", "nf4": "NF4"}.get(hp.get("quantize_base", "no"))
    how = ([f"the transformer in {quantized}"] if quantized else []) + (
        ["the text encoders' outputs cached"] if hp.get("cache_text_encoder_outputs") else [])
    e = plan.estimates
    base = BASE_MODELS[base_key]
    rec.reasons.append(
        f"{base.short} ({what}) also fits your card: {method_title(plan.method)}"
        f"{' with ' + ' and '.join(how) if how else ''}, about {e.vram_gb:.1f} GB and {e.minutes:.0f} min (timed for "
        f"{e.timed_for}). It is not the default {why_not.format(licence=base.licence)}; say '{words}' to "
        f"plan it. [{BASE_CARDS[base_key]}]")
    card = get_card(BASE_CARDS[base_key]).citation()
    if card not in rec.citations:
        rec.citations.append(card)


def _compromise(rec: Recommendation) -> str:
    """What fitting took from the plan's recipe beyond memory savings (fewer steps for the time, a
    lower rank for the size, no class images), in a few words; "" when nothing."""
    for change in rec.estimates.savings:
        if "watch for underfitting" in change:
            return "fewer steps than its recipe to fit your time"
        if change.startswith("LoRA rank") and "instead of" in change:
            return "a lower LoRA rank than its recipe to fit your size cap"
        if change.startswith("Prior preservation off"):
            return "to train without prior preservation to fit"
    return ""


def _to_rent(profile: Profile, rules, learner) -> Recommendation:
    """For a user who will rent a card: the plan on the smallest card of the speed table (the
    fastest of a size first) where the rules' best plan fits, so no card they do not have limits
    it; that card is named. Where none holds it, the plan for the largest."""
    rec = None
    for card in sorted(costs.TIMED.values(), key=lambda g: (g.vram_gb, -g.speed)):
        on_card = Profile.from_dict({**profile.to_dict(), "vram_gb": card.vram_gb, "gpu_name": card.name})
        rec, best = _recommend(on_card, rules, learner)
        if rec.estimates.fits and best:
            break
    assert rec is not None
    e = rec.estimates
    rec.reasons.insert(0, f"You'll rent a card: the {card.name} ({card.vram_gb:g} GB) is the smallest in the speed "
                          f"table that runs the best plan (about {e.vram_gb:.1f} GB with a 10% margin, about "
                          f"{e.minutes:.0f} minutes on it); any card with as much memory will do.")
    rec.assumptions.insert(0, {"slot": "vram_gb", "value": card.vram_gb,
                               "how_to_change": "The card to rent; tell the advisor your own card if you have one."})
    return rec


def _recommend(profile: Profile, rules, learner, base_default: str | None = None,
               base_why: str = "") -> tuple[Recommendation, bool]:
    """The recommendation, and whether it is the rules' best plan (or the one asked for) rather
    than a lesser one that fits where the best does not. `base_default`: the base model to assume
    when none is named, instead of the card's default (`base_why` says why, on the card)."""
    filled, assumed = profile.with_defaults(**({"base_model": base_default} if base_default else {}))
    gpu, vram, assumptions = _hardware(profile, filled, assumed, base_why)
    memory = learner.memory() if hasattr(learner, "memory") else None
    if memory is not None:  # the user's runs needed more memory than estimated: fit with that
        gpu = replace(gpu, memory_factor=memory.factor)
    matched = match(rules, filled)
    # methods the advisor has no recipe or cost figures for on this base (Flux.1 dev's full fine-tune)
    unplannable = {m: why for m, _ in score(matched) if (why := unplanned(m, filled.base_model))}
    candidates = [Candidate(m, s, [r for r in matched if r.scores.get(m)]) for m, s in score(matched)
                  if m not in unplannable]
    if hasattr(learner, "adjust"):
        candidates = _relearn(learner, filled, candidates)
    hp_advice = {k: (v, r.source) for k, (v, r) in advice(matched).items()}
    plans = [_work_out(c, filled, hp_advice, gpu, vram) for c in candidates]
    # A method asked for by name is the plan when it fits and the rules do not rank it clearly
    # worse (more than the preference's own weight behind the best); otherwise the card says why not.
    asked = next((p for p in plans if p.method == filled.preferred_method and not p.problems
                  and p.candidate.score >= plans[0].candidate.score - PREFERENCE_BONUS), None)
    chosen = asked or next((p for p in plans if not p.problems), None)
    best = chosen is not None and (chosen is asked or chosen is plans[0])
    chosen = chosen or min(plans, key=lambda p: _overflow(p, filled, vram))  # nothing fits: the closest
    learned = learner.adapt(filled, plans, chosen, gpu=gpu, vram=vram) if hasattr(learner, "adapt") else None
    if learned is not None:  # the log's plan stands in for the rules' plan of its method
        plans = [learned.plan if p is learned.replaces else p for p in plans]
        chosen = learned.plan
    alternatives = _alternatives(chosen, plans, matched, filled.preferred_method) + [
        {"method": m, "why_not": f"{why[0].upper()}{why[1:]}."} for m, why in unplannable.items()]
    if learned is not None:
        alternatives = [{**a, "why_not": learned.why_not.get(a["method"], a["why_not"])} for a in alternatives]
    refused = next((a for a in alternatives if a["method"] == filled.preferred_method), None)
    said_no = ([f"You asked for {method_title(refused['method'])}; the plan is {method_title(chosen.method)} "
                f"instead. {refused['why_not']}"] if refused is not None else [])  # the user's choice, argued
    reasons = ([memory.sentence] if memory else []) + said_no + (learned.reasons if learned else []) \
        + _reasons(chosen, plans, matched, filled.preferred_method)
    scores = learned.predicted if learned else predicted(chosen.method, chosen.hp, chosen.changes)
    reasons += _short_of_wish(profile, scores, chosen, plans)
    rec = Recommendation(
        method=chosen.method, base_model=filled.base_model,
        train_config=_train_config(chosen, filled),
        advised=tuple(k for k in HYPERPARAMETERS if k in chosen.hp),
        estimates=_estimates(chosen, filled, vram, gpu, pace=_pace(learned)),
        predicted=scores,
        reasons=reasons,
        citations=_citations(chosen, matched, reasons),
        alternatives=alternatives,
        dataset_advice=_dataset_advice(chosen, filled),
        iteration_plan=_iteration_plan(chosen, filled),
        assumptions=assumptions + _noun_assumption(profile, filled),
        similar_runs=learned.similar_runs if learned else None,
        learned=_learned(learned, memory))
    return rec, best


SHORTFALL = 0.5  # a predicted score this far under the stated wish gets a sentence
_CLOSER = {  # what brings a factor closer when no other method does (overfitting / underfitting cards)
    "accuracy": "more and better images, or more steps, help most.",
    "flexibility": "varied images with captions, and an earlier checkpoint, keep the subject more editable.",
    "preservation": "prior preservation, a lower learning rate or rank, or a lower LoRA weight when generating "
                    "keep more of the base model.",
}


def _short_of_wish(profile: Profile, scores: dict, chosen: Plan, plans: list[Plan]) -> list[str]:
    """One sentence per factor the user stated where the plan's predicted score falls short, with
    the fitting plan that comes closest, if another does."""
    out = []
    for factor in FACTORS:
        wish = getattr(profile, factor)  # stated only: an assumed 3 is no wish
        got = scores[factor]["score"]
        if wish is None or got > wish - SHORTFALL:
            continue
        sentence = f"Your {factor} wish is {wish} of 5; this plan is predicted at {got:g}, short of it."
        others = [(predicted(p.method, p.hp, p.changes)[factor]["score"], p) for p in plans
                  if p is not chosen and not p.problems]
        best = max(others, key=lambda o: o[0], default=None)
        if best is not None and best[0] > got:
            sentence += (f" {method_title(best[1].method)} fits and is predicted at {best[0]:g} "
                         f"(see the alternatives).")
        else:
            sentence += f" No plan that fits predicts more; {_CLOSER[factor]}"
        out.append(sentence)
    return out


def _learned(learned, memory) -> dict[str, Any] | None:
    """What the run log changed: the outcome/pace learner's account plus the memory factor."""
    out = dict(learned.learned or {}) if learned is not None else {}
    if memory is not None:
        out["memory"] = memory.to_dict()
    return out or None


def _hardware(profile: Profile, filled: Profile, assumed: list[str], base_why: str = ""):
    """(speed-table GPU, usable GB, assumptions including the filled slots). The GPU is the timed
    card the estimates use, carrying the mixed precision of the user's own card when it is named
    (a GTX 1660 is timed as a T4 but must not train in fp16)."""
    gpu = costs.find_gpu(filled.gpu_name)
    named = find_stored_gpu(filled.gpu_name)
    vram = filled.vram_gb
    out = [{"slot": s, "value": getattr(filled, s), "how_to_change": f"Tell the advisor {LABELS.get(s, s)}."}
           for s in assumed]
    if "vram_gb" in assumed and gpu is not None:
        vram = gpu.vram_gb
        out = [a if a["slot"] != "vram_gb" else {**a, "value": vram, "how_to_change": f"The usual memory of a "
               f"{gpu.name}; tell the advisor if yours differs."} for a in out]
    if gpu is None:
        gpu = costs.typical_gpu(vram)
        unknown = f"No speed figure for {profile.gpu_name}; t" if profile.gpu_name else "T"
        out.append({"slot": "gpu_name", "value": profile.gpu_name,
                    "how_to_change": f"{unknown}imes assume a {gpu.name}, the slowest card in the speed table with "
                                     f"{vram:g} GB or more; name your GPU for a sharper estimate."})
        if named is not None and named.gpu.gb is not None:  # a CUDA card without a speed figure
            gpu = replace(gpu, precision=card_of(named.gpu).precision)
    if "base_model" in assumed:
        out = [a if a["slot"] != "base_model" else {**a, "how_to_change": _base_note(filled, base_why)} for a in out]
    if profile.time_budget_min is None:
        out.append({"slot": "time_budget_min", "value": None,
                    "how_to_change": "No time limit given, so none shortens the plan; tell the advisor how many GPU "
                                     "minutes one run may take."})
    return gpu, vram, out


def _base_note(p: Profile, why_not_sdxl: str = "") -> str:
    """Why this base model when none was named (advisor.profile.default_value, or SD 1.5 where the
    SDXL plan falls short: `why_not_sdxl`), and how to change it."""
    if why_not_sdxl:
        return f"SD 1.5: on SDXL {why_not_sdxl}; say 'use SDXL' to see that plan anyway."
    if p.base_model == "sdxl":
        return (f"SDXL, because your card has {p.vram_gb:g} GB (16 or more): an SDXL plan fits with room, and most "
                "2026 subject and style LoRAs (and Pony, Illustrious, NoobAI) are SDXL; say 'use SD 1.5' for steps "
                "about five times faster.")
    return ("SD 1.5, the default under 16 GB: it needs the least memory and trains fastest; say 'use SDXL' for its "
            "better quality at 1024 px.")


def _precision_note(p: Profile, gpu) -> str:
    """Why the plan trains in its mixed precision (gpu: the timed card, with the user's precision)."""
    card = p.gpu_name or f"a {gpu.name} (assumed)"
    if gpu.precision == "no":
        return (f"Trains in fp32: GTX 16xx cards such as your {card} give NaNs (black images) in fp16 "
                "and have no bf16; fp32 is about twice as slow and holds frozen weights at 4 bytes.")
    if gpu.precision == "bf16":
        return (f"bf16 mixed precision: every published recipe trains in 16-bit (about twice the speed of fp32 "
                f"on the T4 table), and {card} computes bf16 (Ampere or newer).")
    vae = (" SDXL's VAE overflows in fp16, so the trainer keeps it in fp32 (diffusers' SDXL scripts do the same); "
           "the fp16-fix VAE (madebyollin/sdxl-vae-fp16-fix) is the published alternative when generating in fp16."
           if p.base_model == "sdxl" else "")
    return (f"fp16 mixed precision: every published recipe trains in 16-bit (T4 table: 0.42 -> 0.93 it/s); "
            f"{card} has no bf16 (older than Ampere).{vae}")


def _relearn(learner, profile: Profile, candidates: list[Candidate]) -> list[Candidate]:
    out = list(learner.adjust(profile, list(candidates)))
    if sorted(c.method for c in out) != sorted(c.method for c in candidates):
        raise ValueError("learner.adjust must return the same candidates, re-ordered or re-scored")
    return out


def _work_out(c: Candidate, p: Profile, hp_advice: dict, gpu, vram: float) -> Plan:
    plan = _fit(c, p, hp_advice, gpu, vram)
    if plan.problems and plan.hp.get("prior_preservation") and "prior_preservation" not in p.settings:
        # Without prior preservation the run is the one a lower preservation gets; falling back
        # to it (rather than to another method) keeps "more preservation, never a more
        # invasive method" true.
        fallback = _fit(c, p, {k: v for k, v in hp_advice.items() if k != "prior_preservation"}, gpu, vram)
        fallback.changes.append(f"Prior preservation off: with its class images the run {plan.problems[0]}.")
        return fallback
    return plan


def _fit(c: Candidate, p: Profile, hp_advice: dict, gpu, vram: float) -> Plan:
    start = starting_hyperparameters(c.method, p, hp_advice)
    start.values["mixed_precision"], start.sources["mixed_precision"] = gpu.precision, "memory-savings"
    start.notes.append((_precision_note(p, gpu), "gpu-cards"))
    named = frozenset(p.settings)   # the user's own values: no saving or budget changes them
    hp, savings = costs.fit_memory(c.method, p.base_model, start.values, vram, gpu=gpu, keep=named)
    if p.time_budget_min is not None:
        hp, timing = costs.fit_time(c.method, p.base_model, hp, p.n_images, p.time_budget_min, gpu=gpu, keep=named)
    else:
        timing = []
    hp, size = costs.fit_output(c.method, p.base_model, hp, p.max_output_mb, keep=named)
    est = costs.estimate(c.method, p.base_model, hp, p.n_images, gpu=gpu)
    problems = []
    memory = costs.memory_problem(est.vram_gb, vram)
    if memory:
        problems.append(memory)
    if p.time_budget_min is not None and est.minutes > p.time_budget_min:
        problems.append(f"takes about {est.minutes:.0f} min, over your {p.time_budget_min:g}-minute budget")
    if p.max_output_mb is not None and est.output_mb > p.max_output_mb:
        problems.append(f"writes about {est.output_mb:.0f} MB, over your {p.max_output_mb:g} MB cap")
    return Plan(c, hp, start.sources, start.notes, savings + timing + size, len(savings), est, problems)


def time_limit(p: Profile) -> float:
    """The time budget in minutes; a user who gave none has no limit (nothing is assumed)."""
    return p.time_budget_min if p.time_budget_min is not None else float("inf")


def _overflow(plan: Plan, p: Profile, vram: float) -> tuple[float, float]:
    """How far a plan misses the budget, for picking the closest when nothing fits. Memory comes
    first: a run over the card's memory does not run at all, while one over the time budget or
    the size cap only takes longer or makes a bigger file."""
    e = plan.estimate
    memory = max(e.vram_gb / vram, 1.0)
    return memory, max(e.minutes / time_limit(p), e.output_mb / (p.max_output_mb or float("inf")))


def _pace(learned) -> float:
    """The user's logged pace (actual / estimated minutes) when the run log measured one, else 1."""
    time = ((learned.learned if learned else None) or {}).get("time") or {}
    return float(time.get("factor") or 1.0)


def _estimates(plan: Plan, p: Profile, vram: float, gpu, pace: float = 1.0) -> Estimates:
    e = plan.estimate
    if not plan.problems:
        time = (f"{e.minutes:.0f} of your {p.time_budget_min:g} minutes" if p.time_budget_min is not None else
                f"about {e.minutes:.0f} minutes (no time limit given)")
        card = f"a rented {p.gpu_name}'s" if p.rent_gpu else "your"   # _to_rent's profile names the card
        reason = f"Fits: about {e.vram_gb:.1f} of {card} {vram:g} GB and {time} (timed for {e.gpu})."
        note = costs.text_encoding_note(plan.method, p.base_model, plan.hp, vram)
        reason += f" {note}" if note else ""
    else:
        reason = (f"Nothing fits; the closest plan {'; '.join(plan.problems)}. "
                  f"What would make it fit: {_remedies(plan, p, vram, gpu, pace)}")
    return Estimates(vram_gb=e.vram_gb, minutes=e.minutes, output_mb=e.output_mb, fits=not plan.problems,
                     fits_reason=reason, savings=list(plan.changes), timed_for=e.gpu, breakdown=list(e.breakdown))


def _smaller_flow_base(method: str, base_model: str | None, vram: float, gpu) -> str:
    """For a flow-transformer base that does not fit: the nearest smaller flow base whose plan for the
    same method fits the card, those whose licence restricts use last (its name, size and the words
    that plan it); "" when none does."""
    if base_model not in FLOW_BASES:
        return ""
    size = costs.ARCH[base_model].denoiser_b
    for other in sorted(FLOW_BASES, key=lambda b: (bool(BASE_MODELS[b].licence), -costs.ARCH[b].denoiser_b)):
        if costs.ARCH[other].denoiser_b >= size or unplanned(method, other):
            continue
        hp, _ = costs.fit_memory(method, other, {"resolution": BASE_MODELS[other].resolution}, vram, gpu=gpu)
        gb = costs.memory_gb(method, other, hp)[0] * (gpu.memory_factor if gpu is not None else 1.0)
        if costs.memory_problem(gb, vram) is None:
            short = BASE_MODELS[other].short
            return (f"a smaller base model: {short} ({costs.ARCH[other].denoiser_b:.1f} B) fits at about {gb:.1f} GB "
                    f"(say 'use {short}')")
    return ""


def _remedies(plan: Plan, p: Profile, vram: float, gpu, pace: float = 1.0) -> str:
    """What would make the plan fit; at the user's logged pace when there is one (the estimator's
    minutes times `pace`), so the suggestions are not more optimistic than the headline."""
    out = []
    budget = time_limit(p) / pace  # the budget in the estimator's (published-speed) minutes
    rented = costs.cheapest_gpu(plan.method, p.base_model, plan.hp, p.n_images, budget,
                                min_vram_gb=vram, faster_than=gpu)
    if rented:
        card, est = rented
        out.append(f"a rented {card.name} ({card.vram_gb:g} GB), where it takes about {est.minutes * pace:.0f} min")
    smaller = _smaller_flow_base(plan.method, p.base_model, vram, gpu)
    if smaller:
        out.append(smaller)
    elif p.base_model != "sd15":
        out.append("a smaller base model (SD1.5 at 512 px needs far less memory and time)")
    if p.time_budget_min is not None and plan.estimate.minutes > p.time_budget_min:
        n = costs.steps_within(plan.method, p.base_model, plan.hp, p.n_images, budget, gpu=gpu)
        out.append(f"fewer steps ({n} fit your time, well below the recipe)" if n else
                   "more time (not even 50 steps fit after the samples and class images)")
    if p.max_output_mb is not None and plan.estimate.output_mb > p.max_output_mb:
        out.append("a higher size cap, or textual inversion (kilobytes)")
    return "; ".join(out) + "."


def _reasons(chosen: Plan, plans: list[Plan], matched: list[Rule], asked_for: str | None = None) -> list[str]:
    mine = sorted((r for r in chosen.candidate.rules if r.scores.get(chosen.method, 0) > 0),
                  key=lambda r: -r.scores[chosen.method])
    out = [f"{r.why} [{r.id}]" for r in mine]
    for key, (value, r) in advice(matched).items():
        if chosen.method not in SETTING_METHODS.get(key, (chosen.method,)):   # a knob this method lacks
            continue
        if chosen.hp.get(key) == value and chosen.sources.get(key) == r.source:
            out.append(f"{r.why} [{r.id}]")
    out += [f"{sentence} [{card}]" for sentence, card in chosen.notes]
    ahead = plans[:plans.index(chosen)]
    skipped = [p for p in ahead if p.problems]
    if chosen.problems:
        out.append(f"No method fits every limit; {method_title(chosen.method)} comes closest.")
    elif chosen.method == asked_for and ahead and not skipped:  # the rules rank a fitting plan higher
        out.append(f"You asked for {method_title(chosen.method)} and it fits, so the plan uses it; the rules alone "
                   f"would pick {method_title(ahead[0].method)} (see the alternatives).")
    elif skipped:
        out.append(f"{', '.join(method_title(p.method) for p in skipped)} ranked higher but "
                   f"{skipped[0].problems[0]}; {method_title(chosen.method)} is the best that fits.")
    return out or [f"No rule singled out a method; {method_title(chosen.method)} is the top of the tie-break order."]


def _citations(plan: Plan, matched: list[Rule], reasons: list[str]) -> list[dict[str, str]]:
    ids = [r.source for r in matched if f"[{r.id}]" in " ".join(reasons)]
    # hyperparameters cite their card when a recipe or a rule set them (not the safe baseline)
    ids += [plan.sources[k] for k in HYPERPARAMETERS
            if k in plan.sources and plan.hp.get(k) != BASELINE.get(k, object())]
    ids += [card for _, card in plan.notes]
    ids += ["vram-by-method", "time-and-money", "output-size", "dataset-preparation", "iteration-plan",
            "overfitting-signs", "underfitting-signs"] + (["memory-savings"] if plan.n_savings else [])
    return [get_card(i).citation() for i in dict.fromkeys(ids)]


def _alternatives(chosen: Plan, plans: list[Plan], matched: list[Rule],
                  asked_for: str | None = None) -> list[dict[str, str]]:
    out = []
    for p in plans:
        if p is chosen:
            continue
        if p.problems:
            why = f"It {p.problems[0]}."
        elif chosen.method == asked_for and plans.index(p) < plans.index(chosen):  # scored higher; the user asked
            why = (f"The rules score it higher ({p.candidate.score:g} vs {chosen.candidate.score:g}), but you asked "
                   f"for {method_title(chosen.method)}, and it fits.")
        else:
            # the rule that separates the two most, told to the user as the reason
            against = min(matched, default=None,
                          key=lambda r: r.scores.get(p.method, 0) - r.scores.get(chosen.method, 0))
            if p.candidate.score == chosen.candidate.score:  # score() breaks ties by invasiveness
                why = (f"Scored the same ({p.candidate.score:g}); on a tie the less invasive method is "
                       "preferred, as it keeps more of the base model.")
                if INVASIVENESS.index(p.method) < INVASIVENESS.index(chosen.method):
                    why = f"Scored the same ({p.candidate.score:g}) but came after it in the candidate order."
            else:
                why = f"Ranked lower ({p.candidate.score:g} vs {chosen.candidate.score:g})."
            if against is not None and against.scores.get(p.method, 0) < against.scores.get(chosen.method, 0):
                why += f" {against.why}"
        out.append({"method": p.method, "why_not": why})
    return out


def predicted(method: str, hp: dict[str, Any], changes: list[str] | tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The rules' predicted 1-5 factor scores for a configuration, each with its basis: the
    method's published standing, moved by the ADJUSTMENTS its settings trigger."""
    out = {}
    for factor, (value, basis) in STANDING[method].items():
        notes = [basis]
        for (key, op, target), deltas, why in ADJUSTMENTS:
            if factor in deltas and hp.get(key) is not None and OPS[op](hp[key], target):
                value += deltas[factor]
                notes.append(f"{deltas[factor]:+g} {why}")
        if factor == "accuracy" and any("watch for underfitting" in c for c in changes):
            value -= 0.5
            notes.append("-0.5 fewer steps than the recipe (underfitting risk)")
        out[factor] = {"score": round(min(5.0, max(1.0, value)), 2), "basis": "; ".join(notes)}
    return out


def _dataset_advice(plan: Plan, p: Profile) -> list[str]:
    lo, hi, said = image_counts(plan.method, p.subject_type)
    # A set of one subject trains on its best shots; a style, a concept or a captioned set is
    # learnt from all of it, and its steps follow its size (hp-steps: passes over the set).
    whole_set = p.captions or p.subject_type not in ONE_SUBJECT or plan.method == "full_finetune"
    hp = plan.hp
    passes = hp["max_train_steps"] * hp["train_batch_size"] * hp["gradient_accumulation_steps"] / p.n_images
    more = (f"all {p.n_images} train: a larger varied set generalises better, and the steps follow its size "
            f"({hp['max_train_steps']} steps)." if whole_set else
            f"more than usually needed, so keep the sharp, varied ones and drop blurry shots and near-duplicates; "
            f"{hp['max_train_steps']} steps give about {passes:.0f} passes over {p.n_images}, so a smaller set "
            f"trains more on each.")
    subjects = p.n_subjects or 1   # the ranges are per subject
    each = p.n_images // subjects
    have = f"You have {p.n_images}" + (f" ({each} per subject)" if subjects > 1 else "")
    count = f"{have}; " + ("that is in range." if lo <= each <= hi else
                           f"aim for {lo}-{hi}{' each' if subjects > 1 else ''}." if each < lo else more)
    out = [f"{said[0].upper()}{said[1:]}. {count}", DATASET_KINDS[p.subject_type]]
    res = plan.hp["resolution"]
    out.append(f"Use images at least {res} x {res} px; they are cropped to {res} px squares." if plan.hp["crop"] != "bucket"
               else f"Images keep their shape: they are grouped in buckets of similar aspect ratio with about {res} x "
                    f"{res} pixels each, so portrait, landscape and square shots all train whole; use images at "
                    f"least that large.")
    if (p.n_subjects or 1) > 1 and plan.method != "textual_inversion":
        noun = class_noun(p)
        tokens = ", ".join(f"'a photo of sks{i} {noun}'" for i in range(1, min(p.n_subjects, 3) + 1))
        out.append(f"{p.n_subjects} subjects: give each its own token in a caption beside its images ({tokens}"
                   f"{', ...' if p.n_subjects > 3 else ''}; a .txt beside an image replaces the instance prompt), "
                   "and caption shots of several with each one's token; with one shared token they blend into one "
                   "(diffusers' multi-subject DreamBooth trains one instance prompt per subject).")
    elif plan.method == "lora" and p.subject_type in ONE_SUBJECT and not p.captions:
        out.append(f"Every image trains with the instance prompt '{plan.hp['instance_prompt']}'; captions are "
                   "optional for one subject (a .txt beside an image replaces the prompt for it).")
    elif plan.method in ("lora", "full_finetune"):
        out.append(f"Caption each image (a .txt file beside it); uncaptioned ones train with "
                   f"'{plan.hp['instance_prompt']}'." if not p.captions else
                   "Keep the captions beside the images (same name, .txt); they carry the content.")
    else:
        out.append(f"Every image trains with the instance prompt '{plan.hp['instance_prompt']}'.")
    if plan.hp.get("prior_preservation"):
        out.append(f"{plan.hp['num_class_images']} class images of '{plan.hp['class_prompt']}' are generated before "
                   "training; real photos of the class work better if you have them (KID 20.96 vs 34.70).")
    return out


def _iteration_plan(plan: Plan, p: Profile) -> list[str]:
    hp, e = plan.hp, plan.estimate
    lr, steps = hp["learning_rate"], hp["max_train_steps"]
    every = f"every {hp['validation_steps']} steps" if hp.get("validation_steps") else "at the end"
    of_budget = f" of your {p.time_budget_min:g}" if p.time_budget_min is not None else ""
    out = [f"Run 1 (~{e.minutes:.0f}{of_budget} minutes): train as recommended and judge the "
           f"samples {every}, not the loss."]
    if p.n_runs == 1:
        return out + ["With one run, keep the checkpoints and use the best one rather than the last."]
    out.append(f"If samples look noisy or burned, or every prompt returns the training photos (overfitting): "
               f"run 2 with learning rate {lr / 2:.1e} or {steps * 2 // 3} steps, or keep an earlier checkpoint.")
    longer = e.minutes * 1.5  # training dominates; a slight overestimate of the overheads
    over = p.time_budget_min is not None and longer > p.time_budget_min
    out.append(f"If the subject is not recognisable (underfitting): run 2 with {int(steps * 1.5)} steps "
               f"(about {longer:.0f} min{', over your budget: use a faster card' if over else ''}).")
    if p.n_runs >= 3:
        leak = ("turn on prior preservation or lower the learning rate" if plan.method in CLASS_IMAGE_METHODS else
                f"lower the rank to {max(1, hp['rank'] // 2)}" if plan.method in ADAPTERS else "cut the steps")
        frozen = "; if prompts are ignored, keep the text encoder frozen" if hp.get("train_text_encoder") else ""
        out.append(f"Run 3: if the subject leaks into prompts that do not name it, {leak}{frozen}.")
    if p.n_runs >= 4:
        out.append(f"Runs 4-{p.n_runs}: change one setting at a time and rate each run, so the advisor learns.")
    return out


def _noun_assumption(profile: Profile, filled: Profile) -> list[dict[str, Any]]:
    if profile.class_noun or filled.subject_type == "general":
        return []
    return [{"slot": "class_noun", "value": class_noun(filled),
             "how_to_change": "Name the class of your subject (e.g. 'dog', 'woman', 'sneaker'): the right class "
                              "noun matters a lot (DINO 0.744 vs 0.454 with a wrong one)."}]


def _train_config(plan: Plan, p: Profile) -> TrainConfig:
    fields_ = TrainConfig.__dataclass_fields__
    body = json.dumps(p.to_dict(), sort_keys=True).encode()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{plan.method}-{p.subject_type}-{class_noun(p)}-{p.base_model}".lower())
    slug = f"{slug.strip('-')}-{hashlib.sha1(body).hexdigest()[:6]}"
    values = {k: v for k, v in plan.hp.items() if k in fields_}
    return TrainConfig(**{**values, "base_model": BASE_MODELS[p.base_model].hub_id, "method": plan.method,
                          "data_dir": "", "output_dir": f"runs/{slug}",
                          "evaluate_after_training": True})  # train, then score: the loop's next step

"""The user's pace for advisor.adapt: the time estimate times what the run log says.

LogLearner.pace gives, per configuration, the factor the user's logged runs took over the
published-speed estimate. Here the rules' plans are checked against the time budget at that
pace (shortened or marked over budget, `rebudget`), the choice among them is redone as
recommend does it (`choose`), and the recommended plan's minutes are corrected and said so
(`at_pace`, `_budget_note`, `_over_at_pace`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..recommendation import costs
from ..profile import Profile
from ..recommendation.recommend import Plan


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

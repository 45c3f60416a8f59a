"""The cost side of the learner: RunCostModel, load_costs, and the time estimate at the user's pace."""
import json
import math

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from advisor.recommendation import costs
from advisor.learning.log_learner import COST_MIN_RUNS, LogLearner
from advisor.learning.log_learner import learner_for_log
from advisor.learning.estimators import FEATURES, RunCostModel, load_costs, run_gpu
from advisor.profile import Profile
from advisor.recommendation.recommend import JSON_KEYS, recommend
from advisor.runlog.store import RunLog
from advisor.runlog.records import RunRecord

# The rules pick DreamBooth-LoRA at 500 steps for this face, about 35 min on the 24 GB card's
# speed-table row (an L4); a 240-minute budget leaves room for twice that.
FACE = Profile(subject_type="person", class_noun="woman", n_images=8, base_model="sd15", vram_gb=24,
               time_budget_min=240, accuracy=3, flexibility=3, preservation=5)
STEPS = (400, 500, 600, 500, 750, 450)


def _published_minutes(method, hp, profile=FACE):
    """What advisor.costs says a logged run takes on the profile's card."""
    filled = profile.with_defaults()[0]
    return costs.estimate(method, filled.base_model, hp, filled.n_images, gpu=run_gpu(filled.to_dict())).minutes


def _timed_runs(pace, n=len(STEPS), scores=None, jitter=0.03, profile=FACE):
    """n completed runs near the rules' plan that each took `pace` x their estimate (+- jitter)."""
    rules = recommend(profile)
    out = []
    for i, steps in enumerate((STEPS * 3)[:n]):
        hp = {k: v for k, v in {**rules.hyperparameters, "max_train_steps": steps}.items() if v is not None}
        minutes = _published_minutes(rules.method, hp, profile) * pace * (1 + jitter * (-1) ** i)
        extra = dict(zip(("score_accuracy", "score_flexibility", "score_preservation"), scores)) if scores else {}
        out.append(RunRecord(run_id=f"t{i}", method=rules.method, base_model="sd15", status="completed",
                             hyperparameters=hp, profile=profile.with_defaults()[0].to_dict(),
                             duration_s=minutes * 60, steps_done=steps, **extra))
    return out


def _learner(tmp_path, records, name="runlog.sqlite"):
    with RunLog(tmp_path / name) as log:
        log.upsert_many(records)
        return LogLearner.fit(log)


def _canonical(rec) -> str:
    return json.dumps(rec.to_dict(), sort_keys=True)


# --------------------------------------------------------------------------- the estimator
@pytest.mark.slow  # ~50 checks, a GP fit each: a few seconds idle, longer on busy cores
@parametrize_with_checks([RunCostModel(random_state=0)])
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


def test_fewer_than_min_samples_predicts_no_correction_with_the_prior_std():
    model = RunCostModel(prior_std=0.7).fit([[1.0, 2.0], [2.0, 1.0]], [0.7, 0.7])
    mean, std = model.predict([[1.0, 2.0], [9.0, 9.0]], return_std=True)
    assert np.array_equal(mean, [0.0, 0.0]) and np.allclose(std, 0.7)
    assert model.predict([[1.0, 2.0]]).shape == (1,)


def test_consistent_runs_give_their_pace_and_scattered_ones_a_shrunk_uncertain_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 3))
    steady = RunCostModel(random_state=0).fit(X, np.log(2.0) + rng.normal(0, 0.03, 6))
    mean, std = steady.predict(X[:1] + 0.1, return_std=True)
    assert math.exp(mean[0]) == pytest.approx(2.0, rel=0.1) and std[0] < 0.15
    # three runs that disagree (0.5x, 3x, 1.2x): the correction is pulled towards none and
    # its standard deviation is wider than the steady runs'
    scattered = RunCostModel(random_state=0).fit(X[:3], np.log([0.5, 3.0, 1.2]))
    m2, s2 = scattered.predict(X[3:4], return_std=True)
    assert abs(m2[0]) < abs(np.log([0.5, 3.0, 1.2])).mean() and s2[0] > 2 * std[0]


@pytest.mark.parametrize("param, value", [("min_samples", 0), ("prior_std", -1.0), ("max_iter", 1.5),
                                          ("noise_level", "tiny")])
def test_bad_parameters_are_refused_in_fit_naming_them(param, value):
    with pytest.raises(ValueError, match=param):
        RunCostModel(**{param: value}).fit([[0.0], [1.0], [2.0]], [0.1, 0.2, 0.3])


# --------------------------------------------------------------------------- load_costs
def test_load_costs_keeps_completed_timed_runs_and_says_why_others_are_left_out(tmp_path):
    good = _timed_runs(2.0, n=2)
    hp = dict(good[0].hyperparameters)
    with RunLog(tmp_path / "r.sqlite") as log:
        log.upsert_many(good + [
            RunRecord(run_id="running", method="dreambooth_lora", base_model="sd15", status="running",
                      hyperparameters=hp, duration_s=60.0),
            RunRecord(run_id="failed", method="dreambooth_lora", base_model="sd15", status="failed",
                      hyperparameters=hp, duration_s=600.0),
            RunRecord(run_id="untimed", method="dreambooth_lora", base_model="sd15", status="completed",
                      hyperparameters=hp),
            RunRecord(run_id="zero", method="dreambooth_lora", base_model="sd15", status="completed",
                      hyperparameters=hp, duration_s=0.0),
            RunRecord(run_id="no-steps", method="lora", base_model="sd15", status="completed",
                      hyperparameters={"learning_rate": 1e-4}, duration_s=600.0),
            RunRecord(run_id="milliseconds", method="dreambooth_lora", base_model="sd15", status="completed",
                      hyperparameters=hp, duration_s=1.5),
            RunRecord(run_id="flux", method="lora", base_model="flux1", status="completed",
                      hyperparameters=hp, duration_s=600.0),
        ])
        X, y, meta = load_costs(log)
    assert list(meta["run_id"]) == ["t0", "t1"] and X.shape == (2, len(FEATURES)) and np.isfinite(X).all()
    assert np.allclose(np.exp(y), [2.0 * 1.03, 2.0 * 0.97], rtol=1e-3)
    assert np.allclose(meta["actual_minutes"] / meta["estimated_minutes"], np.exp(y))
    assert set(meta["gpu"]) == {"L4"}  # the 24 GB card's speed-table row, as the recommendation assumes
    dropped = dict(meta.attrs["dropped"])
    assert set(dropped) == {"running", "failed", "untimed", "zero", "no-steps", "milliseconds", "flux"}
    assert "not completed" in dropped["failed"] and "duration_s" in dropped["untimed"]
    assert "max_train_steps" in dropped["no-steps"] and "plausible" in dropped["milliseconds"]
    assert "base model" in dropped["flux"]


def test_load_costs_of_an_empty_log_is_empty(tmp_path):
    with RunLog(tmp_path / "e.sqlite") as log:
        X, y, meta = load_costs(log)
    assert X.shape == (0, len(FEATURES)) and y.shape == (0,) and len(meta) == 0


# --------------------------------------------------------------------------- the recommendation
def test_runs_that_took_twice_their_estimate_double_the_recommended_minutes(tmp_path):
    learner = _learner(tmp_path, _timed_runs(2.0))
    assert learner.n_timed == 6 and learner.cost_model is not None
    rules = recommend(FACE).to_dict()
    rec = recommend(FACE, learner=learner).to_dict()
    assert rec["method"] == rules["method"] and rec["hyperparameters"] == rules["hyperparameters"]
    ratio = rec["estimates"]["minutes"] / rules["estimates"]["minutes"]
    assert ratio == pytest.approx(2.0, rel=0.25)
    assert rec["estimates"]["fits"] and rec["estimates"]["minutes"] <= FACE.time_budget_min
    said = next(r for r in rec["reasons"] if "published-speed estimate" in r)
    assert said.startswith("Your 6 logged run(s) took 2.0x (±")
    assert f"about {rec['estimates']['minutes']:.0f} min instead of {rules['estimates']['minutes']:.0f}" in said
    assert said in rec["estimates"]["savings"]
    assert f"{rec['estimates']['minutes']:.0f} of your 240 minutes" in rec["estimates"]["fits_reason"]
    time = rec["learned"]["time"]
    assert time["n_runs"] == 6 and time["factor"] == pytest.approx(2.0, rel=0.05) and 0 < time["factor_std"] < 0.3
    assert recommend(FACE, learner=learner).estimates.breakdown[-1] == said


def test_the_pace_joins_the_outcome_learning_when_runs_are_scored_too(tmp_path):
    learner = _learner(tmp_path, _timed_runs(2.0, scores=(3.5, 3.5, 4.0)))
    rec = recommend(FACE, learner=learner).to_dict()
    assert rec["learned"]["n_runs"] == 6 and rec["learned"]["time"]["n_runs"] == 6
    assert rec["reasons"][0].startswith("Your run log") and "published-speed estimate" in rec["reasons"][1]


def test_a_log_without_durations_leaves_the_time_alone(tmp_path):
    untimed = [RunRecord(**{**r.__dict__, "duration_s": None}) for r in _timed_runs(2.0)]
    learner = _learner(tmp_path, untimed)
    assert learner.cost_model is None and learner.n_runs == 0
    assert _canonical(recommend(FACE, learner=learner)) == _canonical(recommend(FACE))
    assert tuple(recommend(FACE, learner=learner).to_dict()) == JSON_KEYS
    # scored but untimed: the outcome learner works, the minutes are the rules'
    scored = [RunRecord(**{**r.__dict__, "duration_s": None, "score_accuracy": 3.5, "score_flexibility": 3.5,
                           "score_preservation": 4.0}) for r in _timed_runs(2.0)]
    rec = recommend(FACE, learner=_learner(tmp_path, scored, "scored.sqlite")).to_dict()
    assert "time" not in rec["learned"] and rec["estimates"] == recommend(FACE).to_dict()["estimates"]
    assert not any("published-speed" in r for r in rec["reasons"])


def test_fewer_timed_runs_than_the_minimum_change_nothing(tmp_path):
    learner = _learner(tmp_path, _timed_runs(2.0, n=COST_MIN_RUNS - 1))
    assert learner.cost_model is None and learner.n_timed == COST_MIN_RUNS - 1
    assert _canonical(recommend(FACE, learner=learner)) == _canonical(recommend(FACE))


@pytest.mark.parametrize("budget", [5, 8, 10, 15, 30, 60])
def test_a_plan_over_budget_at_the_users_pace_is_never_reported_as_fitting(budget, tmp_path):
    profile = Profile.from_dict({**FACE.to_dict(), "time_budget_min": budget})
    learner = _learner(tmp_path, _timed_runs(4.0))
    rules = recommend(profile).to_dict()
    assert rules["estimates"]["fits"]  # at the published speed every one of these budgets fits
    rec = recommend(profile, learner=learner).to_dict()
    est = rec["estimates"]
    assert est["minutes"] == pytest.approx(rec["learned"]["time"]["factor"] *
                                           rec["learned"]["time"]["minutes_published_speed"], abs=0.1)
    if est["fits"]:
        assert est["minutes"] <= budget
    else:
        assert "Nothing fits" in est["fits_reason"] and "pace" in est["fits_reason"]
    # the rules' own plan would have run over at 4x: the log shortened it or chose another
    assert 4 * rules["estimates"]["minutes"] > budget
    assert (rec["method"] != rules["method"] or rec["hyperparameters"] != rules["hyperparameters"]
            or not est["fits"])
    said = next(r for r in rec["reasons"] if "published-speed estimate" in r)
    assert ("so it is shortened" in said or f"so {rec['method']} instead" in said
            or f"It takes about {est['minutes']:.0f} min at your logged runs' pace" in said)


def test_a_switch_forced_by_the_pace_is_explained(tmp_path):
    profile = Profile.from_dict({**FACE.to_dict(), "time_budget_min": 10})
    rec = recommend(profile, learner=_learner(tmp_path, _timed_runs(4.0))).to_dict()
    assert rec["method"] != "dreambooth_lora" and rec["estimates"]["fits"]
    said = next(r for r in rec["reasons"] if "published-speed" in r)
    assert "The rules' dreambooth_lora plan takes about" in said and f"so {rec['method']} instead" in said
    assert rec["learned"]["changed"][0] == {"key": "method", "from": "dreambooth_lora", "to": rec["method"]}


def test_nothing_fitting_at_the_users_pace_is_reported_with_the_corrected_minutes(tmp_path):
    profile = Profile.from_dict({**FACE.to_dict(), "time_budget_min": 2})
    rec = recommend(profile, learner=_learner(tmp_path, _timed_runs(10.0))).to_dict()
    est = rec["estimates"]
    assert not est["fits"] and est["minutes"] > 2
    assert f"takes about {est['minutes']:.0f} min at your logged runs' pace" in est["fits_reason"]


def test_remedies_are_worded_at_the_users_pace(tmp_path):
    import re
    profile = Profile.from_dict({**FACE.to_dict(), "time_budget_min": 2})
    est = recommend(profile, learner=_learner(tmp_path, _timed_runs(4.0))).to_dict()["estimates"]
    assert not est["fits"]
    found = re.findall(r"a rented (.+?) \(\d+ GB\), where it takes about (\d+) min", est["fits_reason"])
    assert found, est["fits_reason"]
    name, minutes = found[0]
    assert int(minutes) <= 2  # the suggested card fits the budget at this user's pace ...
    rec = recommend(profile, learner=_learner(tmp_path / "again", _timed_runs(4.0))).to_dict()
    published = costs.estimate(rec["method"], "sd15", rec["train_config"], profile.n_images,
                               gpu=costs.find_gpu(name)).minutes
    assert int(minutes) >= round(published * 4) - 1  # ... counted at that pace, not the published speed


def test_a_faster_pace_shortens_the_estimate(tmp_path):
    rec = recommend(FACE, learner=_learner(tmp_path, _timed_runs(0.5))).to_dict()
    rules = recommend(FACE).to_dict()
    assert rec["estimates"]["minutes"] == pytest.approx(rules["estimates"]["minutes"] * 0.5, rel=0.25)
    assert "took 0.50x (±" in rec["estimates"]["savings"][-1]


# --------------------------------------------------------------------------- the chat's learner
def test_learner_for_log_uses_a_log_of_timed_unscored_runs(tmp_path):
    with RunLog(tmp_path / "runlog.sqlite") as log:
        log.upsert_many(_timed_runs(2.0))
    learner, note = learner_for_log(tmp_path / "runlog.sqlite")
    assert note is None and learner.n_runs == 0 and learner.n_timed == 6
    rec = recommend(FACE, learner=learner).to_dict()
    assert rec["learned"]["time"]["factor"] == pytest.approx(2.0, rel=0.05) and rec["similar_runs"] == []

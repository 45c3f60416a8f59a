"""advisor.learner: the estimator contract, featurize, and load_runs on messy run logs."""
import math

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from advisor.learning.estimators import FEATURES, TARGETS, RunOutcomeModel, featurize, load_runs, recipe
from advisor.profile import Profile
from advisor.runlog.store import RunLog
from advisor.runlog.records import RunRecord

PROFILE = Profile(subject_type="person", n_images=8, base_model="sd15", preservation=5).to_dict()
HP = {"learning_rate": 1e-4, "max_train_steps": 500, "train_batch_size": 1, "gradient_accumulation_steps": 1,
      "rank": 4, "prior_preservation": True, "train_text_encoder": False, "resolution": 512}


# --------------------------------------------------------------------------- the estimator
@pytest.mark.slow  # about 70 checks, some fit GPs on hundreds of rows: ~10 s idle, a minute on busy cores
@parametrize_with_checks([RunOutcomeModel(random_state=0)])
def test_sklearn_estimator_contract(estimator, check):
    # every check runs; the only one sklearn itself skips here is the array-API check,
    # which needs SCIPY_ARRAY_API set in the environment
    check(estimator)


def test_multi_output_with_uncertainty_that_grows_away_from_the_data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(40, 2))
    Y = np.column_stack([X[:, 0] ** 2, np.sin(2 * X[:, 1]), X[:, 0] - X[:, 1]]) + rng.normal(0, 0.02, (40, 3))
    model = RunOutcomeModel(random_state=0).fit(X, Y)
    mean, std = model.predict(X, return_std=True)
    assert mean.shape == std.shape == (40, 3)
    assert np.abs(mean - Y).mean() < 0.1
    _, far_std = model.predict(np.array([[8.0, 8.0]]), return_std=True)
    assert (far_std[0] > 3 * std.mean(axis=0)).all()


def test_one_row_falls_back_to_the_mean_with_a_wide_std():
    model = RunOutcomeModel(fallback_std=1.5).fit([[1.0, 2.0]], [[3.0, 4.0, 2.0]])
    mean, std = model.predict([[5.0, 5.0], [0.0, 0.0]], return_std=True)
    assert np.allclose(mean, [[3.0, 4.0, 2.0]] * 2)
    assert np.allclose(std, 1.5)


@pytest.mark.parametrize("param, value", [("min_samples", 0), ("fallback_std", -1.0), ("max_iter", 1.5),
                                          ("length_scale", "wide")])
def test_bad_parameters_are_refused_in_fit_naming_them(param, value):
    with pytest.raises(ValueError, match=param):
        RunOutcomeModel(**{param: value}).fit([[0.0], [1.0], [2.0]], [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------- featurize
def test_featurize_is_pure_and_deterministic():
    profile, hp = dict(PROFILE), dict(HP)
    a = featurize(profile, hp, "dreambooth_lora", "sd15")
    b = featurize(profile, hp, "dreambooth_lora", "sd15")
    assert profile == PROFILE and hp == HP  # inputs untouched
    assert a.shape == (len(FEATURES),) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    a[0] = 99.0  # the caller owns the array: a fresh one each call
    assert featurize(PROFILE, HP, "dreambooth_lora", "sd15")[0] != 99.0


def test_featurize_places_a_run_against_the_published_recipe():
    x = dict(zip(FEATURES, featurize(PROFILE, HP, "dreambooth_lora", "sd15")))
    assert x["method=dreambooth_lora"] == 1 and x["base=sd15"] == 1 and x["subject=person"] == 1
    assert x["log10_lr_vs_recipe"] == 0 and x["log10_views_vs_recipe"] == 0  # HP is the diffusers recipe
    assert x["log10_passes"] == pytest.approx(math.log10(500 / 8))
    assert x["log2_rank"] == 2 and x["prior_preservation"] == 1 and x["train_text_encoder"] == 0
    hot = dict(zip(FEATURES, featurize(PROFILE, {**HP, "learning_rate": 2e-4, "max_train_steps": 750},
                                       "dreambooth_lora", "sd15")))
    assert hot["log10_lr_vs_recipe"] == pytest.approx(math.log10(2))
    assert hot["log10_dose_vs_recipe"] == pytest.approx(math.log10(2 * 1.5))


def test_featurize_fills_missing_and_junk_values_with_defaults():
    x = dict(zip(FEATURES, featurize({}, {"learning_rate": "fast", "rank": None, "max_train_steps": -3},
                                     "lora", "sdxl")))
    assert np.isfinite(list(x.values())).all()
    assert x["log10_lr_vs_recipe"] == 0 and x["log10_views_vs_recipe"] == 0  # the recipe's own values
    assert x["log2_rank"] == 2  # TrainConfig's rank 4
    assert not any(x[f"subject={s}"] for s in ("person", "animal", "object", "style", "concept", "general"))


@pytest.mark.parametrize("method, base", [("hypernetwork", "sd15"), ("lora", "flux1"), (None, "sd15")])
def test_featurize_refuses_unknown_method_or_base(method, base):
    with pytest.raises(ValueError, match="method" if method != "lora" else "base_model"):
        featurize(PROFILE, HP, method, base)


def test_recipe_is_the_published_starting_point():
    assert recipe("dreambooth_lora", "sd15", "person", 8) == (1e-4, 500)
    assert recipe("textual_inversion", "sd15", "object", 5) == (5e-4, 3000 * 4)


# --------------------------------------------------------------------------- load_runs
def _run(run_id, **kw):
    base = dict(source="manual", method="dreambooth_lora", base_model="sd15", status="completed",
                hyperparameters=dict(HP), profile=PROFILE)
    return RunRecord(run_id=run_id, **{**base, **kw})


@pytest.fixture
def messy_log(tmp_path):
    with RunLog(tmp_path / "runlog.sqlite") as log:
        log.upsert_many([
            _run("scored", score_accuracy=3.5, score_flexibility=3.0, score_preservation=2.5),
            _run("rated", score_accuracy=3.5, score_flexibility=3.0, score_preservation=2.5,
                 rating_accuracy=5, rating_flexibility=4, rating_preservation=1),
            _run("half-rated", score_accuracy=3.0, score_flexibility=3.0, score_preservation=3.0),
            _run("nothing-yet", status="running"),
            _run("one-factor", score_accuracy=4.0),
            _run("no-method", method=None, score_accuracy=3, score_flexibility=3, score_preservation=3),
            _run("flux", base_model="flux1", profile=None, score_accuracy=3, score_flexibility=3,
                 score_preservation=3),
            _run("hub-id", base_model="stabilityai/stable-diffusion-xl-base-1.0", profile=None,
                 score_accuracy=2, score_flexibility=2, score_preservation=2),
            _run("junk-values", hyperparameters={"learning_rate": "fast", "max_train_steps": 0, "rank": "big",
                                                 "prior_preservation": "yes"},
                 score_accuracy=3, score_flexibility=4, score_preservation=5),
            _run("kohya-like", method="lora", profile={"base_model": "sd15"},
                 hyperparameters={"learning_rate": 1e-4, "max_train_steps": 1600, "num_train_images": 40},
                 rating_accuracy=4, rating_flexibility=4, rating_preservation=4),
        ])
        log.rate("half-rated", 2, 2, 2)
        yield log


def test_load_runs_keeps_usable_rows_and_says_why_others_are_left_out(messy_log):
    X, Y, meta = load_runs(messy_log)
    kept = list(meta["run_id"])
    assert set(kept) == {"scored", "rated", "half-rated", "hub-id", "junk-values", "kohya-like"}
    assert X.shape == (6, len(FEATURES)) and Y.shape == (6, len(TARGETS))
    assert np.isfinite(X).all() and ((Y >= 1) & (Y <= 5)).all()
    dropped = dict(meta.attrs["dropped"])
    assert set(dropped) == {"nothing-yet", "one-factor", "no-method", "flux"}
    assert "flexibility" in dropped["one-factor"] and "base model" in dropped["flux"]
    row = meta.set_index("run_id")
    y = dict(zip(meta["run_id"], Y.tolist()))
    assert y["rated"] == [5, 4, 1] and row.loc["rated", "target_from_preservation"] == "rating"  # rating wins
    assert y["scored"] == [3.5, 3.0, 2.5] and row.loc["scored", "target_from_accuracy"] == "score"
    assert row.loc["hub-id", "base_model"] == "sdxl"
    assert row.loc["kohya-like", "n_images"] == 40  # from kohya's num_train_images
    assert row.loc["junk-values", "prior_preservation"]  # "yes" read as on; the junk LR falls back to the recipe
    assert X[kept.index("junk-values"), FEATURES.index("log10_lr_vs_recipe")] == 0


def test_load_runs_reads_a_log_its_path_or_its_records(messy_log, tmp_path):
    X1, Y1, _ = load_runs(messy_log)
    X2, Y2, _ = load_runs(messy_log.path)
    X3, Y3, _ = load_runs(messy_log.records())
    assert np.array_equal(X1, X2) and np.array_equal(X1, X3) and np.array_equal(Y1, Y3)
    with RunLog(tmp_path / "empty.sqlite") as empty:
        X, Y, meta = load_runs(empty)
    assert X.shape == (0, len(FEATURES)) and Y.shape == (0, 3) and len(meta) == 0
    X, Y, meta = load_runs([])
    assert X.shape == (0, len(FEATURES))
    for wrong in (42, messy_log.to_dataframe(), [{"run_id": "a"}]):  # the DataFrame is the Runs tab's
        with pytest.raises(ValueError, match="RunLog"):
            load_runs(wrong)


def test_one_row_log_fits_and_predicts_with_wide_uncertainty(tmp_path):
    with RunLog(tmp_path / "one.sqlite") as log:
        log.upsert_run(_run("only", score_accuracy=3.0, score_flexibility=3.5, score_preservation=4.0))
        X, Y, _ = load_runs(log)
    model = RunOutcomeModel().fit(X, Y)
    mean, std = model.predict(X, return_std=True)
    assert np.allclose(mean, Y) and (std >= model.fallback_std).all()


def test_load_runs_tolerates_missing_and_wrong_typed_values():
    runs = [RunRecord(run_id="a", method="lora", base_model="sd15", score_accuracy=3, score_flexibility=3.0,
                      score_preservation=3.0, hyperparameters={"learning_rate": None},
                      profile={"n_images": "many"}),
            RunRecord(run_id="b", method=None, base_model="sd15", score_accuracy=3, score_flexibility=3,
                      score_preservation=3),
            RunRecord(run_id="c", method="lora", base_model=None, score_accuracy=3, score_flexibility=3,
                      score_preservation=3),
            RunRecord(run_id="d", method="lora", base_model="runwayml/stable-diffusion-v1-5", score_accuracy=3,
                      score_flexibility=3, score_preservation=3, hyperparameters={"learning_rate": "x"}),
            RunRecord(run_id="e", method="lora", base_model="my-sd15-merge-xl", score_accuracy=3,
                      score_flexibility=3, score_preservation=3)]
    X, Y, meta = load_runs(runs)
    assert list(meta["run_id"]) == ["a", "d"] and np.isfinite(X).all() and Y.tolist() == [[3, 3, 3]] * 2
    assert meta.set_index("run_id").loc["d", "base_model"] == "sd15"  # an older hub id of SD 1.5
    # nothing is guessed from parts of a name: "...-xl" is not SDXL
    assert [why for _, why in meta.attrs["dropped"]] == ["method None unknown", "base model None is not sd15, "
                                                         "sd21, sdxl, flux1dev, sd35large, zimage, klein4b or qwenimage", "base model 'my-sd15-merge-xl' is not "
                                                         "sd15, sd21, sdxl, flux1dev, sd35large, zimage, klein4b or qwenimage"]
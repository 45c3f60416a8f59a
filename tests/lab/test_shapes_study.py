"""The shapes-world study (issue 15): candidates from the advisor, rank correlation, and the learner
measured on real fine-tunes of the demo model against the ground truth."""
import math

import pytest

from lab import shapes_study as study
from trainer.shapes.experiment import GroundTruth


class TestRankCorrelation:
    def test_spearman_is_one_for_any_increasing_relation_and_minus_one_reversed(self):
        x = [0.1, 0.5, 0.2, 0.9, 0.7]
        assert study.spearman(x, [v ** 3 for v in x]) == pytest.approx(1.0)
        assert study.spearman(x, [-math.exp(v) for v in x]) == pytest.approx(-1.0)

    def test_ties_get_their_average_rank(self):
        assert list(study._ranks(__import__("numpy").array([3.0, 1.0, 3.0, 2.0]))) == [2.5, 0.0, 2.5, 1.0]
        assert study.spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)

    def test_constant_or_short_input_has_no_correlation(self):
        assert study.spearman([1, 1, 1, 1], [1, 2, 3, 4]) is None
        assert study.spearman([1, 2], [1, 2]) is None

    def test_per_factor_over_runs_skips_runs_without_our_score(self):
        def result(truth, ours):
            return study.RunResult(study.candidate_of("lora", {"learning_rate": 1e-4, "max_train_steps": 100}), "x",
                                   GroundTruth(*truth), ours, 1.0)
        runs = [result((0.1, 0.1, 0.9), {"accuracy": 1.0, "flexibility": 2.0, "preservation": 5.0}),
                result((0.5, 0.3, 0.6), {"accuracy": 2.0, "flexibility": 1.0, "preservation": 4.0}),
                result((0.9, 0.2, 0.2), {"accuracy": 3.0, "flexibility": 3.0, "preservation": None}),
                result((0.7, 0.4, 0.1), {"accuracy": 2.5, "flexibility": 4.0, "preservation": 1.0})]
        rho = study.rank_correlation(runs)
        assert rho["accuracy"] == pytest.approx(1.0)
        assert rho["preservation"] == pytest.approx(1.0)     # three runs carry a preservation score
        assert -1.0 <= rho["flexibility"] <= 1.0


class TestCandidates:
    def test_the_advisor_plans_the_candidates_and_they_are_distinct(self):
        candidates = study.candidate_runs()
        assert len(candidates) == len(set(candidates)) >= 10
        assert {"lora", "dreambooth_lora", "dreambooth", "full_finetune"} <= {c.method for c in candidates}
        for c in candidates:
            s = c.settings
            assert s["learning_rate"] > 0 and s["max_train_steps"] >= 1 and set(s) <= set(study.PLAN_KEYS)

    def test_a_recommendation_maps_back_onto_its_candidate(self):
        from advisor.recommendation.recommend import recommend

        rec = recommend(study.PROFILE)
        assert study.candidate_of(rec.method, rec.hyperparameters) in study.candidate_runs()

    def test_true_utility_weighs_the_truth_on_the_1_to_5_scale(self):
        r = study.RunResult(study.candidate_runs()[0], "x", GroundTruth(1.0, 0.5, 0.0), {}, 0.0)
        assert r.true_scores() == {"accuracy": 5.0, "flexibility": 3.0, "preservation": 1.0}
        w = {"accuracy": 5 / 11, "flexibility": 3 / 11, "preservation": 3 / 11}
        assert study.utility(study.PROFILE, r.true_scores()) == pytest.approx(5 * w["accuracy"] + 3 * w["flexibility"] + w["preservation"])



class TestDemoScale:
    def test_a_plan_runs_at_the_demo_models_scale_in_the_same_order(self):
        plan = {"learning_rate": 1e-4, "max_train_steps": 200, "lr_warmup_steps": 10, "train_batch_size": 1,
                "gradient_accumulation_steps": 4, "rank": 4}
        demo = study.DemoScale(learning_rate=10.0, steps=3.0).apply(plan)
        assert demo == {"learning_rate": pytest.approx(1e-3), "max_train_steps": 600, "lr_warmup_steps": 30,
                        "train_batch_size": 4, "gradient_accumulation_steps": 1, "rank": 4}
        assert plan["max_train_steps"] == 200                        # the plan itself is left as written
        longer = study.DemoScale().apply({**plan, "max_train_steps": 300})
        assert longer["max_train_steps"] > study.DemoScale().apply(plan)["max_train_steps"]

    def test_a_plan_without_warmup_or_accumulation_keeps_them_unset(self):
        demo = study.DemoScale().apply({"learning_rate": 5e-6, "max_train_steps": 400, "lr_warmup_steps": 0})
        assert demo["lr_warmup_steps"] == 0 and "train_batch_size" not in demo


@pytest.mark.slow
def test_a_log_of_real_runs_makes_the_pick_no_worse_than_the_rules(tmp_path):
    # real fine-tunes of the demo model, each logged from its run folder into a real SQLite run log;
    # at the plans' own steps (the benchmark's x3 teaches more, at three times the minutes)
    world = study.World(tmp_path, n_prompts=6, scale=study.DemoScale(steps=1.0))
    results = {}
    out = study.learner_regret(results, lambda c: world.run(c, f"r{len(results):02d}"), counts=(0, 4), seed=0,
                               log_path=tmp_path / "runlog.sqlite")
    assert out["learned"][0] == pytest.approx(out["rules"])      # an empty log: the rules' own pick
    assert out["learned"][4] <= out["rules"] + 1e-9, out
    from advisor.runlog.store import RunLog
    with RunLog(tmp_path / "runlog.sqlite") as log:
        assert len(log) == 4 and all(r["status"] == "completed" for r in log.list_runs())


@pytest.mark.slow
def test_runs_in_worker_processes_match_the_same_runs_in_this_one(tmp_path):
    # two short real fine-tunes (a tenth of the plans' steps), once in two worker processes, once here
    lora = [c for c in study.candidate_runs() if c.method == "lora"][:2]
    world = study.World(tmp_path, n_prompts=2, scale=study.DemoScale(steps=0.05))
    jobs = [(c, f"w{i}") for i, c in enumerate(lora)]
    parallel = list(world.run_many(jobs, workers=2))
    here = list(world.run_many([(c, f"h{i}") for i, c in enumerate(lora)], workers=1))
    assert [r.candidate for r in parallel] == lora == [r.candidate for r in here]
    for a, b in zip(parallel, here):
        assert a.truth == b.truth and a.ours == b.ours
        assert (tmp_path / "runs" / f"w{lora.index(a.candidate)}" / "metrics.json").is_file()

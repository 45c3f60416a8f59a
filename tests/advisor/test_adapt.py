"""advisor.learning: the run log moving a recommendation, and leaving it alone when it should."""
import json

import pytest

from advisor import chat
from advisor.learning.candidates import MOVES, candidate_plans, signature
from advisor.learning.log_learner import LogLearner, learner_for_log
from advisor.profile import Profile
from advisor.recommendation.recommend import JSON_KEYS, LEARNED_KEYS, recommend
from advisor.runlog.store import RunLog
from advisor.runlog.records import RunRecord

# A face, a mid-range card, and a user who cares most about preservation: the rules pick
# DreamBooth-LoRA at the diffusers recipe (1e-4, 500 steps, rank 4, prior preservation).
FACE = Profile(subject_type="person", class_noun="woman", n_images=8, base_model="sd15", vram_gb=24,
               time_budget_min=240, accuracy=3, flexibility=3, preservation=5)
PROFILES = [
    FACE,
    Profile(subject_type="style", n_images=30, captions=True, vram_gb=12, time_budget_min=120),
    Profile(subject_type="concept", n_images=5, preservation=5, max_output_mb=0.1, vram_gb=8, time_budget_min=240),
    Profile(subject_type="animal", class_noun="dog", n_images=5, accuracy=5, vram_gb=24, time_budget_min=120),
    Profile(subject_type="object", n_images=12, base_model="sdxl", vram_gb=12, time_budget_min=30),  # nothing fits
    Profile(subject_type="person", n_images=6, vram_gb=6, time_budget_min=10),  # only the adapters fit
]


def _record(run_id, profile, method, hp, scores, rating=None):
    extra = {f"rating_{f}": v for f, v in zip(("accuracy", "flexibility", "preservation"), rating)} if rating else {}
    return RunRecord(run_id=run_id, source="manual", method=method, base_model=profile.base_model,
                     status="completed", hyperparameters={k: v for k, v in hp.items() if v is not None},
                     profile=profile.to_dict(), score_accuracy=scores[0], score_flexibility=scores[1],
                     score_preservation=scores[2], **extra)


def _canonical(rec) -> str:
    return json.dumps(rec.to_dict(), sort_keys=True)


@pytest.fixture
def empty_log(tmp_path):
    with RunLog(tmp_path / "empty.sqlite") as log:
        yield log


@pytest.fixture
def high_lr_hurts(tmp_path):
    """Eight face runs: at 1e-4 and 2e-4 preservation collapsed, at 5e-5 it held."""
    rules = recommend(FACE)
    hp = rules.hyperparameters
    runs = []
    for i, (lr, pres, acc) in enumerate([(2e-4, 1.6, 3.7), (1e-4, 2.1, 3.6), (2e-4, 1.5, 3.8), (1e-4, 2.0, 3.5),
                                         (1e-4, 2.2, 3.6), (5e-5, 4.1, 3.4), (5e-5, 4.3, 3.5), (5e-5, 4.0, 3.3)]):
        runs.append(_record(f"face-{i}", FACE, rules.method, {**hp, "learning_rate": lr}, (acc, 3.5, pres),
                            rating=(4, 3, 2) if i == 1 else None))
    with RunLog(tmp_path / "runlog.sqlite") as log:
        log.upsert_many(runs)
        yield log


# --------------------------------------------------------------------------- no data, no change
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: f"{p.subject_type}-{p.vram_gb:g}GB")
def test_empty_log_gives_the_rules_recommendation_byte_for_byte(profile, empty_log):
    learner = LogLearner.fit(empty_log)
    assert learner.n_runs == 0
    assert _canonical(recommend(profile, learner=learner)) == _canonical(recommend(profile))
    assert tuple(recommend(profile, learner=learner).to_dict()) == JSON_KEYS


def test_a_log_of_only_unscored_runs_is_an_empty_log(tmp_path):
    with RunLog(tmp_path / "r.sqlite") as log:
        log.upsert_run(RunRecord(run_id="running", method="lora", base_model="sd15", status="running"))
        learner = LogLearner.fit(log)
    assert learner.n_runs == 0 and learner.dropped == [("running", "no rating or score for accuracy, "
                                                                   "flexibility, preservation")]
    assert _canonical(recommend(FACE, learner=learner)) == _canonical(recommend(FACE))


def test_one_run_does_not_move_the_recommendation(tmp_path):
    rules = recommend(FACE)
    with RunLog(tmp_path / "r.sqlite") as log:
        log.upsert_run(_record("one", FACE, rules.method, rules.hyperparameters, (2.0, 2.0, 2.0)))
        learner = LogLearner.fit(log)
    rec = recommend(FACE, learner=learner).to_dict()
    assert rec["method"] == rules.method and rec["hyperparameters"] == rules.hyperparameters
    assert rec["learned"]["n_runs"] == 1 and rec["learned"]["changed"] == []
    assert 0 < rec["learned"]["data_weight"] <= 0.25
    assert rec["similar_runs"][0]["id"] == "one"


# --------------------------------------------------------------------------- the log says so
def test_high_learning_rate_that_hurt_preservation_moves_the_recommendation(high_lr_hurts):
    rules = recommend(FACE).to_dict()
    rec = recommend(FACE, learner=LogLearner.fit(high_lr_hurts)).to_dict()
    assert tuple(rec) == JSON_KEYS + LEARNED_KEYS
    assert rec["method"] == rules["method"]
    assert rec["hyperparameters"]["learning_rate"] < rules["hyperparameters"]["learning_rate"]
    assert rec["train_config"]["learning_rate"] == rec["hyperparameters"]["learning_rate"]
    why = rec["reasons"][0]
    assert why.startswith("Your run log changed the learning rate from 1e-4 to 5e-5")
    # the three runs at the rules' 1e-4 scored 2.0 (a rating), 2.0 and 2.2 on preservation
    assert "your 3 similar person dreambooth lora run(s) at 1e-4 scored 2.1 on preservation" in why
    assert rec["learned"]["n_runs"] == 8 and rec["learned"]["data_weight"] > 0.3
    assert rec["learned"]["changed"] == [{"key": "learning_rate", "from": 1e-4, "to": 5e-5}]
    assert rec["learned"]["utility"]["recommended"] > rec["learned"]["utility"]["rules"]
    assert rec["predicted"]["preservation"]["score"] > 3.5 and "your run log" in rec["predicted"]["preservation"]["basis"]
    shown = rec["similar_runs"]
    assert {r["id"] for r in shown[:3]} == {"face-5", "face-6", "face-7"}  # the runs at 5e-5 first
    assert all(r["method"] == rec["method"] and set(r["scores"]) == {"accuracy", "flexibility", "preservation"}
               for r in shown)
    assert {r["id"]: r["from"]["preservation"] for r in shown}["face-1"] == "rating"  # the user's rating won


def test_a_user_who_weights_accuracy_is_not_moved_by_the_same_log(high_lr_hurts):
    careless = Profile.from_dict({**FACE.to_dict(), "accuracy": 5, "preservation": 1, "flexibility": 1})
    rules = recommend(careless).to_dict()
    rec = recommend(careless, learner=LogLearner.fit(high_lr_hurts)).to_dict()
    assert rec["hyperparameters"]["learning_rate"] >= rules["hyperparameters"]["learning_rate"]


def test_more_steps_that_scored_better_raise_the_steps_when_they_fit(tmp_path):
    rules = recommend(FACE)
    hp = rules.hyperparameters
    runs = [_record(f"s{i}", FACE, rules.method, {**hp, "max_train_steps": steps}, (acc, 3.5, 4.4))
            for i, (steps, acc) in enumerate([(500, 2.2), (500, 2.4), (500, 2.3), (750, 4.4), (750, 4.6), (750, 4.5)])]
    with RunLog(tmp_path / "r.sqlite") as log:
        log.upsert_many(runs)
        learner = LogLearner.fit(log)
    rec = recommend(FACE, learner=learner).to_dict()
    assert rec["hyperparameters"]["max_train_steps"] == 750
    assert rec["estimates"]["minutes"] <= FACE.time_budget_min
    assert "max train steps from 500 to 750" in rec["reasons"][0] and "accuracy" in rec["reasons"][0]


# --------------------------------------------------------------------------- the budget
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: f"{p.subject_type}-{p.vram_gb:g}GB")
def test_adaptation_never_goes_over_budget(profile, high_lr_hurts, tmp_path):
    # a log that rewards every "more" move: high LR, more steps, higher rank, text encoder on
    rules = recommend(profile)
    runs = []
    for i, move in enumerate(MOVES):
        hp = move.apply({**rules.hyperparameters, "rank": rules.hyperparameters.get("rank", 4)}, rules.method,
                        profile.with_defaults()[0])
        if hp is not None:
            runs += [_record(f"m{i}-{k}", profile, rules.method, hp, (5.0, 5.0, 5.0)) for k in range(3)]
    with RunLog(tmp_path / "greedy.sqlite") as log:
        log.upsert_many(runs)
        greedy = LogLearner.fit(log)
    filled = profile.with_defaults()[0]
    for learner in (greedy, LogLearner.fit(high_lr_hurts)):
        rec = recommend(profile, learner=learner).to_dict()
        est = rec["estimates"]
        if not est["fits"]:  # nothing fits: the log leaves the closest rules plan as it is
            assert _canonical_body(rec) == _canonical_body(rules.to_dict())
            assert rec["reasons"][0].startswith("Nothing fits your limits") and rec["learned"]["changed"] == []
            continue
        assert est["vram_gb"] <= filled.vram_gb and est["minutes"] <= filled.time_budget_min
        if filled.max_output_mb is not None:
            assert est["output_mb"] <= filled.max_output_mb


def _canonical_body(rec: dict) -> str:
    return json.dumps({k: rec[k] for k in ("method", "hyperparameters", "estimates")}, sort_keys=True)


def test_every_candidate_fits_and_moves_apply_only_where_the_method_has_the_knob():
    class Probe:
        def adapt(self, profile, plans, chosen, *, gpu, vram):
            self.seen = (profile, plans, gpu, vram)

    for profile in PROFILES:
        probe = Probe()
        fits = recommend(profile, learner=probe).estimates.fits
        filled, plans, gpu, vram = probe.seen
        found = candidate_plans(filled, plans, gpu, vram)
        assert bool(found) == fits and len({signature(p) for p, _, _ in found}) == len(found)
        assert {p.method for p, _, _ in found} == {p.method for p in plans if not p.problems}
        for plan, origin, moves in found:
            assert not plan.problems and plan.estimate.vram_gb <= vram
            assert plan.estimate.minutes <= filled.time_budget_min
            assert all(m.applies(plan.method) for m in moves)
            if plan.hp.get("prior_preservation"):
                assert plan.method in ("dreambooth", "dreambooth_lora") and plan.hp["class_prompt"]
            if plan.hp.get("train_text_encoder"):
                assert plan.hp["text_encoder_lr"] == pytest.approx(plan.hp["learning_rate"] / 2)


def test_a_learner_needs_adapt_or_adjust():
    with pytest.raises(ValueError, match="learner"):
        recommend(FACE, learner=object())


# --------------------------------------------------------------------------- the chat's learner
def test_learner_for_log_without_a_file_is_none_and_creates_nothing(tmp_path):
    path = tmp_path / "absent.sqlite"
    assert learner_for_log(path) == (None, None)
    assert not path.exists()


def test_learner_for_log_is_cached_until_the_log_changes(high_lr_hurts):
    first, note = learner_for_log(high_lr_hurts.path)
    assert note is None and first.n_runs == 8
    assert learner_for_log(high_lr_hurts.path)[0] is first
    high_lr_hurts.rate("face-0", 1, 1, 1)
    second, _ = learner_for_log(high_lr_hurts.path)
    assert second is not first and second.n_runs == 8


def test_learner_for_log_reports_a_corrupt_file_in_one_line(tmp_path):
    path = tmp_path / "runlog.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    learner, note = learner_for_log(path)
    assert learner is None and "rules only" in note and "\n" not in note
    assert path.read_bytes() == b"this is not a database" * 100  # left as it was


def _chat(monkeypatch, path):
    monkeypatch.setenv("FTA_RUNLOG", str(path))
    return chat.play(["8 photos of my wife, 24GB card, 4 hours", "preservation 5", "recommend now"],
                     answer_question=lambda q: ("", []))


def test_chat_still_recommends_when_the_log_is_corrupt(monkeypatch, tmp_path):
    path = tmp_path / "runlog.sqlite"
    path.write_bytes(b"\x00garbage" * 50)
    out = _chat(monkeypatch, path)
    assert out["recommendation"] is not None and "learned" not in out["recommendation"]
    said = [m["content"] for m in out["transcript"] if m["role"] == "assistant"]
    assert sum("could not be used" in m and "rules only" in m for m in said) == 1  # once, when recommending


def test_chat_without_a_log_is_unchanged(monkeypatch, tmp_path):
    out = _chat(monkeypatch, tmp_path / "none.sqlite")
    plain = recommend(chat.Profile.from_dict(out["profile"])).to_dict()
    assert out["recommendation"] == plain
    assert not any("run log" in m["content"] for m in out["transcript"])


def test_chat_learns_from_the_log(monkeypatch, high_lr_hurts):
    out = _chat(monkeypatch, high_lr_hurts.path)
    rec = out["recommendation"]
    assert rec["learned"]["n_runs"] == 8 and rec["similar_runs"]
    assert rec["reasons"][0].startswith("Your run log")

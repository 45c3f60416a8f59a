"""Rules are data: every row is valid, cites a real card, can fire, and keeps the preservation
invariant; the engine (`match`, `score`, `advice`) is small and predictable."""
import pytest

from advisor.knowledge.cards import cards_by_id
from advisor.profile import Profile
from advisor.recommendation.recommend import recommend
from advisor.recommendation.rules import (ADJUSTMENTS, CARD_IDS, DEFAULT_RULES, OPS, PREFERENCE_BONUS, STANDING, Rule, advice,
                                          match, score)
from trainer.vocabulary import FACTORS, INVASIVENESS, METHOD_NAMES


def test_rule_ids_unique():
    ids = [r.id for r in DEFAULT_RULES]
    assert len(ids) == len(set(ids))


def test_every_source_is_a_real_card():
    cards = cards_by_id()
    assert set(CARD_IDS) <= set(cards), sorted(set(CARD_IDS) - set(cards))
    assert all(r.source in cards for r in DEFAULT_RULES)


def _satisfying_profile(rule: Rule) -> Profile:
    """A profile for which every condition of `rule` holds, built from the conditions alone."""
    by_field: dict[str, list] = {}
    for name, op, value in rule.conditions:
        by_field.setdefault(name, []).append((op, value))
    data = {}
    for name, conds in by_field.items():
        options = []
        for op, value in conds:
            if op in ("in",):
                options += list(value)
            elif isinstance(value, bool) or isinstance(value, str):
                options.append(value)
            else:
                options += [value, value / 2, value - 1, value + 1, value * 2]
        if name in ("n_images", "accuracy", "flexibility", "preservation", "n_runs"):
            options = [int(o) for o in options if float(o).is_integer()]
        good = [o for o in options if all(OPS[op](o, v) for op, v in conds)]
        assert good, f"rule {rule.id}: no value satisfies {conds}"
        data[name] = good[0]
    return Profile(**data)


@pytest.mark.parametrize("rule", DEFAULT_RULES, ids=lambda r: r.id)
def test_every_rule_can_fire(rule):
    assert rule in match(DEFAULT_RULES, _satisfying_profile(rule))


@pytest.mark.parametrize("rule", DEFAULT_RULES, ids=lambda r: r.id)
def test_every_rule_does_something(rule):
    assert rule.scores or rule.advice
    assert rule.why.strip() and "\n" not in rule.why


def test_unknown_values_never_match():
    assert match(DEFAULT_RULES, Profile()) == []


def test_all_conditions_must_hold():
    rule = Rule("t", (("n_images", ">=", 3), ("n_images", "<=", 10)), {"lora": 1}, "why", "method-lora")
    assert match([rule], Profile(n_images=5)) == [rule]
    assert match([rule], Profile(n_images=11)) == []
    assert match([rule], Profile(n_images=2)) == []


def test_in_operator_and_order_kept():
    a = Rule("a", (("subject_type", "in", ("person", "animal")),), {"lora": 1}, "why", "method-lora")
    b = Rule("b", (), {"lora": 1}, "why", "method-lora")
    assert match([b, a], Profile(subject_type="animal")) == [b, a]
    assert match([b, a], Profile(subject_type="style")) == [b]


@pytest.mark.parametrize("kwargs,message", [
    ({"source": "no-such-card"}, "source"),
    ({"conditions": (("favourite_colour", "==", "red"),)}, "condition"),
    ({"conditions": (("n_images", "~", 3),)}, "condition"),
    ({"effect": {"dora": 1}}, "effect"),
    ({"effect": {"hp": {"learning_rate": 1}}}, "effect"),
    ({"why": ""}, "why"),
])
def test_bad_rules_are_rejected(kwargs, message):
    row = {"id": "x", "conditions": (), "effect": {"lora": 1}, "why": "because", "source": "method-lora", **kwargs}
    with pytest.raises(ValueError, match=message):
        Rule(**row)


def test_score_sums_deltas_and_breaks_ties_towards_less_invasive():
    rules = [Rule("a", (), {"dreambooth": 2, "lora": 1}, "w", "method-lora"),
             Rule("b", (), {"lora": 1, "textual_inversion": 2}, "w", "method-lora")]
    ranked = score(rules)
    assert [m for m, _ in ranked[:3]] == ["textual_inversion", "lora", "dreambooth"]
    assert dict(ranked) == {"textual_inversion": 2, "lora": 2, "dreambooth": 2, "dreambooth_lora": 0, "full_finetune": 0}
    assert {m for m, _ in score([])} == set(METHOD_NAMES)


def test_later_advice_overrides_earlier():
    a = Rule("a", (), {"hp": {"train_text_encoder": True}}, "w", "text-encoder-training")
    b = Rule("b", (), {"hp": {"train_text_encoder": False}}, "w", "text-encoder-training")
    assert advice([a, b])["train_text_encoder"] == (False, b)


def test_flexibility_overrides_face_text_encoder_advice():
    face = Profile(subject_type="person", accuracy=5, flexibility=5, base_model="sd15")
    assert advice(match(DEFAULT_RULES, face))["train_text_encoder"][0] is False
    face.flexibility = 3
    assert advice(match(DEFAULT_RULES, face))["train_text_encoder"][0] is True


def test_preservation_rules_never_favour_more_invasive_methods():
    """A rule that turns on as preservation rises must not raise a more invasive method relative
    to a less invasive one; a rule that turns off must not favour a less invasive one."""
    for rule in DEFAULT_RULES:
        ops = [op for name, op, _ in rule.conditions if name == "preservation"]
        if not ops:
            continue
        assert all(op in ("<", "<=", ">", ">=") for op in ops), rule.id
        deltas = [rule.scores.get(m, 0.0) for m in INVASIVENESS]
        if not any(deltas):   # hyperparameter advice only (prior preservation on a flow model): favours no method
            continue
        if all(op in (">", ">=") for op in ops):
            assert deltas == sorted(deltas, reverse=True), rule.id
        elif all(op in ("<", "<=") for op in ops):
            assert deltas == sorted(deltas), rule.id
        else:
            pytest.fail(f"{rule.id}: a preservation band is not monotone")


def test_published_relative_standings():
    for method in METHOD_NAMES:
        assert set(STANDING[method]) == set(FACTORS)
        for value, basis in STANDING[method].values():
            assert 1 <= value <= 5 and basis
    acc = {m: STANDING[m]["accuracy"][0] for m in METHOD_NAMES}
    pres = {m: STANDING[m]["preservation"][0] for m in METHOD_NAMES}
    flex = {m: STANDING[m]["flexibility"][0] for m in METHOD_NAMES}
    # DreamBooth paper Table 1: DreamBooth beats textual inversion on DINO and CLIP-T
    assert acc["dreambooth"] > acc["textual_inversion"] and flex["dreambooth"] > flex["textual_inversion"]
    # preservation falls with invasiveness
    assert [pres[m] for m in INVASIVENESS] == sorted((pres[m] for m in INVASIVENESS), reverse=True)
    assert all(factor in ("accuracy", "flexibility", "preservation") for _, d, _ in ADJUSTMENTS for factor in d)


# --------------------------------------------------------------------------- a method asked for by name
# A profile where no method stands out: a concept, a mid-sized set, a big card and a long budget,
# so every method fits and the rules' scores lie within PREFERENCE_BONUS of each other.
NEUTRAL = dict(subject_type="concept", n_images=50, captions=False, accuracy=3, flexibility=3, preservation=3,
               vram_gb=80.0, time_budget_min=600.0, n_runs=3, base_model="sd15")


def test_a_preference_condition_matches_only_its_method():
    rule = Rule("t", (("preferred_method", "==", "lora"),), {"lora": 1}, "why", "choosing-a-method")
    assert match([rule], Profile(preferred_method="lora")) == [rule]
    assert match([rule], Profile(preferred_method="dreambooth")) == []
    assert match([rule], Profile()) == []


def test_neutral_profile_is_neutral():
    ranked = score(match(DEFAULT_RULES, Profile(**NEUTRAL)))
    assert ranked[0][1] - ranked[-1][1] < PREFERENCE_BONUS


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_preference_is_respected_in_a_neutral_profile(method):
    rec = recommend(Profile(**NEUTRAL, preferred_method=method))
    assert rec.method == method and rec.estimates.fits
    asked = [r for r in rec.reasons if r.startswith("You asked for")]
    assert asked and asked[0].endswith("]")
    assert any(c["card"] == "choosing-a-method" for c in rec.citations)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_has_exactly_one_preference_rule(method):
    rows = [r for r in DEFAULT_RULES if ("preferred_method", "==", method) in r.conditions]
    assert len(rows) == 1 and rows[0].scores == {method: PREFERENCE_BONUS}
    assert rows[0].why.startswith("You asked for") and rows[0].source == "choosing-a-method"


def test_preference_is_comparable_to_two_typical_rules():
    """Clear, not overwhelming: about two rules' worth, a rule's worth being the mean of the
    strongest push each other method rule gives."""
    pushes = [max(r.scores.values()) for r in DEFAULT_RULES
              if r.scores and max(r.scores.values()) > 0 and not r.id.startswith("asked-")]
    typical = sum(pushes) / len(pushes)
    assert 1.5 * typical <= PREFERENCE_BONUS <= 2.5 * typical


def test_preference_does_not_break_budget_limits():
    """Full fine-tune asked for on a 6 GB card with a sub-megabyte cap: only textual inversion fits."""
    rec = recommend(Profile(**{**NEUTRAL, "vram_gb": 6.0, "max_output_mb": 0.5}, preferred_method="full_finetune"))
    assert rec.method == "textual_inversion" and rec.estimates.fits
    why_not = {a["method"]: a["why_not"] for a in rec.alternatives}
    assert "GPU memory" in why_not["full_finetune"] and "6 GB" in why_not["full_finetune"]


def test_preference_loses_where_it_is_a_clearly_poor_fit():
    # a face that must be exact: textual inversion is the worst fit (DINO 0.569 vs 0.668)
    face = Profile(subject_type="person", accuracy=5, n_images=15, vram_gb=24.0, preferred_method="textual_inversion")
    rec = recommend(face)
    assert rec.method != "textual_inversion"
    why_not = {a["method"]: a["why_not"] for a in rec.alternatives}
    assert "Ranked lower" in why_not["textual_inversion"]
    # ten photos of a pet: a full fine-tune overfits and forgets
    pet = Profile(subject_type="animal", n_images=10, vram_gb=24.0, preferred_method="full_finetune")
    assert recommend(pet).method != "full_finetune"

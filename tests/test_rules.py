"""Rules are data: every row is valid, cites a real card, can fire, and keeps the preservation
invariant; the engine (`match`, `score`, `advice`) is small and predictable."""
import pytest

from advisor.knowledge import cards_by_id
from advisor.profile import FACTORS, Profile
from advisor.rules import (ADJUSTMENTS, CARD_IDS, DEFAULT_RULES, INVASIVENESS, METHODS, OPS, STANDING, Rule,
                           advice, match, score)


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
    assert {m for m, _ in score([])} == set(METHODS)


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
        if all(op in (">", ">=") for op in ops):
            assert deltas == sorted(deltas, reverse=True), rule.id
        elif all(op in ("<", "<=") for op in ops):
            assert deltas == sorted(deltas), rule.id
        else:
            pytest.fail(f"{rule.id}: a preservation band is not monotone")


def test_published_relative_standings():
    for method in METHODS:
        assert set(STANDING[method]) == set(FACTORS)
        for value, basis in STANDING[method].values():
            assert 1 <= value <= 5 and basis
    acc = {m: STANDING[m]["accuracy"][0] for m in METHODS}
    pres = {m: STANDING[m]["preservation"][0] for m in METHODS}
    flex = {m: STANDING[m]["flexibility"][0] for m in METHODS}
    # DreamBooth paper Table 1: DreamBooth beats textual inversion on DINO and CLIP-T
    assert acc["dreambooth"] > acc["textual_inversion"] and flex["dreambooth"] > flex["textual_inversion"]
    # preservation falls with invasiveness
    assert [pres[m] for m in INVASIVENESS] == sorted((pres[m] for m in INVASIVENESS), reverse=True)
    assert all(factor in ("accuracy", "flexibility", "preservation") for _, d, _ in ADJUSTMENTS for factor in d)

"""The public Hypothesis strategies: valid payloads pass the spec, invalid ones break exactly their labelled rule."""

from __future__ import annotations

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from contracts import MODELS, PayloadError
from contracts.strategies import BrokenRule, invalid_cases, invalid_payloads, valid_payloads

SPECS = list(MODELS.values())
models = st.sampled_from(SPECS)
# No deadline: a test never asserts wall-clock time, and Hypothesis' default one (200 ms) failed these
# on a busy machine when one draw of a filtered text took longer (FlakyFailure: unreliable timings).
UNTIMED = {"deadline": None}


@settings(max_examples=300, **UNTIMED)
@given(st.data())
def test_valid_payloads_pass_validation(data: st.DataObject) -> None:
    spec = data.draw(models)
    spec.validate(data.draw(valid_payloads(spec)))


@settings(max_examples=500, **UNTIMED)
@given(st.data())
def test_invalid_payloads_break_exactly_the_labelled_rule(data: st.DataObject) -> None:
    spec = data.draw(models)
    payload, broken = data.draw(invalid_payloads(spec.slug))
    with pytest.raises(PayloadError) as raised:
        spec.validate(payload)
    assert [BrokenRule(error.param, error.rule) for error in raised.value.errors] == [broken]


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.slug)
def test_every_documented_rule_has_a_boundary_case(spec) -> None:
    rules = {broken for _, broken in invalid_cases(spec)}
    for param in spec.params:
        assert BrokenRule(param.name, "type") in rules
        assert (BrokenRule(param.name, "minimum") in rules) == (param.minimum is not None)
        assert (BrokenRule(param.name, "maximum") in rules) == (param.maximum is not None)
        assert (BrokenRule(param.name, "enum") in rules) == (param.enum is not None)
        assert (BrokenRule(param.name, "required") in rules) == param.required
    for payload, broken in invalid_cases(spec):
        param = spec.param(broken.param)
        if broken.rule == "minimum":
            assert param.minimum - 1 <= payload[param.name] < param.minimum  # just outside
        if broken.rule == "maximum":
            assert param.maximum < payload[param.name] <= param.maximum + 1
        if broken.rule == "required":
            assert param.name not in payload


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.slug)
def test_valid_payloads_reach_every_boundary_and_enum_value(spec) -> None:
    strategy = valid_payloads(spec)
    for param in spec.params:
        targets = [*(param.enum or ()), *(bound for bound in (param.minimum, param.maximum) if bound is not None)]
        for target in targets:
            found = find(strategy, lambda payload, name=param.name, target=target: payload.get(name) == target)
            assert found[param.name] == target
    if spec.slug == "svd":
        assert find(strategy, lambda payload: payload.get("frames") == "14")["frames"] == "14"


def test_broken_rule_reads_as_param_and_rule() -> None:
    assert str(BrokenRule("fps", "maximum")) == "fps: maximum"

"""Hypothesis strategies for valid and invalid payloads, built from the parameter specs.

from hypothesis import given
from contracts.strategies import invalid_payloads, valid_payloads

@given(valid_payloads("svd"))
def test_my_client_sends_valid_payloads(payload): ...

@given(invalid_payloads("motionctrl-svd"))
def test_my_validation_agrees(case):
    payload, broken = case  # broken.param, broken.rule: the one documented rule it breaks
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import strategies as st

from contracts.model_file import GUESSED_IMAGE
from contracts.models import spec_of
from contracts.spec import ModelSpec, Param, is_image_reference, is_integer_text

# How far outside a range the first invalid value of each rule lies: "just outside".
_INTEGER_STEP = 1
_NUMBER_STEP = 0.01
# Image values that break the image rule as strings: not a URL, not base64, not a data: URI.
_NOT_IMAGES = ("not an image!", "ftp://example.com/input.png", "data:image/png,raw", "", "abc")


class BrokenRule(NamedTuple):
    """The one documented rule an invalid payload breaks: a parameter and a ParamError rule."""

    param: str
    rule: str  # "type", "enum", "minimum", "maximum" or "required", as ParamError.rule

    def __str__(self) -> str:
        return f"{self.param}: {self.rule}"


def valid_values(spec: ModelSpec, param: Param) -> st.SearchStrategy[Any]:
    """Values the docs allow for `param`, biased to the boundaries and to each allowed value."""
    if param.type == "image":
        # A real, fetchable image: the documented example's (a live job must be able to run).
        given = spec.example.get(param.name, param.default)
        return st.just(given if given is not None else GUESSED_IMAGE)
    if param.type == "boolean":
        return st.booleans()
    if param.enum is not None:
        options = list(param.enum)
        if param.numeric_string:
            options += [str(value) for value in param.enum]  # the docs' own sample sends "14"
        return st.sampled_from(options)
    if param.type == "string":
        return st.text()
    low, high = param.minimum, param.maximum
    if low is None or high is None:
        # No documented range: stay near the default, as far-off values may make a real job slow.
        low = low if low is not None else min(1, high if high is not None else 1)
        high = high if high is not None else max(low, 2 * int(param.default or 0), 16)
    if param.type == "integer":
        return st.one_of(st.sampled_from([int(low), int(high)]), st.integers(int(low), int(high)))
    return st.one_of(st.sampled_from([low, high]), st.floats(low, high, allow_nan=False, allow_infinity=False))


def valid_payloads(model: str | ModelSpec) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads the docs allow: every required parameter, and any of the optional ones."""
    spec = spec_of(model)
    required = {param.name: valid_values(spec, param) for param in spec.params if param.required}
    optional = {param.name: valid_values(spec, param) for param in spec.params if not param.required}
    return st.fixed_dictionaries(required, optional=optional)


def broken_values(param: Param) -> dict[str, tuple[Any, st.SearchStrategy[Any]]]:
    """For each rule `param` has, a value just outside it and a strategy of values breaking only it."""
    found: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {"type": _wrong_types(param)}
    if param.minimum is not None:
        step = _INTEGER_STEP if param.type == "integer" else _NUMBER_STEP
        low = param.minimum - step
        found["minimum"] = (low, _outside(param, max_value=low))
    if param.maximum is not None:
        step = _INTEGER_STEP if param.type == "integer" else _NUMBER_STEP
        high = param.maximum + step
        found["maximum"] = (high, _outside(param, min_value=high))
    if param.enum is not None:
        found["enum"] = _not_in_enum(param)
    if param.required:
        found["required"] = (None, st.none())  # the parameter is left out
    return found


def invalid_cases(model: str | ModelSpec) -> list[tuple[dict[str, Any], BrokenRule]]:
    """Every documented rule broken once, just outside it, on the documented example."""
    spec = spec_of(model)
    cases = []
    for param in spec.params:
        for rule, (value, _) in broken_values(param).items():
            cases.append((_broken(spec.example, param, rule, value), BrokenRule(param.name, rule)))
    return cases


def invalid_payloads(model: str | ModelSpec) -> st.SearchStrategy[tuple[dict[str, Any], BrokenRule]]:
    """Payloads that break exactly one documented rule, each with the rule it breaks.

    Half are the boundary cases of `invalid_cases`; the rest break one rule of a generated valid
    payload with a generated value.
    """
    spec = spec_of(model)
    rules = [(param, rule, values) for param in spec.params for rule, (_, values) in broken_values(param).items()]

    @st.composite
    def generated(draw: st.DrawFn) -> tuple[dict[str, Any], BrokenRule]:
        payload = draw(valid_payloads(spec))
        param, rule, values = draw(st.sampled_from(rules))
        return _broken(payload, param, rule, draw(values)), BrokenRule(param.name, rule)

    boundary = st.sampled_from(invalid_cases(spec)).map(lambda case: (dict(case[0]), case[1]))
    return st.one_of(boundary, generated())


def _broken(payload: dict[str, Any] | Any, param: Param, rule: str, value: Any) -> dict[str, Any]:
    broken = dict(payload)
    if rule == "required":
        broken.pop(param.name, None)
    else:
        broken[param.name] = value
    return broken


def _outside(param: Param, min_value: float | None = None, max_value: float | None = None) -> st.SearchStrategy[Any]:
    edge = min_value if min_value is not None else max_value
    assert edge is not None
    if param.type == "integer":
        low, high = (None if bound is None else int(bound) for bound in (min_value, max_value))
        return st.one_of(st.just(int(edge)), st.integers(min_value=low, max_value=high))
    return st.one_of(st.just(edge), st.floats(min_value, max_value, allow_nan=False, allow_infinity=False))


def _not_in_enum(param: Param) -> tuple[Any, st.SearchStrategy[Any]]:
    assert param.enum is not None
    if param.type == "integer":
        first = next(value for value in range(min(param.enum), max(param.enum) + 2) if value not in param.enum)
        enum = param.enum
        integers = st.integers().filter(lambda value: value not in enum)
        values: st.SearchStrategy[Any] = st.one_of(integers, integers.map(str)) if param.numeric_string else integers
        return first, values
    enum = param.enum
    name = str(enum[0])
    text_first = next(text for text in (name.upper(), name.lower(), f"{name}!") if text not in enum)
    return text_first, st.text().filter(lambda text: text not in enum)


def _wrong_types(param: Param) -> tuple[Any, st.SearchStrategy[Any]]:
    others = st.one_of(
        st.none(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)
    )
    if param.type == "integer":
        # Integral floats count as integers (spec.INTEGRAL_FLOATS_ARE_INTEGERS): only fractions are wrong.
        fractions = st.floats(allow_nan=False, allow_infinity=False).filter(lambda value: not value.is_integer())
        texts = st.text().filter(lambda text: not (param.numeric_string and is_integer_text(text)))
        return "seven", st.one_of(st.booleans(), fractions, texts, others)
    if param.type == "number":
        return "0.5", st.one_of(st.booleans(), st.text(), others)
    if param.type == "boolean":
        return "true", st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(), others)
    if param.type == "image":
        strings = st.one_of(st.sampled_from(_NOT_IMAGES), st.text().filter(lambda text: not is_image_reference(text)))
        return 7, st.one_of(strings, st.integers(), st.booleans(), others)
    return 1, st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), others)

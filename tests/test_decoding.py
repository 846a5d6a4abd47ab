"""The one-pass decoder (contracts/decoding.py) agrees with the reference path: json, then `ModelSpec.validate`."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import MODELS, ModelSpec, PayloadError
from contracts.decoding import decode_params
from contracts.spec import INTEGER_TEXT_DIGITS
from contracts.strategies import invalid_payloads, valid_payloads
from mock_server import SegmindMock
from mock_server.api_errors import ApiError
from mock_server.strict_json import parse_json_object

SPECS = list(MODELS.values())
RAW_IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png, but base64").decode()
IMAGES = st.sampled_from(
    [RAW_IMAGE, f"data:image/png;base64,{RAW_IMAGE}", "http://127.0.0.1:9/cat.png", "https://[2001:db8::1]/cat.png"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


def reference(model: str, body: bytes) -> dict[str, Any] | None:
    """What the reference path accepts: the checked parameters, or None where it answers 400."""
    try:
        return MODELS[model].validate(parse_json_object(body))
    except (ApiError, PayloadError):
        return None


def typed(params: dict[str, Any]) -> list[tuple[str, type, Any]]:
    """Names, types and values in order: 7 == 7.0 == True in Python, but not on the wire."""
    return [(name, type(value), value) for name, value in params.items()]


def assert_agrees(model: str, body: bytes) -> dict[str, Any] | None:
    """The fast path either declines or returns exactly what the reference path returns."""
    fast = decode_params(model, body)
    if fast is not None:
        expected = reference(model, body)
        assert expected is not None, f"fast path accepted what the reference refuses: {body!r}"
        assert typed(fast) == typed(expected)
    return fast


@st.composite
def valid_bodies(draw: st.DrawFn, spec: ModelSpec) -> bytes:
    """Valid payloads as clients send them: any image form, numbers as JSON writes them."""
    payload = draw(valid_payloads(spec))
    if spec.image_param.name in payload:
        payload[spec.image_param.name] = draw(IMAGES)
    return json.dumps(payload).encode()


@st.composite
def edited_bodies(draw: st.DrawFn, spec: ModelSpec) -> bytes:
    """Valid or invalid payloads with one parameter set to any JSON value, or an undocumented one added."""
    payload = draw(valid_payloads(spec) | invalid_payloads(spec).map(lambda case: case[0]))
    names = [param.name for param in spec.params]
    name = draw(st.sampled_from(names) | st.text(max_size=6))
    tricky = [7.0, 14.0, -0.0, 1e400, 10**400, "014", " 14", "25 ", "1e1", "0" * 18 + "25", "0" * 19 + "14"]
    payload[name] = draw(JSON_VALUES | st.sampled_from(tricky))
    return json.dumps(payload).encode()


@st.composite
def mangled_bodies(draw: st.DrawFn, spec: ModelSpec) -> bytes:
    """Valid bodies with bytes cut, replaced or inserted: broken JSON, bad UTF-8, lone surrogates, duplicate keys."""
    body = bytearray(draw(valid_bodies(spec)))
    index = draw(st.integers(0, len(body)))
    junk = draw(st.sampled_from([b"", b"\xff", b"\\ud800", b",", b"}", b'"fps": 7, ', b"NaN", b"1e400", b" "]))
    cut = draw(st.integers(0, 3))
    body[index : index + cut] = junk
    return bytes(body)


@settings(max_examples=400)
@given(st.data())
def test_valid_bodies_take_the_fast_path_with_the_reference_result(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(SPECS))
    body = data.draw(valid_bodies(spec))
    assert assert_agrees(spec.slug, body) is not None


@settings(max_examples=600)
@given(st.data())
def test_any_body_gets_the_reference_result_or_the_reference_path(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(SPECS))
    assert_agrees(spec.slug, data.draw(edited_bodies(spec) | mangled_bodies(spec)))


@settings(max_examples=300)
@given(zeros=st.integers(0, 30), value=st.sampled_from([14, 25, 7, -14]))
def test_integer_text_is_limited_to_its_characters_on_both_paths(zeros: int, value: int) -> None:
    # "000…014": leading zeros count, so the text limit (INTEGER_TEXT_DIGITS) holds whichever path reads it.
    spec = MODELS["svd"]
    sign, digits = ("-", str(-value)) if value < 0 else ("", str(value))
    text = sign + "0" * zeros + digits
    body = json.dumps({**spec.example, "frames": text}).encode()
    accepted = assert_agrees(spec.slug, body) or reference(spec.slug, body)
    allowed = len(text) <= INTEGER_TEXT_DIGITS and value in (14, 25)
    assert (accepted is not None) == allowed, text
    if accepted is not None:
        assert accepted["frames"] == value


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.slug)
def test_the_documented_example_takes_the_fast_path(spec: ModelSpec) -> None:
    body = json.dumps(spec.example).encode()
    assert assert_agrees(spec.slug, body) is not None


@pytest.mark.parametrize(
    "body",
    [b'{"fps": 7.0}', b'{"frames": "014"}', b'{"undocumented": 1e400}', b'{"frames": 14, "frames": "x"}'],
)
def test_bodies_the_fast_path_declines_are_answered_as_before(
    mock: SegmindMock, http: httpx.Client, body: bytes
) -> None:
    # Integral floats, non-canonical integer text and undocumented names go the reference way:
    # over HTTP, the job runs with what the reference validation returns, or the answer is its 400.
    merged = json.dumps(MODELS["svd"].example).encode()[:-1] + b", " + body[1:]
    assert decode_params("svd", merged) is None
    response = http.post("/v2/svd", content=merged, headers={"content-type": "application/json"})
    expected = reference("svd", merged)
    if expected is None:
        assert response.status_code == 400
        assert response.json()["error"]
    else:
        assert response.status_code == 200, response.text
        job = mock.job(response.json()["request_id"])
        assert job is not None
        assert typed(job["params"]) == typed(expected)

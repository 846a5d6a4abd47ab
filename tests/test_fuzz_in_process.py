"""Hostile input on the in-process fake: arbitrary JSON and bytes, and inputs that once failed, get a 4xx envelope.

Not per store: each test's fake (the `mock` fixture, through `http`) is on memory.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import examples
from tests.support_fuzz import BODY_ROUTES, LIMIT, any_json, assert_envelope, near_payload

# The in-process fake of each test (`http`), with a small body limit.
pytestmark = pytest.mark.fake_settings(max_body_bytes=LIMIT)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=any_json | near_payload, path=st.sampled_from(BODY_ROUTES))
def test_arbitrary_json_never_gets_a_5xx(http: httpx.Client, body: object, path: str) -> None:
    response = http.post(path, json=body)
    if response.status_code not in (200, 201):
        assert_envelope(response.status_code, response.headers["content-type"], response.content)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), path=st.sampled_from(BODY_ROUTES))
def test_arbitrary_bytes_never_get_a_5xx(http: httpx.Client, body: bytes, path: str) -> None:
    response = http.post(path, content=body, headers={"Content-Type": "application/json"})
    if response.status_code not in (200, 201):
        assert_envelope(response.status_code, response.headers["content-type"], response.content)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v2/svd", b'{"image": "\\ud800"}', "unpaired surrogate escape"),
        ("/v2/svd", b'{"cond_aug": 1e400}', "the number 1e400 is too large for a 64-bit float"),
        ("/_mock/scenarios", b'{"match": {"model": []}}', "match.model must be one of svd, motionctrl-svd"),
        ("/_mock/scenarios", b'{"outcome": ["failed"]}', "outcome must be one of"),
        ("/_mock/scenarios", b'{"outcome": "http_error", "status": [429]}', "status must be one of"),
        ("/_mock/scenarios", b'{"outcome": "http_error", "status": 429, "headers": {"x": "\\u20ac"}}', "Latin-1"),
        ("/_mock/scenarios", b'{"outcome": "http_error", "status": 429, "headers": {"x": "a\\r\\nb: c"}}', "Latin-1"),
        ("/_mock/scenarios", b'{"outcome": "http_error", "status": 429, "headers": {"a b": "c"}}', "header name"),
        ("/v2/svd/", b"{}", "No route for POST /v2/svd/"),
    ],
)
def test_inputs_that_once_made_the_fake_fail_are_400s(http: httpx.Client, path: str, body: bytes, message: str) -> None:
    # Each of these answered 500 (or a bare 307 redirect) before the fix named in docs/robustness.md.
    response = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_envelope(response.status_code, response.headers["content-type"], response.content)
    assert message in response.json()["error"]

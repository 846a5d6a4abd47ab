"""Hostile input on the in-process fake: arbitrary JSON and bytes, and inputs that once failed, get a 4xx envelope.

Not per store: its one client for the module is built on the store $SEGMIND_MOCK_STORE names (memory when unset).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mock_server import SegmindMock, Settings
from mock_server.transport import PortalTransport
from tests.support_fuzz import BODY_ROUTES, KEY, LIMIT, any_json, assert_envelope, near_payload


@pytest.fixture(scope="module")
def in_process() -> Iterator[httpx.Client]:
    """An httpx client on the in-process fake (small body limit)."""
    mock = SegmindMock(Settings(speed=0, max_body_bytes=LIMIT))
    with httpx.Client(transport=PortalTransport(mock.app), base_url="http://fake", headers=KEY) as client:
        yield client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=any_json | near_payload, path=st.sampled_from(BODY_ROUTES))
def test_arbitrary_json_never_gets_a_5xx(in_process: httpx.Client, body: object, path: str) -> None:
    response = in_process.post(path, json=body)
    if response.status_code not in (200, 201):
        assert_envelope(response.status_code, response.headers["content-type"], response.content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), path=st.sampled_from(BODY_ROUTES))
def test_arbitrary_bytes_never_get_a_5xx(in_process: httpx.Client, body: bytes, path: str) -> None:
    response = in_process.post(path, content=body, headers={"Content-Type": "application/json"})
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
def test_inputs_that_once_made_the_fake_fail_are_400s(
    in_process: httpx.Client, path: str, body: bytes, message: str
) -> None:
    # Each of these answered 500 (or a bare 307 redirect) before the fix named in docs/robustness.md.
    response = in_process.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_envelope(response.status_code, response.headers["content-type"], response.content)
    assert message in response.json()["error"]

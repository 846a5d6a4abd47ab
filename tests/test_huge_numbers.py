"""Numbers no store can hold are refused with a 400, on both stores, and leave the fake serving as before.

On Redis a count past 2**53 came back from Lua as 1e+20 and broke every submission until the rules
were cleared; floats past ~1e302 overflow Lua's arithmetic to inf.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contracts import MODELS
from mock_server.accounts import parse_config
from tests.support_fakes import FakeFactory

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

KEY = "SG_declared_key_0001"
HUGE_INT = 10**20
HUGE = 1e300
ADMIN_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("/_mock/scenarios", {"outcome": "completed", "times": HUGE_INT}),
    ("/_mock/scenarios", {"outcome": "completed", "nth": HUGE_INT}),
    ("/_mock/scenarios", {"outcome": "completed", "queue_seconds": HUGE}),
    ("/_mock/scenarios", {"outcome": "completed", "processing_seconds": HUGE}),
    ("/_mock/scenarios", {"outcome": "http_error", "status": 500, "delay_seconds": HUGE}),
    ("/_mock/clock/advance", {"seconds": HUGE}),
    ("/_mock/clock", {"speed": HUGE}),
    (f"/_mock/accounts/{KEY}/credits", {"add": HUGE}),
    (f"/_mock/accounts/{KEY}/credits", {"add": -HUGE}),
]
HEADERS = [
    {"x-mock-queue-seconds": "1e300"},
    {"x-mock-processing-seconds": "1e300"},
    {"x-mock-delay-seconds": "1e300"},
]


@pytest.fixture
def http_with_declared_key(store: str, make_fake: FakeFactory) -> httpx.Client:
    """A client of a fake on `store` declaring KEY with credits, through the in-process transport."""
    config = parse_config({"keys": {KEY: {"credits": 100}}})
    return make_fake.http(make_fake(speed=0, store=store, accounts=config), api_key=KEY)


def assert_still_serving(http: httpx.Client) -> None:
    assert http.post("/v2/svd", json=MODELS["svd"].example).status_code == 200
    for path in ("/_mock/scenarios", "/_mock/clock", "/_mock/accounts", "/_mock/jobs"):
        assert http.get(path).status_code == 200, path


@pytest.mark.parametrize(("path", "body"), ADMIN_CALLS, ids=[f"{path}:{next(iter(b))}" for path, b in ADMIN_CALLS])
def test_a_number_no_store_holds_is_refused_and_breaks_nothing(
    http_with_declared_key: httpx.Client, path: str, body: dict
) -> None:
    refused = http_with_declared_key.post(path, json=body)
    assert refused.status_code == 400, refused.text
    assert list(refused.json()) == ["error"]
    assert_still_serving(http_with_declared_key)


@pytest.mark.parametrize("headers", HEADERS, ids=[next(iter(h)) for h in HEADERS])
def test_a_huge_number_in_an_override_header_is_refused(http_with_declared_key: httpx.Client, headers: dict) -> None:
    refused = http_with_declared_key.post("/v2/svd", json=MODELS["svd"].example, headers=headers)
    assert refused.status_code == 400, refused.text
    assert_still_serving(http_with_declared_key)

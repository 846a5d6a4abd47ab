"""Countless API keys leave no state behind: accounts only for declared keys, none at all when open."""

from __future__ import annotations

import httpx
import pytest

from contracts import MODELS
from mock_server.accounts import parse_config
from tests.support import bytes_kept
from tests.support_fakes import FakeFactory

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

KEYS = 50_000
DECLARED = "SG_declared_key_0001"


def poll_unknown(http: httpx.Client, keys: range) -> None:
    for number in keys:
        answer = http.get("/v2/requests/nope/status", headers={"x-api-key": f"SG_{number:016x}"})
        assert answer.status_code == 404


@pytest.mark.slow
def test_fifty_thousand_made_up_keys_polling_leave_memory_flat(make_fake: FakeFactory) -> None:
    mock = make_fake(speed=0, journal_size=0)  # open: any key is accepted
    http = make_fake.http(mock, api_key=None)
    poll_unknown(http, range(1_000))  # warm up: caches, first allocations
    kept = bytes_kept(lambda: poll_unknown(http, range(1_000, 1_000 + KEYS)))
    assert http.get("/_mock/accounts").json()["accounts"] == []
    # An account per key cost kilobytes each (160 MB for 50,000); without one, nothing grows.
    assert kept < 2_000_000, kept


def test_open_mode_keeps_no_account_per_key(store: str, make_fake: FakeFactory) -> None:
    mock = make_fake(speed=0, store=store)
    http = make_fake.http(mock, api_key=None)
    for number in range(300):
        key = {"x-api-key": f"SG_{number:016x}"}
        assert http.post("/v2/svd", json=MODELS["svd"].example, headers=key).status_code == 200
        assert http.get("/v2/requests/nope/status", headers=key).status_code == 404
    assert http.get("/_mock/accounts").json()["accounts"] == []


def test_with_a_config_only_declared_keys_have_accounts(store: str, make_fake: FakeFactory) -> None:
    config = parse_config({"keys": {DECLARED: {"credits": 10, "rpm": 100}}})
    mock = make_fake(speed=0, store=store, accounts=config)
    http = make_fake.http(mock, api_key=None)
    for number in range(300):
        key = {"x-api-key": f"SG_{number:016x}"}
        assert http.post("/v2/svd", json=MODELS["svd"].example, headers=key).status_code == 401
    assert http.post("/v2/svd", json=MODELS["svd"].example, headers={"x-api-key": DECLARED}).status_code == 200
    accounts = http.get("/_mock/accounts").json()["accounts"]
    assert [account["key"] for account in accounts] == ["SG_…0001"]  # masked, like every key the fake shows

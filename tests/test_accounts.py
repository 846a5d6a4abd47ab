"""Accounts over HTTP and the official SDK: keys (401), models (403), credits (406), rate limits (429)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from segmind import SegmindError

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS, SYNC_FAILED_STATUS
from mock_server import SegmindMock, Settings, api_errors, pricing, wire
from mock_server.accounts import ConfigError, load_config, parse_config
from mock_server.journal import mask_key
from mock_server.transport import PortalTransport
from tests.support import SEGMIND
from tests.support_accounts import CONFIG, FREE, POOR, RICH, SVD, SVD_ONLY, submit

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis


SVD_PRICE = pricing.PRICES["svd"]


def finish(http: httpx.Client, fake: SegmindMock, job: httpx.Response, api_key: str) -> httpx.Response:
    """Move the clock past the job's end and read its status."""
    assert job.status_code == 200, job.text
    fake.advance(1000)
    return http.get(job.json()["status_url"], headers={"x-api-key": api_key})


def account(http: httpx.Client, key: str) -> dict:
    # Every key is shown masked, declared ones too.
    return next(entry for entry in http.get("/_mock/accounts").json()["accounts"] if entry["key"] == mask_key(key))


# API keys


def test_without_a_config_any_segmind_shaped_key_is_accepted_with_unlimited_credits(store: str) -> None:
    mock = SegmindMock(Settings(speed=0, store=store))
    with PortalTransport(mock.app) as transport, httpx.Client(transport=transport, base_url=SEGMIND) as http:
        for _ in range(10):
            assert submit(http, "SG_00000000000abcde").status_code == 200
        done = finish(http, mock, submit(http, "SG_00000000000abcde"), "SG_00000000000abcde").json()
        assert done["metrics"]["cost"] == SVD_PRICE
        # An unlimited key has no balance: it reports the documented stand-in, a number.
        assert done["metrics"]["remaining_credits"] == pricing.OPEN_KEY_CREDITS
        view = http.get("/_mock/accounts").json()
        assert view["open"] is True
        assert view["accounts"] == []  # open, the fake keeps no account per key: keys leave no state behind


def test_under_a_config_an_undeclared_key_gets_the_real_401(client: httpx.Client) -> None:
    refused = submit(client, "SG_not_declared")
    assert refused.status_code == 401
    assert refused.json() == {"error": "Unauthorized. API key is invalid or may have expired"}
    job = submit(client, RICH).json()
    assert client.get(job["status_url"], headers={"x-api-key": "SG_not_declared"}).status_code == 401
    assert client.post("/v2/svd", json=SVD).json() == {"error": api_errors.MISSING_KEY}


def test_sdk_with_an_undeclared_key_raises_401(sdk_for) -> None:
    with pytest.raises(SegmindError) as raised:
        sdk_for("SG_not_declared").submit_async("svd", **SVD)
    assert raised.value.status == 401
    assert raised.value.detail == api_errors.STATUS_MESSAGES[401]


# Models


def test_a_key_may_call_only_its_models(client: httpx.Client, sdk_for) -> None:
    assert submit(client, SVD_ONLY, "svd").status_code == 200
    refused = submit(client, SVD_ONLY, "motionctrl-svd")
    assert refused.status_code == 403
    assert refused.json() == {"error": "Forbidden: this API key is not allowed to use motionctrl-svd; it may use svd"}
    assert (
        client.post(
            "/v1/motionctrl-svd", json=MODELS["motionctrl-svd"].example, headers={"x-api-key": SVD_ONLY}
        ).status_code
        == 403
    )
    with pytest.raises(SegmindError) as raised:
        sdk_for(SVD_ONLY).submit_async("motionctrl-svd", **MODELS["motionctrl-svd"].example)
    assert (raised.value.status, raised.value.detail) == (403, refused.json()["error"])


# Credits


def test_a_completed_job_charges_its_price_and_reports_cost_and_remaining_credits(
    client: httpx.Client, fake: SegmindMock
) -> None:
    job = submit(client, RICH)
    assert account(client, RICH)["held"] == SVD_PRICE  # held while in progress, not yet spent
    assert account(client, RICH)["balance"] == 100
    done = finish(client, fake, job, RICH).json()
    expected = {"cost": SVD_PRICE, "remaining_credits": round(100 - SVD_PRICE, 6)}
    assert done["metrics"] == {**wire.metrics(fake.lookup(job.json()["request_id"])[0]), **expected}
    result = client.get(job.json()["response_url"], headers={"x-api-key": RICH}).json()
    assert {key: result["metrics"][key] for key in expected} == expected
    # Reading again never charges again; a later job reports the balance after its own charge.
    assert finish(client, fake, job, RICH).json()["metrics"]["remaining_credits"] == expected["remaining_credits"]
    second = finish(client, fake, submit(client, RICH, "motionctrl-svd"), RICH).json()
    left = round(100 - SVD_PRICE - pricing.PRICES["motionctrl-svd"], 6)
    assert second["metrics"]["remaining_credits"] == left
    assert account(client, RICH) | {"balance": left, "held": 0.0} == account(client, RICH)


def test_a_failed_job_is_not_charged(client: httpx.Client, fake: SegmindMock) -> None:
    fake.add_scenario(outcome="failed", error="worker crashed", times=1)
    failed = finish(client, fake, submit(client, POOR), POOR)
    assert failed.status_code == 422
    assert set(failed.json()["metrics"]) == {"inference_time", "queue_time", "total_time"}  # no billing fields
    assert account(client, POOR)["balance"] == 1
    assert account(client, POOR)["spent"] == 0


def test_a_key_that_cannot_pay_gets_406_naming_balance_and_price_counting_jobs_in_flight(
    client: httpx.Client, fake: SegmindMock, sdk_for
) -> None:
    runs = int(1 // SVD_PRICE)  # 5 runs of 0.167 fit in 1 credit
    for _ in range(runs):
        assert submit(client, POOR).status_code == 200
    refused = submit(client, POOR)
    assert refused.status_code == 406
    held = round(runs * SVD_PRICE, 6)
    assert refused.json() == {
        "error": f"Insufficient credits to process this request: it costs {SVD_PRICE} credits and the balance "
        f"is 1, of which {held} is held for requests in progress"
    }
    fake.advance(1000)  # the held jobs complete: the balance itself is now too low
    with pytest.raises(SegmindError) as raised:
        sdk_for(POOR).submit_async("svd", **SVD)
    assert raised.value.status == 406
    assert raised.value.detail == (
        f"Insufficient credits to process this request: it costs {SVD_PRICE} credits "
        f"and the balance is {round(1 - held, 6)}"
    )
    assert fake.jobs and all(job["api_key"] == "SG_…00bb" for job in fake.jobs)  # the refused ones made no job


def test_the_admin_api_tops_a_key_up(client: httpx.Client) -> None:
    client.post("/_mock/accounts/" + POOR + "/credits", json={"add": -0.9})
    assert submit(client, POOR).status_code == 406
    topped = client.post(f"/_mock/accounts/{POOR}/credits", json={"add": 2})
    assert topped.status_code == 200
    assert topped.json()["balance"] == 2.1
    assert topped.json()["topped_up"] == 1.1
    assert submit(client, POOR).status_code == 200


@pytest.mark.parametrize(
    ("key", "body", "status", "message"),
    [
        (POOR, {"add": "lots"}, 400, "add must be a number of credits"),
        (POOR, {}, 400, "add must be a number of credits"),
        ("SG_nobody", {"add": 1}, 404, "No declared API key"),
        (FREE, {"add": 1}, 400, "has unlimited credits"),
    ],
)
def test_a_bad_top_up_says_what_to_fix(client: httpx.Client, key: str, body: dict, status: int, message: str) -> None:
    refused = client.post(f"/_mock/accounts/{key}/credits", json=body)
    assert refused.status_code == status
    assert message in refused.json()["error"]


def test_v1_answers_carry_the_billing_headers(client: httpx.Client, fake: SegmindMock) -> None:
    fake.clock.virtual = True  # the sync call jumps to its end instead of waiting
    answer = client.post("/v1/svd", json=SVD, headers={"x-api-key": RICH})
    assert answer.status_code == 200
    assert answer.headers["x-cost"] == str(SVD_PRICE)
    assert answer.headers["x-remaining-credits"] == str(round(100 - SVD_PRICE, 6))
    assert answer.headers["x-seed-value"] == str(SVD["seed"])
    assert answer.headers["x-generation-time"] == f"{MODELS['svd'].latency_seconds:.2f}"
    assert fake.job(answer.headers["x-request-id"])["state"] == "COMPLETED"
    fake.add_scenario(outcome="failed", times=1)
    failed = client.post("/v1/svd", json=SVD, headers={"x-api-key": RICH})
    assert failed.status_code == SYNC_FAILED_STATUS
    assert "x-cost" not in failed.headers and "x-remaining-credits" not in failed.headers


def test_charges_outlive_the_jobs_retention_and_reset_restores_the_config(
    client: httpx.Client, fake: SegmindMock
) -> None:
    finish(client, fake, submit(client, POOR), POOR)
    fake.advance(RESULT_RETENTION_SECONDS * 2)
    assert fake.jobs == []
    assert account(client, POOR)["balance"] == round(1 - SVD_PRICE, 6)
    client.post("/_mock/reset")
    assert account(client, POOR)["balance"] == 1


# Rate limits


def test_the_free_plan_allows_five_a_minute_on_a_sliding_window(
    client: httpx.Client, fake: SegmindMock, sdk_for
) -> None:
    assert submit(client, FREE).status_code == 200
    fake.advance(30)
    for _ in range(4):
        assert submit(client, FREE).status_code == 200
    asked_at = time.time()
    refused = submit(client, FREE)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Rate limit exceeded: this API key allows 5 requests a minute"}
    assert "retry-after" not in refused.headers
    reset = refused.headers["x-rate-limit-reset-at-utc"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", reset)
    reset_at = datetime.strptime(reset, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    # When the oldest request leaves the window, on the wall clock: 30 s on, the advance having counted.
    assert asked_at + 30 - 1 < reset_at <= time.time() + 30 + 1
    with pytest.raises(SegmindError) as raised:
        sdk_for(FREE).submit_async("svd", **SVD)
    assert (raised.value.status, raised.value.detail) == (429, refused.json()["error"])
    assert account(client, FREE)["rate_limit_reset_at_utc"] == reset
    fake.advance(reset_at - time.time())  # wait until the reset time (by advancing): one slot is free again
    assert submit(client, FREE).status_code == 200
    assert submit(client, FREE).status_code == 429  # the four later requests are still in the window
    fake.advance(30)
    assert [submit(client, FREE).status_code for _ in range(5)] == [200, 200, 200, 200, 429]


def test_other_keys_and_polls_are_not_rate_limited(client: httpx.Client) -> None:
    jobs = [submit(client, FREE).json() for _ in range(5)]
    assert submit(client, FREE).status_code == 429
    assert all(client.get(job["status_url"], headers={"x-api-key": FREE}).status_code == 200 for job in jobs)
    assert submit(client, RICH).status_code == 200


# The config file


def test_load_config_reads_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(
        """
[prices]
svd = 0.5

[keys.SG_a]
credits = 3
models = ["svd"]
plan = "pro"

[keys.SG_b]
rpm = 12
"""
    )
    config = load_config(path)
    assert config.prices == {"svd": 0.5, "motionctrl-svd": pricing.PRICES["motionctrl-svd"]}
    assert config.keys["SG_a"].credits == 3
    assert config.keys["SG_a"].models == frozenset({"svd"})
    assert config.keys["SG_a"].rpm == 50
    assert config.keys["SG_b"].rpm == 12
    assert config.keys["SG_b"].credits is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": {}}, "the config: unknown field(s) key; allowed: keys, prices"),
        ({"keys": {"SG_a": {"credit": 1}}}, "keys.SG_a: unknown field(s) credit; allowed: credits, models, plan, rpm"),
        (
            {"keys": {"SG_a": {"credits": -1}}},
            "keys.SG_a.credits must be a number of credits, 0 or more and below 1e+12 (got -1)",
        ),
        # Amounts every store holds exactly (Redis's Lua overflowed 1e300 credits to inf).
        ({"keys": {"SG_a": {"credits": 1e300}}}, "keys.SG_a.credits must be a number of credits, 0 or more and below"),
        ({"prices": {"svd": 1e13}}, "prices.svd must be a number of credits, 0 or more and below 1e+12"),
        (
            {"keys": {"SG_a": {"rpm": 2**60}}},
            "keys.SG_a.rpm must be a whole number of requests a minute, 1 or more (up to",
        ),
        ({"keys": {"SG_a": {"plan": "gold"}}}, "keys.SG_a.plan must be one of free, pro (got 'gold')"),
        ({"keys": {"SG_a": {"plan": "free", "rpm": 3}}}, "keys.SG_a: give either plan or rpm, not both"),
        ({"keys": {"SG_a": {"rpm": 0}}}, "keys.SG_a.rpm must be a whole number of requests a minute, 1 or more"),
        ({"keys": {"SG_a": {"models": ["sdxl"]}}}, "keys.SG_a.models must be a list of svd, motionctrl-svd"),
        ({"prices": {"sdxl": 1}}, "prices: unknown model 'sdxl'"),
        ({"keys": {"SG_a": 5}}, "keys.SG_a must be a table"),
    ],
)
def test_a_bad_config_says_what_to_fix(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(data)


def test_load_config_names_the_file_it_cannot_use(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[keys\n")
    with pytest.raises(ConfigError, match=f"{re.escape(str(broken))}: not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path / "missing.toml")


def test_configured_prices_are_charged(store: str) -> None:
    config = parse_config({"keys": {POOR: {"credits": 1}}, "prices": {"svd": 0.25}})
    mock = SegmindMock(Settings(speed=0, accounts=config, store=store))
    job, _ = mock.submit("svd", SVD, POOR)
    mock.advance(1000)
    assert mock.service.billing(job) == {"cost": 0.25, "remaining_credits": 0.75}
    assert CONFIG.prices["svd"] == SVD_PRICE  # the defaults, from the model pages

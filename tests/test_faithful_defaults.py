"""Faithful defaults, through HTTP on a real server and the official SDK: keys, billing headers,
scenarios that could never match, reset's speed, and v1 calls on a frozen clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from segmind import SegmindClient

from contracts import MODELS
from contracts.openapi import API_KEY_PATTERN
from mock_server import SegmindMock, Settings, api_errors, defaults, pricing
from mock_server.accounts import parse_config
from mock_server.server import ServerThread
from tests.support import API_KEY

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SVD = MODELS["svd"].example
MOTIONCTRL = MODELS["motionctrl-svd"].example
HINT = "keys look like SG_ and 16 hex digits"


@pytest.fixture
def started(store: str) -> Iterator[Any]:
    """Start a fake with these settings on a real server; yield a function returning (mock, client)."""
    threads: list[ServerThread] = []
    clients: list[httpx.Client] = []

    def start(**settings: Any) -> tuple[SegmindMock, httpx.Client]:
        mock = SegmindMock(Settings(store=store, **settings))
        thread = ServerThread(mock.app)
        url = thread.__enter__()
        threads.append(thread)
        client = httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=30)
        clients.append(client)
        return mock, client

    yield start
    for client in clients:
        client.close()
    for thread in threads:
        thread.__exit__(None, None, None)


# Keys: open mode accepts Segmind-shaped keys only; a config's keys are accepted whatever their shape.


@pytest.mark.parametrize(
    "key",
    ["Bearer SG_0123456789abcdef", "your-api-key", "SG_0123456789abcde", "SG_0123456789abcdefg", "sg_0123456789abcdef"],
)
def test_open_mode_answers_a_key_not_shaped_like_segmind_s_with_the_real_401_and_a_hint(
    live_http: httpx.Client, key: str
) -> None:
    response = live_http.post("/v2/svd", json=SVD, headers={"x-api-key": key})
    assert response.status_code == 401
    message = response.json()["error"]
    assert message.startswith(api_errors.STATUS_MESSAGES[401] + ". ")
    assert HINT in message
    # Polls are refused the same way, before the job is looked up.
    assert live_http.get("/v2/requests/nope/status", headers={"x-api-key": key}).status_code == 401


def test_open_mode_accepts_segmind_shaped_keys(live_http: httpx.Client) -> None:
    for key in (API_KEY, "SG_FEDCBA9876543210"):
        assert live_http.post("/v2/svd", json=SVD, headers={"x-api-key": key}).status_code == 200


def test_the_key_pattern_is_the_documented_shape() -> None:
    assert API_KEY_PATTERN.fullmatch(API_KEY)
    assert not API_KEY_PATTERN.fullmatch("SG_" + "0" * 15)


def test_keys_declared_in_a_config_are_accepted_whatever_their_shape(started: Any) -> None:
    _, client = started(speed=0, accounts=parse_config({"keys": {"team-ci": {}}}))
    assert client.post("/v2/svd", json=SVD, headers={"x-api-key": "team-ci"}).status_code == 200
    refused = client.post("/v2/svd", json=SVD)  # shaped right, but not declared
    assert refused.status_code == 401
    assert refused.json()["error"] == api_errors.STATUS_MESSAGES[401]


# Billing headers: every v1 answer has them, a float for a key without a balance too.


def test_a_v1_answer_of_an_open_key_carries_cost_and_remaining_credits_as_numbers(started: Any) -> None:
    _, client = started(speed=0, virtual=True)
    response = client.post("/v1/svd", json=SVD)
    assert response.status_code == 200
    assert float(response.headers["x-cost"]) == pricing.PRICES["svd"]
    # segmind-workflow's total_credits_left() reads this header with float().
    assert float(response.headers["x-remaining-credits"]) == pricing.OPEN_KEY_CREDITS


def test_a_completed_v2_job_of_an_open_key_reports_the_same_balance(server: Any, live_http: httpx.Client) -> None:
    mock, _ = server
    job = live_http.post("/v2/svd", json=SVD).json()
    mock.advance(1000)
    metrics = live_http.get(f"/v2/requests/{job['request_id']}/status").json()["metrics"]
    assert (metrics["cost"], metrics["remaining_credits"]) == (pricing.PRICES["svd"], pricing.OPEN_KEY_CREDITS)


# Scenarios whose match could never match are refused, saying why.


@pytest.mark.parametrize(
    ("match", "why"),
    [
        ({"modle": "svd"}, "match has an unknown key 'modle'"),
        ({"fps": 600}, "match.fps: fps must be an integer from"),
        ({"model": "svd", "motion_speed": 1}, "match.motion_speed is a parameter of motionctrl-svd, not of svd"),
        ({"model": "svd", "motion": "Zoom In"}, "match.motion: motion must be an integer"),
        ({"model": "dall-e"}, "match.model must be one of svd, motionctrl-svd"),
        ({"api_key": 42}, "match.api_key must be a string"),
    ],
)
def test_a_scenario_that_could_never_match_is_refused_saying_why(
    live_http: httpx.Client, match: dict[str, Any], why: str
) -> None:
    response = live_http.post("/_mock/scenarios", json={"match": match, "outcome": "failed"})
    assert response.status_code == 400
    assert why in response.json()["error"]
    assert live_http.get("/_mock/scenarios").json() == []


def test_a_scenario_matching_either_model_s_parameter_still_fires(server: Any, live_http: httpx.Client) -> None:
    mock, _ = server
    for match in ({"motion": "Zoom In"}, {"model": "svd", "frames": "25"}):
        assert live_http.post("/_mock/scenarios", json={"match": match, "outcome": "failed"}).status_code == 201
    for model, params in (("motionctrl-svd", {**MOTIONCTRL, "motion": "Zoom In"}), ("svd", {**SVD, "frames": 25})):
        job = live_http.post(f"/v2/{model}", json=params).json()
        mock.advance(1000)
        assert mock.job(job["request_id"])["state"] == "FAILED"


# Reset restores the speed the fake started with.


def test_reset_restores_the_start_up_speed_not_the_one_set_at_run_time(started: Any) -> None:
    _, client = started(speed=5)
    assert client.post("/_mock/clock", json={"speed": 0}).json()["speed"] == 0
    assert client.post("/_mock/reset").status_code == 200
    assert client.get("/_mock/clock").json()["speed"] == 5


# A v1 call on a frozen clock never hangs: the clock jumps to the job's end.


def test_a_v1_call_on_a_frozen_clock_jumps_the_clock_to_the_job_s_end(started: Any) -> None:
    mock, client = started(speed=0)
    before = mock.clock.now()
    response = client.post("/v1/svd", json=SVD, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert mock.clock.now() >= before + defaults.QUEUE_SECONDS + MODELS["svd"].latency_seconds
    assert mock.clock.speed == 0  # still frozen


def test_the_sdk_s_run_sync_returns_on_a_frozen_clock_with_the_billing_headers(started: Any) -> None:
    _, client = started(speed=0)
    sdk = SegmindClient(api_key=API_KEY, base_url=f"{str(client.base_url).rstrip('/')}/v1")
    try:
        response = sdk.run_sync("svd", **SVD)
    finally:
        sdk._client.close()
    assert response.content[4:8] == b"ftyp"
    assert float(response.headers["x-remaining-credits"]) == pricing.OPEN_KEY_CREDITS

"""Client verification: the official SDK handles every scenario of the fake; a careless client is caught."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import httpx
import pytest

from contracts.responses import ERROR_CODES
from contracts.verify import scenarios, verify_client
from mock_server import SegmindMock, Settings
from mock_server.server import ServerThread
from tests.support_contracts import sdk_client


@pytest.fixture
def fake_url() -> Any:
    mock = SegmindMock(Settings(speed=0))
    with ServerThread(mock.app) as url:
        yield url, mock


# The careless client's polls of one job: each is a real HTTP round trip, far more than the
# harness needs to see the job and move the fake's clock past its end.
CARELESS_POLLS = 5000


def careless_client(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
    """Treats any answer as a result: never raises on FAILED, expired or error answers."""
    with httpx.Client(headers={"x-api-key": api_key}) as http:
        submitted = http.post(f"{base_url}/v2/{model}", json=payload).json()
        if "status_url" not in submitted:
            return submitted
        for _ in range(CARELESS_POLLS):  # back to back, with no sleep: the harness moves the clock
            status = http.get(submitted["status_url"]).json()
            if status.get("status") not in ("QUEUED", "PROCESSING"):
                return http.get(submitted["response_url"]).json()
        return status  # still running after its polls: what it saw last, careless to the end


def test_scenarios_cover_completed_failed_rai_expired_and_each_error_code() -> None:
    names = [scenario.name for scenario in scenarios()]
    assert names == ["completed", "failed", "rai_blocked", "expired", *(f"http_{code}" for code in ERROR_CODES)]


def test_the_sdk_handles_every_scenario(fake_url: tuple[str, SegmindMock]) -> None:
    url, mock = fake_url
    report = verify_client(sdk_client, url)
    assert report.ok, report.render()
    assert report.render().startswith(f"Client verification: {len(scenarios())}/{len(scenarios())} scenarios")
    assert mock.scenarios.rules() == []  # every scenario the harness added is gone


def test_the_run_stops_after_a_client_hangs(fake_url: tuple[str, SegmindMock]) -> None:
    url, mock = fake_url
    release = threading.Event()
    calls = itertools.count()

    def hangs_in_its_second_call(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
        if next(calls) == 1:
            release.wait(10)  # bounded: the test releases it once the harness has given up on it
        return sdk_client(base_url, api_key, model, payload)

    try:
        report = verify_client(hangs_in_its_second_call, url, timeout=0.2)
    finally:
        release.set()
    names = [scenario.name for scenario in scenarios()]
    assert [outcome.scenario.name for outcome in report.outcomes] == names[:2]
    assert [scenario.name for scenario in report.not_run] == names[2:]
    assert not report.ok and report.failed == ["failed"]
    text = report.render()
    assert "FAIL failed: " in text and "no answer within 0.2s" in text
    assert "not run, since the client hung and may still be calling the fake: rai_blocked, expired, http_400" in text
    assert mock.scenarios.rules() == []  # the hung scenario's rule is removed too


def test_a_careless_client_is_reported(fake_url: tuple[str, SegmindMock], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s waiting for the fake")  # its clock is moved instead

    monkeypatch.setattr(time, "sleep", no_sleeping)
    url, _ = fake_url
    report = verify_client(careless_client, url, model="motionctrl-svd")
    assert report.failed == ["failed", "rai_blocked", "expired", *(f"http_{code}" for code in ERROR_CODES)]
    text = report.render()
    assert "ok   completed" in text and "FAIL expired" in text and "returned {'error': 'Request" in text

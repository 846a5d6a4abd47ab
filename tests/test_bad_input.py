"""Malformed requests get a 4xx in the JSON envelope, with a message that says what to fix."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import NoReturn

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock
from mock_server.images import ImageSource
from tests.support_fakes import FakeFactory


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (b"", "Request body is empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object of parameters, got an array"),
        (b'"svd"', "got a string"),
        (b"null", "got null"),
        (b"42", "got a number"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"fps": NaN}', "NaN is not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ],
)
def test_malformed_body_is_400_in_the_envelope(http: httpx.Client, body: bytes, hint: str) -> None:
    for path in ("/v2/svd", "/v1/motionctrl-svd", "/_mock/scenarios"):
        response = http.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert list(response.json()) == ["error"]
        assert hint in response.json()["error"]


@pytest.mark.fake_settings(max_body_bytes=1000)
def test_body_past_the_limit_is_413_naming_the_limit(http: httpx.Client) -> None:
    huge = {**MODELS["svd"].example, "image": "QUJD" * 1000}
    response = http.post("/v2/svd", json=huge)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body is larger than the fake's limit of 1000 bytes"}
    chunked = http.post("/v2/svd", content=iter([b"{", b" " * 2000, b"}"]))
    assert chunked.status_code == 413
    assert http.post("/v2/svd", json=MODELS["svd"].example).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"x-api-key": ""}, {"x-api-key": "", "Authorization": "Bearer SG_0123456789abcdef"}]
)
def test_missing_api_key_is_401_with_the_real_message_then_the_header_to_send(
    http: httpx.Client, headers: dict[str, str]
) -> None:
    response = http.post("/v2/svd", json=MODELS["svd"].example, headers=headers)
    assert response.status_code == 401
    message = response.json()["error"]
    assert message.startswith("Missing Authorization or x-api-key in header. ")  # the real service's text
    assert "Send your key as `x-api-key: SG_...`" in message


@pytest.mark.parametrize("path", ["/v2/sdxl", "/v1/sdxl", "/v2/requests"])
def test_unknown_model_is_404(http: httpx.Client, path: str) -> None:
    response = http.post(path, json={})
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


def test_unknown_route_is_404_json(http: httpx.Client) -> None:
    response = http.get("/v3/anything")
    assert response.status_code == 404
    assert response.json() == {"error": "No route for GET /v3/anything: see docs/wire-format.md for the routes"}


@pytest.mark.parametrize(("method", "path", "allow"), [("GET", "/v2/svd", "POST"), ("PUT", "/_mock/reset", "POST")])
def test_wrong_method_is_405_json_naming_the_allowed_one(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {"error": f"Method {method} is not allowed on {path}; use {allow}"}


@pytest.mark.fake_settings(images=ImageSource(fetch_remote=True))
def test_an_image_url_with_an_impossible_port_is_400_when_fetching(http: httpx.Client) -> None:
    response = http.post("/v2/svd", json={**MODELS["svd"].example, "image": "http://a.example:99999/x.png"})
    assert response.status_code == 400
    assert "port must be a number from 1 to 65535" in response.json()["error"]


def test_a_429_far_in_the_simulated_future_names_a_time_a_minute_on_by_the_wall_clock(http: httpx.Client) -> None:
    http.post("/_mock/clock/advance", json={"seconds": 9e11})  # past the year 9999
    asked_at = time.time()
    response = http.post("/v2/svd", json=MODELS["svd"].example, headers={"x-mock-status": "429"})
    assert response.status_code == 429
    reset = datetime.strptime(response.headers["x-rate-limit-reset-at-utc"], "%Y-%m-%dT%H:%M:%SZ")
    assert asked_at + 59 < reset.replace(tzinfo=UTC).timestamp() <= time.time() + 61


def _broken_submit(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError("a bug in the fake")


def test_a_bug_in_the_fake_is_a_500_in_the_envelope_and_journaled(
    mock: SegmindMock, make_fake: FakeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mock.service, "submit", _broken_submit)  # a bug: every submission raises
    http = make_fake.http(mock)
    response = http.post("/v2/svd", json=MODELS["svd"].example)
    assert response.status_code == 500
    assert response.json() == {"error": "The fake failed unexpectedly: RuntimeError: a bug in the fake"}
    assert http.get("/_mock/health").status_code == 200  # the fake carries on
    assert [(entry["path"], entry["status"]) for entry in mock.requests] == [("/v2/svd", 500)]

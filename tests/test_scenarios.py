"""Scenarios through the admin API: every outcome on demand, for the submissions a rule matches."""

from __future__ import annotations

import re

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock, api_errors, wire
from tests.support import API_KEY
from tests.support_scenarios import add

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SVD = MODELS["svd"].example
MOTION = MODELS["motionctrl-svd"].example


def final_status(http: httpx.Client, mock: SegmindMock, model: str, payload: dict, **headers: str) -> dict:
    job = http.post(f"/v2/{model}", json=payload, headers=headers)
    assert job.status_code == 200, job.text
    mock.advance(1000)
    return http.get(job.json()["status_url"]).json()


def test_failed_outcome_ends_the_job_failed_with_the_given_error(http: httpx.Client, mock: SegmindMock) -> None:
    add(http, {"outcome": "failed", "error": "GPU fell over", "times": 1})
    body = final_status(http, mock, "svd", SVD)
    assert body["status"] == "FAILED"
    assert body["error"] == "GPU fell over"
    assert set(body) == {"status", "error", "request_id", "metrics"}
    assert final_status(http, mock, "svd", SVD)["status"] == "COMPLETED"  # used up after one time


def test_rai_blocked_outcome_fails_with_a_content_policy_error(http: httpx.Client, mock: SegmindMock) -> None:
    add(http, {"outcome": "rai_blocked"})
    body = final_status(http, mock, "motionctrl-svd", MOTION)
    assert body["status"] == "FAILED"
    assert body["error"] == wire.RAI_BLOCKED


@pytest.mark.parametrize("status", sorted(api_errors.STATUS_MESSAGES))
def test_http_error_outcome_answers_the_submission_with_the_documented_code(http: httpx.Client, status: int) -> None:
    add(http, {"outcome": "http_error", "status": status, "times": 1})
    refused = http.post("/v2/svd", json=SVD)
    assert refused.status_code == status
    assert refused.json() == {"error": api_errors.STATUS_MESSAGES[status]}
    assert http.post("/v2/svd", json=SVD).status_code == 200


def test_http_error_429_carries_the_rate_limit_reset_header(http: httpx.Client) -> None:
    add(http, {"outcome": "http_error", "status": 429, "error": "slow down"})
    refused = http.post("/v1/svd", json=SVD)
    assert refused.status_code == 429
    assert refused.json() == {"error": "slow down"}
    assert "retry-after" not in refused.headers
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", refused.headers["x-rate-limit-reset-at-utc"])


def test_http_error_applies_even_to_a_payload_that_would_be_refused(http: httpx.Client) -> None:
    add(http, {"outcome": "http_error", "status": 406})
    assert http.post("/v2/svd", json={"fps": 0}).status_code == 406


def test_rule_matches_model_key_and_parameter_values(http: httpx.Client, mock: SegmindMock) -> None:
    add(http, {"match": {"model": "svd", "api_key": API_KEY, "frames": "25"}, "outcome": "failed", "error": "no"})
    assert final_status(http, mock, "svd", {**SVD, "frames": 25})["status"] == "FAILED"
    assert final_status(http, mock, "svd", {**SVD, "frames": 14})["status"] == "COMPLETED"
    assert (
        final_status(http, mock, "svd", {**SVD, "frames": 25}, **{"x-api-key": "SG_fedcba9876543210"})["status"]
        == "COMPLETED"
    )
    assert final_status(http, mock, "motionctrl-svd", MOTION)["status"] == "COMPLETED"


def test_durations_set_the_jobs_timeline(http: httpx.Client, mock: SegmindMock) -> None:
    add(http, {"queue_seconds": 10, "processing_seconds": 5})
    job = http.post("/v2/svd", json=SVD).json()
    mock.advance(9)
    assert http.get(job["status_url"]).json()["status"] == "QUEUED"
    mock.advance(1)
    assert http.get(job["status_url"]).json()["status"] == "PROCESSING"
    mock.advance(5)
    done = http.get(job["status_url"]).json()
    assert done["status"] == "COMPLETED"
    assert done["metrics"]["inference_time"] == 5


def test_first_matching_rule_wins_and_times_count_down(http: httpx.Client, mock: SegmindMock) -> None:
    add(http, {"outcome": "failed", "error": "first", "times": 2})
    add(http, {"outcome": "failed", "error": "second"})
    errors = [final_status(http, mock, "svd", SVD)["error"] for _ in range(4)]
    assert errors == ["first", "first", "second", "second"]
    rules = http.get("/_mock/scenarios").json()
    assert [(rule["error"], rule["times"], rule["hits"]) for rule in rules] == [("second", -1, 2)]


def test_rules_are_listed_removed_and_cleared(http: httpx.Client) -> None:
    first = add(http, {"outcome": "rai_blocked"})
    add(http, {"outcome": "failed"})
    assert http.delete(f"/_mock/scenarios/{first['id']}").status_code == 204
    assert [rule["outcome"] for rule in http.get("/_mock/scenarios").json()] == ["failed"]
    assert http.delete("/_mock/scenarios/999").status_code == 404
    assert http.delete("/_mock/scenarios").json() == []
    assert http.get("/_mock/scenarios").json() == []


@pytest.mark.parametrize(
    ("rule", "hint"),
    [
        ({"outcome": "explode"}, "outcome must be one of"),
        ({"outcome": "http_error", "status": 418}, "status must be one of the documented error codes"),
        ({"outcome": "failed", "times": 0}, "times must be a positive integer"),
        ({"outcome": "failed", "status": 500}, "unknown field(s) status"),
        ({"match": {"model": "sdxl"}}, "match.model must be one of svd, motionctrl-svd"),
        ({"queue_seconds": -1}, "queue_seconds must be a number"),
        ([1, 2], "must be a JSON object"),
        (
            {"match": "{frames: 14"},
            'match must be a JSON object of model, api_key and parameter values, e.g. {"frames": 14} '
            '(got "{frames: 14")',
        ),
    ],
)
def test_invalid_rule_is_refused_with_what_to_fix(http: httpx.Client, rule, hint: str) -> None:
    response = http.post("/_mock/scenarios", json=rule)
    assert response.status_code == 400
    assert hint in response.json()["error"]


def test_python_api_adds_the_same_rules(http: httpx.Client, mock: SegmindMock) -> None:
    mock.add_scenario(match={"model": "svd"}, outcome="http_error", status=502, times=1)
    assert http.post("/v2/svd", json=SVD).status_code == 502
    assert http.get("/_mock/scenarios").json() == []


def test_a_submission_refused_for_its_parameters_uses_no_rule_up(http: httpx.Client, mock: SegmindMock) -> None:
    add(http, {"outcome": "failed", "error": "planned failure", "times": 1})
    assert http.post("/v2/svd", json={**SVD, "fps": 0}).status_code == 400
    assert final_status(http, mock, "svd", SVD)["error"] == "planned failure"
    assert http.get("/_mock/scenarios").json() == []

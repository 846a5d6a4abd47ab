"""A v2 job's life over HTTP: submit, the documented states on the fake's clock, results, expiry."""

from __future__ import annotations

import random
import uuid

import httpx
import pytest

from contracts import MODELS, ModelSpec
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, api_errors, defaults, pricing, wire

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SPECS = list(MODELS.values())


def submit(http: httpx.Client, model: str, **overrides: object) -> dict:
    response = http.post(f"/v2/{model}", json={**MODELS[model].example, **overrides})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.slug)
def test_submit_answers_200_with_absolute_urls_on_the_called_host(http: httpx.Client, spec) -> None:
    body = submit(http, spec.slug)
    request_id = body["request_id"]
    assert uuid.UUID(request_id).version == 4
    assert body["status"] == "QUEUED"
    assert body["status_url"] == f"https://api.segmind.com/v2/requests/{request_id}/status"
    assert body["response_url"] == f"https://api.segmind.com/v2/requests/{request_id}"
    assert body["poll_url"] == f"https://api.segmind.com/v1/requests/{request_id}"


def test_urls_follow_the_host_header_the_client_sent(http: httpx.Client) -> None:
    response = http.post("http://staging.example:9000/v2/svd", json=MODELS["svd"].example)
    assert response.json()["status_url"].startswith("http://staging.example:9000/v2/requests/")


def test_each_submission_is_a_new_request(http: httpx.Client) -> None:
    ids = {submit(http, "svd")["request_id"] for _ in range(5)}
    assert len(ids) == 5


def test_a_test_seeding_random_the_same_way_twice_still_gets_two_jobs(http: httpx.Client) -> None:
    # Tests seed the global `random` (Hypothesis does it for every example): request ids must not
    # follow it, or a second job would take the first one's id and the first would be lost.
    random.seed(7)
    first = submit(http, "svd", seed=1)["request_id"]
    random.seed(7)
    second = submit(http, "svd", seed=2)["request_id"]
    assert first != second
    assert http.get(f"/v2/requests/{first}/status").status_code == 200
    assert http.get(f"/v2/requests/{second}/status").status_code == 200


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.slug)
def test_job_moves_through_the_documented_states_on_the_clock(http: httpx.Client, mock: SegmindMock, spec) -> None:
    job = submit(http, spec.slug)
    status_url = job["status_url"]

    queued = http.get(status_url).json()
    assert queued["status"] == "QUEUED"
    assert queued["metrics"] == {}
    assert queued["status_url"] == status_url and queued["response_url"] == job["response_url"]

    mock.advance(defaults.QUEUE_SECONDS)
    processing = http.get(status_url).json()
    assert processing["status"] == "PROCESSING"
    assert processing["request_id"] == job["request_id"]

    mock.advance(spec.latency_seconds - 0.01)
    assert http.get(status_url).json()["status"] == "PROCESSING"

    mock.advance(0.01)
    done = http.get(status_url)
    assert done.status_code == 200
    assert done.json() == {
        "status": "COMPLETED",
        "request_id": job["request_id"],
        "metrics": {
            "inference_time": spec.latency_seconds,
            "queue_time": defaults.QUEUE_SECONDS,
            "total_time": round(spec.latency_seconds + defaults.QUEUE_SECONDS, 2),
            "cost": pricing.PRICES[spec.slug],
            "remaining_credits": pricing.OPEN_KEY_CREDITS,  # the open mode's stand-in balance
        },
    }


def test_result_while_waiting_carries_the_status_and_no_output(http: httpx.Client) -> None:
    job = submit(http, "svd")
    result = http.get(job["response_url"])
    assert result.status_code == 200
    assert result.json()["status"] == "QUEUED"
    assert result.json()["output"] is None


def test_completed_result_links_an_mp4_the_fake_serves(http: httpx.Client, mock: SegmindMock) -> None:
    job = submit(http, "svd")
    mock.advance(100)
    result = http.get(job["response_url"])
    body = result.json()
    assert result.status_code == 200
    assert body["status"] == "COMPLETED"
    assert body["error"] is None
    assert body["metrics"]["inference_time"] == MODELS["svd"].latency_seconds

    video = http.get(body["output"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"  # an ISO media file
    assert body["video"]["file_size"] == len(video.content)


def test_a_completed_jobs_parameters_are_not_validated_again_when_its_result_is_fetched(
    http: httpx.Client, mock: SegmindMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validated once, at submission: the job keeps the checked parameters, and its video is
    # rendered, and its cache key built, from them as they are.
    job = submit(http, "svd")
    mock.advance(100)

    def refuse(*args: object) -> dict:
        raise AssertionError("validated again")

    monkeypatch.setattr(ModelSpec, "validate", refuse)
    first = http.get(job["response_url"])  # renders (or picks) the video
    again = http.get(job["response_url"])  # from the cache
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert http.get(first.json()["output"]).content[4:8] == b"ftyp"


def test_a_result_polled_under_the_mirror_links_the_one_output_route(http: httpx.Client, mock: SegmindMock) -> None:
    job = submit(http, "svd")
    mock.advance(100)
    mirrored = job["response_url"].replace("/v2/", f"{wire.MIRROR_PREFIX}/v2/", 1)
    body = http.get(mirrored).json()
    assert body["status"] == "COMPLETED"
    assert body["output"] == f"https://api.segmind.com/_mock/outputs/{job['request_id']}.mp4"
    assert http.get(body["output"]).status_code == 200


def test_poll_url_serves_the_result(http: httpx.Client, mock: SegmindMock) -> None:
    job = submit(http, "motionctrl-svd")
    mock.advance(100)
    assert http.get(job["poll_url"]).json() == http.get(job["response_url"]).json()


def test_base64_result_carries_the_video_itself(http: httpx.Client, mock: SegmindMock) -> None:
    import base64

    job = submit(http, "svd", base64=True)
    mock.advance(100)
    body = http.get(job["response_url"]).json()
    video = base64.b64decode(body["output"])
    assert video[4:8] == b"ftyp"
    assert http.get(body["video"]["url"]).content == video


@pytest.mark.parametrize("outcome", [{"outcome": "failed", "error": "CUDA out of memory"}, {"outcome": "rai_blocked"}])
def test_failed_job_is_served_as_422_on_status_and_result(http: httpx.Client, mock: SegmindMock, outcome) -> None:
    mock.add_scenario(**outcome)
    job = submit(http, "svd")
    assert http.get(job["status_url"]).json()["status"] == "QUEUED"
    mock.advance(100)
    expected_error = outcome.get("error", wire.RAI_BLOCKED)
    for url in (job["status_url"], job["response_url"], job["poll_url"]):
        response = http.get(url)
        assert response.status_code == 422
        body = response.json()
        assert body["status"] == "FAILED"
        assert body["error"] == expected_error
        assert body["request_id"] == job["request_id"]
        assert "metrics" in body
    assert http.get(f"/_mock/outputs/{job['request_id']}.mp4").status_code == 404


def test_every_poll_endpoint_is_404_one_hour_after_submission(http: httpx.Client, mock: SegmindMock) -> None:
    job = submit(http, "svd")
    mock.advance(RESULT_RETENTION_SECONDS - 1)
    assert http.get(job["status_url"]).status_code == 200
    mock.advance(1)
    for url in (job["status_url"], job["response_url"], job["poll_url"]):
        response = http.get(url)
        assert response.status_code == 404
        assert response.json() == {"error": f"Request {job['request_id']} not found"}


def test_unknown_request_id_is_404_in_the_envelope(http: httpx.Client) -> None:
    response = http.get(f"/v2/requests/{uuid.uuid4()}/status")
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


def test_output_files_outlive_results_then_expire(http: httpx.Client, mock: SegmindMock) -> None:
    job = submit(http, "svd")
    mock.advance(100)
    output = http.get(job["response_url"]).json()["output"]
    mock.advance(RESULT_RETENTION_SECONDS)
    assert http.get(job["response_url"]).status_code == 404
    assert http.get(output).status_code == 200
    mock.advance(wire.OUTPUT_RETENTION_SECONDS)
    assert http.get(output).status_code == 404


def test_output_is_not_served_before_the_job_completes(http: httpx.Client) -> None:
    job = submit(http, "svd")
    assert http.get(f"/_mock/outputs/{job['request_id']}.mp4").status_code == 404


def test_expired_jobs_are_evicted_so_memory_stays_bounded(http: httpx.Client, mock: SegmindMock) -> None:
    for _ in range(50):
        submit(http, "svd")
    assert len(mock.jobs) == 50
    mock.advance(wire.OUTPUT_RETENTION_SECONDS + 1000)
    submit(http, "svd")
    assert mock.service.jobs.count() == 1


def test_status_needs_an_api_key(http: httpx.Client) -> None:
    job = submit(http, "svd")
    response = http.get(job["status_url"], headers={"x-api-key": ""})
    assert response.status_code == 401
    assert response.json() == {"error": api_errors.MISSING_KEY}

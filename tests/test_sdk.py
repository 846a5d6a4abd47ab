"""The official SDK (segmind 1.3.0) against the fake: in-process and through a real uvicorn server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable

import pytest
from segmind import InferenceFailed, InferenceTimeout, SegmindClient, SegmindError

from contracts import MODELS
from contracts.responses import BASE64_VIDEO_KEY, RESULT_RETENTION_SECONDS, SYNC_FAILED_STATUS
from mock_server import SegmindMock, Settings, api_errors, defaults, wire
from mock_server.transport import PortalTransport
from tests.support import API_KEY, SEGMIND

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SPECS = list(MODELS.values())


def wait_done(client: SegmindClient, mock: SegmindMock, model: str, **overrides: object) -> dict:
    job = client.submit_async(model, **{**MODELS[model].example, **overrides})
    mock.advance(1000)  # past the job's end, so wait() returns on its first poll
    return job.wait(timeout=5, interval=0.001)


def wait_until(condition: Callable[[], object], tries: int = 5000, pause: float = 0.001) -> bool:
    """Check `condition` up to `tries` times, `pause` real seconds apart; whether it came true."""
    idle = threading.Event()
    for _ in range(tries):
        if condition():
            return True
        idle.wait(pause)
    return False


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.slug)
def test_submit_and_wait_returns_the_completed_result(sdk: SegmindClient, mock: SegmindMock, spec) -> None:
    result = wait_done(sdk, mock, spec.slug)
    assert result["status"] == "COMPLETED"
    assert result["metrics"]["inference_time"] == spec.latency_seconds
    assert sdk._client.get(result["output"]).content[4:8] == b"ftyp"


def test_wait_times_out_while_the_clock_is_frozen(sdk: SegmindClient) -> None:
    job = sdk.submit_async("svd", **MODELS["svd"].example)
    with pytest.raises(InferenceTimeout) as raised:
        job.wait(timeout=0, interval=0.001)
    assert raised.value.request_id == job.request_id


def test_failed_job_raises_inference_failed_with_the_error(sdk: SegmindClient, mock: SegmindMock) -> None:
    mock.add_scenario(outcome="failed", error="worker crashed")
    with pytest.raises(InferenceFailed) as raised:
        wait_done(sdk, mock, "svd")
    assert raised.value.detail == "worker crashed"
    assert raised.value.status_body["status"] == "FAILED"


def test_rai_block_raises_inference_failed(sdk: SegmindClient, mock: SegmindMock) -> None:
    mock.add_scenario(outcome="rai_blocked")
    with pytest.raises(InferenceFailed) as raised:
        wait_done(sdk, mock, "motionctrl-svd")
    assert raised.value.detail == wire.RAI_BLOCKED


def test_polling_after_expiry_raises_404(sdk: SegmindClient, mock: SegmindMock) -> None:
    job = sdk.submit_async("svd", **MODELS["svd"].example)
    mock.advance(RESULT_RETENTION_SECONDS)
    with pytest.raises(SegmindError) as raised:
        job.wait(timeout=5, interval=0.001)
    assert raised.value.status == 404
    assert raised.value.detail == f"Request {job.request_id} not found"


@pytest.mark.parametrize("status", sorted(api_errors.STATUS_MESSAGES))
def test_error_codes_reach_the_sdk_as_segmind_error(sdk: SegmindClient, mock: SegmindMock, status: int) -> None:
    mock.add_scenario(outcome="http_error", status=status)
    with pytest.raises(SegmindError) as raised:
        sdk.submit_async("svd", **MODELS["svd"].example)
    assert (raised.value.status, raised.value.detail) == (status, api_errors.STATUS_MESSAGES[status])


def test_invalid_parameters_reach_the_sdk_as_400(sdk: SegmindClient) -> None:
    with pytest.raises(SegmindError) as raised:
        sdk.submit_async("svd", **{**MODELS["svd"].example, "fps": 61})
    assert raised.value.status == 400
    assert "fps must be an integer from 1 to 60 (got 61)" in raised.value.detail


def test_run_sync_returns_mp4_bytes_after_the_simulated_duration(store: str) -> None:
    mock = SegmindMock(Settings(speed=0, virtual=True, store=store))
    client = SegmindClient(api_key=API_KEY, base_url=f"{SEGMIND}/v1")
    client._client._transport = PortalTransport(mock.app)
    start = mock.clock.now()
    response = client.run_sync("svd", **MODELS["svd"].example)
    client._client.close()
    assert response.headers["content-type"] == "video/mp4"
    assert response.content[4:8] == b"ftyp"
    assert response.headers["x-seed-value"] == str(MODELS["svd"].example["seed"])
    assert float(response.headers["x-generation-time"]) == MODELS["svd"].latency_seconds
    assert mock.clock.now() - start == pytest.approx(defaults.QUEUE_SECONDS + MODELS["svd"].latency_seconds)


def test_run_sync_blocks_until_the_clock_reaches_the_end(sdk: SegmindClient, mock: SegmindMock) -> None:
    mock.clock.set_speed(0.001)  # running, slowly: a frozen clock would jump to the job's end at once
    answered: list = []
    call = threading.Thread(target=lambda: answered.append(sdk.run_sync("svd", **MODELS["svd"].example)))
    call.start()
    arrived = wait_until(lambda: mock.jobs)  # wait for the request to arrive (the job's end is hours away)
    assert arrived and call.is_alive() and not answered
    mock.advance(1000)
    call.join(5)
    assert answered[0].status_code == 200


def test_run_sync_with_base64_returns_json(sdk: SegmindClient, mock: SegmindMock) -> None:
    mock.add_scenario(queue_seconds=0, processing_seconds=0)
    response = sdk.run_sync("svd", **{**MODELS["svd"].example, "base64": True})
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {BASE64_VIDEO_KEY}


def test_run_sync_of_a_failing_job_raises(sdk: SegmindClient, mock: SegmindMock) -> None:
    mock.add_scenario(outcome="rai_blocked", queue_seconds=0, processing_seconds=0)
    with pytest.raises(SegmindError) as raised:
        sdk.run_sync("motionctrl-svd", **MODELS["motionctrl-svd"].example)
    assert (raised.value.status, raised.value.detail) == (SYNC_FAILED_STATUS, wire.RAI_BLOCKED)


# The same through a real uvicorn server on loopback.


def test_real_server_serves_the_sdk_end_to_end(server, make_sdk: Callable[..., SegmindClient]) -> None:
    mock, url = server
    client = make_sdk(url)
    result = wait_done(client, mock, "motionctrl-svd")
    assert result["status"] == "COMPLETED"
    assert result["output"].startswith(f"{url}/_mock/outputs/")
    assert client._client.get(result["output"]).content[4:8] == b"ftyp"


def test_real_server_failures_and_expiry(server, make_sdk: Callable[..., SegmindClient]) -> None:
    mock, url = server
    client = make_sdk(url)
    mock.add_scenario(outcome="failed", error="boom", times=1)
    with pytest.raises(InferenceFailed):
        wait_done(client, mock, "svd")
    job = client.submit_async("svd", **MODELS["svd"].example)
    mock.advance(RESULT_RETENTION_SECONDS)
    with pytest.raises(SegmindError) as raised:
        job.status()
    assert raised.value.status == 404


def test_real_server_run_sync_returns_mp4(server, make_sdk: Callable[..., SegmindClient]) -> None:
    mock, url = server
    mock.add_scenario(queue_seconds=0, processing_seconds=0)
    response = make_sdk(url).run_sync("svd", **MODELS["svd"].example)
    assert response.headers["content-type"] == "video/mp4"
    assert response.content[4:8] == b"ftyp"


def test_real_server_answers_missing_key_with_401(server, make_sdk: Callable[..., SegmindClient]) -> None:
    _, url = server
    client = make_sdk(url, api_key="")
    client._client.headers.pop("x-api-key", None)
    with pytest.raises(SegmindError) as raised:
        client.submit_async("svd", **MODELS["svd"].example)
    assert (raised.value.status, raised.value.detail) == (401, api_errors.MISSING_KEY)


def test_a_v1_call_whose_client_hangs_up_stops_waiting(server) -> None:
    mock, url = server
    mock.clock.set_speed(0.001)  # running, slowly: a frozen clock would jump to the job's end at once
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(MODELS["svd"].example).encode()
    head = f"POST /v1/svd HTTP/1.1\r\nhost: {host}\r\nx-api-key: {API_KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
    with socket.create_connection((host, int(port))) as client:
        client.sendall(head.encode() + body)
        wait_until(lambda: mock.jobs)  # wait for the call to arrive; the job's end is hours away
    # Hung up: the wait ends and the exchange is journaled, though the clock never reached the job's end.
    wait_until(lambda: mock.requests)
    assert [entry["status"] for entry in mock.requests] == [api_errors.CLIENT_GONE_STATUS]
    assert mock.jobs[0]["state"] == "QUEUED"  # accepted, and kept

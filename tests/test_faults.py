"""Network faults and header overrides: on a real uvicorn socket, in-process, and through the official SDK."""

from __future__ import annotations

import json

import httpx
import pytest
from segmind import InferenceFailed, SegmindError

from mock_server import SegmindMock, api_errors
from mock_server.scenarios import OUTCOME_FIELDS
from tests.support_accounts import CONFIG, RICH, SVD, submit
from tests.support_fakes import FakeFactory
from tests.support_scenarios import add

# Each test using `store` runs on memory and on Redis; the in-process fake (`mock`) declares the test keys.
pytestmark = [pytest.mark.stores, pytest.mark.fake_settings(accounts=CONFIG)]


# Real seconds: these stand for the network. Kept tiny; tests assert what happens, not how long it takes.
DELAY = 0.05

Live = tuple[SegmindMock, httpx.Client]


@pytest.fixture
def live(server: tuple[SegmindMock, str], make_fake: FakeFactory) -> Live:
    """The session's real server for this store, reset, and a client of it on a real socket sending RICH."""
    mock, url = server
    return mock, make_fake.http(url, RICH)


# On a real socket (uvicorn)


def test_a_dropped_submission_reaches_the_client_as_a_closed_connection(live: Live) -> None:
    fake, http = live
    add(http, {"outcome": "disconnect", "times": 1})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        submit(http, RICH)
    # The request reached the service: its job runs, only the answer was lost (and is journaled as none).
    assert len(fake.jobs) == 1
    assert fake.requests[-1]["status"] is None
    assert submit(http, RICH).status_code == 200  # the server carries on


def test_a_truncated_status_answer_breaks_off_mid_body(live: Live) -> None:
    _, http = live
    job = submit(http, RICH).json()
    add(http, {"target": "status", "outcome": "truncated", "times": 1})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        http.get(job["status_url"])
    assert http.get(job["status_url"]).json()["status"] == "QUEUED"


def test_a_malformed_result_is_a_200_whose_json_is_cut_short(live: Live) -> None:
    fake, http = live
    job = submit(http, RICH).json()
    fake.advance(1000)
    add(http, {"target": "result", "outcome": "malformed", "times": 1})
    garbled = http.get(job["response_url"])
    assert garbled.status_code == 200
    assert garbled.headers["content-type"] == "application/json"
    assert garbled.headers.get_list("content-length") == [str(len(garbled.content))]  # the half sent, whole
    with pytest.raises(json.JSONDecodeError):
        garbled.json()
    assert http.get(job["response_url"]).json()["status"] == "COMPLETED"


def test_latency_holds_the_answer_back_in_real_time(live: Live, server: tuple[SegmindMock, str]) -> None:
    fake, http = live
    add(http, {"outcome": "latency", "delay_seconds": 1.0, "times": 1})
    # Time to connect, but not to wait a whole second for the answer.
    impatience = httpx.Timeout(10.0, read=0.1)
    impatient = httpx.Client(base_url=server[1], headers={"x-api-key": RICH}, timeout=impatience)
    with impatient, pytest.raises(httpx.ReadTimeout):
        submit(impatient, RICH)
    assert submit(http, RICH).status_code == 200  # the rule was used up: on time again
    assert len(fake.jobs) == 2  # the late answer's job was accepted all the same


def test_a_gateway_timeout_after_a_delay_on_status_polls(
    live: Live, server: tuple[SegmindMock, str], make_fake: FakeFactory
) -> None:
    _, http = live
    job = submit(http, RICH).json()
    add(http, {"target": "status", "outcome": "http_error", "status": 504, "delay_seconds": DELAY, "times": 1})
    late = http.get(job["status_url"])
    assert late.status_code == 504
    assert late.json() == {"error": api_errors.STATUS_MESSAGES[504]}
    sdk = make_fake.sdk(server[1], RICH)
    add(http, {"target": "status", "outcome": "http_error", "status": 502, "delay_seconds": DELAY})
    with pytest.raises(SegmindError) as raised:
        sdk.submit_async("svd", **SVD).wait(timeout=5, interval=0.001)
    assert (raised.value.status, raised.value.detail) == (502, api_errors.STATUS_MESSAGES[502])


def test_nth_picks_which_matching_request_the_rule_hits(live: Live) -> None:
    _, http = live
    job = submit(http, RICH).json()
    add(http, {"target": "status", "outcome": "disconnect", "nth": 2, "times": 1})
    assert http.get(job["status_url"]).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(job["status_url"])
    assert http.get(job["status_url"]).status_code == 200
    assert http.get("/_mock/scenarios").json() == []


def test_poll_rules_match_the_polled_jobs_model(live: Live) -> None:
    _, http = live
    svd = submit(http, RICH, "svd").json()
    motion = submit(http, RICH, "motionctrl-svd").json()
    add(http, {"target": "status", "match": {"model": "motionctrl-svd"}, "outcome": "http_error", "status": 500})
    assert http.get(svd["status_url"]).status_code == 200
    assert http.get(motion["status_url"]).status_code == 500
    assert http.get(motion["response_url"]).status_code == 200  # status rules leave results alone


def test_the_sdk_meets_a_dropped_connection_on_submit(
    live: Live, server: tuple[SegmindMock, str], make_fake: FakeFactory
) -> None:
    _, http = live
    sdk = make_fake.sdk(server[1], RICH)
    add(http, {"outcome": "disconnect", "times": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        sdk.submit_async("svd", **SVD)
    assert sdk.submit_async("svd", **SVD).request_id


# In-process (PortalTransport): the same faults as the errors httpx raises on a socket


@pytest.mark.parametrize(
    ("outcome", "message"),
    [("disconnect", "without sending a response"), ("truncated", "without sending complete message body")],
)
def test_in_process_faults_raise_what_a_socket_would(
    client: httpx.Client, mock: SegmindMock, make_fake: FakeFactory, outcome: str, message: str
) -> None:
    client.post("/_mock/scenarios", json={"outcome": outcome, "times": 2})
    with pytest.raises(httpx.RemoteProtocolError, match=message):
        submit(client, RICH)
    with pytest.raises(httpx.RemoteProtocolError, match=message):
        make_fake.sdk(mock, RICH).submit_async("svd", **SVD)
    assert submit(client, RICH).status_code == 200


# Rules: what a bad one is told


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"outcome": "failed", "target": "status"}, "outcome 'failed' decides how a job ends, so its target must be"),
        ({"outcome": "disconnect", "target": "poll"}, "target must be one of submit, status, result (got 'poll')"),
        ({"outcome": "latency"}, "outcome 'latency' needs delay_seconds"),
        ({"outcome": "disconnect", "nth": 0}, "nth must be a positive integer"),
        ({"outcome": "disconnect", "target": "status", "queue_seconds": 1}, "unknown field(s) queue_seconds"),
        ({"outcome": "malformed", "delay_seconds": -1}, "delay_seconds must be a number of seconds, 0 or more"),
        (
            {"outcome": "http_error", "status": 406, "target": "status"},
            "status 406 is not an answer to a poll (target 'status'): a poll may answer 401, 403, 404, 429, 500",
        ),
        ({"outcome": "http_error", "status": 400, "target": "result"}, "use target 'submit' for it"),
    ],
)
def test_a_bad_fault_rule_is_a_400_that_says_what_to_fix(client: httpx.Client, rule: dict, message: str) -> None:
    refused = client.post("/_mock/scenarios", json=rule)
    assert refused.status_code == 400
    assert message in refused.json()["error"]


def test_every_outcome_is_offered(client: httpx.Client) -> None:
    refused = client.post("/_mock/scenarios", json={"outcome": "explode"}).json()["error"]
    assert all(outcome in refused for outcome in OUTCOME_FIELDS)


# Header overrides: one submission's outcome, for clients that cannot reach the admin API


def test_x_mock_outcome_fails_that_submission_only(
    client: httpx.Client, mock: SegmindMock, make_fake: FakeFactory
) -> None:
    sdk = make_fake.sdk(mock, RICH)
    sdk._client.headers.update({"x-mock-outcome": "failed", "x-mock-error": "CUDA out of memory"})
    job = sdk.submit_async("svd", **SVD)
    mock.advance(1000)
    with pytest.raises(InferenceFailed) as raised:
        job.wait(timeout=5, interval=0.001)
    assert raised.value.detail == "CUDA out of memory"
    ok = submit(client, RICH)
    mock.advance(1000)
    assert client.get(ok.json()["status_url"], headers={"x-api-key": RICH}).json()["status"] == "COMPLETED"


def test_x_mock_status_refuses_with_that_code(client: httpx.Client, mock: SegmindMock, make_fake: FakeFactory) -> None:
    limited = submit(client, RICH, **{"x-mock-status": "429"})
    assert limited.status_code == 429
    assert limited.json() == {"error": api_errors.STATUS_MESSAGES[429]}
    assert "x-rate-limit-reset-at-utc" in limited.headers
    sdk = make_fake.sdk(mock, RICH)
    sdk._client.headers.update({"x-mock-status": "502", "x-mock-error": "upstream gone"})
    with pytest.raises(SegmindError) as raised:
        sdk.submit_async("svd", **SVD)
    assert (raised.value.status, raised.value.detail) == (502, "upstream gone")


def test_header_overrides_leave_the_rule_book_alone(client: httpx.Client) -> None:
    rule = add(client, {"outcome": "http_error", "status": 500, "times": 1})
    assert submit(client, RICH, **{"x-mock-outcome": "completed"}).status_code == 200
    assert client.get("/_mock/scenarios").json()[0]["id"] == rule["id"]
    assert submit(client, RICH).status_code == 500


def test_header_overrides_can_drop_the_connection(live: Live) -> None:
    _, http = live
    with pytest.raises(httpx.RemoteProtocolError):
        submit(http, RICH, **{"x-mock-outcome": "disconnect", "x-mock-delay-seconds": str(DELAY)})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-mock-outcome": "explode"}, "outcome must be one of completed, failed"),
        ({"x-mock-status": "418"}, "status must be one of the documented error codes"),
        ({"x-mock-status": "soon"}, "x-mock-status must be a number (got 'soon')"),
        (
            {"x-mock-delay-seconds": "-2", "x-mock-outcome": "latency"},
            "x-mock-delay-seconds must be a number of seconds",
        ),
        ({"x-mock-outcom": "failed"}, "unknown header x-mock-outcom; use x-mock-outcome"),
        ({"x-mock-outcome": "failed", "x-mock-status": "500"}, "unknown field(s) status for outcome 'failed'"),
    ],
)
def test_a_bad_override_header_is_a_400_that_says_what_to_fix(
    client: httpx.Client, mock: SegmindMock, headers: dict, message: str
) -> None:
    refused = submit(client, RICH, **headers)
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("Invalid x-mock-* header: ")
    assert message in refused.json()["error"]
    assert mock.jobs == []

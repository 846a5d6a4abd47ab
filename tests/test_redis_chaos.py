"""The Redis store under chaos: a real Redis-compatible server killed, stopped and continued, out of memory.

Each test starts its own server on a loopback port (tests/support_stores.py) and a fake on it behind
a real uvicorn server. Whatever Redis does, every answer is whole JSON: a prompt 503 in the envelope
while Redis is away, the usual answers once it is back, without restarting the fake.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from contracts import MODELS
from mock_server import SegmindMock, Settings, pricing
from mock_server.accounts import parse_config
from mock_server.server import ServerThread
from tests.support import API_KEY
from tests.support_relay import StallingRelay
from tests.support_stores import namespaced, redis_server, start_redis

pytestmark = pytest.mark.slow

# Far past the store's 1 s timeout, far short of redis-py's own 5 s (and its retries): a client
# waiting this long for an answer means the fake hung on Redis.
PROMPT = httpx.Timeout(3.0)
SUBMIT = MODELS["svd"].example
HEADERS = {"x-api-key": API_KEY}
ROUTES = (
    ("POST", "/v2/svd"),
    ("GET", "/v2/requests/nope/status"),
    ("GET", "/_mock/health"),
    ("GET", "/_mock/jobs"),
    ("GET", "/_mock/scenarios"),
    ("POST", "/_mock/clock/advance"),
)


@dataclass
class Chaos:
    """A Redis server of the test's own, and a fake served on it."""

    binary: str
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    mock: SegmindMock
    http: httpx.Client

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def restart(self) -> None:
        self.process, _ = start_redis(self.binary, self.folder, self.port)

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    binary = redis_server()
    if binary is None:
        pytest.skip("no redis-server or valkey-server")
    process, url = start_redis(binary, tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    mock = SegmindMock(Settings(store=namespaced(url), speed=0))
    try:
        with ServerThread(mock.app) as base, httpx.Client(base_url=base, headers=HEADERS, timeout=PROMPT) as http:
            state = Chaos(binary, tmp_path, port, process, mock, http)
            yield state
            process = state.process
    finally:
        process.kill()  # also a stopped one
        process.wait(10)


def call(http: httpx.Client, method: str, path: str) -> httpx.Response:
    body = SUBMIT if path.startswith("/v2/svd") else {"seconds": 1} if path.endswith("advance") else None
    return http.request(method, path, json=body)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert list(response.json()) == ["error"]  # whole JSON: the answer was never cut
    assert "store is unavailable" in response.json()["error"]


def until_back(http: httpx.Client) -> httpx.Response:
    """Poll health until the fake answers 200 again (it reconnects by itself); fail after a bounded number of tries."""
    for _ in range(200):
        response = http.get("/_mock/health")
        if response.status_code == 200:
            return response
        assert_unavailable(response)
        threading.Event().wait(0.05)
    pytest.fail("the fake did not recover after Redis returned")


def test_killed_redis_gets_prompt_503s_on_every_route_then_recovers(chaos: Chaos) -> None:
    before = chaos.http.post("/v2/svd", json=SUBMIT)
    assert before.status_code == 200, before.text
    chaos.kill()
    for method, path in ROUTES:
        assert_unavailable(call(chaos.http, method, path))
    chaos.restart()
    until_back(chaos.http)
    after = chaos.http.post("/v2/svd", json=SUBMIT)
    assert after.status_code == 200, after.text
    assert chaos.http.get(f"/v2/requests/{after.json()['request_id']}/status").status_code == 200


def test_a_redis_restarted_between_two_requests_costs_no_503(chaos: Chaos) -> None:
    # The store keeps its connections open between requests; one Redis closed is opened anew.
    assert chaos.http.post("/v2/svd", json=SUBMIT).status_code == 200
    chaos.kill()
    chaos.restart()
    after = chaos.http.post("/v2/svd", json=SUBMIT)
    assert after.status_code == 200, after.text
    assert chaos.http.get(f"/v2/requests/{after.json()['request_id']}/status").status_code == 200


def test_a_redis_restart_never_moves_the_clock_back(chaos: Chaos, caplog: pytest.LogCaptureFixture) -> None:
    advanced = chaos.http.post("/_mock/clock/advance", json={"seconds": 3600}).json()["now"]
    chaos.kill()
    chaos.restart()
    until_back(chaos.http)
    now = chaos.http.get("/_mock/clock").json()["now"]
    assert now >= advanced  # frozen clock (speed 0): it continues exactly where it was
    assert "lost the clock" in caplog.text


def test_a_job_polled_before_a_redis_restart_is_404_after_it(chaos: Chaos) -> None:
    # The fake keeps the jobs it stored or polled to answer polls without a round trip; a restarted
    # Redis lost them (no saving here), and the watch's lost connection drops them here too.
    request_id = chaos.http.post("/v2/svd", json=SUBMIT).json()["request_id"]
    for _ in range(2):
        assert chaos.http.get(f"/v2/requests/{request_id}/status").status_code == 200
    chaos.kill()
    chaos.restart()
    until_back(chaos.http)
    assert chaos.http.get("/v2/requests/nope/status").status_code == 404  # watched again from here
    assert chaos.http.get(f"/v2/requests/{request_id}/status").status_code == 404


def test_stopped_redis_gets_503_within_the_timeout_and_the_worker_keeps_answering(chaos: Chaos) -> None:
    assert chaos.http.get("/_mock/health").status_code == 200
    os.kill(chaos.process.pid, signal.SIGSTOP)
    try:
        # The first call waits for the store's timeout, holding its worker that long; the rest fail
        # fast, with no round trip, so the worker keeps answering: none waits for the client's timeout.
        for method, path in ROUTES * 5:
            assert_unavailable(call(chaos.http, method, path))
        assert chaos.mock.service.backend.guard.outages == 1
    finally:
        os.kill(chaos.process.pid, signal.SIGCONT)
    assert until_back(chaos.http).json()["status"] == "ok"


def test_a_stalled_redis_never_holds_the_event_loop(chaos: Chaos) -> None:
    with StallingRelay(chaos.port) as relay:
        mock = SegmindMock(Settings(store=namespaced(f"redis://127.0.0.1:{relay.port}/0"), speed=0))
        with (
            ServerThread(mock.app) as base,
            httpx.Client(base_url=base, headers=HEADERS, timeout=PROMPT) as http,
            httpx.Client(base_url=base, headers=HEADERS, timeout=PROMPT) as other,
            ThreadPoolExecutor(1) as pool,
        ):
            assert http.get("/_mock/health").status_code == 200
            relay.stall()
            submitting = pool.submit(other.post, "/v2/svd", json=SUBMIT)
            assert relay.holding.wait(PROMPT.read), "the submission never reached Redis"
            # The submission waits on Redis (for the store's timeout): meanwhile, what needs no
            # store is served, which it could not be if the wait held the event loop.
            assert http.get("/_mock/", headers={"accept": "text/html"}).status_code == 200
            assert http.get("/_mock/static/dashboard.js").status_code == 200
            assert not relay.hung_up.is_set() and not submitting.done()
            assert_unavailable(submitting.result())
            # Redis is marked down: the rest fail fast, each answered as promptly; a route whose
            # answer needs no store is still answered, its journal entry lost alone.
            for method, path in ROUTES:
                assert_unavailable(call(http, method, path))
            assert http.get("/openapi.json").status_code == 200
            assert mock.service.backend.guard.outages == 1
            assert mock.service.journal_dropped >= 1


def test_redis_out_of_memory_refuses_submissions_whole_and_loses_no_accepted_job(chaos: Chaos) -> None:
    accepted = [chaos.http.post("/v2/svd", json=SUBMIT).json()["request_id"]]
    admin = chaos.admin()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        # A poll reads only, so it is answered; journaling it fails, and the answer is whole all the same.
        polled = chaos.http.get(f"/v2/requests/{accepted[0]}/status")
        assert polled.json()["status"] in ("QUEUED", "PROCESSING", "COMPLETED"), polled.text
        for _ in range(20):
            response = chaos.http.post("/v2/svd", json=SUBMIT)
            if response.status_code == 200:
                accepted.append(response.json()["request_id"])
            else:
                assert_unavailable(response)
        assert len(accepted) < 20
    finally:
        admin.config_set("maxmemory", "0")
    for request_id in accepted:
        assert chaos.http.get(f"/v2/requests/{request_id}/status").status_code == 200
    assert chaos.http.get("/_mock/health").json()["journal_dropped"] >= 1
    # Redis can take writes again: the fake serves as before.
    assert chaos.http.post("/v2/svd", json=SUBMIT).status_code == 200


@pytest.mark.parametrize("declared", [False, True], ids=["open", "declared-key"])
def test_a_submission_answered_503_in_a_redis_stall_leaves_nothing_behind(chaos: Chaos, declared: bool) -> None:
    # Redis stopped mid-traffic keeps the commands sent to it, and runs them when continued: a
    # submission whose writes ran after its 503 was kept (a retry duplicated it, and paid twice).
    keys = {"keys": {API_KEY: {"credits": 1_000_000}}} if declared else {}
    mock = SegmindMock(Settings(store=namespaced(f"redis://127.0.0.1:{chaos.port}/0"), accounts=parse_config(keys)))
    stop = threading.Event()
    answers: list[httpx.Response] = []

    def submit_until_stopped() -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=PROMPT) as client:
            while not stop.is_set():
                answers.append(client.post("/v2/svd", json=SUBMIT))

    with ServerThread(mock.app) as base, ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(submit_until_stopped) for _ in range(8)]
        while len(answers) < 50:  # traffic flows
            threading.Event().wait(0.01)
        os.kill(chaos.process.pid, signal.SIGSTOP)
        threading.Event().wait(2.5)  # the stall the issue reproduced: far past the store's timeout
        os.kill(chaos.process.pid, signal.SIGCONT)
        with httpx.Client(base_url=base, headers=HEADERS, timeout=PROMPT) as http:
            until_back(http)
            stop.set()
            for client in clients:
                client.result()
            accepted = {answer.json()["request_id"] for answer in answers if answer.status_code == 200}
            assert any(answer.status_code == 503 for answer in answers)
            assert {answer.status_code for answer in answers} <= {200, 503}
            kept = {job["request_id"] for job in mock.jobs}
            assert kept == accepted  # nothing refused was kept, nothing accepted was lost
            if declared:
                usage = http.get("/_mock/accounts").json()["accounts"][0]
                assert usage["held"] + usage["spent"] == pytest.approx(len(accepted) * pricing.PRICES["svd"])

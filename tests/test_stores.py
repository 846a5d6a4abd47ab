"""The Redis store and `serve --workers N`: state shared by processes, TTLs, namespaces, atomic rules, no lost job."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import redis

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, Settings, defaults, pricing, store_redis, wire
from mock_server.accounts import parse_config
from mock_server.storage import StoreError
from mock_server.store_redis import split_url
from mock_server.transport import PortalTransport
from tests.support import API_KEY
from tests.support_fakes import FakeFactory
from tests.support_relay import StallingRelay
from tests.support_stores import namespaced, status, submit

SVD = MODELS["svd"]
DURATION = defaults.QUEUE_SECONDS + SVD.latency_seconds
COMMAND = [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--speed", "0"]
LOAD_CLIENTS = 200
LOAD_SECONDS = 60


def _http(mock: SegmindMock) -> httpx.Client:
    return httpx.Client(transport=PortalTransport(mock.app), base_url="http://fake", headers={"x-api-key": API_KEY})


# In-process: two fakes on one namespace stand for two machines.


def test_two_fakes_on_one_namespace_share_jobs_clock_rules_journal_and_accounts(
    redis_url: str, make_fake: FakeFactory
) -> None:
    url = namespaced(redis_url)
    accounts = parse_config({"keys": {API_KEY: {"credits": 10}}})
    first, second = make_fake(speed=0, store=url, accounts=accounts), make_fake(speed=0, store=url, accounts=accounts)
    with _http(first) as one, _http(second) as two:
        second.add_scenario(outcome="failed", times=1)
        failed = submit(one)  # the rule added through the other fake decides it
        completed = submit(two)
        assert {job["request_id"] for job in first.jobs} == {failed, completed}
        assert second.advance(DURATION) == first.clock.now()
        assert status(two, failed).json()["status"] == "FAILED"
        assert status(one, completed).json()["status"] == "COMPLETED"
        assert second.scenarios.rules() == []  # used up by the one submission
        assert [entry["request_id"] for entry in first.requests][:2] == [failed, completed]
        spent = second.service.account_view()["accounts"][0]["spent"]
        assert spent == pricing.PRICES["svd"]  # one completed job, charged once whichever fake served it
        first.reset()
        assert (second.jobs, second.requests, status(two, completed).status_code) == ([], [], 404)


def test_a_submission_sees_the_clock_another_fake_moved_just_before(redis_url: str, make_fake: FakeFactory) -> None:
    # A submission uses the clock its process read last unless Redis said it changed since: the
    # change must be seen by the very next request, whichever process made it.
    url = namespaced(redis_url)
    first, second = make_fake(speed=0, store=url), make_fake(speed=0, store=url)
    with _http(first) as one:
        submit(one)
        for _ in range(20):
            moved_to = second.advance(600)
            assert first.job(submit(one))["submitted_at"] == moved_to  # frozen: exactly where it was moved
            second.add_scenario(outcome="failed", times=1)
            assert first.job(submit(one))["error"] is not None  # the rule added just before decides it


def test_a_change_watch_that_dies_without_a_word_is_found_and_the_clock_read_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, make_fake: FakeFactory
) -> None:
    # A NAT or a proxy may forget the watch's idle connection and leave it open: no message ever
    # comes, so only a PING unanswered tells. Proved at every request here (normally once a second).
    monkeypatch.setattr(store_redis.watch, "WATCH_CONFIRM_SECONDS", 0.0)
    url = namespaced(redis_url)
    with StallingRelay(urlsplit(url).port or 6379) as relay:
        first = make_fake(speed=0, store=url.replace(split_url(url)[0], f"redis://127.0.0.1:{relay.port}/0"))
        second = make_fake(speed=0, store=url)
        with _http(first) as one, redis.Redis.from_url(split_url(url)[0], decode_responses=True) as admin:
            submit(one)
            ports = [int(client["addr"].rsplit(":", 1)[1]) for client in admin.client_list() if "t" in client["flags"]]
            relay.freeze(next(port for port in ports if port in relay.upstream_ports()))  # the first fake's watch
            moved_to = second.advance(600)
            assert first.job(submit(one))["submitted_at"] == moved_to


def test_fakes_without_a_prefix_each_get_a_namespace_of_their_own(redis_url: str, make_fake: FakeFactory) -> None:
    first, second = make_fake(speed=0, store=redis_url), make_fake(speed=0, store=redis_url)
    with _http(first) as one:
        submit(one)
    assert len(first.jobs) == 1 and second.jobs == []
    first.advance(100)
    assert second.clock.now() < first.clock.now()


def test_a_times_1_rule_applies_to_exactly_one_of_many_concurrent_submissions(
    redis_url: str, make_fake: FakeFactory
) -> None:
    url = namespaced(redis_url)
    fakes = [make_fake(speed=0, store=url) for _ in range(2)]
    fakes[0].add_scenario(outcome="failed", times=1)
    jobs: list[str] = []

    def submit_many(mock: SegmindMock) -> None:
        for _ in range(10):
            job, _ = mock.submit("svd", SVD.example, API_KEY)
            jobs.append(job.request_id)

    threads = [threading.Thread(target=submit_many, args=(fakes[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fakes[1].advance(DURATION)
    states = [fakes[0].job(request_id)["state"] for request_id in jobs]
    assert (len(states), states.count("FAILED"), fakes[1].scenarios.rules()) == (80, 1, [])


def test_results_and_outputs_expire_through_redis_ttls_at_the_documented_retention(
    redis_url: str, make_fake: FakeFactory
) -> None:
    url = namespaced(redis_url)
    mock = make_fake(speed=0, store=url)
    keys = redis.Redis.from_url(split_url(url)[0])
    prefix = split_url(url)[1]
    with _http(mock) as client, keys:
        request_id = submit(client)
        result_ttl = keys.pttl(f"{prefix}:job:{request_id}") / 1000
        output_ttl = keys.pttl(f"{prefix}:out:{request_id}") / 1000
        # Frozen, the keys are kept for the retentions in real seconds, rounded up to the whole
        # millisecond (`ttl_ms`): a deadline such as 31.63 s past a float `now` can take 1 ms more.
        assert RESULT_RETENTION_SECONDS - 5 < result_ttl <= RESULT_RETENTION_SECONDS + 0.001
        output_retention = DURATION + wire.OUTPUT_RETENTION_SECONDS
        assert output_retention - 5 < output_ttl <= output_retention + 0.001
        mock.advance(DURATION)
        assert client.get(f"/_mock/outputs/{request_id}.mp4").status_code == 200
        mock.advance(RESULT_RETENTION_SECONDS - DURATION)  # the result retention runs from submission
        assert status(client, request_id).status_code == 404
        assert mock.jobs == []
        assert client.get(f"/_mock/outputs/{request_id}.mp4").status_code == 200  # outputs stay a week
        mock.advance(wire.OUTPUT_RETENTION_SECONDS)
        assert client.get(f"/_mock/outputs/{request_id}.mp4").status_code == 404


def test_a_redis_store_without_redis_py_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` meets when it is not installed
    with pytest.raises(StoreError, match=r"pip install 'segmind-mock\[redis\]'"):
        SegmindMock(Settings(store="redis://127.0.0.1:6379/0"))


@pytest.mark.slow
def test_serve_refuses_several_workers_on_the_memory_store_and_unusable_stores() -> None:
    for flags, message in [
        (["--workers", "2", "--store", "memory"], "--workers 2 needs a shared store"),
        (["--store", "mysql://db"], "store must be 'memory' or a Redis URL"),
        (["--store", "redis://127.0.0.1:1/0"], "cannot use the Redis store redis://127.0.0.1:1/0"),
    ]:
        run = subprocess.run([*COMMAND, *flags], capture_output=True, text=True, timeout=30)
        assert (run.returncode, message in run.stderr) == (2, True), run.stderr


# `segmind-mock serve --workers 2`: a real supervisor, two worker processes, one socket.


@pytest.fixture(scope="module")
def workers(redis_url: str) -> Iterator[tuple[str, str]]:
    """A `serve --workers 2` on its own namespace: its base URL and store URL."""
    store = namespaced(redis_url)
    process = subprocess.Popen([*COMMAND, "--workers", "2", "--store", store], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    banner = process.stdout.readline()
    assert "2 workers" in banner and split_url(store)[1] in banner, banner
    url = banner.split(" on ", 1)[1].split(" ", 1)[0]
    yield url, store
    process.terminate()
    process.wait(15)


@pytest.fixture
def clients(workers: tuple[str, str]) -> Iterator[list[httpx.Client]]:
    """Keep-alive clients, one connected to each worker (told apart by /_mock/health)."""
    url, _ = workers
    httpx.post(f"{url}/_mock/reset")
    by_worker: dict[int, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _ in range(64):  # a new connection goes to whichever worker accepts it first
        client = httpx.Client(base_url=url, headers={"x-api-key": API_KEY})
        worker = client.get("/_mock/health").json()["worker"]
        (spare if worker in by_worker else []).append(client)
        by_worker.setdefault(worker, client)
        if len(by_worker) == 2:
            break
    assert len(by_worker) == 2, "every connection went to one worker"
    yield list(by_worker.values())
    for client in [*by_worker.values(), *spare]:
        client.close()


@pytest.mark.slow
def test_jobs_submitted_through_either_worker_are_seen_by_both(clients: list[httpx.Client]) -> None:
    first, second = clients
    one, two = submit(first), submit(second)
    for client in clients:
        assert [status(client, job).status_code for job in (one, two)] == [200, 200]
        assert {job["request_id"] for job in client.get("/_mock/jobs").json()} == {one, two}
        submissions = [entry for entry in client.get("/_mock/requests").json() if entry["method"] == "POST"]
        assert [entry["request_id"] for entry in submissions] == [one, two]


@pytest.mark.slow
def test_the_clock_advanced_through_one_worker_moves_every_worker(clients: list[httpx.Client]) -> None:
    first, second = clients
    job = submit(first)
    before = first.get("/_mock/clock").json()["now"]
    moved = second.post("/_mock/clock/advance", json={"seconds": DURATION}).json()["now"]
    assert moved == first.get("/_mock/clock").json()["now"] == before + DURATION  # frozen clock: exact
    assert status(first, job).json()["status"] == "COMPLETED"


@pytest.mark.slow
def test_a_times_1_rule_applies_once_across_workers_under_concurrent_submissions(
    workers: tuple[str, str], clients: list[httpx.Client]
) -> None:
    url, _ = workers
    first, second = clients
    assert first.post("/_mock/scenarios", json={"outcome": "failed", "times": 1}).status_code == 201
    jobs: list[str] = []

    def submit_many(client: httpx.Client) -> None:
        jobs.extend(submit(client) for _ in range(10))

    # Both workers' connections plus fresh ones, all at once.
    extra = [httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) for _ in range(6)]
    threads = [threading.Thread(target=submit_many, args=(client,)) for client in [first, second, *extra]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in extra:
        client.close()
    second.post("/_mock/clock/advance", json={"seconds": DURATION})
    states = [status(first, job).json()["status"] for job in jobs]
    assert (len(set(jobs)), states.count("FAILED"), second.get("/_mock/scenarios").json()) == (80, 1, [])


@pytest.mark.slow
def test_results_expire_through_the_shared_clock_and_redis_ttls(
    workers: tuple[str, str], clients: list[httpx.Client]
) -> None:
    _, store = workers
    first, second = clients
    job = submit(first)
    server, prefix = split_url(store)
    with redis.Redis.from_url(server) as keys:
        assert 0 < keys.pttl(f"{prefix}:job:{job}") <= RESULT_RETENTION_SECONDS * 1000
    second.post("/_mock/clock/advance", json={"seconds": RESULT_RETENTION_SECONDS})
    assert [status(client, job).status_code for client in clients] == [404, 404]


@pytest.mark.slow
def test_hundreds_of_concurrent_clients_lose_no_job_across_workers(
    workers: tuple[str, str], clients: list[httpx.Client]
) -> None:
    url, _ = workers
    limits = httpx.Limits(max_connections=LOAD_CLIENTS, max_keepalive_connections=LOAD_CLIENTS)
    headers = {"x-api-key": API_KEY}

    async def load() -> tuple[list[str], list[str], list[int]]:
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:

            async def one_client(ids: list[str], codes: list[int]) -> None:
                for _ in range(2):
                    submitted = await client.post("/v2/svd", json=SVD.example)
                    codes.append(submitted.status_code)
                    request_id = submitted.json()["request_id"]
                    codes.append((await client.get(f"/v2/requests/{request_id}/status")).status_code)
                    ids.append(request_id)

            async def final_state(request_id: str, states: list[str], codes: list[int]) -> None:
                response = await client.get(f"/v2/requests/{request_id}/status")
                codes.append(response.status_code)
                states.append(response.json()["status"])

            ids: list[str] = []
            codes: list[int] = []
            states: list[str] = []
            with anyio.fail_after(LOAD_SECONDS):
                async with anyio.create_task_group() as clients_running:
                    for _ in range(LOAD_CLIENTS):
                        clients_running.start_soon(one_client, ids, codes)
                await client.post("/_mock/clock/advance", json={"seconds": DURATION})
                async with anyio.create_task_group() as polls:
                    for request_id in ids:
                        polls.start_soon(final_state, request_id, states, codes)
            return ids, states, codes

    ids, states, codes = anyio.run(load)
    assert len(ids) == len(set(ids)) == 2 * LOAD_CLIENTS  # every submission got its own id
    assert set(codes) == {200} and states == ["COMPLETED"] * len(ids)  # no request failed, every job completed
    listed = {job["request_id"] for job in clients[1].get("/_mock/jobs").json()}
    assert listed == set(ids)

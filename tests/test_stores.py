"""The Redis store and `serve --workers N`: state shared by processes, TTLs, namespaces, atomic rules, no lost job."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, Settings, defaults, pricing, store_redis, wire
from mock_server.accounts import parse_config
from mock_server.jobs import Job
from mock_server.storage import Backend, StoreError
from mock_server.store_memory import MemoryClock
from mock_server.store_redis import session, split_url
from mock_server.store_urls import open_backend
from mock_server.transport import PortalTransport
from tests.support import API_KEY
from tests.support_relay import StallingRelay
from tests.support_stores import namespaced, redis_server, start_redis

SVD = MODELS["svd"]
DURATION = defaults.QUEUE_SECONDS + SVD.latency_seconds
COMMAND = [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--speed", "0"]
LOAD_CLIENTS = 200
LOAD_SECONDS = 60


def _http(mock: SegmindMock) -> httpx.Client:
    return httpx.Client(transport=PortalTransport(mock.app), base_url="http://fake", headers={"x-api-key": API_KEY})


def _submit(client: httpx.Client) -> str:
    response = client.post("/v2/svd", json=SVD.example)
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def _status(client: httpx.Client, request_id: str) -> httpx.Response:
    return client.get(f"/v2/requests/{request_id}/status")


# In-process: two fakes on one namespace stand for two machines.


def test_two_fakes_on_one_namespace_share_jobs_clock_rules_journal_and_accounts(redis_url: str) -> None:
    url = namespaced(redis_url)
    settings = Settings(speed=0, store=url, accounts=parse_config({"keys": {API_KEY: {"credits": 10}}}))
    first, second = SegmindMock(settings), SegmindMock(settings)
    with _http(first) as one, _http(second) as two:
        second.add_scenario(outcome="failed", times=1)
        failed = _submit(one)  # the rule added through the other fake decides it
        completed = _submit(two)
        assert {job["request_id"] for job in first.jobs} == {failed, completed}
        assert second.advance(DURATION) == first.clock.now()
        assert _status(two, failed).json()["status"] == "FAILED"
        assert _status(one, completed).json()["status"] == "COMPLETED"
        assert second.scenarios.rules() == []  # used up by the one submission
        assert [entry["request_id"] for entry in first.requests][:2] == [failed, completed]
        spent = second.service.account_view()["accounts"][0]["spent"]
        assert spent == pricing.PRICES["svd"]  # one completed job, charged once whichever fake served it
        first.reset()
        assert (second.jobs, second.requests, _status(two, completed).status_code) == ([], [], 404)


def test_a_submission_sees_the_clock_another_fake_moved_just_before(redis_url: str) -> None:
    # A submission uses the clock its process read last unless Redis said it changed since: the
    # change must be seen by the very next request, whichever process made it.
    url = namespaced(redis_url)
    first, second = SegmindMock(Settings(speed=0, store=url)), SegmindMock(Settings(speed=0, store=url))
    with _http(first) as one:
        _submit(one)
        for _ in range(20):
            moved_to = second.advance(600)
            assert first.job(_submit(one))["submitted_at"] == moved_to  # frozen: exactly where it was moved
            second.add_scenario(outcome="failed", times=1)
            assert first.job(_submit(one))["error"] is not None  # the rule added just before decides it


def test_a_change_watch_that_dies_without_a_word_is_found_and_the_clock_read_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A NAT or a proxy may forget the watch's idle connection and leave it open: no message ever
    # comes, so only a PING unanswered tells. Proved at every request here (normally once a second).
    monkeypatch.setattr(store_redis.watch, "WATCH_CONFIRM_SECONDS", 0.0)
    url = namespaced(redis_url)
    with StallingRelay(urlsplit(url).port or 6379) as relay:
        first = SegmindMock(
            Settings(speed=0, store=url.replace(split_url(url)[0], f"redis://127.0.0.1:{relay.port}/0"))
        )
        second = SegmindMock(Settings(speed=0, store=url))
        with _http(first) as one, redis.Redis.from_url(split_url(url)[0], decode_responses=True) as admin:
            _submit(one)
            ports = [int(client["addr"].rsplit(":", 1)[1]) for client in admin.client_list() if "t" in client["flags"]]
            relay.freeze(next(port for port in ports if port in relay.upstream_ports()))  # the first fake's watch
            moved_to = second.advance(600)
            assert first.job(_submit(one))["submitted_at"] == moved_to


def test_fakes_without_a_prefix_each_get_a_namespace_of_their_own(redis_url: str) -> None:
    first, second = SegmindMock(Settings(speed=0, store=redis_url)), SegmindMock(Settings(speed=0, store=redis_url))
    with _http(first) as one:
        _submit(one)
    assert len(first.jobs) == 1 and second.jobs == []
    first.advance(100)
    assert second.clock.now() < first.clock.now()


def test_a_times_1_rule_applies_to_exactly_one_of_many_concurrent_submissions(redis_url: str) -> None:
    url = namespaced(redis_url)
    fakes = [SegmindMock(Settings(speed=0, store=url)) for _ in range(2)]
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


def test_results_and_outputs_expire_through_redis_ttls_at_the_documented_retention(redis_url: str) -> None:
    url = namespaced(redis_url)
    mock = SegmindMock(Settings(speed=0, store=url))
    keys = redis.Redis.from_url(split_url(url)[0])
    prefix = split_url(url)[1]
    with _http(mock) as client, keys:
        request_id = _submit(client)
        result_ttl = keys.pttl(f"{prefix}:job:{request_id}") / 1000
        output_ttl = keys.pttl(f"{prefix}:out:{request_id}") / 1000
        # Frozen, the keys are kept for the retentions in real seconds (see `ttl_ms`).
        assert RESULT_RETENTION_SECONDS - 5 < result_ttl <= RESULT_RETENTION_SECONDS
        output_retention = DURATION + wire.OUTPUT_RETENTION_SECONDS
        assert output_retention - 5 < output_ttl <= output_retention
        mock.advance(DURATION)
        assert client.get(f"/_mock/outputs/{request_id}.mp4").status_code == 200
        mock.advance(RESULT_RETENTION_SECONDS - DURATION)  # the result retention runs from submission
        assert _status(client, request_id).status_code == 404
        assert mock.jobs == []
        assert client.get(f"/_mock/outputs/{request_id}.mp4").status_code == 200  # outputs stay a week
        mock.advance(wire.OUTPUT_RETENTION_SECONDS)
        assert client.get(f"/_mock/outputs/{request_id}.mp4").status_code == 404


def test_a_redis_job_store_keeps_time_by_any_clock_it_is_given_through_the_protocol(redis_url: str) -> None:
    url = namespaced(redis_url)
    backend: Backend = open_backend(url)
    jobs = backend.jobs(MemoryClock(100.0))  # a `ClockStore` of the process, not the namespace's RedisClock
    now = 1000.0
    job = Job("r1", "svd", {"seed": 7}, API_KEY, now, 2.0, 10.0, 7, None)
    with backend.clock(0.0).pinned():  # one request's session: the add is queued, then flushed
        jobs.add(job, now + RESULT_RETENTION_SECONDS, None, now)
        backend.flush()
        assert jobs.get("r1") == job
    keys = redis.Redis.from_url(split_url(url)[0])
    with keys:
        result_ttl = keys.pttl(f"{split_url(url)[1]}:job:r1") / 1000
    # The TTL follows the given clock's speed: an hour at 100x lives 36 real seconds.
    assert RESULT_RETENTION_SECONDS / 100 - 5 < result_ttl <= RESULT_RETENTION_SECONDS / 100
    assert jobs.get("r1") == job  # outside a request too
    assert jobs.jobs(now) == [job]
    assert jobs.get("r2") is None


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
    one, two = _submit(first), _submit(second)
    for client in clients:
        assert [_status(client, job).status_code for job in (one, two)] == [200, 200]
        assert {job["request_id"] for job in client.get("/_mock/jobs").json()} == {one, two}
        submissions = [entry for entry in client.get("/_mock/requests").json() if entry["method"] == "POST"]
        assert [entry["request_id"] for entry in submissions] == [one, two]


@pytest.mark.slow
def test_the_clock_advanced_through_one_worker_moves_every_worker(clients: list[httpx.Client]) -> None:
    first, second = clients
    job = _submit(first)
    before = first.get("/_mock/clock").json()["now"]
    moved = second.post("/_mock/clock/advance", json={"seconds": DURATION}).json()["now"]
    assert moved == first.get("/_mock/clock").json()["now"] == before + DURATION  # frozen clock: exact
    assert _status(first, job).json()["status"] == "COMPLETED"


@pytest.mark.slow
def test_a_times_1_rule_applies_once_across_workers_under_concurrent_submissions(
    workers: tuple[str, str], clients: list[httpx.Client]
) -> None:
    url, _ = workers
    first, second = clients
    assert first.post("/_mock/scenarios", json={"outcome": "failed", "times": 1}).status_code == 201
    jobs: list[str] = []

    def submit_many(client: httpx.Client) -> None:
        jobs.extend(_submit(client) for _ in range(10))

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
    states = [_status(first, job).json()["status"] for job in jobs]
    assert (len(set(jobs)), states.count("FAILED"), second.get("/_mock/scenarios").json()) == (80, 1, [])


@pytest.mark.slow
def test_results_expire_through_the_shared_clock_and_redis_ttls(
    workers: tuple[str, str], clients: list[httpx.Client]
) -> None:
    _, store = workers
    first, second = clients
    job = _submit(first)
    server, prefix = split_url(store)
    with redis.Redis.from_url(server) as keys:
        assert 0 < keys.pttl(f"{prefix}:job:{job}") <= RESULT_RETENTION_SECONDS * 1000
    second.post("/_mock/clock/advance", json={"seconds": RESULT_RETENTION_SECONDS})
    assert [_status(client, job).status_code for client in clients] == [404, 404]


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


def _round_trips(server: redis.Redis, send: Callable[[], object], times: int) -> float:
    """Round trips per call of `send`, as the Redis server counts the client reads it processed."""
    before = server.info("stats")["total_reads_processed"]
    for _ in range(times):
        send()
    after = server.info("stats")["total_reads_processed"]
    return (after - before - 1) / times  # less the first INFO's own read


@pytest.fixture
def own_redis(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, redis.Redis]]:
    """A Redis server of the test's own (its URL, and a client counting its reads): nothing else uses it meanwhile.

    The change watch's once-a-second PING is the process's, not a request's: kept out of the counts.
    """
    monkeypatch.setattr(store_redis.watch, "WATCH_CONFIRM_SECONDS", 3600.0)
    binary = redis_server()
    assert binary is not None  # `redis_url` was served by it
    process, url = start_redis(binary, tmp_path)
    try:
        with redis.Redis.from_url(url) as server:
            yield url, server
    finally:
        process.kill()
        process.wait(10)


def _polls(client: httpx.Client, *request_ids: str, status: int = 200) -> Callable[[], None]:
    def poll() -> None:
        for request_id in request_ids:
            assert _status(client, request_id).status_code == status

    return poll


@pytest.mark.parametrize(("options", "trips"), [("", 1), ("&protocol=2", 2)], ids=["resp3", "resp2"])
def test_a_submit_costs_one_round_trip_and_a_poll_one_with_resp3_two_without(
    own_redis: tuple[str, redis.Redis], options: str, trips: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The writes a request makes go in one pipeline before its answer; the clock is read again
    # only once Redis says it changed (RESP3 tracking), on every request where it cannot (RESP2).
    # A poll of a job the process stored or read lately is answered from its cache (RESP3): its
    # one round trip is its journal entry; without it, the job is read with the clock, then
    # journaled. 4 and 3 round trips at first, then 1 and 2.
    url, server = own_redis
    mock = SegmindMock(Settings(speed=0, store=namespaced(url) + options))
    assert ("cannot track changes" in caplog.text) == (trips == 2)
    with _http(mock) as client:
        request_id = _submit(client)  # the first request of a process sets its state up
        assert _round_trips(server, lambda: _submit(client), 20) == trips
        assert _round_trips(server, _polls(client, request_id), 20) == trips
    assert len(mock.jobs) == 21 and len(mock.requests) == 41  # nothing queued was lost


@contextmanager
def _two_fakes(url: str) -> Iterator[tuple[SegmindMock, httpx.Client, httpx.Client]]:
    """Two fakes on one fresh namespace of `url`: the first fake, and a client of each."""
    store = namespaced(url)
    first, second = SegmindMock(Settings(speed=0, store=store)), SegmindMock(Settings(speed=0, store=store))
    with _http(first) as one, _http(second) as two:
        yield first, one, two


def test_a_job_submitted_through_one_fake_is_polled_through_the_other_in_one_round_trip_once_read(
    own_redis: tuple[str, redis.Redis],
) -> None:
    url, server = own_redis
    with _two_fakes(url) as (first, one, two):
        _polls(two, _submit(one))()  # the second fake's first poll sets its state up (it reads the rules)
        request_id = _submit(one)
        assert _round_trips(server, _polls(two, request_id), 1) == 2  # read (the clock is current), journaled
        assert _round_trips(server, _polls(two, request_id), 20) == 1  # journaled only
        assert _status(two, request_id).json()["status"] == "QUEUED"
        first.advance(DURATION)  # the clock moves: the next poll reads it, and the job, again
        assert _round_trips(server, _polls(two, request_id), 1) == 2
        assert _status(two, request_id).json()["status"] == "COMPLETED"


def test_a_job_cached_by_one_fake_is_404_there_at_once_after_a_reset_through_the_other(
    own_redis: tuple[str, redis.Redis],
) -> None:
    url, server = own_redis
    with _two_fakes(url) as (_, one, two):
        read, stored = _submit(one), _submit(two)  # the second fake reads the first, stores the second
        _polls(two, read, stored)()
        assert _round_trips(server, _polls(two, read, stored), 10) == 2  # both answered from the cache
        assert one.post("/_mock/reset").status_code == 200
        _polls(two, read, stored, status=404)()
        after = _submit(one)  # and a job stored after the reset is found
        _polls(two, after)()


def _stored_sizes(server: redis.Redis, store: str) -> list[int]:
    return [int(server.strlen(key)) for key in server.scan_iter(match=f"{split_url(store)[1]}:job:*")]


@pytest.mark.parametrize("bound", ["jobs", "bytes"])
def test_the_job_cache_keeps_only_the_jobs_polled_last_within_its_bounds(
    own_redis: tuple[str, redis.Redis], monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    url, server = own_redis
    store = namespaced(url)
    first = SegmindMock(Settings(speed=0, store=store))
    with _http(first) as one:
        jobs = [_submit(one) for _ in range(6)]
    sizes = _stored_sizes(server, store)
    if bound == "jobs":
        monkeypatch.setattr(store_redis.job_store, "JOB_CACHE_JOBS", 3)
    else:  # room for three jobs as stored, not four
        monkeypatch.setattr(store_redis.job_store, "JOB_CACHE_BYTES", 3 * max(sizes) + min(sizes) // 2)
    second = SegmindMock(Settings(speed=0, store=store))
    with _http(second) as two:
        _polls(two, *jobs)()  # each read and kept, the oldest read dropped past three
        assert _round_trips(server, _polls(two, *jobs[3:]), 5) == 3  # the three read last: from the cache
        assert _round_trips(server, _polls(two, jobs[0]), 1) == 2  # read again, dropping the least recently used
        assert _round_trips(server, _polls(two, jobs[0], *jobs[4:]), 1) == 3
        assert _round_trips(server, _polls(two, jobs[3]), 1) == 2
    assert len(second.service.jobs.cache) == 3  # type: ignore[attr-defined]


# Pinning the implementation: the namespace writes Redis's protocol itself (`session._pack`), and
# must write what redis-py would for the commands it sends and any arguments.

_ARGUMENTS = st.one_of(
    st.binary(),
    st.text(st.characters(exclude_categories=("Cs",))),  # lone surrogates are not UTF-8 for either
    st.integers(),
    st.floats(allow_nan=False),
)


_COMMANDS = st.tuples(st.sampled_from(["EVALSHA", "GET"]), st.lists(_ARGUMENTS, max_size=30)).map(
    lambda command: (command[0], *command[1])
)


@given(st.lists(_COMMANDS, min_size=1, max_size=4))
def test_the_store_packs_commands_byte_for_byte_as_redis_py_does(commands: list[tuple[Any, ...]]) -> None:
    assert session._pack(commands) == b"".join(redis.Connection().pack_commands(commands))

"""Pins the Redis store's implementation, not what users see: round trips, the job cache, the watch, the protocol.

A submit and a poll cost one round trip each (RESP3); these tests count them on a Redis server of
the test's own, so a change that adds one fails here before `python -m benchmarks.redis_trips`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, defaults, store_redis
from mock_server.jobs import Job
from mock_server.storage import Backend
from mock_server.store_memory import MemoryClock
from mock_server.store_redis import resp, split_url
from mock_server.store_urls import open_backend
from tests.support import API_KEY
from tests.support_fakes import FakeFactory
from tests.support_stores import namespaced, redis_server, start_redis, status, submit

SVD = MODELS["svd"]
DURATION = defaults.QUEUE_SECONDS + SVD.latency_seconds


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


def _polls(client: httpx.Client, *request_ids: str, expected: int = 200) -> Callable[[], None]:
    def poll() -> None:
        for request_id in request_ids:
            assert status(client, request_id).status_code == expected

    return poll


@pytest.mark.parametrize(("options", "trips"), [("", 1), ("&protocol=2", 2)], ids=["resp3", "resp2"])
def test_a_submit_costs_one_round_trip_and_a_poll_one_with_resp3_two_without(
    own_redis: tuple[str, redis.Redis],
    options: str,
    trips: int,
    caplog: pytest.LogCaptureFixture,
    make_fake: FakeFactory,
) -> None:
    # The writes a request makes go in one pipeline before its answer; the clock is read again
    # only once Redis says it changed (RESP3 tracking), on every request where it cannot (RESP2).
    # A poll of a job the process stored or read lately is answered from its cache (RESP3): its
    # one round trip is its journal entry; without it, the job is read with the clock, then
    # journaled. 4 and 3 round trips at first, then 1 and 2.
    url, server = own_redis
    mock = make_fake(speed=0, store=namespaced(url) + options)
    assert ("cannot track changes" in caplog.text) == (trips == 2)
    client = make_fake.http(mock)
    request_id = submit(client)  # the first request of a process sets its state up
    assert _round_trips(server, lambda: submit(client), 20) == trips
    assert _round_trips(server, _polls(client, request_id), 20) == trips
    assert len(mock.jobs) == 21 and len(mock.requests) == 41  # nothing queued was lost


def _two_fakes(url: str, make_fake: FakeFactory) -> tuple[SegmindMock, httpx.Client, httpx.Client]:
    """Two fakes on one fresh namespace of `url`: the first fake, and a client of each."""
    store = namespaced(url)
    first, second = make_fake(speed=0, store=store), make_fake(speed=0, store=store)
    return first, make_fake.http(first), make_fake.http(second)


def test_a_job_submitted_through_one_fake_is_polled_through_the_other_in_one_round_trip_once_read(
    own_redis: tuple[str, redis.Redis], make_fake: FakeFactory
) -> None:
    url, server = own_redis
    first, one, two = _two_fakes(url, make_fake)
    _polls(two, submit(one))()  # the second fake's first poll sets its state up (it reads the rules)
    request_id = submit(one)
    assert _round_trips(server, _polls(two, request_id), 1) == 2  # read (the clock is current), journaled
    assert _round_trips(server, _polls(two, request_id), 20) == 1  # journaled only
    assert status(two, request_id).json()["status"] == "QUEUED"
    first.advance(DURATION)  # the clock moves: the next poll reads it, and the job, again
    assert _round_trips(server, _polls(two, request_id), 1) == 2
    assert status(two, request_id).json()["status"] == "COMPLETED"


def test_a_job_cached_by_one_fake_is_404_there_at_once_after_a_reset_through_the_other(
    own_redis: tuple[str, redis.Redis], make_fake: FakeFactory
) -> None:
    url, server = own_redis
    _, one, two = _two_fakes(url, make_fake)
    read, stored = submit(one), submit(two)  # the second fake reads the first, stores the second
    _polls(two, read, stored)()
    assert _round_trips(server, _polls(two, read, stored), 10) == 2  # both answered from the cache
    assert one.post("/_mock/reset").status_code == 200
    _polls(two, read, stored, expected=404)()
    after = submit(one)  # and a job stored after the reset is found
    _polls(two, after)()


def _stored_sizes(server: redis.Redis, store: str) -> list[int]:
    return [int(server.strlen(key)) for key in server.scan_iter(match=f"{split_url(store)[1]}:job:*")]


@pytest.mark.parametrize("bound", ["jobs", "bytes"])
def test_the_job_cache_keeps_only_the_jobs_polled_last_within_its_bounds(
    own_redis: tuple[str, redis.Redis], monkeypatch: pytest.MonkeyPatch, bound: str, make_fake: FakeFactory
) -> None:
    url, server = own_redis
    store = namespaced(url)
    first = make_fake(speed=0, store=store)
    one = make_fake.http(first)
    jobs = [submit(one) for _ in range(6)]
    sizes = _stored_sizes(server, store)
    if bound == "jobs":
        monkeypatch.setattr(store_redis.job_store, "JOB_CACHE_JOBS", 3)
    else:  # room for three jobs as stored, not four
        monkeypatch.setattr(store_redis.job_store, "JOB_CACHE_BYTES", 3 * max(sizes) + min(sizes) // 2)
    second = make_fake(speed=0, store=store)
    two = make_fake.http(second)
    _polls(two, *jobs)()  # each read and kept, the oldest read dropped past three
    assert _round_trips(server, _polls(two, *jobs[3:]), 5) == 3  # the three read last: from the cache
    assert _round_trips(server, _polls(two, jobs[0]), 1) == 2  # read again, dropping the least recently used
    assert _round_trips(server, _polls(two, jobs[0], *jobs[4:]), 1) == 3
    assert _round_trips(server, _polls(two, jobs[3]), 1) == 2
    assert len(second.service.jobs.cache) == 3  # type: ignore[attr-defined]


# The store keeps time by the clock it is given, whichever it is.


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


# Pinning the implementation: the namespace writes Redis's protocol itself (`resp.pack`), and
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
    assert resp.pack(commands) == b"".join(redis.Connection().pack_commands(commands))

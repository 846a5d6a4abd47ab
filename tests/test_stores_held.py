"""The stores held under attack (issue 22): data loss seen by every worker, bounded memory, refusals that keep nothing.

Redis tests run on a real Redis-compatible server (tests/support_stores.py); those marked for
both stores run once per store.
"""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from contextvars import ContextVar
from typing import Any

import httpx
import pytest
import redis

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, Settings, wire
from mock_server.api_errors import ApiError
from mock_server.clock import Clock
from mock_server.defaults import MEMORY, QUEUE_SECONDS
from mock_server.jobs import State
from mock_server.pools import StoreCalls
from mock_server.storage import ClockState, StoreUnavailable
from mock_server.store_redis import TTL_CAP_SECONDS, split_url
from mock_server.store_urls import open_backend
from mock_server.transport import PortalTransport
from tests.support import API_KEY
from tests.support_stores import namespaced

SVD = MODELS["svd"]
STATES = [state.value for state in State]


def _http(mock: SegmindMock) -> httpx.Client:
    return httpx.Client(transport=PortalTransport(mock.app), base_url="http://fake", headers={"x-api-key": API_KEY})


def _submit(client: httpx.Client, model: str = "svd") -> str:
    response = client.post(f"/v2/{model}", json=MODELS[model].example)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def test_every_worker_drops_rules_it_cached_once_redis_loses_its_data(redis_url: str) -> None:
    # Rule ids and the rule book's version count again from 0 after Redis loses its data: a worker
    # that did not restore the clock itself must not match the rules it cached at the same version.
    store = namespaced(redis_url)
    first, second = SegmindMock(Settings(speed=0, store=store)), SegmindMock(Settings(speed=0, store=store))
    with _http(first) as one, _http(second) as two, redis.Redis.from_url(split_url(store)[0]) as admin:
        first.add_scenario(match={"model": "svd"}, outcome="failed")  # version 1
        assert second.job(_submit(two))["error"] is not None  # the second worker caches it at version 1
        admin.flushdb()
        _submit(one)  # the first worker restores the clock
        first.add_scenario(match={"model": "motionctrl-svd"}, outcome="failed")  # version 1 again
        assert second.job(_submit(two, "motionctrl-svd"))["error"] is not None
        assert second.job(_submit(two))["error"] is None  # svd: no rule applies any more
        assert second.service.backend.restarts == 1  # type: ignore[attr-defined]


def _health(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/_mock/health")
    assert response.status_code == 200, response.text
    health: dict[str, Any] = response.json()
    return health


def _counted_from_the_list(client: httpx.Client) -> tuple[dict[str, int], float | None]:
    """The retained jobs by state, and the next end, counted from `GET /_mock/jobs` (which walks them)."""
    jobs = client.get("/_mock/jobs").json()
    now = client.get("/_mock/clock").json()["now"]
    by_state = {state: sum(job["state"] == state for job in jobs) for state in STATES}
    return by_state, min((job["finished_at"] for job in jobs if job["finished_at"] > now), default=None)


@pytest.mark.stores
def test_health_counts_jobs_by_state_without_walking_them_and_agrees_with_the_job_list(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock = SegmindMock(Settings(speed=0, store=store if store == MEMORY else namespaced(store)))
    with _http(mock) as client:
        mock.add_scenario(outcome="failed", times=2)
        mock.add_scenario(match={"model": "motionctrl-svd"}, processing_seconds=500, times=1)
        for model in ("svd", "svd", "svd", "motionctrl-svd", "svd"):
            _submit(client, model)
            mock.advance(1)
        listed = mock.service.jobs.jobs
        # The token-free health check never walks the jobs, however many there are.
        monkeypatch.setattr(type(mock.service.jobs), "jobs", _refuse_walking)
        for step in (0, 1, 20, 60, 100, 500, RESULT_RETENTION_SECONDS):
            mock.advance(step)
            health = _health(client)
            with monkeypatch.context() as walking:
                walking.setattr(type(mock.service.jobs), "jobs", lambda _, now: listed(now))
                by_state, next_end = _counted_from_the_list(client)
            assert (health["jobs_by_state"], health["next_job_end"]) == (by_state, next_end), step
            assert health["jobs"] == sum(by_state.values())
        assert health["jobs"] == 0 and health["jobs_evicted"] == 0


def _refuse_walking(store: object, now: float) -> list[object]:
    raise AssertionError("the health check walked every job")


@pytest.mark.stores
def test_past_the_cap_the_oldest_jobs_and_outputs_go_first_and_are_counted(store: str) -> None:
    settings = Settings(speed=0, store=store if store == MEMORY else namespaced(store), max_jobs_kept=3)
    mock = SegmindMock(settings)
    with _http(mock) as client:
        first = [_submit(client) for _ in range(5)]
        health = _health(client)
        assert (health["jobs"], health["jobs_evicted"]) == (3, 2)
        assert [job["request_id"] for job in mock.jobs] == first[2:]
        assert client.get(f"/v2/requests/{first[0]}/status").status_code == 404
        mock.advance(SVD.latency_seconds + 60)  # they complete; their results then expire, outputs stay
        mock.advance(RESULT_RETENTION_SECONDS)
        assert mock.service.output(first[2]).request_id == first[2]
        later = [_submit(client) for _ in range(2)]
        mock.advance(SVD.latency_seconds + 60)
        health = _health(client)
        assert (health["jobs"], health["jobs_evicted"], health["outputs_evicted"]) == (2, 2, 4)
        with pytest.raises(ApiError):  # the oldest output kept went first
            mock.service.output(first[2])
        assert mock.service.output(first[4]).request_id == first[4]
        assert mock.service.output(later[1]).request_id == later[1]


def test_redis_keeps_keys_for_the_simulated_retention_at_the_clocks_speed(redis_url: str) -> None:
    # Faster than real time, an hour of retention passes in 36 real seconds at speed 100: the keys
    # go then, not a real week later, so Redis does not fill for a week under a fast clock.
    store = namespaced(redis_url)
    mock = SegmindMock(Settings(speed=100, store=store))
    with _http(mock) as client, redis.Redis.from_url(split_url(store)[0]) as admin:
        request_id = _submit(client)
        prefix = split_url(store)[1]
        output_seconds = (QUEUE_SECONDS + SVD.latency_seconds + wire.OUTPUT_RETENTION_SECONDS) / 100
        assert 0 < admin.pttl(f"{prefix}:job:{request_id}") <= RESULT_RETENTION_SECONDS / 100 * 1000 + 1
        assert output_seconds * 1000 - 5000 < admin.pttl(f"{prefix}:out:{request_id}") <= output_seconds * 1000 + 1


@pytest.mark.parametrize("speed", [1e-12, 1e-300, 5e-324])
def test_redis_serves_a_tiny_speed_keeping_keys_at_most_the_ttl_cap(redis_url: str, speed: float) -> None:
    store = namespaced(redis_url)
    mock = SegmindMock(Settings(speed=speed, store=store))
    with _http(mock) as client, redis.Redis.from_url(split_url(store)[0]) as admin:
        request_id = _submit(client)
        assert client.get(f"/v2/requests/{request_id}/status").json()["status"] == "QUEUED"
        for kind in ("job", "out"):
            assert 0 < admin.pttl(f"{split_url(store)[1]}:{kind}:{request_id}") <= TTL_CAP_SECONDS * 1000


# Waiting v1 calls.

WAITER: ContextVar[int] = ContextVar("waiter")


@pytest.mark.stores
def test_waiting_calls_share_one_reader_of_the_clock(store: str) -> None:
    # 100 calls waiting an hour of real time: after each one's own first read, the clock is read by
    # one of them for all, so the store's reads do not grow with the calls waiting.
    backend = open_backend(store if store == MEMORY else namespaced(store))
    clocks = backend.clock(1.0)
    calls, more = 100, 20
    readers: list[int] = []
    enough = threading.Event()
    refresh = clocks.refresh

    def counted() -> ClockState:
        readers.append(WAITER.get())
        if len(readers) >= calls + 2 * more:  # every call's own read, then enough of the reader's
            enough.set()
        return refresh()

    clocks.refresh = counted  # type: ignore[method-assign]
    clock = Clock(clocks, calls=StoreCalls(backend.shared))

    async def one(index: int, deadline: float) -> None:
        WAITER.set(index)
        await clock.wait_until(deadline)

    async def waiting() -> None:
        deadline = clock.now() + 3600
        tasks = [asyncio.create_task(one(index, deadline)) for index in range(calls)]
        assert await asyncio.to_thread(enough.wait, 30)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(waiting())
    assert len(set(readers[-more:])) == 1, readers  # past every call's own first read: one reader for all


@pytest.mark.stores
def test_waiting_calls_each_end_at_their_deadline_when_their_reader_leaves_or_the_store_fails(store: str) -> None:
    backend = open_backend(store if store == MEMORY else namespaced(store))
    clock = Clock(backend.clock(1000.0), calls=StoreCalls(backend.shared))

    async def one(deadline: float) -> float:
        await clock.wait_until(deadline)
        return clock.now()

    async def waiting() -> None:
        start = clock.now()
        deadlines = [start + 5 + index for index in range(30)]  # 5 to 35 ms apart in real time
        tasks = [asyncio.create_task(one(deadline)) for deadline in deadlines]
        await asyncio.sleep(0)  # every call starts; the first reads for all
        tasks[0].cancel()  # its client hung up: the next call reads instead
        ended = await asyncio.wait_for(asyncio.gather(*tasks[1:]), 30)
        assert all(now >= deadline for now, deadline in zip(ended, deadlines[1:], strict=True))

        failing = [asyncio.create_task(one(clock.now() + 3600 * 1000)) for _ in range(5)]
        await asyncio.sleep(0.05)  # they wait on one reader
        original = clock.store.refresh

        def unavailable() -> ClockState:
            raise StoreUnavailable("stopped for the test")

        clock.store.refresh = unavailable  # type: ignore[method-assign]
        try:
            results = await asyncio.wait_for(asyncio.gather(*failing, return_exceptions=True), 30)
        finally:
            clock.store.refresh = original  # type: ignore[method-assign]
        assert all(isinstance(result, StoreUnavailable) for result in results)

    asyncio.run(waiting())


def test_the_memory_store_stays_within_its_cap_with_no_health_check_called() -> None:
    # What waits to be counted for health must not keep the jobs the cap dropped alive, however
    # long nobody asks for health: memory levels off once the cap is reached.
    mock = SegmindMock(Settings(speed=0, max_jobs_kept=100))
    body = SVD.example

    def grown_by(submissions: int) -> int:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(submissions):
            mock.submit("svd", dict(body), API_KEY)
        return tracemalloc.get_traced_memory()[0] - before

    tracemalloc.start()
    try:
        grown_by(3000)  # past the cap, and past any rebuilding of what waits to be counted
        assert grown_by(3000) < 3000 * 100  # a job is about 800 bytes: none of them is kept
    finally:
        tracemalloc.stop()

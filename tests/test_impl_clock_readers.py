"""Pins the clock's implementation, not what users see: waiting v1 calls share one reader of the store's clock.

On each store (the `stores` mark): a hundred waiting calls must not each read the clock, and each
still ends at its own deadline when the reader leaves or the store fails.
"""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar

import pytest

from mock_server.clock import Clock
from mock_server.defaults import MEMORY
from mock_server.pools import StoreCalls
from mock_server.storage import ClockState, StoreUnavailable
from mock_server.store_urls import open_backend
from tests.support_stores import namespaced

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
    clock = Clock(clocks, calls=StoreCalls(backend))

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
    clock = Clock(backend.clock(1000.0), calls=StoreCalls(backend))

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

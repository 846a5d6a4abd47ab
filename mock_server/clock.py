"""The fake's clock: simulated seconds that run at a chosen speed and jump when told.

The state lives in a store (`storage.ClockStore`: in the process, or shared in Redis); the rules
are here, once for every store: the speed and advance checks, reading the time, and waiting.
"""

from __future__ import annotations

import heapq
import itertools
import math
from contextlib import AbstractContextManager

import anyio
from anyio.lowlevel import RunVar

from mock_server.pools import StoreCalls
from mock_server.storage import ClockState, ClockStore
from mock_server.store_memory import MemoryClock

# How often the waiting v1 calls re-read the clock; a re-read is what lets them notice an advance
# made by another thread (or, with a shared store, another process) without a per-job timer. One
# of them reads for all those waiting on the same event loop (`SharedWait`), so the store sees one
# read per step whatever the number of calls waiting.
WAIT_STEP_SECONDS = 0.02


def check_speed(speed: float) -> float:
    """Return `speed` as a float, or raise ValueError unless it is finite and 0 or more."""
    if not 0 <= speed < math.inf:  # also refuses NaN, which compares false
        raise ValueError("speed must be a finite number, 0 or more")
    return float(speed)


def check_seconds(seconds: float) -> float:
    """Return `seconds` to advance by as a float, or raise ValueError unless finite and 0 or more."""
    if math.isnan(seconds) or seconds < 0:
        raise ValueError("the clock only moves forward")
    if math.isinf(seconds):
        raise ValueError("the clock cannot advance by an infinite time")
    return float(seconds)


class Clock:
    """Simulated time in Unix seconds: `speed` simulated seconds pass per real second.

    Speed 1 is real time, 100 runs a hundred times faster, 0 freezes time so that only
    `advance` moves it. In `virtual` mode, a wait jumps straight to its deadline, which is
    what makes a 60-second job take no wall time at all under test.
    """

    def __init__(self, store: ClockStore, *, virtual: bool = False, calls: StoreCalls | None = None) -> None:
        self.store = store
        self.virtual = virtual
        self._calls = calls or StoreCalls(shared=False)  # how `wait_until` reads a store that may stall
        # The calls waiting on this clock, one group per event loop (each has its own tasks to wake).
        self._shared: RunVar[SharedWait] = RunVar(f"segmind-mock-clock-{id(self)}")

    @classmethod
    def in_process(cls, speed: float = 1.0, *, virtual: bool = False) -> Clock:
        """A clock of its own in this process, running at `speed` from the time of day."""
        return cls(MemoryClock(check_speed(speed)), virtual=virtual)

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self.store.read().speed

    def now(self) -> float:
        """Return the current simulated time, in Unix seconds."""
        speed, sim, real = self.store.read()  # read on every request: unpacked, not through _at
        return sim + (self.store.real_time() - real) * speed

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by `seconds` and return the new time."""
        return self._at(self.store.advance(check_seconds(seconds)))

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, without a jump in simulated time."""
        self.store.set_speed(check_speed(speed))

    def reset(self, speed: float) -> None:
        """Bring simulated time back to the real time of day, running at `speed` from there."""
        self.store.reset(check_speed(speed))

    async def wait_until(self, deadline: float) -> None:
        """Return once simulated time reaches `deadline`: at once in virtual mode or on a frozen clock.

        Both jump the clock to `deadline`: a frozen clock would otherwise hold the caller (a v1
        call) until someone moves it, forever for a client without a timeout (docs/wire-format.md).
        """
        # Read once for this call (a shared store also sends the call's queued writes with it).
        remaining = deadline - self._at(state := await self._calls(self.store.refresh))
        if remaining <= 0:
            return
        if self.virtual or not state.speed:
            await self._calls(self.advance, remaining)
            return
        shared = self._shared.get(None)
        if shared is None:
            shared = SharedWait()
            self._shared.set(shared)
        await shared.wait(self, deadline)

    def pinned(self) -> AbstractContextManager[None]:
        """Within the block (one request), read a shared clock once and queue its writes (sent by `Backend.flush`)."""
        return self.store.pinned()

    def _at(self, state: ClockState) -> float:
        return state.sim + (self.store.real_time() - state.real) * state.speed

    async def read_for(self, waiting: SharedWait) -> None:
        """Read the clock once for every call waiting, waking those whose deadline it reached; then pause."""
        state = await self._calls(self.store.refresh)
        now = self._at(state)
        earliest = waiting.wake(now)
        if earliest is None:
            return
        if self.virtual or not state.speed:  # frozen or made virtual meanwhile: on to the next deadline
            await self._calls(self.advance, earliest - now)
        else:
            await anyio.sleep(min((earliest - now) / state.speed, WAIT_STEP_SECONDS))


class _Waiter:
    """One call waiting for its deadline; woken when it is reached, or to read the clock for the others."""

    __slots__ = ("deadline", "done", "error", "woken")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = False
        self.error: BaseException | None = None
        self.woken = anyio.Event()

    def end(self, error: BaseException | None = None) -> None:
        """End the wait (with the error the call then raises, if any) and wake the call."""
        self.done, self.error = True, error
        self.woken.set()


class SharedWait:
    """The calls of one event loop waiting on one clock: one of them (the reader) reads it for all.

    The reader reads the clock every WAIT_STEP_SECONDS at most and wakes every call whose deadline
    it reached; when the reader's own wait ends (or it is cancelled: its client hung up), the next
    call waiting takes over. A store that fails a read fails every call waiting, as it would have
    failed each one's own read. So a thousand v1 calls waiting cost the store one read per step.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, _Waiter]] = []  # a heap, soonest deadline first
        self._order = itertools.count()  # ties in deadline: first come first
        self._reader: _Waiter | None = None

    async def wait(self, clock: Clock, deadline: float) -> None:
        """Return once the clock reaches `deadline`, reading it for every call waiting while this one is the reader."""
        waiter = _Waiter(deadline)
        heapq.heappush(self._waiting, (deadline, next(self._order), waiter))
        try:
            while not waiter.done:
                if self._reader is None:
                    self._reader = waiter
                if self._reader is waiter:
                    try:
                        await clock.read_for(self)
                    except Exception as error:  # the store failed: every call waiting fails with it
                        self._fail(error)
                else:
                    await waiter.woken.wait()
                    waiter.woken = anyio.Event()
        finally:
            waiter.done = True  # a cancelled call leaves its entry behind, skipped
            if self._reader is waiter:
                self._reader = None
                self._hand_over()
        if waiter.error is not None:
            raise waiter.error

    def wake(self, now: float) -> float | None:
        """End the waits whose deadline `now` reached; the soonest deadline still waited for, if any."""
        waiting = self._waiting
        while waiting and (waiting[0][2].done or waiting[0][0] <= now):
            heapq.heappop(waiting)[2].end()
        return waiting[0][0] if waiting else None

    def _fail(self, error: Exception) -> None:
        for _, _, waiter in self._waiting:
            if not waiter.done:
                waiter.end(error)
        self._waiting.clear()

    def _hand_over(self) -> None:
        # The first call still waiting reads from now on: woken, it finds no reader and becomes it.
        while self._waiting and self._waiting[0][2].done:
            heapq.heappop(self._waiting)
        if self._waiting:
            self._waiting[0][2].woken.set()

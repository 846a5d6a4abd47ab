"""The fake's clock: simulated seconds that run at a chosen speed and jump when told.

The state lives in a store (`storage.ClockStore`: in the process, or shared in Redis); the rules
are here, once for every store: the speed and advance checks, reading the time, and waiting.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
from contextlib import AbstractContextManager

import anyio
from anyio.lowlevel import RunVar

from contracts.spec import is_number, number_in, show_value
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
    if not number_in(speed, 0, sys.float_info.max):  # refuses NaN, infinity and ints no float holds
        raise ValueError(f"speed must be a finite number, 0 or more (got {show_value(speed)})")
    return float(speed)


def check_seconds(seconds: float) -> float:
    """Return `seconds` to advance by as a float, or raise ValueError unless finite and 0 or more."""
    if number_in(seconds, 0, sys.float_info.max):
        return float(seconds)
    if seconds == math.inf or (is_number(seconds) and seconds > 0):
        raise ValueError("the clock cannot advance by an infinite time, or one past what a float holds")
    raise ValueError("the clock only moves forward")


class Clock:
    """Simulated time in Unix seconds: `speed` simulated seconds pass per real second.

    Speed 1 is real time, 100 runs a hundred times faster, 0 freezes time so that only
    `advance` moves it. In `virtual` mode, a wait jumps straight to its deadline, which is
    what makes a 60-second job take no wall time at all under test.
    """

    def __init__(self, store: ClockStore, *, virtual: bool = False, calls: StoreCalls | None = None) -> None:
        self.store = store
        self.virtual = virtual
        self._calls = calls or StoreCalls()  # how `wait_until` reads a store that may stall
        # Set while the server shuts down: waits end at once instead of holding the shutdown up.
        self.waits_stopped = False
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
        speed, sim, real, _ = self.store.read()  # read on every request: unpacked, not through _at
        return sim + (self.store.real_time() - real) * speed

    def window_now(self) -> float:
        """The rate-limit clock: real seconds, plus every second `advance` (or a virtual sleep) added.

        Rate limits are about real request rates, so their windows pass in real time at any speed,
        0 included; moving the fake's clock forward moves them too, so a test (or a client on
        virtual time) that sleeps or advances past a reset is admitted. Comparable only with other
        readings of the same store (docs/accounts.md).
        """
        return self.store.real_time() + self.store.read().jumped

    def jumps(self) -> bool:
        """Tell whether a wait jumps the clock to its deadline (virtual mode, or a frozen clock): see `wait_until`."""
        return self._jumps(self.store.read())

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by `seconds` and return the new time."""
        return self._at(self.store.advance(check_seconds(seconds)))

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, without a jump in simulated time."""
        self.store.set_speed(check_speed(speed))

    def reset(self, speed: float) -> None:
        """Bring simulated time back to the real time of day, running at `speed` from there."""
        self.store.reset(check_speed(speed))

    async def wait_until(self, deadline: float, *, jumps: bool = True) -> bool:
        """Return True once simulated time reaches `deadline`: at once in virtual mode or on a frozen clock.

        Both jump the clock to `deadline`: a frozen clock would otherwise hold the caller (a v1
        call) until someone moves it, forever for a client without a timeout (docs/wire-format.md).
        A caller that may not move the clock for everyone (`jumps` False: no admin token where one
        is required) waits instead until the clock runs or is moved. Return False as soon as
        `waits_stopped` is set (the server shuts down) before then.
        """
        # Read once for this call (a shared store also sends the call's queued writes with it).
        remaining = deadline - self._at(state := await self._calls(self.store.refresh))
        if remaining <= 0:
            return True
        if self.waits_stopped:
            return False
        if jumps and self._jumps(state):
            await self._calls(self.advance, remaining)
            return True
        shared = self._shared.get(None)
        if shared is None:
            shared = SharedWait()
            self._shared.set(shared)
        return await shared.wait(self, deadline, jumps=jumps)

    def pinned(self) -> AbstractContextManager[None]:
        """Within the block (one request), read a shared clock once and queue its writes (sent by `Backend.flush`)."""
        return self.store.pinned()

    def _jumps(self, state: ClockState) -> bool:
        return self.virtual or not state.speed

    def _at(self, state: ClockState) -> float:
        return state.sim + (self.store.real_time() - state.real) * state.speed

    async def read_for(self, waiting: SharedWait) -> None:
        """Read the clock once for every call waiting, waking those whose deadline it reached; then pause.

        Once `waits_stopped` is set (the server shuts down), every call waiting ends unreached instead.
        """
        state = await self._calls(self.store.refresh)
        if self.waits_stopped:
            waiting.stop()
            return
        now = self._at(state)
        earliest = waiting.wake(now)
        if earliest is None:
            return
        if self._jumps(state):  # frozen or made virtual meanwhile: on to the next deadline it may jump to
            jump_to = waiting.earliest_jump()
            if jump_to is not None:
                await self._calls(self.advance, jump_to - now)
            else:
                await anyio.sleep(WAIT_STEP_SECONDS)
        else:
            await anyio.sleep(min((earliest - now) / state.speed, WAIT_STEP_SECONDS))


class _Waiter:
    """One call waiting for its deadline; woken when it is reached, or to read the clock for the others."""

    __slots__ = ("deadline", "done", "error", "jumps", "reached", "woken")

    def __init__(self, deadline: float, jumps: bool) -> None:
        self.deadline = deadline
        self.jumps = jumps  # whether its caller may jump a stopped clock to its deadline
        self.done = False
        self.error: BaseException | None = None
        self.reached = True  # False: ended before its deadline, as the server shuts down
        self.woken = anyio.Event()

    def end(self, error: BaseException | None = None, *, reached: bool = True) -> None:
        """End the wait (with the error the call then raises, if any) and wake the call."""
        self.done, self.error, self.reached = True, error, reached
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

    async def wait(self, clock: Clock, deadline: float, *, jumps: bool = True) -> bool:
        """Return True once the clock reaches `deadline`, False if the waits were stopped; the reader reads for all."""
        waiter = _Waiter(deadline, jumps)
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
        return waiter.reached

    def wake(self, now: float) -> float | None:
        """End the waits whose deadline `now` reached; the soonest deadline still waited for, if any."""
        waiting = self._waiting
        while waiting and (waiting[0][2].done or waiting[0][0] <= now):
            heapq.heappop(waiting)[2].end()
        return waiting[0][0] if waiting else None

    def earliest_jump(self) -> float | None:
        """The soonest deadline of a call that may jump a stopped clock to it, if any."""
        return min(
            (deadline for deadline, _, waiter in self._waiting if waiter.jumps and not waiter.done), default=None
        )

    def stop(self) -> None:
        """End every wait unreached (the server shuts down)."""
        self._end_all(None, reached=False)

    def _fail(self, error: Exception) -> None:
        self._end_all(error)

    def _end_all(self, error: Exception | None, *, reached: bool = True) -> None:
        for _, _, waiter in self._waiting:
            if not waiter.done:
                waiter.end(error, reached=reached)
        self._waiting.clear()

    def _hand_over(self) -> None:
        # The first call still waiting reads from now on: woken, it finds no reader and becomes it.
        while self._waiting and self._waiting[0][2].done:
            heapq.heappop(self._waiting)
        if self._waiting:
            self._waiting[0][2].woken.set()

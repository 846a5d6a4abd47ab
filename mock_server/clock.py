"""The fake's clock: simulated seconds that run at a chosen speed and jump when told.

The state lives in a store (`storage.ClockStore`: in the process, or shared in Redis); the rules
are here, once for every store: the speed and advance checks, reading the time, and waiting.
"""

from __future__ import annotations

import math
import sys
from contextlib import AbstractContextManager

import anyio

from contracts.spec import is_number, number_in, show_value
from mock_server.pools import StoreCalls
from mock_server.storage import ClockState, ClockStore
from mock_server.store_memory import MemoryClock

# How often a blocked v1 call re-reads the clock; a re-read is what lets it notice an advance
# made by another thread (or, with a shared store, another process) without a per-job timer.
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
        self._calls = calls or StoreCalls(shared=False)  # how `wait_until` reads a store that may stall
        # Set while the server shuts down: waits end at once instead of holding the shutdown up.
        self.waits_stopped = False

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
        return self.virtual or not self.store.read().speed

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by `seconds` and return the new time."""
        return self._at(self.store.advance(check_seconds(seconds)))

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, without a jump in simulated time."""
        self.store.set_speed(check_speed(speed))

    def reset(self, speed: float) -> None:
        """Bring simulated time back to the real time of day, running at `speed` from there."""
        self.store.reset(check_speed(speed))

    async def wait_until(self, deadline: float) -> bool:
        """Return True once simulated time reaches `deadline`: at once in virtual mode or on a frozen clock.

        Both jump the clock to `deadline`: a frozen clock would otherwise hold the caller (a v1
        call) until someone moves it, forever for a client without a timeout (docs/wire-format.md).
        Return False as soon as `waits_stopped` is set (the server shuts down) before then.
        """
        while (remaining := deadline - self._at(state := await self._calls(self.store.refresh))) > 0:
            if self.waits_stopped:
                return False
            if self.virtual or not state.speed:
                await self._calls(self.advance, remaining)
                return True
            await anyio.sleep(min(remaining / state.speed, WAIT_STEP_SECONDS))
        return True

    def pinned(self) -> AbstractContextManager[None]:
        """Within the block (one request), read a shared clock once and queue its writes (sent by `Backend.flush`)."""
        return self.store.pinned()

    def _at(self, state: ClockState) -> float:
        return state.sim + (self.store.real_time() - state.real) * state.speed

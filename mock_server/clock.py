"""The fake's clock: simulated seconds that run at a chosen speed and jump when told."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

import anyio

# How often a blocked v1 call re-reads the clock; a re-read is what lets it notice an advance
# made by another thread (or, with a shared store, another process) without a per-job timer.
WAIT_STEP_SECONDS = 0.02


class SimClock(Protocol):
    """What the fake needs of a clock; `Clock` keeps it in the process, the Redis store shares it."""

    virtual: bool

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""

    def now(self) -> float:
        """Return the current simulated time, in Unix seconds."""

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by `seconds` and return the new time."""

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, without a jump in simulated time."""

    def reset(self) -> None:
        """Bring simulated time back to the real time of day."""

    async def wait_until(self, deadline: float) -> None:
        """Return once simulated time reaches `deadline` (at once in virtual mode)."""

    def pinned(self) -> AbstractContextManager[None]:
        """Within the block (one request), read the clock once if reading it is costly."""


# Reading the clock in the process costs nothing: pinning it does nothing (one reusable context).
_UNPINNED = nullcontext()


class Clock:
    """Simulated time in Unix seconds: `speed` simulated seconds pass per real second.

    Speed 1 is real time, 100 runs a hundred times faster, 0 freezes time so that only
    `advance` moves it. In `virtual` mode, a wait jumps straight to its deadline, which is
    what makes a 60-second job take no wall time at all under test.
    """

    def __init__(self, speed: float = 1.0, *, virtual: bool = False) -> None:
        _check_speed(speed)
        self._lock = threading.Lock()
        self.virtual = virtual
        # (real origin, simulated origin, speed), replaced whole: a reader on another thread never
        # sees one field changed and not the others, so time never appears to jump or run back.
        self._state = (time.monotonic(), time.time(), speed)

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._state[2]

    def now(self) -> float:
        """Return the current simulated time, in Unix seconds."""
        real_origin, sim_origin, speed = self._state
        return sim_origin + (time.monotonic() - real_origin) * speed

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by `seconds` and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            real_origin, sim_origin, speed = self._state
            self._state = (real_origin, sim_origin + seconds, speed)
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, without a jump in simulated time."""
        _check_speed(speed)
        with self._lock:
            self._state = (time.monotonic(), self.now(), speed)

    def reset(self) -> None:
        """Bring simulated time back to the real time of day."""
        with self._lock:
            self._state = (time.monotonic(), time.time(), self.speed)

    async def wait_until(self, deadline: float) -> None:
        """Return once simulated time reaches `deadline` (at once in virtual mode)."""
        while (remaining := deadline - self.now()) > 0:
            if self.virtual:
                self.advance(remaining)
                return
            step = remaining / self.speed if self.speed else WAIT_STEP_SECONDS
            await anyio.sleep(min(step, WAIT_STEP_SECONDS))

    def pinned(self) -> AbstractContextManager[None]:
        """Nothing to pin: this clock is read in the process."""
        return _UNPINNED


def _check_speed(speed: float) -> None:
    if not 0 <= speed < float("inf"):
        raise ValueError("speed must be a finite number, 0 or more")

"""The clock shared by every process of a namespace, read once per request into its session."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

from redis.commands.core import Script

from mock_server.storage import ClockState
from mock_server.store_redis.connection import LOG
from mock_server.store_redis.scripts import CLOCK_ADVANCE, CLOCK_READ, CLOCK_RESET, CLOCK_RESTORE, CLOCK_SET_SPEED
from mock_server.store_redis.session import Call, Namespace, RedisSession, Snapshot, strings
from mock_server.store_redis.watch import CLOCK_KEY, RULES_VERSION_KEY

# A clock read: the state, and the rule book's version read along with it.
Reading = tuple[ClockState, str]


class RedisClock:
    """The clock shared by every process of a namespace.

    Real time is each machine's `time.time()` (keep machines' clocks in sync). Inside a request,
    the state read at its start is used (see `pinned`), so reading it costs no round trip there;
    nor does that first read while the process's last reading is current (`ChangeWatch`).
    """

    def __init__(self, backend: Namespace, speed: float) -> None:
        self._initial_speed = speed
        self._key = backend.key(CLOCK_KEY)
        self._rules_version_key = backend.key(RULES_VERSION_KEY)
        self._read_script = backend.redis.register_script(CLOCK_READ)
        self._advance_script = backend.redis.register_script(CLOCK_ADVANCE)
        self._speed_script = backend.redis.register_script(CLOCK_SET_SPEED)
        self._reset_script = backend.redis.register_script(CLOCK_RESET)
        self._restore_script = backend.redis.register_script(CLOCK_RESTORE)
        self._backend = backend
        self._seen: ClockState | None = None  # the latest state this process read: the floor after a restart
        # The state and the rule book's version as this process last read them, with the watch's
        # generation of that read: current while the generation is.
        self._watch = backend.watch
        # (`Namespace.pin_current` reads it.)
        self.last: Snapshot | None = None
        self._epoch: str | None = None  # the namespace's epoch as this process last read it
        self._read(backend.current.get())  # the first process to open the namespace sets its clock up
        backend.snapshot = self  # requests read their snapshot from this clock
        # Within the block (one request), a `RedisSession`: the clock read once (at its first use),
        # writes queued. The session is one object that every step of the request shares, worker
        # threads included. The request sends what it queued with `Namespace.flush` before it answers.
        self.pinned: Callable[[], AbstractContextManager[None]] = backend.open_session

    def real_time(self) -> float:
        """The time of day: what every process of the namespace shares."""
        return time.time()

    def read(self) -> ClockState:
        """The state pinned for this request (read at its first use), else read from Redis."""
        session = self._backend.current.get()
        if session is not None:
            if session.clock is None:
                self._backend.pin_current(session, self._watch.generation())  # no round trip while nothing changed
            if session.clock is not None:
                return session.clock
        generation = self._watch.before_read()
        return self._pin(session, self._read_at(session, generation), generation)

    def read_call(self) -> Call:
        """The call reading the clock and the rule book's version, for `Namespace.read_along` to send."""
        args = [repr(self._initial_speed), repr(time.time()), uuid.uuid4().hex]
        return Call(self._read_script, [self._key, self._rules_version_key], args)

    def arrived(self, session: RedisSession | None, raw: list[str], generation: int | None) -> None:
        """Take a reading sent along another call: kept as the last reading, pinned into `session`."""
        self._pin(session, self._arrived(raw, generation), generation)

    def refresh(self) -> ClockState:
        """The state read from Redis anew."""
        session = self._backend.current.get()
        return self._adopt(session, self._read(session)[0])

    def advance(self, seconds: float) -> ClockState:
        """Add `seconds` to simulated time, for every process."""
        return self._change(self._advance_script, [repr(seconds)])

    def set_speed(self, speed: float) -> ClockState:
        """Change the speed from now on, for every process."""
        return self._change(self._speed_script, [repr(speed), repr(time.time())])

    def reset(self, speed: float) -> ClockState:
        """Bring simulated time back to the real time of day at `speed`, for every process, in one script."""
        return self._change(self._reset_script, [repr(time.time()), repr(speed)])

    def _pin(self, session: RedisSession | None, reading: Reading, generation: int | None) -> ClockState:
        state, rules_version = reading
        if session is not None:  # inside a request: what the rest of it sees
            session.clock, session.rules_version, session.generation = state, rules_version, generation
        return state

    def _change(self, script: Script, args: list[str]) -> ClockState:
        session = self._backend.current.get()
        raw = self._backend.run(session, Call(script, [self._key], args))[0]
        self._watch.local_change()  # a change of this process's own: its last reading is not current
        return self._adopt(session, self._parse(strings(raw)))

    def _read(self, session: RedisSession | None) -> Reading:
        return self._read_at(session, self._watch.before_read())

    def _read_at(self, session: RedisSession | None, generation: int | None) -> Reading:
        return self._arrived(strings(self._backend.run(session, self.read_call())[0]), generation)

    def _arrived(self, raw: list[str], generation: int | None) -> Reading:
        """The clock and the rule book's version as a read found them, parsed once and kept as the last reading."""
        # A clock Redis had lost (it restarted) is raised back to this process's last reading.
        if raw[5] == "1" and self._seen is not None:
            raw = self._restore(self._seen) + raw[4:5]
        epoch = raw[4].partition(":")[0]
        if epoch != self._epoch:
            if self._epoch is not None:  # Redis lost the namespace since this process last read it
                self._backend.restarts += 1
                for drop in self._backend.lost_data:
                    drop()
            self._epoch = epoch
        self._seen = state = self._parse(raw)
        self.last = (state, raw[4], generation) if generation is not None else None
        return state, raw[4]

    def _restore(self, seen: ClockState) -> list[str]:
        """Raise a clock Redis lost (it restarted) back to where this process last saw it: it never goes back."""
        real = time.time()
        floor = seen.sim + (real - seen.real) * seen.speed
        LOG.warning(
            "segmind-mock: the Redis store lost the clock (a restart?); simulated time continues from this "
            "worker's last reading, %.3f. Jobs, scenarios, the journal and account usage were lost with it",
            floor,
        )
        args = [repr(seen.speed), repr(floor), repr(real), repr(seen.jumped)]
        return strings(self._restore_script(keys=[self._key], args=args))

    def _adopt(self, session: RedisSession | None, state: ClockState) -> ClockState:
        # A change made, or a state read anew, inside a request is what the rest of the request sees.
        self._seen = state
        if session is not None and session.clock is not None:
            session.clock = state
        return state

    @staticmethod
    def _parse(raw: list[str]) -> ClockState:
        return ClockState(float(raw[0]), float(raw[1]), float(raw[2]), float(raw[3] or 0.0))

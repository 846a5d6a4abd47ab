"""A request's Redis session (its snapshot and its write queue), and the namespace that sends them to Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple, Protocol, cast

import redis
from redis.commands.core import Script

from mock_server.storage import ClockState, StoreUnavailable
from mock_server.store_redis import steps
from mock_server.store_redis.connection import SCAN_COUNT, TIMEOUT_SECONDS, GuardedRedis, time_offset
from mock_server.store_redis.loop_connection import LoopConnections
from mock_server.store_redis.resp import pack
from mock_server.store_redis.watch import CLOCK_KEY, EVICTED_KEY, RULES_VERSION_KEY, ChangeWatch

# A connection idle longer than this is checked before use, as redis-py's pool checks every one:
# one Redis closed (a restart) is opened anew instead of failing a request with a 503. Busy, a
# worker reuses its connections within milliseconds and skips the check (a poll of the socket);
# a restart takes longer than this, so a connection used before it is checked after it.
IDLE_CHECK_SECONDS = 0.01


class Call(NamedTuple):
    """One command for a pipeline: a Lua script with its keys and arguments, or (no script) a GET of its one key."""

    script: Script | None
    keys: Sequence[str]
    args: Sequence[Any]
    droppable: bool = False  # a journal entry: lost alone when Redis cannot take it, never failing the answer
    stored: Callable[[], None] | None = None  # called once Redis has taken the call (a queued write)
    timely: bool = False  # a `TIMELY` script: sent with its deadline as the last argument
    accepts: bool = False  # a new job: once Redis took it, the request's writes are never undone


# A reading of the session's snapshot: the clock, the rule book's version, and the watch's generation it is current at.
Snapshot = tuple[ClockState, str, int]


class SnapshotReader(Protocol):
    """What reads a session's snapshot from Redis: the namespace's shared clock (`RedisClock`)."""

    @property
    def last(self) -> Snapshot | None:
        """The snapshot this process read last, with the generation it is current at (None: not known current)."""

    def read_call(self) -> Call:
        """The call that reads the snapshot (sent along with another request's call)."""

    def arrived(self, session: RedisSession | None, raw: list[str], generation: int | None) -> None:
        """Take the snapshot a read found: parse it, keep it as the last reading, pin it into `session`."""


@dataclass(slots=True)
class RedisSession:
    """One request's Redis session: its snapshot (the clock, the rule book's version and the watch's
    generation, read once) and its write queue, shared by every step of the request."""

    clock: ClockState | None = None  # the clock as the request's first read saw it
    rules_version: str | None = None  # the rule book's version, read along with the clock
    # The change watch's generation when the clock was read (None: not watched): what the
    # request reads or writes after it is known current while the generation is.
    generation: int | None = None
    queued: list[Call] = field(default_factory=list)  # writes to send with the request's next round trip
    lost: int = 0  # journal entries of this request Redis could not take, until `flush` reports them
    # What undoes the writes Redis took (a charge held) should the request fail before its job
    # is stored (`accepted`): sent first with the next round trip of any request.
    undo: list[Call] = field(default_factory=list)
    accepted: bool = False


class Namespace:
    """One Redis namespace as its stores reach it: its keys, its change watch, and the round trips
    of its request sessions.

    Inside a request (`RedisClock.pinned` opens its `RedisSession`), writes whose answers the
    request does not need (a new job, an unlimited key's charge, the journal entry) are queued and
    sent along with the request's next round trip, or by `flush` before the answer goes out: a
    submission costs one round trip (its writes; the clock is read only when `ChangeWatch` saw it
    change), and so does a poll of a job this process stored or read lately (`JobCache`: its
    journal entry), else two (the job, with the clock if it changed, then the journal entry).
    docs/scaling.md counts them.
    """

    def __init__(self, client: GuardedRedis, prefix: str) -> None:
        self.redis = client
        self.guard = client.guard
        self.prefix = prefix
        # The one place a request finds its session. A ContextVar because the stores are called
        # through storage.py's protocols, which carry no session (the memory stores need none),
        # from the request's task, from the step it runs (a greenlet, `steps.run`) and from threads
        # (each gets a copy of the context, and the copy refers to the same session). One per namespace: two fakes in
        # one process never see each other's sessions. Each store method reads it once
        # (`current.get()`: None outside a request, where writes are sent at once) and passes the
        # session on explicitly.
        self.current: ContextVar[RedisSession | None] = ContextVar(f"segmind-mock-session-{id(self)}", default=None)
        # How many times this process found Redis had lost the namespace's data (a restart, a flush):
        # the clock's epoch changed. Every process meets it at its next clock read, whoever restored
        # the clock, and drops what it cached (`lost_data`); the rules it cached are keyed by epoch.
        self.restarts = 0
        self.lost_data: list[Callable[[], None]] = []
        # Tells the clock whether what it read last is still current (the clock and the rule book's
        # version), and the job cache whether the cap evicted jobs.
        self.watch = ChangeWatch(client, [self.key(name) for name in (CLOCK_KEY, RULES_VERSION_KEY, EVICTED_KEY)])
        # The namespace's shared clock, once opened: it reads a session's snapshot (`read_along`).
        self.snapshot: SnapshotReader | None = None
        # Writes to undo, of requests that failed before their job was stored (`run`).
        self._undo: list[Call] = []
        self._undo_lock = threading.Lock()
        # Timely writes' deadlines (`deadline`): in Redis's own time, measured once against this
        # machine's (they may differ), half the store's timeout after sending.
        self._timeout: float = client.connection_pool.connection_kwargs.get("socket_timeout") or TIMEOUT_SECONDS
        self._time_offset = time_offset(client)
        self._idle: list[tuple[Any, float]] = []  # connections no call is using, and since when (`_send_here`)
        # Inside a step (`steps`), batches go on a connection of each event loop's, opened with the
        # settings of the connections redis-py would open, where it can be.
        pool = client.connection_pool
        self._on_loop = LoopConnections(pool.connection_class(**pool.connection_kwargs))

    @contextmanager
    def open_session(self) -> Iterator[None]:
        """Within the block (one request), a fresh session: its snapshot and its write queue."""
        token = self.current.set(RedisSession())
        try:
            yield
        finally:
            self.current.reset(token)

    def pin_current(self, session: RedisSession | None, generation: int | None) -> bool:
        """Tell whether the session needs no snapshot read, pinning the last reading if it is current at `generation`.

        True outside a request (no session: nothing to pin), once its snapshot is pinned, and in a
        namespace whose clock is not shared (no `snapshot` reader); no round trip.
        """
        if session is None or session.clock is not None or self.snapshot is None:
            return True
        last = self.snapshot.last
        if generation is None or last is None or last[2] != generation:
            return False
        session.clock, session.rules_version, session.generation = last
        return True

    def read_along(self, session: RedisSession | None, call: Call, generation: int | None = None) -> Any:
        """The answer to `call`, with the session's snapshot read in the same round trip unless pinned.

        `generation` is the change watch's as the caller just saw it: a reading current at it pins
        the snapshot with no read (None: read it along, if the request has not yet).
        """
        if self.pin_current(session, generation) or self.snapshot is None:
            return self.run(session, call)[0]
        generation = self.watch.before_read()
        raw, answer = self.run(session, self.snapshot.read_call(), call)
        self.snapshot.arrived(session, strings(raw), generation)
        return answer

    def key(self, *parts: str) -> str:
        """A key of this namespace."""
        return ":".join((self.prefix, *parts))

    def run(self, session: RedisSession | None, *calls: Call) -> list[Any]:
        """The answers to `calls`, sent in one round trip after the writes `session` queued.

        StoreUnavailable (a 503) if Redis cannot take any of them but journal entries, which are
        then lost alone (counted for `flush` to report). A request failing so before its job is
        stored has what it changed undone (`RedisSession.undo`), with the next round trip.
        """
        queued = session.queued if session is not None else []
        undo: list[Call] = []
        if self._undo:  # rarely: only after a failure
            with self._undo_lock:
                undo, self._undo = self._undo, []
        batch = [*undo, *queued, *calls] if queued or undo else list(calls)
        queued.clear()
        try:
            answers = self._exchange(session, batch, len(undo))
        except StoreUnavailable:
            if session is not None and not session.accepted:
                self._undo_later(session.undo)
                session.undo.clear()
            raise
        if answers is None:
            return [None] * len(calls)
        return answers[len(batch) - len(calls) :]

    def _exchange(self, session: RedisSession | None, batch: list[Call], undone: int) -> list[Any] | None:
        """Send `batch` (its first `undone` calls: undo writes) and settle each answer.

        None if Redis could not take the batch but every call past the undo writes was droppable
        (they are lost, counted for `flush`); StoreUnavailable if one was not.
        """
        try:
            # Each answer in order; an error reply is its ResponseError, in its place (sorted out below).
            answers: list[Any] = self.guard.call(self._send, batch)
        except StoreUnavailable:
            self._undo_later(batch[:undone])
            if not all(call.droppable for call in batch[undone:]):
                raise
            _lose(session, len(batch) - undone)
            return None
        for index, answer in enumerate(answers):
            call = batch[index]
            if isinstance(answer, redis.exceptions.NoScriptError):
                answer = answers[index] = self._run_one(call)  # a script's first use: loaded, then run
            if index < undone:
                if isinstance(answer, Exception):
                    self._undo_later([call])  # tried again with the next round trip
            elif isinstance(answer, Exception):
                if not call.droppable:
                    self.guard.call(_raise, answer)  # an outage or a refusal is a 503, as for one command
                _lose(session, 1)
            else:
                if call.stored is not None:
                    call.stored()
                if call.accepts and session is not None:
                    session.accepted = True
        return answers

    def undo_if_refused(self, session: RedisSession | None, call: Call) -> None:
        """Have `call` undo a write Redis took, should the session's request fail before its job is stored."""
        if session is not None and not session.accepted:
            session.undo.append(call)

    def _undo_later(self, calls: Sequence[Call]) -> None:
        if calls:
            with self._undo_lock:
                self._undo.extend(calls)

    def deadline(self) -> int:
        """The deadline of a timely write sent now, in Redis's time (microseconds): half the store's timeout on."""
        return int((time.time() + self._time_offset + self._timeout / 2) * 1_000_000)

    def _send(self, batch: list[Call]) -> list[Any]:
        """Send `batch` in one write and read its answers (error replies in their place).

        Inside a step, on the event loop's connection, the step waiting while the loop serves other
        requests; else (or where a loop connection cannot reach Redis) on a connection of the
        store's own, on a thread inside a step.
        """
        deadline = self.deadline() if any(map(_TIMELY, batch)) else 0
        commands = list(map(_command, batch, repeat(deadline)))
        if not steps.in_step():
            return self._send_here(commands)
        if not self._on_loop.usable:
            return steps.blocking(self._send_here, commands)
        return steps.wait(self._on_loop.send(commands))

    def _send_here(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send `commands` in one write on an idle connection of this thread's and read their answers.

        Straight on a connection, not through redis-py's client, pool and pipeline: their layers
        (a poll of the socket at each checkout, retry and metrics wrappers) cost about 40 µs a round
        trip, half the client's time (docs/benchmarks.md). A connection that fails is closed, to be
        opened again by its next use.
        """
        try:
            connection, released = self._idle.pop()  # atomic: each store thread takes a connection of its own
        except IndexError:
            pool = self.redis.connection_pool  # its class and settings: TCP, TLS or a Unix socket alike
            connection = pool.connection_class(**pool.connection_kwargs)
        else:
            if time.monotonic() - released > IDLE_CHECK_SECONDS:
                _reconnect_if_closed(connection)
        try:
            connection.send_packed_command([pack(commands)])
            answers: list[Any] = []
            for _ in commands:
                try:
                    answers.append(connection.read_response())
                except redis.ResponseError as error:
                    answers.append(error)
            return answers
        except BaseException:
            connection.disconnect()  # answers may be left unread on it
            raise
        finally:
            self._idle.append((connection, time.monotonic()))

    def defer(self, session: RedisSession | None, call: Call) -> None:
        """Queue a write for the session's next round trip; outside a request (no session), send it now."""
        if session is None:
            self.run(None, call)
        else:
            session.queued.append(call)

    def flush(self) -> int:
        """Send the writes the current request queued, in one round trip; how many of its journal entries were lost."""
        session = self.current.get()
        if session is None:
            return 0
        if session.queued:
            self.run(session)
        lost, session.lost = session.lost, 0
        return lost

    def _run_one(self, call: Call) -> Any:
        if call.script is None:
            return self.redis.get(call.keys[0])
        args = [*call.args, self.deadline()] if call.timely else call.args
        return call.script(keys=call.keys, args=args)  # redis-py loads the script if Redis lacks it

    def delete_matching(self, *patterns: str) -> None:
        """Delete every key of this namespace matching the glob patterns (given after the prefix)."""
        escaped = "".join("\\" + char if char in "*?[]\\" else char for char in self.prefix)
        for pattern in patterns:
            batch: list[str] = []
            for key in self.redis.scan_iter(match=f"{escaped}:{pattern}", count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= SCAN_COUNT:
                    self.redis.unlink(*batch)
                    batch.clear()
            if batch:
                self.redis.unlink(*batch)


_TIMELY = attrgetter("timely")


def _command(call: Call, deadline: int) -> tuple[Any, ...]:
    """The command `call` sends: its script by SHA (with the deadline if timely), or a GET of its key."""
    if call.script is None:
        return ("GET", call.keys[0])
    script = call.script
    if call.timely:
        return ("EVALSHA", script.sha, len(call.keys), *call.keys, *call.args, deadline)
    return ("EVALSHA", script.sha, len(call.keys), *call.keys, *call.args)


def _reconnect_if_closed(connection: Any) -> None:
    """Close a connection Redis closed (it restarted), as redis-py's pool does: the next call opens it anew."""
    try:
        # Only a connection that is open can be looked at: can_read would open a closed one.
        if connection._sock is not None and connection.can_read(timeout=0):  # unread data, or the end of it
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()


def _raise(error: Exception) -> None:
    raise error


def _lose(request: RedisSession | None, count: int) -> None:
    # Counted per request (its steps run one at a time), so concurrent requests never count each other's.
    if request is not None:
        request.lost += count


def strings(raw: Any) -> list[str]:
    """An array answer as what it is with decode_responses: a list of str (typed, not converted)."""
    return cast(list[str], raw)

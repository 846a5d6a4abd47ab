"""Redis on the event loop: a connection of the store's own, a batch sent in one write, answers read as they come.

One connection per event loop carries every request's batches in turn: each is written whole,
and Redis answers them in the order they were written. A batch waits on its future, which
`steps.wait` awaits. Whatever fails one batch fails the connection and every batch on it (their
answers would be out of step): a timeout (the store's `socket_timeout`, counted from each batch's
write), Redis closing the connection, an answer that is not RESP. The next batch opens a new one.

It reaches Redis over TCP or a Unix socket, with the URL's user, password, database, client name
and protocol. Where redis-py connects otherwise (TLS, a credential provider), `opens` says no and
the store's calls go to a thread, as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any, cast

import redis

from mock_server.store_redis.resp import RespReader, pack

# The connection classes whose settings a loop connection can honour.
_PLAIN = (redis.Connection, redis.UnixDomainSocketConnection)


@dataclass(slots=True)
class _Batch:
    """A batch written and waiting for its answers."""

    future: asyncio.Future[list[Any]]
    count: int  # how many answers it waits for
    deadline: float  # loop time by which they must all have come
    answers: list[Any]


class LoopConnection(asyncio.Protocol):
    """One connection to Redis on an event loop, carrying batches in turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reader: RespReader, timeout: float) -> None:
        self._loop = loop
        self._reader = reader
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[_Batch] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._outgoing: list[bytes] = []  # batches sent but not yet written (`_write`, once the loop turns)
        self.failure: redis.RedisError | None = None  # why the connection is done, once it is
        self._held = self._open_until_the_loop_ends()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to write batches on, until the event loop ends (`_open_until_the_loop_ends`)."""
        self._transport = cast(asyncio.Transport, transport)
        self._loop.create_task(self._held.__anext__())  # started: the loop now holds it, to close at its end

    async def _open_until_the_loop_ends(self) -> AsyncGenerator[None]:
        # A started async generator is closed by the runners as their loop ends (asyncio.run, anyio,
        # uvicorn: `shutdown_asyncgens`), after the tasks left were cancelled, their steps run to
        # their end: an offline client's loop closes its connection, which its cycles would
        # otherwise keep open until a collection.
        try:
            yield
        finally:
            self.close()

    def send(self, commands: list[tuple[Any, ...]]) -> asyncio.Future[list[Any]]:
        """Write the commands in one piece; the future of their answers, in order (error replies in their place)."""
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if self.failure is not None or self._transport is None:
            future.set_exception(_again(self.failure or redis.ConnectionError("Redis connection is not open")))
            return future
        deadline = self._loop.time() + self._timeout
        idle = not self._waiting
        self._waiting.append(_Batch(future, len(commands), deadline, []))
        if idle:  # nothing in flight: written now
            self._transport.write(pack(commands))
        else:  # others wait for answers: written with every batch sent before the loop turns, in one system call
            if not self._outgoing:
                self._loop.call_soon(self._write)
            self._outgoing.append(pack(commands))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
        return future

    def _write(self) -> None:
        """Write the batches held since the loop's last turn in one system call: under load, many requests' at once."""
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None and self.failure is None:
            self._transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        """Hand each complete answer to the batch waiting for it, the oldest first."""
        try:
            replies = self._reader.read(data)
        except (ValueError, redis.exceptions.InvalidResponse) as error:
            self._fail(redis.ConnectionError(f"Redis sent what is not RESP: {error}"))
            return
        for reply in replies:
            if isinstance(reply, redis.ConnectionError):  # e.g. a Redis still loading: redis-py raises it too
                self._fail(reply)
                return
            if not self._waiting:
                self._fail(redis.ConnectionError("Redis answered what nobody asked"))
                return
            batch = self._waiting[0]
            batch.answers.append(reply)
            if len(batch.answers) == batch.count:
                self._waiting.popleft()
                if not batch.future.done():
                    batch.future.set_result(batch.answers)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the batches still waiting: their answers will not come."""
        reason = "Connection closed by server." if exc is None else f"Error while reading from Redis: {exc}"
        self._fail(redis.ConnectionError(reason))

    def close(self) -> None:
        """Close the connection; batches still waiting fail."""
        self._fail(redis.ConnectionError("Redis connection closed by the store"))

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        oldest = self._waiting[0].deadline
        if self._loop.time() >= oldest:
            self._fail(redis.TimeoutError("Timeout reading from Redis"))
        else:
            self._timer = self._loop.call_at(oldest, self._check_deadline)

    def _fail(self, error: redis.RedisError) -> None:
        if self.failure is None:
            self.failure = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, deque()
        self._outgoing.clear()
        for batch in waiting:
            if not batch.future.done():
                batch.future.set_exception(_again(error))
        if self._transport is not None:
            self._transport.abort()  # answers still coming belong to batches that failed


class LoopConnections:
    """The loop connection of each event loop a store is used on: opened at its first batch, again after a failure."""

    def __init__(self, settings: redis.connection.AbstractConnection) -> None:
        self._settings = settings
        self.usable = opens(settings)  # else the store's steps send on a thread
        self._opened: dict[asyncio.AbstractEventLoop, asyncio.Task[LoopConnection]] = {}

    def send(self, commands: list[tuple[Any, ...]]) -> Awaitable[list[Any]]:
        """The answers to `commands`, sent on the running loop's connection (opened first if it has none that works)."""
        loop = asyncio.get_running_loop()
        opened = self._opened.get(loop)
        if opened is None or (opened.done() and (opened.cancelled() or opened.exception() or opened.result().failure)):
            for other in list(self._opened):  # a copy made at once: other loops' threads may add theirs
                if other.is_closed():
                    self._opened.pop(other, None)  # a loop gone (a test's): its connection went with it
            opened = self._opened[loop] = loop.create_task(open_connection(self._settings))
        if opened.done():
            return opened.result().send(commands)
        return _send_when_open(opened, commands)


async def _send_when_open(opened: asyncio.Task[LoopConnection], commands: list[tuple[Any, ...]]) -> list[Any]:
    """The answers to `commands`, sent once the loop's connection is open."""
    connection = await opened
    return await connection.send(commands)


def opens(settings: redis.connection.AbstractConnection) -> bool:
    """Tell whether a loop connection can reach Redis as `settings` (a connection redis-py would open) says."""
    return type(settings) in _PLAIN and settings.credential_provider is None


async def open_connection(settings: redis.connection.AbstractConnection) -> LoopConnection:
    """A loop connection to the Redis `settings` names, greeted as redis-py greets it (redis-py's errors if not)."""
    loop = asyncio.get_running_loop()
    encoder = settings.encoder
    reader = RespReader(encoder.encoding if encoder.decode_responses else None, encoder.encoding_errors)
    timeout = settings.socket_timeout or None

    def connection() -> LoopConnection:
        return LoopConnection(loop, reader, timeout or float("inf"))

    try:
        if isinstance(settings, redis.UnixDomainSocketConnection):
            opening = loop.create_unix_connection(connection, settings.path)
        else:
            plain = cast(redis.Connection, settings)
            opening = loop.create_connection(connection, plain.host, plain.port)
        _, opened = await asyncio.wait_for(opening, settings.socket_connect_timeout or timeout)
    except TimeoutError:
        raise redis.TimeoutError("Timeout connecting to server") from None
    except OSError as error:
        raise redis.ConnectionError(f"Error connecting to Redis: {error}") from None
    try:
        await _greet(opened, settings)
    except BaseException:
        opened.close()
        raise
    return opened


async def _greet(connection: LoopConnection, settings: redis.connection.AbstractConnection) -> None:
    """Say the protocol, authenticate, name the client and select the database, as redis-py does on connecting.

    A refusal that is a `redis.ConnectionError` (a wrong password) fails the connection's future.
    """
    password = settings.password
    auth: tuple[Any, ...] | None = None
    if password:
        auth = (password,) if settings.username is None else (settings.username, password)
    if str(settings.protocol) == "3":
        hello: tuple[Any, ...] = ("HELLO", 3)
        if password:
            hello += ("AUTH", settings.username or "default", password)
        (greeting,) = await connection.send([hello])
        if not isinstance(greeting, Exception):  # else a Redis older than 6: RESP2, as redis-py falls back
            auth = None
    commands: list[tuple[Any, ...]] = [("AUTH", *auth)] if auth else []
    if settings.client_name:
        commands.append(("CLIENT", "SETNAME", settings.client_name))
    if settings.db:
        commands.append(("SELECT", settings.db))
    if commands:
        for answer in await connection.send(commands):
            if isinstance(answer, Exception):
                raise redis.ConnectionError(f"Redis refused the connection's set-up: {answer}")


def _again(error: redis.RedisError) -> redis.RedisError:
    """A fresh exception like `error`, for one more waiter (one raised in many places gathers their tracebacks)."""
    return type(error)(*error.args)

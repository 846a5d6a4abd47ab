"""Reaching Redis: the store URL and its namespace, and the guard that turns failures into 503s and fails fast."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from mock_server.storage import StoreUnavailable
from mock_server.store_redis.steps import blocking

PREFIX_PARAM = "prefix"
PREFIX_ROOT = "segmind-mock"
SCAN_COUNT = 1000
# How long one Redis call may take, connecting or answering, before the request gets a 503: a
# stalled Redis holds a request (awaiting it, never holding the event loop) this long at most, once
# (then `Guard` fails fast).
# `?socket_timeout=S&socket_connect_timeout=S` in the store URL overrides it (docs/scaling.md).
TIMEOUT_SECONDS = 1.0
# While Redis is down, a background thread pings it this often; the first answer ends the outage.
PROBE_SECONDS = 0.2
# Refusals Redis answers while it cannot change anything: out of memory, a read-only replica,
# failing to save, no master. Each is answered with a 503, and nothing was changed.
# LATE is the fake's own (`TIMELY`): a write that reached Redis after its request was answered.
_REFUSALS = ("OOM", "READONLY", "MISCONF", "MASTERDOWN", "NOREPLICAS", "LATE")
LOG = logging.getLogger("segmind_mock.store")


def split_url(url: str) -> tuple[str, str | None]:
    """Split a store URL into redis-py's URL and the namespace (`?prefix=`), if any."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == PREFIX_PARAM), None)
    rest = urlencode([(name, value) for name, value in query if name != PREFIX_PARAM])
    return urlunsplit(parts._replace(query=rest)), prefix or None


def with_prefix(url: str) -> str:
    """The store URL with a namespace: its own `?prefix=`, else a fresh one."""
    _, prefix = split_url(url)
    if prefix:
        return url
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), (PREFIX_PARAM, fresh_prefix())])
    return urlunsplit(parts._replace(query=query))


def fresh_prefix() -> str:
    """A namespace of its own, for a fake whose store URL names none."""
    return f"{PREFIX_ROOT}:{uuid.uuid4().hex[:12]}"


class Guard:
    """Turns Redis failures into `StoreUnavailable` (a 503), and fails fast while Redis is down.

    A call that cannot reach Redis, or times out, marks it down: calls then raise at once, with
    no round trip, so a stalled Redis holds a request for one timeout per outage, not every request.
    A background thread pings Redis meanwhile, and the first answer brings it back by itself.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.down: str | None = None  # why Redis is out of reach now, None while it answers
        self._lock = threading.Lock()
        self.outages = 0  # how many times Redis went down while this process used it

    def call(self, command: Callable[..., Any], *args: Any, **options: Any) -> Any:
        """Run one Redis call, raising StoreUnavailable for a Redis that is down or refuses a change."""
        down = self.down
        if down is not None:
            raise StoreUnavailable(down)
        try:
            return command(*args, **options)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._mark_down(f"Redis did not answer: {error}")
            raise StoreUnavailable(f"Redis did not answer: {error}") from None
        except redis.ResponseError as error:
            if isinstance(error, (redis.exceptions.OutOfMemoryError, redis.ReadOnlyError)) or str(error).startswith(
                _REFUSALS
            ):
                raise StoreUnavailable(f"Redis refused the change: {error}") from None
            raise  # a missing script (reloaded by redis-py) or a bug: not an outage

    def ping(self) -> None:
        """Ping Redis past the guard (raising redis-py's own errors)."""
        redis.Redis.execute_command(self._client, "PING")  # type: ignore[no-untyped-call]

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            if self.down is not None:
                return
            self.down = reason
            self.outages += 1
        LOG.warning("segmind-mock: the Redis store is unavailable (%s); answering 503 until it returns", reason)
        # The probe holds the guard weakly: a fake dropped while Redis is down takes its probe with it.
        threading.Thread(target=_probe, args=(weakref.ref(self),), name="segmind-mock-redis-probe", daemon=True).start()

    def answers(self) -> bool:
        """Tell whether Redis answers a ping now (past the guard)."""
        try:
            self.ping()
        except redis.RedisError:
            return False
        return True

    def back(self) -> None:
        """Mark Redis as answering again."""
        self.down = None
        LOG.warning("segmind-mock: the Redis store answers again")


def _probe(guard_ref: weakref.ref[Guard]) -> None:
    """Ping Redis every PROBE_SECONDS until it answers (then the guard serves again) or the guard is gone."""
    while True:
        time.sleep(PROBE_SECONDS)
        guard = guard_ref()
        if guard is None:
            return
        if guard.answers():
            guard.back()
            return
        del guard  # no reference held between pings


class GuardedRedis(redis.Redis):
    """redis-py's client with every command passed through a `Guard`, and off the event loop inside a step."""

    guard: Guard

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a command (on a thread inside a step: it blocks); StoreUnavailable when Redis is down or refuses it."""
        return self.guard.call(blocking, super().execute_command, *args, **options)


def time_offset(client: GuardedRedis) -> float:
    """How far Redis's clock (TIME) is ahead of this machine's, in seconds, read at the middle of one round trip."""
    sent = time.time()
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000 - (sent + time.time()) / 2


def safe_url(url: str) -> str:
    """The store URL to print: without its password."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host))

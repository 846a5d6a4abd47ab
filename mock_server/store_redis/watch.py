"""Change tracking (which shared keys moved since this process read them) and the job cache it keeps current."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import redis

from mock_server.jobs import Job
from mock_server.storage import StoreUnavailable
from mock_server.store_redis.connection import LOG, GuardedRedis
from mock_server.store_redis.steps import blocking

# How long a process trusts its change watch's connection without an answer on it (`ChangeWatch`).
WATCH_CONFIRM_SECONDS = 1.0
# The keys the change watch follows, named once for the stores that write them and the watch.
CLOCK_KEY = "clock"
RULES_VERSION_KEY = "rules-version"
# Counts the jobs and outputs the cap evicted: watched too, since an eviction deletes jobs that
# processes may hold in their `JobCache`.
EVICTED_KEY = "evicted"


class ChangeWatch:
    """Tells a process whether the shared clock and the rule book's version changed since it last read them.

    Redis's server-assisted tracking in broadcast mode (`CLIENT TRACKING ON BCAST PREFIX`, RESP3,
    Redis 6 or newer): Redis pushes an invalidation message for every change to those keys,
    whoever made it, to a connection this process keeps for it, before it answers the change's
    author. So a request that finds no message waiting may use the state it read last without a
    round trip, and a client that saw an `advance` answered, through any worker, sees it in its
    next request. Any doubt (no watch yet, a lost connection, a Redis or a protocol that cannot
    track) means "changed": the state is read again, as without the watch.
    """

    def __init__(self, client: GuardedRedis, keys: Sequence[str]) -> None:
        self._client = client
        self._guard = client.guard
        self._keys = keys
        self._lock = threading.Lock()
        self._connection: Any = None  # tracking in broadcast mode: it receives the invalidations
        # Counts the changes seen (and lost watches): a state read at one generation is current while it lasts.
        self._generation = 0
        self._confirmed = 0.0  # when the connection last proved alive (monotonic seconds)
        self.usable = True  # False once Redis could not track (too old, RESP2, or tracking refused)
        self._busy = False  # a request opens or confirms the connection (round trips, outside the lock)

    def generation(self, reading: bool = False) -> int | None:
        """The current generation, after the changes waiting (a non-blocking look); None while nothing is watched.

        `reading`: the generation a read of the watched keys starting now belongs to (`before_read`):
        the watch is started if it can be, and not confirmed (the read itself comes next). While
        another request opens or confirms the watch, None: the lock is never held over a round trip,
        which inside a step (`steps`) would hold every request of the event loop.
        """
        with self._lock:
            if self._busy:
                return None
            connection = self._connection
            if connection is None:
                if not (reading and self.usable and self._guard.down is None):
                    return None
            else:
                try:
                    while connection.can_read(timeout=0):
                        connection.read_response(push_request=True)
                        self._generation += 1
                except (redis.RedisError, OSError):
                    self._close()
                    return None
                if reading or time.monotonic() - self._confirmed <= WATCH_CONFIRM_SECONDS:
                    return self._generation
            self._busy = True
        try:
            return self._open() if connection is None else self._confirm(connection)
        finally:
            self._busy = False

    def local_change(self) -> None:
        """Count a change this process made: what it read before is not current, however late Redis's message."""
        with self._lock:
            self._generation += 1

    def before_read(self) -> int | None:
        """The generation a read of the watched keys starting now belongs to; starts watching if it can."""
        return self.generation(reading=True)

    def _confirm(self, connection: Any) -> int | None:
        # A connection can die without a word (a NAT or a proxy forgetting it): only an answer proves
        # it alive, and Redis sends the PONG after every message queued before it.
        try:
            changes = blocking(_ping, connection)
        except (redis.RedisError, OSError):
            with self._lock:
                self._close()
            return None
        with self._lock:
            self._generation += changes
            self._confirmed = time.monotonic()
            return self._generation

    def _open(self) -> int | None:
        pool = self._client.connection_pool  # its class and settings: TCP, TLS or a Unix socket alike
        connection = pool.connection_class(**pool.connection_kwargs)
        try:
            self._guard.call(blocking, self._track, connection)  # an outage is the guard's: a 503, then fail fast
        except redis.ResponseError as error:
            LOG.warning("segmind-mock: Redis cannot track changes (%s); the clock is read on every request", error)
            self.usable = False
            connection.disconnect()
            return None
        except StoreUnavailable:
            connection.disconnect()
            raise
        with self._lock:
            self._connection = connection
            self._confirmed = time.monotonic()
            return self._generation

    def _track(self, connection: Any) -> None:
        connection.connect()
        if str(connection.protocol) != "3":  # RESP2 delivers invalidations only through a second connection
            raise redis.ResponseError("the connection speaks RESP2 (protocol=2 in the store URL?)")
        connection.send_command(
            "CLIENT", "TRACKING", "ON", "BCAST", *(part for key in self._keys for part in ("PREFIX", key))
        )
        connection.read_response()

    def _close(self) -> None:  # under the lock
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = None
        self._generation += 1  # what was read while watched is no longer known to be current


def _ping(connection: Any) -> int:
    """PING the watch's connection; how many invalidations came before the PONG."""
    connection.send_command("PING")
    changes = 0
    while connection.read_response(push_request=True) != "PONG":
        changes += 1
    return changes


class JobCache:
    """Jobs this process stored or read lately, to answer polls with no round trip; bounded, and dropped at any doubt.

    A job never changes once stored; it only disappears: a reset (which then resets the clock),
    a Redis restart, the cap (which counts it under a watched key), its key's TTL. So a copy is
    current while the change watch's generation is the one before the write or read that found the
    job (a watched key moves, or the watch is lost, after any deletion but the TTL's), and while its
    key has time to live. Least recently used jobs go first past `jobs` jobs or `size` bytes (as
    stored: `job_store.JOB_CACHE_JOBS` and `JOB_CACHE_BYTES`); one larger than that is not kept.
    """

    def __init__(self, jobs: int, size: int) -> None:
        self.jobs = jobs
        self.size = size
        self._lock = threading.Lock()  # steps on the event loop and on threads share it
        self._kept: OrderedDict[str, tuple[Job, int, float]] = OrderedDict()  # job, bytes, its key's end (monotonic)
        self._bytes = 0
        self._generation = -1  # of every job kept

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, request_id: str, generation: int) -> Job | None:
        """The job, if kept and current at `generation` (the watch's now); a newer generation drops every job."""
        with self._lock:
            if generation != self._generation:
                if generation > self._generation:
                    self._drop(generation)
                return None
            kept = self._kept.get(request_id)
            if kept is None:
                return None
            if kept[2] <= time.monotonic():  # its key is gone from Redis
                self._remove(request_id)
                return None
            self._kept.move_to_end(request_id)
            return kept[0]

    def put(self, job: Job, size: int, until: float, generation: int) -> None:
        """Keep a job found in Redis (or written there) at `generation`, its key living until `until` (monotonic)."""
        if size > self.size:
            return
        with self._lock:
            if generation < self._generation:  # found before a change since seen: maybe stale
                return
            if generation > self._generation:
                self._drop(generation)
            if job.request_id in self._kept:
                self._remove(job.request_id)
            self._kept[job.request_id] = (job, size, until)
            self._bytes += size
            while len(self._kept) > self.jobs or self._bytes > self.size:
                self._remove(next(iter(self._kept)))

    def clear(self) -> None:
        """Forget every job."""
        with self._lock:
            self._drop(self._generation)

    def _drop(self, generation: int) -> None:
        self._kept.clear()
        self._bytes = 0
        self._generation = generation

    def _remove(self, request_id: str) -> None:
        self._bytes -= self._kept.pop(request_id)[1]

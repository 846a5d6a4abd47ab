"""Where the fake keeps its state: in the process (the default), or in Redis, shared by workers and machines."""

from __future__ import annotations

import os
from typing import Protocol

from mock_server.accounts import Ledger, MemoryLedger
from mock_server.clock import Clock, SimClock
from mock_server.journal import Journal, JournalStore
from mock_server.scenarios import RuleBook, Scenarios
from mock_server.store import JobStore, MemoryJobStore

MEMORY = "memory"
# The store `Settings()` (and so `segmind-mock serve`) uses when none is given: lets a whole test
# suite run against Redis without changing its fixtures.
STORE_VARIABLE = "SEGMIND_MOCK_STORE"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class StoreError(ValueError):
    """A store URL that cannot be used; the message says what to fix."""


class Backend(Protocol):
    """Builds each piece of the fake's state in one place: the process's memory, or a shared store."""

    name: str  # shown in the start-up line
    shared: bool  # True when several processes may serve the same state

    def clock(self, speed: float, virtual: bool) -> SimClock:
        """The fake's clock (a shared one is only set up by the first process to open the store)."""

    def jobs(self, clock: SimClock) -> JobStore:
        """The job store."""

    def rules(self) -> RuleBook:
        """The scenario rule book."""

    def journal(self, size: int) -> JournalStore:
        """The journal of exchanges, keeping the latest `size`."""

    def ledger(self) -> Ledger:
        """The accounts' ledger."""


class MemoryBackend:
    """Every piece of state in this process: the fastest, and the only one needing nothing installed."""

    name = MEMORY
    shared = False

    def clock(self, speed: float, virtual: bool) -> SimClock:
        """A clock in this process."""
        return Clock(speed, virtual=virtual)

    def jobs(self, clock: SimClock) -> JobStore:
        """Jobs in dicts, evicted lazily."""
        return MemoryJobStore()

    def rules(self) -> RuleBook:
        """Rules in a list."""
        return Scenarios()

    def journal(self, size: int) -> JournalStore:
        """A bounded deque."""
        return Journal(size)

    def ledger(self) -> Ledger:
        """Accounts in a dict."""
        return MemoryLedger()


def default_store() -> str:
    """The store used when none is given: `$SEGMIND_MOCK_STORE`, else memory."""
    return os.environ.get(STORE_VARIABLE) or MEMORY


def open_backend(url: str) -> Backend:
    """Build the backend a store URL names: `memory`, or `redis://HOST:PORT/DB[?prefix=NAME]`."""
    if url == MEMORY:
        return MemoryBackend()
    check_url(url)
    from mock_server import redis_store  # redis-py is only needed (and imported) for a Redis store

    return redis_store.RedisBackend.from_url(url)


def shared_url(url: str) -> str:
    """The store URL every worker of one server opens: for Redis, with its namespace pinned."""
    if url == MEMORY:
        return url
    check_url(url)
    from mock_server import redis_store

    return redis_store.with_prefix(url)


def check_url(url: str) -> None:
    """Raise StoreError unless `url` names a store, or when redis-py is missing for a Redis one."""
    if url == MEMORY:
        return
    if not url.startswith(REDIS_SCHEMES):
        raise StoreError(f"store must be {MEMORY!r} or a Redis URL such as redis://127.0.0.1:6379/0 (got {url!r})")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise StoreError("the Redis store needs the redis package: pip install 'segmind-mock[redis]'") from None

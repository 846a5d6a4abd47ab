"""The Redis backend: a namespace opened from a store URL, and the five stores built on it."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mock_server.defaults import MAX_JOBS_KEPT
from mock_server.storage import ClockStore, StoreError, StoreUnavailable
from mock_server.store_redis import steps
from mock_server.store_redis.connection import TIMEOUT_SECONDS, Guard, GuardedRedis, fresh_prefix, safe_url, split_url
from mock_server.store_redis.job_store import RedisJobStore
from mock_server.store_redis.journal_store import RedisJournal
from mock_server.store_redis.ledger import RedisLedger
from mock_server.store_redis.rule_store import RedisRuleStore
from mock_server.store_redis.session import Namespace
from mock_server.store_redis.shared_clock import RedisClock


class RedisBackend(Namespace):
    """The fake's state in one Redis namespace (`Namespace`: its keys, watch and request sessions)."""

    shared = True

    def __init__(self, client: GuardedRedis, prefix: str, where: str) -> None:
        super().__init__(client, prefix)
        self.name = f"{where} (prefix {prefix})"

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        """Connect to the Redis a store URL names, or raise StoreError saying why it cannot be used."""
        redis_url, prefix = split_url(url)
        try:
            pool = redis.ConnectionPool.from_url(
                redis_url,
                decode_responses=True,
                socket_timeout=TIMEOUT_SECONDS,
                socket_connect_timeout=TIMEOUT_SECONDS,
                # No retries: one timeout is all a request waits; the guard's probe reconnects.
                retry=Retry(NoBackoff(), 0),
            )
            client = GuardedRedis(connection_pool=pool)
            client.guard = Guard(client)
            client.guard.ping()  # unguarded: a failure here is a StoreError, no outage
        except (ValueError, redis.RedisError, StoreUnavailable) as error:
            raise StoreError(f"cannot use the Redis store {safe_url(redis_url)}: {error}") from None
        return cls(client, prefix or fresh_prefix(), safe_url(redis_url))

    # A request's step runs on the event loop, its round trips awaited there (`steps`).
    run_step = staticmethod(steps.run)

    def clock(self, speed: float) -> RedisClock:
        """The namespace's clock, set up at `speed` unless another process did first."""
        return RedisClock(self, speed)

    def jobs(self, clock: ClockStore, max_kept: int = MAX_JOBS_KEPT) -> RedisJobStore:
        """Jobs with Redis TTLs, at most `max_kept` and as many outputs."""
        return RedisJobStore(self, clock, max_kept)

    def rules(self) -> RedisRuleStore:
        """Rules with atomic counters."""
        return RedisRuleStore(self)

    def journal(self, size: int) -> RedisJournal:
        """A capped list."""
        return RedisJournal(self, size)

    def ledger(self) -> RedisLedger:
        """Account ledgers changed by Lua scripts."""
        return RedisLedger(self)

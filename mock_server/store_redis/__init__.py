"""The Redis store: the fake's whole state in Redis, so several workers (and machines) serve one fake.

Every key lives under a namespace (`?prefix=NAME` in the store URL; a fresh one per `SegmindMock`
otherwise), so fakes can share one Redis. Changes that must not race between workers are one
Lua script each (clock, rules, journal, jobs, account ledgers). The protocols are `storage.py`'s,
met in the same order as `store_memory.py` meets them. See docs/scaling.md for the key layout.

The modules, each importing only those listed before it:
`scripts` (the Lua scripts), `connection` (the store URL, `Guard` and its probe), `watch`
(`ChangeWatch`, the change tracking, and `JobCache`), `session` (`RedisSession`, one request's
snapshot and write queue, and `Namespace`, which sends them), `shared_clock` (`RedisClock`),
the stores (`job_store`, `journal_store`, `rule_store`, `ledger`) and `backend` (`RedisBackend`:
a namespace opened from a URL, and its stores).
"""

from mock_server.store_redis.backend import RedisBackend
from mock_server.store_redis.connection import split_url, with_prefix
from mock_server.store_redis.job_store import TTL_CAP_SECONDS

__all__ = ["TTL_CAP_SECONDS", "RedisBackend", "split_url", "with_prefix"]

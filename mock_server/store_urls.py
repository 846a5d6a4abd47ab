"""Choosing a store from its URL: `memory` (this process), or Redis, shared by workers and machines."""

from __future__ import annotations

from mock_server.defaults import MEMORY
from mock_server.storage import Backend, StoreError
from mock_server.store_memory import MemoryBackend

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_backend(url: str) -> Backend:
    """Build the backend a store URL names: `memory`, or `redis://HOST:PORT/DB[?prefix=NAME]`."""
    if url == MEMORY:
        return MemoryBackend()
    check_url(url)
    from mock_server import store_redis  # redis-py is an optional dependency, imported only for a Redis store

    return store_redis.RedisBackend.from_url(url)


def shared_url(url: str) -> str:
    """The store URL every worker of one server opens: for Redis, with its namespace pinned."""
    if url == MEMORY:
        return url
    check_url(url)
    from mock_server import store_redis  # optional dependency, as above

    return store_redis.with_prefix(url)


def check_url(url: str) -> None:
    """Raise StoreError unless `url` names a store, or when redis-py is missing for a Redis one."""
    if url == MEMORY:
        return
    if not url.startswith(REDIS_SCHEMES):
        raise StoreError(f"store must be {MEMORY!r} or a Redis URL such as redis://127.0.0.1:6379/0 (got {url!r})")
    try:
        import redis  # noqa: F401  (optional dependency: only checked for)
    except ImportError:
        raise StoreError("the Redis store needs the redis package: pip install 'segmind-mock[redis]'") from None

"""Account ledgers in Redis, each operation one Lua script."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mock_server.storage import Charge, Usage, round_credits
from mock_server.store_redis.scripts import (
    LEDGER_COUNT,
    LEDGER_HOLD,
    LEDGER_RELEASE,
    LEDGER_REMAINING,
    LEDGER_TOP_UP,
    LEDGER_TOUCH,
    LEDGER_USAGE,
)
from mock_server.store_redis.session import Call, Namespace, strings
from mock_server.store_redis.steps import blocking

_ACCOUNT_KEYS = (
    "account",
    "account-pending",
    "account-charges",
    "account-after",
    "account-after-due",
    "account-window",
)


class RedisLedger:
    """Each account as a few Redis structures, each operation one Lua script: O(log n) and atomic across workers."""

    def __init__(self, backend: Namespace) -> None:
        self._backend = backend
        self._redis = backend.redis
        self._index = backend.key("accounts")
        self._touch = self._redis.register_script(LEDGER_TOUCH)
        self._count = self._redis.register_script(LEDGER_COUNT)
        self._hold = self._redis.register_script(LEDGER_HOLD)
        self._release = self._redis.register_script(LEDGER_RELEASE)
        self._remaining = self._redis.register_script(LEDGER_REMAINING)
        self._top_up = self._redis.register_script(LEDGER_TOP_UP)
        self._usage = self._redis.register_script(LEDGER_USAGE)

    def _keys(self, key: str) -> list[str]:
        return [*(self._backend.key(name, key) for name in _ACCOUNT_KEYS), self._index]

    def _args(self, key: str, now: float, credits: float | None, kept_since: float | None, *more: str) -> list[str]:
        return [
            key,
            repr(now),
            "" if credits is None else repr(credits),
            "" if kept_since is None else repr(kept_since),
            *more,
        ]

    def touch(self, key: str) -> None:
        """Make sure the key has an account."""
        self._touch(keys=self._keys(key), args=self._args(key, 0.0, None, None))

    def count(self, key: str, rpm: int, window_now: float, window_since: float) -> float | None:
        """Count a submission in the window, or return the window's oldest count when it is full."""
        args = self._args(key, window_now, None, None, str(rpm), repr(window_since))
        call = Call(self._count, self._keys(key), args, timely=True)
        oldest = self._backend.run(self._backend.current.get(), call)[0]
        return float(oldest) if oldest is not None else None

    def hold(
        self, key: str, charge: Charge, credits: float | None, now: float, kept_since: float
    ) -> tuple[float, float] | None:
        """Hold the charge unless the key cannot pay it."""
        session = self._backend.current.get()
        billed = "1" if charge.billed else "0"
        more = (repr(charge.due), charge.request_id, repr(charge.price), billed)
        # Released again if the submission fails before its job is stored (answered 503: nothing kept),
        # whether Redis took the hold or not: a stall may hide it.
        release = Call(self._release, self._keys(key), self._args(key, now, credits, None, charge.request_id))
        self._backend.undo_if_refused(session, release)
        call = Call(self._hold, self._keys(key), self._args(key, now, credits, kept_since, *more), timely=True)
        if credits is None:  # unlimited: never refused, so the request need not wait for the answer
            self._backend.defer(session, call)
            return None
        refused = self._backend.run(session, call)[0]
        if refused is None:
            return None
        balance, held = refused
        return round_credits(float(balance)), round_credits(float(held))

    def remaining(self, key: str, request_id: str, credits: float, now: float, kept_since: float) -> float | None:
        """The balance right after the job's charge."""
        call = Call(self._remaining, self._keys(key), self._args(key, now, credits, kept_since, request_id))
        after = self._backend.run(self._backend.current.get(), call)[0]
        return round_credits(float(after)) if after is not None else None

    def top_up(
        self, key: str, add: float, credits: float | None, now: float, kept_since: float, window_since: float
    ) -> Usage:
        """Add credits after settling."""
        args = self._args(key, now, credits, kept_since, repr(add), repr(window_since))
        return _usage(key, self._top_up(keys=self._keys(key), args=args))

    def usage(
        self, credits: Callable[[str], float | None], now: float, kept_since: float, window_since: float
    ) -> list[Usage]:
        """Every account, in the order they were created, settled in one pipeline."""
        keys = strings(self._redis.lrange(self._index, 0, -1))
        with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                args = self._args(key, now, credits(key), kept_since, repr(window_since))
                self._usage(keys=self._keys(key), args=args, client=pipe)
            found = self._backend.guard.call(blocking, pipe.execute)
        return [_usage(key, raw) for key, raw in zip(keys, found, strict=True)]

    def clear(self) -> None:
        """Forget every account."""
        self._backend.delete_matching("account:*", "account-*")
        self._redis.delete(self._index)


def _usage(key: str, raw: list[Any]) -> Usage:
    topped_up, spent, held, count, oldest = raw
    floats = (round_credits(float(topped_up)), round_credits(float(spent)), round_credits(float(held)))
    return Usage(key, *floats, int(count), float(oldest) if oldest is not None else None)

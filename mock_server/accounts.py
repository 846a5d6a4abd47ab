"""Accounts: which API keys the fake accepts, what each may call, how fast, and its credits.

Without a config every non-empty key is accepted with unlimited credits and no rate limit. A
config (TOML, see `load_config`) declares keys; then only those are accepted.

Credits are charged lazily, like job states are derived: at submission a job's price is put in
the account's ledger as a charge due at the job's `finished_at` (the job's timeline and ending are
fixed when it is accepted). Reading the account settles every charge due by now, in time order:
a completing job's charge is spent, a failing job's is released. Until then it is held, so a key
cannot start more work than it can pay for. Nothing is charged twice, nothing waits for a poll.
"""

from __future__ import annotations

import heapq
import math
import threading
import tomllib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from contracts import MODELS
from mock_server import wire
from mock_server.jobs import Job, State
from mock_server.journal import mask_key

KEY_FIELDS = ("credits", "models", "plan", "rpm")
T = TypeVar("T")


class ConfigError(ValueError):
    """An accounts config that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class KeyConfig:
    """One declared key: starting credits, allowed models, requests a minute (None: no limit)."""

    credits: float | None = None
    models: frozenset[str] | None = None
    rpm: int | None = None


# What an undeclared key gets when no key is declared.
OPEN_KEY = KeyConfig()


@dataclass(frozen=True)
class AccountsConfig:
    """The keys the fake accepts (none declared: any key) and the price of each model."""

    keys: Mapping[str, KeyConfig] = field(default_factory=dict)
    prices: Mapping[str, float] = field(default_factory=lambda: dict(wire.PRICES))


def load_config(path: str | Path) -> AccountsConfig:
    """Read an accounts config from a TOML file, or raise ConfigError naming the file and the fix."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_config(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse_config(data: Mapping[str, Any]) -> AccountsConfig:
    """Build an accounts config from its parsed form (TOML tables as dicts), or raise ConfigError."""
    _no_unknown(data, ("keys", "prices"), "the config")
    prices = dict(wire.PRICES)
    for model, price in _table(data.get("prices", {}), "prices").items():
        if model not in MODELS:
            raise ConfigError(f"prices: unknown model {model!r}; the fake serves {', '.join(MODELS)}")
        prices[model] = _credits(price, f"prices.{model}")
    tables = _table(data.get("keys", {}), "keys")
    keys = {key: _key_config(key, _table(table, f"keys.{key}")) for key, table in tables.items()}
    return AccountsConfig(keys=keys, prices=prices)


def _key_config(key: str, table: Mapping[str, Any]) -> KeyConfig:
    where = f"keys.{key}"
    if not key.strip():
        raise ConfigError("keys: an API key may not be empty")
    _no_unknown(table, KEY_FIELDS, where)
    credits = _credits(table["credits"], f"{where}.credits") if "credits" in table else None
    models = table.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(model in MODELS for model in models):
            raise ConfigError(f"{where}.models must be a list of {', '.join(MODELS)} (got {models!r})")
        models = frozenset(models)
    if "plan" in table and "rpm" in table:
        raise ConfigError(f"{where}: give either plan or rpm, not both")
    rpm = table.get("rpm")
    if "plan" in table:
        if table["plan"] not in wire.RATE_LIMIT_PLANS:
            raise ConfigError(f"{where}.plan must be one of {', '.join(wire.RATE_LIMIT_PLANS)} (got {table['plan']!r})")
        rpm = wire.RATE_LIMIT_PLANS[table["plan"]]
    elif rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
        raise ConfigError(f"{where}.rpm must be a whole number of requests a minute, 1 or more (got {rpm!r})")
    return KeyConfig(credits=credits, models=models, rpm=rpm)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _no_unknown(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _credits(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ConfigError(f"{where} must be a number of credits, 0 or more (got {value!r})")
    return float(value)


def _round(credits: float) -> float:
    # Sums of decimal prices drift (0.1 + 0.2); credits are kept to a millionth.
    return round(credits, 6)


@dataclass(order=True)
class Charge:
    """A job's price, due when the job ends; `billed` is False for a job that will fail."""

    due: float
    request_id: str
    price: float = field(compare=False)
    billed: bool = field(compare=False)


@dataclass
class Account:
    """One key's usage: its ledger and the times of its recent submissions."""

    key: str
    config: KeyConfig
    declared: bool
    topped_up: float = 0.0
    spent: float = 0.0
    pending: list[Charge] = field(default_factory=list)  # a heap, soonest due first
    # Balance right after each completed job's charge, with when it was charged, oldest first.
    after: dict[str, tuple[float, float]] = field(default_factory=dict)
    window: deque[float] = field(default_factory=deque)

    def settle(self, now: float) -> None:
        """Apply every charge due by `now`, in time order; forget balances of jobs past retention."""
        while self.pending and self.pending[0].due <= now:
            charge = heapq.heappop(self.pending)
            if charge.billed:
                self.spent = _round(self.spent + charge.price)
                balance = self.balance()
                if balance is not None:
                    self.after[charge.request_id] = (charge.due, balance)
        while self.after:
            request_id, (due, _) = next(iter(self.after.items()))
            if due + wire.RESULT_RETENTION_SECONDS > now:
                break
            del self.after[request_id]

    def balance(self) -> float | None:
        """Credits left after settled charges; None when unlimited."""
        if self.config.credits is None:
            return None
        return _round(self.config.credits + self.topped_up - self.spent)

    def held(self) -> float:
        """Credits held for jobs still in progress."""
        return _round(sum((charge.price for charge in self.pending), 0.0))

    def recent(self, now: float) -> deque[float]:
        """The submissions inside the sliding one-minute window ending at `now`."""
        while self.window and self.window[0] + wire.RATE_LIMIT_RESET_SECONDS <= now:
            self.window.popleft()
        return self.window

    def view(self, now: float) -> dict[str, Any]:
        """The account as `GET /_mock/accounts` shows it."""
        self.settle(now)
        view: dict[str, Any] = {
            # Declared keys come from the operator's own config; keys seen in open mode may be real.
            "key": self.key if self.declared else mask_key(self.key),
            "declared": self.declared,
            "credits": self.config.credits,
            "topped_up": self.topped_up,
            "spent": self.spent,
            "held": self.held(),
            "balance": self.balance(),
            "models": sorted(self.config.models) if self.config.models is not None else None,
            "rpm": self.config.rpm,
            "requests_last_minute": len(self.recent(now)),
        }
        if self.config.rpm is not None and len(self.window) >= self.config.rpm:
            view["rate_limit_reset_at_utc"] = wire.utc(self.window[0] + wire.RATE_LIMIT_RESET_SECONDS)
        return view


class Ledger(Protocol):
    """Where accounts' usage is kept: each change applied atomically, whichever process makes it."""

    def touch(self, key: str, new: Callable[[str], Account]) -> None:
        """Make sure the key has an account, creating it with `new` (which may raise a 401)."""

    def apply(self, key: str, new: Callable[[str], Account], change: Callable[[Account], T], write: bool = True) -> T:
        """Run `change` on the key's account (created with `new` if missing) as one atomic step.

        With `write` False the change only reads (settling is recomputed on every read), so
        a shared ledger need not store it back.
        """

    def each(self, new: Callable[[str], Account], read: Callable[[Account], T]) -> list[T]:
        """Read every account, in the order they were created (`read` may settle, nothing is stored)."""

    def clear(self) -> None:
        """Forget every account."""


class MemoryLedger:
    """Accounts in a dict, changed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}

    def touch(self, key: str, new: Callable[[str], Account]) -> None:
        """Make sure the key has an account."""
        if key not in self._accounts:
            with self._lock:
                if key not in self._accounts:
                    self._accounts[key] = new(key)

    def apply(self, key: str, new: Callable[[str], Account], change: Callable[[Account], T], write: bool = True) -> T:
        """Run `change` on the key's account under the lock."""
        with self._lock:
            account = self._accounts.get(key)
            if account is None:
                account = self._accounts[key] = new(key)
            return change(account)

    def each(self, new: Callable[[str], Account], read: Callable[[Account], T]) -> list[T]:
        """Read every account under the lock, in the order they were created."""
        with self._lock:
            return [read(account) for account in self._accounts.values()]

    def clear(self) -> None:
        """Forget every account."""
        with self._lock:
            self._accounts.clear()


class Accounts:
    """Every account the fake knows, checked and charged as the real service would."""

    def __init__(self, config: AccountsConfig, ledger: Ledger | None = None) -> None:
        self.config = config
        self._ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        # Not a reset: a shared ledger may already hold the usage other workers recorded.
        self._declare()

    @property
    def open(self) -> bool:
        """True when no key is declared, so any non-empty key is accepted."""
        return not self.config.keys

    def reset(self) -> None:
        """Forget all usage: declared accounts start again from their configured credits."""
        self._ledger.clear()
        self._declare()

    def price(self, model: str) -> float:
        """The price of one run of `model`, in credits."""
        return self.config.prices[model]

    def authenticate(self, api_key: str) -> None:
        """Accept a key the fake knows (any key when open), or raise the 401 of one the service does not know."""
        self._ledger.touch(api_key, self._new)

    def admit(self, api_key: str, model: str, now: float) -> None:
        """Let a submission through, or raise its 401, 403 (model not allowed) or 429 (rate limit)."""
        self.authenticate(api_key)
        config = self.config.keys.get(api_key, OPEN_KEY)
        allowed = config.models
        if allowed is not None and model not in allowed:
            raise wire.ApiError(403, wire.forbidden_model(model, sorted(allowed)))
        rpm = config.rpm
        if rpm is None:
            return

        def count(account: Account) -> None:
            recent = account.recent(now)
            if len(recent) >= rpm:
                # Refused requests are not counted: the window frees up one minute after the oldest.
                reset_at = recent[0] + wire.RATE_LIMIT_RESET_SECONDS
                raise wire.ApiError(429, wire.rate_limited(rpm), wire.rate_limit_headers(reset_at))
            recent.append(now)

        self._ledger.apply(api_key, self._new, count)

    def charge(self, job: Job, now: float) -> None:
        """Hold a new job's price until it ends, or raise the 406 of a key that cannot pay for it."""
        price = self.price(job.model)

        def hold(account: Account) -> None:
            account.settle(now)
            balance = account.balance()
            if balance is not None:
                held = account.held()
                if _round(balance - held) < price:
                    raise wire.ApiError(406, wire.insufficient_credits(price, balance, held))
            heapq.heappush(account.pending, Charge(job.finished_at, job.request_id, price, job.error is None))

        self._ledger.apply(job.api_key, self._new, hold)

    def billing(self, job: Job, now: float) -> dict[str, float]:
        """`cost` and `remaining_credits` of a completed job (the balance right after its charge)."""
        if job.state_at(now) is not State.COMPLETED:
            return {}
        billing = {"cost": self.price(job.model)}

        def remaining(account: Account) -> tuple[float, float] | None:
            # The job's state may allow for rounding at its end; its charge is due then all the same.
            account.settle(max(now, job.finished_at))
            return account.after.get(job.request_id)

        after = self._ledger.apply(job.api_key, self._new, remaining, write=False)
        if after is not None:
            billing["remaining_credits"] = after[1]
        return billing

    def top_up(self, api_key: str, credits: float, now: float) -> dict[str, Any]:
        """Add credits (or take them away, if negative) to a declared key; return its view."""
        config = self.config.keys.get(api_key)
        if config is None:
            declared = ", ".join(self.config.keys) or "none: start the fake with a config to declare some"
            raise wire.ApiError(404, f"No declared API key {mask_key(api_key)}; declared keys: {declared}")
        if config.credits is None:
            raise wire.ApiError(400, f"API key {api_key} has unlimited credits: give it `credits` in the config")

        def add(account: Account) -> dict[str, Any]:
            account.settle(now)
            account.topped_up = _round(account.topped_up + credits)
            return account.view(now)

        return self._ledger.apply(api_key, self._new, add)

    def view(self, now: float) -> dict[str, Any]:
        """Every account, as `GET /_mock/accounts` shows it."""
        accounts = self._ledger.each(self._new, lambda account: account.view(now))
        return {"open": self.open, "prices": dict(self.config.prices), "accounts": accounts}

    def _declare(self) -> None:
        for key in self.config.keys:
            self._ledger.touch(key, self._new)

    def _new(self, api_key: str) -> Account:
        config = self.config.keys.get(api_key)
        if config is not None:
            return Account(api_key, config, declared=True)
        if not self.open:
            raise wire.ApiError(401, wire.STATUS_MESSAGES[401])
        return Account(api_key, OPEN_KEY, declared=False)

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
import threading
import tomllib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from contracts import MODELS
from contracts.spec import is_number
from mock_server import wire
from mock_server.jobs import Job, State
from mock_server.journal import mask_key

KEY_FIELDS = ("credits", "models", "plan", "rpm")


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
    if not is_number(value) or value < 0:
        raise ConfigError(f"{where} must be a number of credits, 0 or more (got {value!r})")
    return float(value)


def round_credits(credits: float) -> float:
    """Credits kept to a millionth: sums of decimal prices drift (0.1 + 0.2)."""
    return round(credits, 6)


class Charge(NamedTuple):
    """A job's price, due when the job ends; `billed` is False for a job that will fail.

    A tuple, so the ledger's heap orders charges by `due` (then the unique request id) in C: one
    is pushed on every submission.
    """

    due: float
    request_id: str
    price: float
    billed: bool


@dataclass(frozen=True)
class Usage:
    """One key's usage, settled at the time it was read: what `GET /_mock/accounts` shows of it."""

    key: str
    topped_up: float
    spent: float
    held: float
    requests_last_minute: int
    oldest_request: float | None  # the oldest submission in the window, if any


def balance_of(credits: float | None, topped_up: float, spent: float) -> float | None:
    """Credits left after settled charges; None when unlimited."""
    return None if credits is None else round_credits(credits + topped_up - spent)


@dataclass
class Account:
    """One key's usage in memory: its ledger and the times of its recent submissions."""

    topped_up: float = 0.0
    spent: float = 0.0
    pending: list[Charge] = field(default_factory=list)  # a heap, soonest due first
    held: float = 0.0  # the sum of the pending charges, kept as they come and go (as the Redis ledger does)
    # Balance right after each completed job's charge, with when it was charged, oldest first.
    after: dict[str, tuple[float, float]] = field(default_factory=dict)
    window: deque[float] = field(default_factory=deque)

    def settle(self, now: float, credits: float | None) -> None:
        """Apply every charge due by `now`, in time order; forget balances of jobs past retention."""
        while self.pending and self.pending[0].due <= now:
            charge = heapq.heappop(self.pending)
            self.held = round_credits(self.held - charge.price)
            if charge.billed:
                self.spent = round_credits(self.spent + charge.price)
                balance = balance_of(credits, self.topped_up, self.spent)
                if balance is not None:
                    self.after[charge.request_id] = (charge.due, balance)
        while self.after:
            request_id, (due, _) = next(iter(self.after.items()))
            if due + wire.RESULT_RETENTION_SECONDS > now:
                break
            del self.after[request_id]

    def hold(self, charge: Charge) -> None:
        """Hold a new job's charge until it is due."""
        heapq.heappush(self.pending, charge)
        self.held = round_credits(self.held + charge.price)

    def recent(self, now: float) -> deque[float]:
        """The submissions inside the sliding one-minute window ending at `now`."""
        while self.window and self.window[0] + wire.RATE_LIMIT_RESET_SECONDS <= now:
            self.window.popleft()
        return self.window

    def usage(self, key: str, now: float, credits: float | None) -> Usage:
        """The account settled at `now`."""
        self.settle(now, credits)
        window = self.recent(now)
        return Usage(key, self.topped_up, self.spent, self.held, len(window), window[0] if window else None)


class Ledger(Protocol):
    """Where accounts' usage is kept: each operation atomic, whichever process makes it.

    Operations that settle take the key's starting credits (None: unlimited), which live in the
    config, not in the ledger.
    """

    def touch(self, key: str) -> None:
        """Make sure the key has an account."""

    def count(self, key: str, rpm: int, now: float) -> float | None:
        """Count a submission in the key's window; with `rpm` already in it, return when the oldest leaves."""

    def hold(self, key: str, charge: Charge, credits: float | None, now: float) -> tuple[float, float] | None:
        """Settle by `now` and hold `charge`, or, when the balance minus what is held cannot pay it, return both."""

    def remaining(self, key: str, request_id: str, credits: float, now: float) -> float | None:
        """Settle by `now`; return the balance right after the job's charge, if it was charged and is retained."""

    def top_up(self, key: str, add: float, credits: float | None, now: float) -> Usage:
        """Settle by `now`, add credits (negative: take them away) and return the usage."""

    def usage(self, credits: Callable[[str], float | None], now: float) -> list[Usage]:
        """Every account settled at `now`, in the order they were created."""

    def clear(self) -> None:
        """Forget every account."""


class MemoryLedger:
    """Accounts in a dict, changed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}

    def touch(self, key: str) -> None:
        """Make sure the key has an account."""
        if key not in self._accounts:
            with self._lock:
                self._accounts.setdefault(key, Account())

    def count(self, key: str, rpm: int, now: float) -> float | None:
        """Count a submission in the window, or return when the window frees up."""
        with self._lock:
            recent = self._account(key).recent(now)
            if len(recent) >= rpm:
                return recent[0] + wire.RATE_LIMIT_RESET_SECONDS
            recent.append(now)
            return None

    def hold(self, key: str, charge: Charge, credits: float | None, now: float) -> tuple[float, float] | None:
        """Hold the charge unless the key cannot pay it."""
        with self._lock:
            account = self._account(key)
            account.settle(now, credits)
            balance = balance_of(credits, account.topped_up, account.spent)
            if balance is not None and round_credits(balance - account.held) < charge.price:
                return balance, account.held
            account.hold(charge)
            return None

    def remaining(self, key: str, request_id: str, credits: float, now: float) -> float | None:
        """The balance right after the job's charge."""
        with self._lock:
            account = self._account(key)
            account.settle(now, credits)
            after = account.after.get(request_id)
            return after[1] if after is not None else None

    def top_up(self, key: str, add: float, credits: float | None, now: float) -> Usage:
        """Add credits after settling."""
        with self._lock:
            account = self._account(key)
            account.settle(now, credits)
            account.topped_up = round_credits(account.topped_up + add)
            return account.usage(key, now, credits)

    def usage(self, credits: Callable[[str], float | None], now: float) -> list[Usage]:
        """Every account under the lock, in the order they were created."""
        with self._lock:
            return [account.usage(key, now, credits(key)) for key, account in self._accounts.items()]

    def clear(self) -> None:
        """Forget every account."""
        with self._lock:
            self._accounts.clear()

    def _account(self, key: str) -> Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = Account()
        return account


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
        if not self.open and api_key not in self.config.keys:
            raise wire.ApiError(401, wire.STATUS_MESSAGES[401])
        self._ledger.touch(api_key)

    def admit(self, api_key: str, model: str, now: float) -> None:
        """Let a submission through, or raise its 401, 403 (model not allowed) or 429 (rate limit)."""
        self.authenticate(api_key)
        config = self._config(api_key)
        allowed = config.models
        if allowed is not None and model not in allowed:
            raise wire.ApiError(403, wire.forbidden_model(model, sorted(allowed)))
        rpm = config.rpm
        if rpm is None:
            return
        # Refused requests are not counted: the window frees up one minute after the oldest.
        reset_at = self._ledger.count(api_key, rpm, now)
        if reset_at is not None:
            raise wire.ApiError(429, wire.rate_limited(rpm), wire.rate_limit_headers(reset_at))

    def charge(self, job: Job, now: float) -> None:
        """Hold a new job's price until it ends, or raise the 406 of a key that cannot pay for it."""
        price = self.price(job.model)
        charge = Charge(job.finished_at, job.request_id, price, job.error is None)
        refused = self._ledger.hold(job.api_key, charge, self._config(job.api_key).credits, now)
        if refused is not None:
            raise wire.ApiError(406, wire.insufficient_credits(price, *refused))

    def billing(self, job: Job, now: float) -> dict[str, float]:
        """`cost` and `remaining_credits` of a completed job (the balance right after its charge)."""
        if job.state_at(now) is not State.COMPLETED:
            return {}
        billing = {"cost": self.price(job.model)}
        credits = self._config(job.api_key).credits
        if credits is None:
            return billing  # an unlimited key has no balance to report
        # The job's state may allow for rounding at its end; its charge is due then all the same.
        remaining = self._ledger.remaining(job.api_key, job.request_id, credits, max(now, job.finished_at))
        if remaining is not None:
            billing["remaining_credits"] = remaining
        return billing

    def top_up(self, api_key: str, credits: float, now: float) -> dict[str, Any]:
        """Add credits (or take them away, if negative) to a declared key; return its view."""
        config = self.config.keys.get(api_key)
        if config is None:
            declared = ", ".join(self.config.keys) or "none: start the fake with a config to declare some"
            raise wire.ApiError(404, f"No declared API key {mask_key(api_key)}; declared keys: {declared}")
        if config.credits is None:
            raise wire.ApiError(400, f"API key {api_key} has unlimited credits: give it `credits` in the config")
        return self._view(self._ledger.top_up(api_key, credits, config.credits, now))

    def view(self, now: float) -> dict[str, Any]:
        """Every account, as `GET /_mock/accounts` shows it."""
        accounts = [self._view(usage) for usage in self._ledger.usage(self._credits, now)]
        return {"open": self.open, "prices": dict(self.config.prices), "accounts": accounts}

    def _view(self, usage: Usage) -> dict[str, Any]:
        config = self._config(usage.key)
        declared = usage.key in self.config.keys
        view: dict[str, Any] = {
            # Declared keys come from the operator's own config; keys seen in open mode may be real.
            "key": usage.key if declared else mask_key(usage.key),
            "declared": declared,
            "credits": config.credits,
            "topped_up": usage.topped_up,
            "spent": usage.spent,
            "held": usage.held,
            "balance": balance_of(config.credits, usage.topped_up, usage.spent),
            "models": sorted(config.models) if config.models is not None else None,
            "rpm": config.rpm,
            "requests_last_minute": usage.requests_last_minute,
        }
        if config.rpm is not None and usage.oldest_request is not None and usage.requests_last_minute >= config.rpm:
            view["rate_limit_reset_at_utc"] = wire.utc(usage.oldest_request + wire.RATE_LIMIT_RESET_SECONDS)
        return view

    def _declare(self) -> None:
        for key in self.config.keys:
            self._ledger.touch(key)

    def _config(self, api_key: str) -> KeyConfig:
        return self.config.keys.get(api_key, OPEN_KEY)

    def _credits(self, api_key: str) -> float | None:
        return self._config(api_key).credits

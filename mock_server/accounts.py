"""Accounts: which API keys the fake accepts, what each may call, how fast, and its credits.

Without a config every key shaped like Segmind's (SG_ and 16 hex digits) is accepted, with
unlimited credits and no rate limit; any other key gets the real 401 and a hint. A config (TOML,
see `load_config`) declares keys, of any shape; then only those are accepted.

Credits are charged lazily, like job states are derived: at submission a job's price is put in
the account's ledger as a charge due at the job's `finished_at` (the job's timeline and ending are
fixed when it is accepted). Reading the account settles every charge due by now, in time order:
a completing job's charge is spent, a failing job's is released. Until then it is held, so a key
cannot start more work than it can pay for. Nothing is charged twice, nothing waits for a poll.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from contracts import MODELS, ModelSpec
from contracts.openapi import API_KEY_PATTERN
from contracts.responses import RESULT_RETENTION_SECONDS
from contracts.spec import number_in, show_range, show_value
from mock_server import api_errors, pricing
from mock_server.jobs import Job, State
from mock_server.journal import mask_key
from mock_server.scenarios import LARGEST_COUNT
from mock_server.storage import Charge, Ledger, Usage, balance_of

KEY_FIELDS = ("credits", "models", "plan", "rpm")
# Credits (and seconds, in the admin API) stay below this: far past any test's need, and short of
# the magnitudes where floats lose whole units, dates overflow and Redis's Lua overflows to inf.
LARGEST_AMOUNT = 1e12


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
    prices: Mapping[str, float] = field(default_factory=lambda: dict(pricing.PRICES))

    def priced(self, models: Mapping[str, ModelSpec]) -> AccountsConfig:
        """This config with a price for every model of `models`: its file's, unless the config sets one."""
        missing = {slug: spec.price for slug, spec in models.items() if slug not in self.prices}
        return replace(self, prices={**self.prices, **missing}) if missing else self

    @cached_property  # read on every request: derived once
    def open(self) -> bool:
        """True when no key is declared, so any key shaped like Segmind's is accepted."""
        return not self.keys


def load_config(path: str | Path, models: Mapping[str, ModelSpec] = MODELS) -> AccountsConfig:
    """Read an accounts config from a TOML file for a fake serving `models`; raise ConfigError naming file and fix."""
    return parse_config_of(path, read_config(path), models)


def parse_config_of(path: str | Path, data: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> AccountsConfig:
    """`parse_config`, its errors naming the file `path` the data was read from."""
    try:
        return parse_config(data, models)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a config file's TOML, or raise ConfigError naming the file and the fix."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except ValueError:  # tomllib's int() of an integer of more digits than Python converts
        limit = sys.get_int_max_str_digits()
        raise ConfigError(f"{path}: an integer in it has more than {limit} digits, past any value allowed") from None


def config_model_files(data: Mapping[str, Any], path: str | Path) -> list[Path]:
    """The model files a config's `models` list names, relative to the config's own folder."""
    files = data.get("models", [])
    if not isinstance(files, list) or not all(isinstance(file, str) and file for file in files):
        raise ConfigError(f"{path}: models must be a list of model file paths (got {show_value(files)})")
    return [Path(path).parent / file for file in files]


def parse_config(data: Mapping[str, Any], models: Mapping[str, ModelSpec] = MODELS) -> AccountsConfig:
    """Build an accounts config from its parsed TOML for a fake serving `models`, or raise ConfigError.

    Its `models` list (model files) is read by the caller, before: `config_model_files`.
    """
    _no_unknown(data, ("keys", "prices", "models"), "the config")
    prices = {slug: spec.price for slug, spec in models.items()}
    for model, price in _table(data.get("prices", {}), "prices").items():
        if model not in models:
            raise ConfigError(f"prices: unknown model {model!r}; the fake serves {', '.join(models)}")
        prices[model] = _credits(price, f"prices.{model}")
    tables = _table(data.get("keys", {}), "keys")
    keys = {key: _key_config(key, _table(table, f"keys.{key}"), models) for key, table in tables.items()}
    return AccountsConfig(keys=keys, prices=prices)


def _key_config(key: str, table: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> KeyConfig:
    where = f"keys.{key}"
    if not key.strip():
        raise ConfigError("keys: an API key may not be empty")
    _no_unknown(table, KEY_FIELDS, where)
    credits = _credits(table["credits"], f"{where}.credits") if "credits" in table else None
    allowed = table.get("models")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(model in models for model in allowed):
            raise ConfigError(f"{where}.models must be a list of {', '.join(models)} (got {allowed!r})")
        allowed = frozenset(allowed)
    if "plan" in table and "rpm" in table:
        raise ConfigError(f"{where}: give either plan or rpm, not both")
    rpm = table.get("rpm")
    if "plan" in table:
        if table["plan"] not in pricing.RATE_LIMIT_PLANS:
            raise ConfigError(
                f"{where}.plan must be one of {', '.join(pricing.RATE_LIMIT_PLANS)} (got {table['plan']!r})"
            )
        rpm = pricing.RATE_LIMIT_PLANS[table["plan"]]
    elif rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or not 1 <= rpm <= LARGEST_COUNT):
        raise ConfigError(
            f"{where}.rpm must be a whole number of requests a minute, 1 or more (up to {LARGEST_COUNT}) "
            f"(got {show_value(rpm)})"
        )
    return KeyConfig(credits=credits, models=allowed, rpm=rpm)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _no_unknown(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _credits(value: Any, where: str) -> float:
    if not number_in(value, 0, LARGEST_AMOUNT):
        raise ConfigError(
            f"{where} must be a number of credits, {show_range(0, LARGEST_AMOUNT)} (got {show_value(value)})"
        )
    return float(value)


class Accounts:
    """Every account the fake knows, checked and charged as the real service would."""

    def __init__(self, config: AccountsConfig, ledger: Ledger) -> None:
        self.config = config
        self._ledger = ledger
        # Not a reset: a shared ledger may already hold the usage other workers recorded.
        self._declare()

    def configure(self, config: AccountsConfig) -> None:
        """Start afresh under a new config: no usage, and only its keys declared."""
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget all usage: declared accounts start again from their configured credits."""
        self._ledger.clear()
        self._declare()

    def price(self, model: str) -> float:
        """The price of one run of `model`, in credits."""
        return self.config.prices[model]

    def authenticate(self, api_key: str) -> None:
        """Accept a request's key (`x-api-key`, empty when none was sent) if the fake knows it, or raise its 401.

        Any Segmind-shaped key is known when the accounts are open.

        No account is made here: only declared keys have one (see `_declare`), so keys that
        clients make up, however many, leave no state behind.
        """
        if not api_key:
            raise api_errors.ApiError(401, api_errors.MISSING_KEY)
        if self.config.open:
            if not API_KEY_PATTERN.fullmatch(api_key):
                raise api_errors.ApiError(401, api_errors.MALFORMED_KEY)
        elif api_key not in self.config.keys:
            raise api_errors.ApiError(401, api_errors.STATUS_MESSAGES[401])

    def admit(self, api_key: str, model: str, window_now: float) -> None:
        """Let an authenticated key's submission through, or raise its 403 (model not allowed) or 429 (rate limit).

        `window_now` is the rate-limit clock's time (`Clock.window_now`). Open (no key declared),
        no key has limits: nothing to check.
        """
        if self.config.open:
            return
        config = self._config(api_key)
        allowed = config.models
        if allowed is not None and model not in allowed:
            raise api_errors.ApiError(403, api_errors.forbidden_model(model, sorted(allowed)))
        rpm = config.rpm
        if rpm is None:
            return
        # Refused requests are not counted: the window frees up one minute after the oldest.
        oldest = self._ledger.count(api_key, rpm, window_now, window_since(window_now))
        if oldest is not None:
            reset_in = oldest + pricing.RATE_LIMIT_RESET_SECONDS - window_now
            raise api_errors.ApiError(429, api_errors.rate_limited(rpm), api_errors.rate_limit_headers(reset_in))

    def charge(self, job: Job, now: float) -> None:
        """Hold a new job's price until it ends, or raise the 406 of a key that cannot pay for it.

        Open (no key declared), nothing is kept per key: credits are unlimited, so nothing can refuse.
        """
        if self.config.open:
            return
        price = self.price(job.model)
        charge = Charge(job.finished_at, job.request_id, price, job.error is None)
        refused = self._ledger.hold(job.api_key, charge, self._config(job.api_key).credits, now, kept_since(now))
        if refused is not None:
            raise api_errors.ApiError(406, api_errors.insufficient_credits(price, *refused))

    def billing(self, job: Job, now: float) -> dict[str, float]:
        """`cost` and `remaining_credits` of a completed job (the balance right after its charge)."""
        if job.state_at(now) is not State.COMPLETED:
            return {}
        billing = {"cost": self.price(job.model)}
        credits = self._config(job.api_key).credits
        if credits is None:
            # An unlimited key has no balance: clients still read one (docs/wire-format.md).
            return {**billing, "remaining_credits": pricing.OPEN_KEY_CREDITS}
        # The job's state may allow for rounding at its end; its charge is due then all the same.
        at = max(now, job.finished_at)
        remaining = self._ledger.remaining(job.api_key, job.request_id, credits, at, kept_since(at))
        if remaining is not None:
            billing["remaining_credits"] = remaining
        return billing

    def top_up(self, api_key: str, credits: float, now: float, window_now: float) -> dict[str, Any]:
        """Add credits (or take them away, if negative) to a declared key; return its view (see `view`)."""
        config = self.config.keys.get(api_key)
        if config is None:
            declared = ", ".join(map(_masked, self.config.keys)) or "none: start the fake with a config to declare some"
            raise api_errors.ApiError(404, f"No declared API key {mask_key(api_key)}; declared keys: {declared}")
        if config.credits is None:
            raise api_errors.ApiError(
                400, f"API key {mask_key(api_key)} has unlimited credits: give it `credits` in the config"
            )
        usage = self._ledger.top_up(api_key, credits, config.credits, now, kept_since(now), window_since(window_now))
        return self._view(usage, window_now)

    def view(self, now: float, window_now: float) -> dict[str, Any]:
        """Every account, as `GET /_mock/accounts` shows it: credits at `now`, rate windows at `window_now`."""
        usages = self._ledger.usage(self._credits, now, kept_since(now), window_since(window_now))
        accounts = [self._view(usage, window_now) for usage in usages]
        return {"open": self.config.open, "prices": dict(self.config.prices), "accounts": accounts}

    def _view(self, usage: Usage, window_now: float) -> dict[str, Any]:
        config = self._config(usage.key)
        declared = usage.key in self.config.keys
        view: dict[str, Any] = {
            # Masked like every key the fake shows: the admin API may be reachable beyond loopback.
            "key": _masked(usage.key),
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
            seconds_left = usage.oldest_request + pricing.RATE_LIMIT_RESET_SECONDS - window_now
            view["rate_limit_reset_at_utc"] = api_errors.reset_time(seconds_left)
        return view

    def _declare(self) -> None:
        # The only accounts there are: one per declared key, made once (a shared ledger keeps them).
        for key in self.config.keys:
            self._ledger.touch(key)

    def _config(self, api_key: str) -> KeyConfig:
        return self.config.keys.get(api_key, OPEN_KEY)

    def _credits(self, api_key: str) -> float | None:
        return self._config(api_key).credits


def kept_since(now: float) -> float:
    """Balances after charges due by then are forgotten at `now`: their jobs' results are no longer retained."""
    return now - RESULT_RETENTION_SECONDS


def window_since(window_now: float) -> float:
    """Submissions counted by then have left the sliding rate-limit window at `window_now` (rate-limit clock)."""
    return window_now - pricing.RATE_LIMIT_RESET_SECONDS


def _masked(key: str) -> str:
    return mask_key(key) or ""

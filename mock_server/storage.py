"""The storage layer: what the fake needs of a store, and the errors a store raises.

Each protocol is met twice, organised the same way: in this process (`store_memory.py`) and in
Redis, shared by workers and machines (`store_redis/`). A store keeps and changes records
atomically and knows no rule of the service: which scenario rule applies, the speed check,
waiting on the clock, retention and settling are decided once, above the stores (`clock.py`,
`rulebook.py`, `accounts.py`, `service.py`). This module imports only the records it stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol, TypeVar, TypeVarTuple

from mock_server.api_errors import ApiError
from mock_server.defaults import MAX_JOBS_KEPT
from mock_server.jobs import Job
from mock_server.journal import Entry
from mock_server.scenarios import Rule


class StoreError(ValueError):
    """A store that cannot be used (bad URL, unreachable server, missing package); the message says what to fix."""


class StoreUnavailable(ApiError):
    """The store did not answer in time, or refused a change (out of memory): a 503 in the envelope.

    The one mapping of store failures to HTTP: an `ApiError`, so every front end that answers
    `ApiError` in the envelope (Segmind's routes, the admin API, a raw ASGI handler) answers
    this one too. Raised before anything changed, so no job is accepted and then lost.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(503, f"Service Unavailable: the fake's store is unavailable ({reason}); retry shortly")


class JobsSummary(NamedTuple):
    """The retained jobs counted by state at one time, the next end, and what the cap evicted: what health shows.

    Kept as jobs come and go, never counted by walking them (O(1) or O(log n) a read, in every store).
    """

    jobs: int
    queued: int
    processing: int
    completed: int
    failed: int
    next_end: float | None  # the soonest end of a retained job still running, if any
    jobs_evicted: int  # jobs dropped before their retention ended, to stay within the cap
    outputs_evicted: int  # outputs dropped before theirs ended, likewise

    @classmethod
    def of_counts(
        cls,
        jobs: int,
        started: int,
        completed: int,
        failed: int,
        next_end: float | None,
        jobs_evicted: int,
        outputs_evicted: int,
    ) -> JobsSummary:
        """The summary from what a store counts: jobs kept, and of them those started, completed and failed."""
        return cls(
            jobs,
            jobs - started,
            started - completed - failed,
            completed,
            failed,
            next_end,
            jobs_evicted,
            outputs_evicted,
        )


class ClockState(NamedTuple):
    """The clock as stored: simulated time is `sim + (real_time() - real) * speed`.

    `jumped` is every second `advance` added since the last reset: the rate-limit clock is
    `real_time() + jumped` (`Clock.window_now`).
    """

    speed: float
    sim: float
    real: float
    jumped: float = 0.0


class Charge(NamedTuple):
    """A job's price, due when the job ends; `billed` is False for a job that will fail.

    A tuple, so a heap orders charges by `due` (then the unique request id) in C: one is pushed
    on every submission.
    """

    due: float
    request_id: str
    price: float
    billed: bool


class Usage(NamedTuple):
    """One key's usage, settled at the time it was read: what `GET /_mock/accounts` shows of it."""

    key: str
    topped_up: float
    spent: float
    held: float
    requests_last_minute: int
    oldest_request: float | None  # the oldest submission in the window, if any


def round_credits(credits: float) -> float:
    """Credits kept to a millionth, in every store: sums of decimal prices drift (0.1 + 0.2)."""
    return round(credits, 6)


def balance_of(credits: float | None, topped_up: float, spent: float) -> float | None:
    """Credits left after settled charges; None when unlimited."""
    return None if credits is None else round_credits(credits + topped_up - spent)


class ClockStore(Protocol):
    """Where the clock's state lives; `clock.Clock` reads and checks it."""

    def real_time(self) -> float:
        """The real seconds the stored `real` origin is counted in."""

    def read(self) -> ClockState:
        """The current state (inside a `pinned` block, the state read at its start)."""

    def refresh(self) -> ClockState:
        """The state read anew, even inside a `pinned` block (replacing its state): to see other processes' changes."""

    def advance(self, seconds: float) -> ClockState:
        """Add `seconds` (checked: finite, 0 or more) to simulated time."""

    def set_speed(self, speed: float) -> ClockState:
        """Change the speed (checked: finite, 0 or more) from now on, without a jump in simulated time."""

    def reset(self, speed: float) -> ClockState:
        """Bring simulated time back to the real time of day, at `speed` (one write)."""

    def pinned(self) -> AbstractContextManager[None]:
        """Within the block (one request), read a shared clock once and queue writes for `Backend.flush`."""


class JobStore(Protocol):
    """Jobs by request id, each kept until the deadlines it was added with; retention is decided above.

    Past `max_kept` jobs (or outputs), the oldest are dropped first, their deadlines notwithstanding.
    """

    def add(self, job: Job, result_until: float, output_until: float | None, now: float) -> None:
        """Keep a job until `result_until` (simulated), and its output until `output_until` (None: no output)."""

    def get(self, request_id: str) -> Job | None:
        """The job, if still kept (it may be past its deadline: the caller checks)."""

    def output(self, request_id: str) -> Job | None:
        """The job whose output is still kept (the caller checks the deadline)."""

    def jobs(self, now: float) -> list[Job]:
        """Every job kept, oldest first, after dropping those past their deadline at `now`."""

    def count(self) -> int:
        """How many jobs are kept (expired ones leave at the next `add` or `jobs`)."""

    def summary(self, now: float) -> JobsSummary:
        """The jobs retained at `now` by state, after dropping those past their deadline (no walk over them)."""

    def clear(self) -> None:
        """Forget every job and output."""


class RuleStore(Protocol):
    """The scenario rules, in the order they are tried, with their counters changed atomically."""

    def next_id(self) -> str:
        """A fresh rule id (ids keep counting after a clear)."""

    def add(self, rule: Rule) -> None:
        """Keep a new rule, tried after the others."""

    def rules(self) -> Sequence[Rule]:
        """The active rules in order, with their counters as they are now."""

    def matching(self) -> Sequence[Rule]:
        """The active rules in order, to match a request against: counters may be stale (inside a request, cached)."""

    def count(self) -> int:
        """How many rules are active (without reading them)."""

    def remove(self, rule_id: str) -> bool:
        """Remove one rule; tell whether it existed."""

    def clear(self) -> None:
        """Remove every rule."""

    def take(self, candidates: Sequence[tuple[str, bool]], count_undecided: bool) -> Rule | None:
        """Count one request against the rules it matches and use up the one that decides it, atomically.

        `candidates` are the matching rules' ids in order, each with whether it may decide this
        request. The first candidate whose `seen + 1` reaches its `nth` decides. When it may
        decide, every candidate's `seen` and the decider's `hits` grow by one and its `times`
        shrinks by one (a rule reaching 0 is removed), and the decider is returned. Otherwise None
        is returned, and the candidates' `seen` grow only when none decides and `count_undecided`.
        """


class JournalStore(Protocol):
    """The journal of exchanges: the latest `size` kept, oldest first."""

    size: int  # the exchanges it keeps; 0 keeps none, and the app then records nothing

    def record(self, entry: Entry) -> None:
        """Add an exchange, dropping the oldest past the journal's size."""

    def entries(self) -> list[Entry]:
        """Every kept exchange, oldest first."""

    def clear(self) -> None:
        """Forget every exchange."""


class Ledger(Protocol):
    """Accounts' usage, each operation atomic whichever process makes it.

    Operations that settle take the key's starting credits (None: unlimited), which live in the
    config, not in the ledger; settling applies every charge due by `now`, in time order, and
    forgets the balance after each charge that fell due at or before `kept_since`. How long a
    balance is kept, and how long the rate-limit window is, are decided above (accounts.py): a
    ledger is given the cutoffs.
    """

    def touch(self, key: str) -> None:
        """Make sure the key has an account."""

    def count(self, key: str, rpm: int, window_now: float, window_since: float) -> float | None:
        """Count a submission at `window_now` unless the key's window (the counts after `window_since`) holds `rpm`.

        Then return the oldest count in the window instead. Both times are on the rate-limit clock.
        """

    def hold(
        self, key: str, charge: Charge, credits: float | None, now: float, kept_since: float
    ) -> tuple[float, float] | None:
        """Settle by `now` and hold `charge`, or, when the balance minus what is held cannot pay it, return both."""

    def remaining(self, key: str, request_id: str, credits: float, now: float, kept_since: float) -> float | None:
        """Settle by `now`; return the balance right after the job's charge, if it was charged and is kept."""

    def top_up(
        self, key: str, add: float, credits: float | None, now: float, kept_since: float, window_since: float
    ) -> Usage:
        """Settle by `now`, add credits (negative: take some); return the usage, its window after `window_since`."""

    def usage(
        self, credits: Callable[[str], float | None], now: float, kept_since: float, window_since: float
    ) -> list[Usage]:
        """Every account settled at `now`, windows after `window_since`, oldest first; `credits` gives each key's."""

    def clear(self) -> None:
        """Forget every account."""


Result = TypeVar("Result")
Args = TypeVarTuple("Args")


class Backend(Protocol):
    """One store: builds each piece of the fake's state on it."""

    name: str  # shown in the start-up line
    shared: bool  # True when several processes may serve the same state

    async def run_step(self, work: Callable[[*Args], Result], *args: *Args) -> Result:
        """The result of a request's step, `work(*args)`, on asyncio: the store's waits never hold the loop."""

    def clock(self, speed: float) -> ClockStore:
        """The clock (a shared one is set up at `speed` only by the first process to open the store)."""

    def jobs(self, clock: ClockStore, max_kept: int = MAX_JOBS_KEPT) -> JobStore:
        """The job store, keeping `max_kept` jobs and as many outputs at most (Redis sizes TTLs by the speed)."""

    def rules(self) -> RuleStore:
        """The scenario rules."""

    def journal(self, size: int) -> JournalStore:
        """The journal, keeping the latest `size` exchanges."""

    def ledger(self) -> Ledger:
        """The accounts' ledger."""

    def flush(self) -> int:
        """Send the writes the current request queued (Redis batches them into one round trip), before it answers.

        Return how many journal entries among them the store could not take (they are lost alone);
        raise StoreUnavailable if it could not take any other write.
        """

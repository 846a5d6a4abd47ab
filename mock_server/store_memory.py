"""The memory store: every piece of state in this process, the fastest, and the only one needing nothing installed."""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from mock_server.defaults import JOURNAL_SIZE, MAX_JOBS_KEPT, MEMORY
from mock_server.jobs import TIME_SLACK_SECONDS, Job
from mock_server.journal import Entry
from mock_server.scenarios import Rule
from mock_server.storage import Args, Charge, ClockState, JobsSummary, Result, Usage, balance_of, round_credits

# Reading the clock in the process costs nothing: pinning it does nothing (one reusable context).
_UNPINNED = nullcontext()


class MemoryClock:
    """The clock's state in the process, replaced whole under a lock.

    A reader on another thread never sees one field changed and not the others, so time never
    appears to jump or run back. Real time is `time.monotonic()`.
    """

    def __init__(self, speed: float) -> None:
        self._lock = threading.Lock()
        self._state = ClockState(speed, time.time(), time.monotonic())

    # The monotonic clock, called straight (C, no Python frame): the clock is read on every request.
    real_time = staticmethod(time.monotonic)

    def read(self) -> ClockState:
        """The current state."""
        return self._state

    def refresh(self) -> ClockState:
        """The current state (nothing is pinned in the process)."""
        return self._state

    def advance(self, seconds: float) -> ClockState:
        """Add `seconds` to simulated time."""
        with self._lock:
            state = self._state
            self._state = state._replace(sim=state.sim + seconds, jumped=state.jumped + seconds)
            return self._state

    def set_speed(self, speed: float) -> ClockState:
        """Change the speed from now on."""
        with self._lock:
            state, real = self._state, time.monotonic()
            self._state = ClockState(speed, state.sim + (real - state.real) * state.speed, real, state.jumped)
            return self._state

    def reset(self, speed: float) -> ClockState:
        """Back to the time of day, at `speed`."""
        with self._lock:
            self._state = ClockState(speed, time.time(), time.monotonic())
            return self._state

    def pinned(self) -> AbstractContextManager[None]:
        """Nothing to pin: this clock is read in the process."""
        return _UNPINNED


class MemoryJobStore:
    """Jobs in two insertion-ordered dicts, evicted from the oldest end as they pass their deadline or the cap.

    Jobs are added in submission order with deadlines a fixed retention later, so the oldest job
    is always first: eviction costs O(1) per expired job, and past `max_kept` jobs (or outputs)
    the oldest go first, so memory stays bounded however fast clients submit. Each dict's
    deadlines are kept apart, in a deque in the same order (one each: request ids are unique,
    `jobs.new_request_id`): the dicts hold the jobs themselves, which the garbage collector does
    not track (`Job` is a `gc=False` struct), so it never walks them (docs/benchmarks.md), and a
    lookup is one dict lookup.

    The count by state is kept as time passes, never by walking the jobs: each job's start and end
    wait in a heap until the time read reaches them, and are counted then (`summary`).
    """

    def __init__(self, max_kept: int = MAX_JOBS_KEPT) -> None:
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._outputs: dict[str, Job] = {}
        self._job_deadlines: deque[float] = deque()
        self._output_deadlines: deque[float] = deque()
        self._lock = threading.Lock()
        self._next_expiry = math.inf  # no kept job or output expires before this: most adds evict nothing
        self._counts = _StateCounts()
        self.jobs_evicted = 0
        self.outputs_evicted = 0
        # The dicts' own lookups, called straight (never replaced: `clear` empties them in place).
        self.get: Callable[[str], Job | None] = self._jobs.get
        self.output: Callable[[str], Job | None] = self._outputs.get

    def add(self, job: Job, result_until: float, output_until: float | None, now: float) -> None:
        """Keep a job (and its future output, if any) until their deadlines, within the cap."""
        with self._lock:
            if now >= self._next_expiry:
                self._evict(now)
            self._jobs[job.request_id] = job
            self._job_deadlines.append(result_until)
            self._counts.add(job, self._jobs)
            if len(self._jobs) > self.max_kept:
                self._drop_oldest_job()
                self.jobs_evicted += 1
            if output_until is not None:
                self._outputs[job.request_id] = job
                self._output_deadlines.append(output_until)
                result_until = min(result_until, output_until)
                if len(self._outputs) > self.max_kept:
                    self._drop_oldest_output()
                    self.outputs_evicted += 1
            if result_until < self._next_expiry:
                self._next_expiry = result_until

    def jobs(self, now: float) -> list[Job]:
        """Every job kept, oldest first."""
        with self._lock:
            self._evict(now)
            return list(self._jobs.values())

    def count(self) -> int:
        """How many jobs are kept."""
        return len(self._jobs)

    def summary(self, now: float) -> JobsSummary:
        """The kept jobs by state at `now`, from counts kept as they change."""
        with self._lock:
            self._evict(now)
            counts = self._counts
            counts.reach(now + TIME_SLACK_SECONDS, self._jobs)
            return JobsSummary.of_counts(
                len(self._jobs),
                counts.started,
                counts.completed,
                counts.failed,
                counts.next_end(self._jobs),
                self.jobs_evicted,
                self.outputs_evicted,
            )

    def clear(self) -> None:
        """Forget every job and output."""
        with self._lock:
            for kept in (self._jobs, self._outputs, self._job_deadlines, self._output_deadlines):
                kept.clear()
            self._next_expiry = math.inf
            self._counts = _StateCounts()
            self.jobs_evicted = self.outputs_evicted = 0

    def _drop_oldest_job(self) -> None:
        self._job_deadlines.popleft()
        request_id = next(iter(self._jobs))
        self._counts.remove(self._jobs.pop(request_id))

    def _drop_oldest_output(self) -> None:
        self._output_deadlines.popleft()
        del self._outputs[next(iter(self._outputs))]

    def _evict(self, now: float) -> None:
        self._next_expiry = math.inf
        # Outputs end in nearly submission order: within one result retention of it, since the
        # service keeps no output a result could not hand out. One behind a later-ending job
        # waits for it (an hour at most), and is never served past its time: reads check it.
        deadlines = self._job_deadlines
        while deadlines and deadlines[0] <= now:
            self._drop_oldest_job()
        if deadlines:
            self._next_expiry = deadlines[0]
        deadlines = self._output_deadlines
        while deadlines:
            if deadlines[0] > now:
                self._next_expiry = min(self._next_expiry, deadlines[0])
                break
            self._drop_oldest_output()


class _Timeline:
    """Kept jobs by the time of one of their events (start or end), soonest first, popped once it is reached.

    Nearly every job comes in time order (the same queue and processing times, submitted in
    order): their request ids wait in a deque, a pointer each to the string the store's dict
    already holds; the few out of order (a scenario's durations) in a heap beside it. A job the
    store dropped leaves its id behind (never the job itself), skipped when it comes up.
    """

    def __init__(self, time_of: Callable[[Job], float]) -> None:
        self._time_of = time_of
        self._in_order: deque[str] = deque()
        self._last = -math.inf  # the latest time in the deque
        self._others: list[tuple[float, str]] = []

    def push(self, request_id: str, at: float) -> None:
        """Add a job by its id and its event's time (`time_of` of it), to be popped once that time is reached."""
        if at >= self._last:
            self._in_order.append(request_id)
            self._last = at
        else:
            heapq.heappush(self._others, (at, request_id))

    def pop_until(self, until: float, kept: dict[str, Job]) -> list[Job]:
        """The kept jobs whose event's time is `until` or before, removed (with the ids of jobs gone met on the way)."""
        reached = []
        in_order, others = self._in_order, self._others
        while in_order:
            job = kept.get(in_order[0])
            if job is not None:
                if self._time_of(job) > until:
                    break
                reached.append(job)
            in_order.popleft()
        while others and others[0][0] <= until:
            job = kept.get(heapq.heappop(others)[1])
            if job is not None:
                reached.append(job)
        return reached

    def first(self, kept: dict[str, Job]) -> float | None:
        """The soonest time among kept jobs (the ids of jobs gone are dropped on the way)."""
        in_order, others = self._in_order, self._others
        while in_order and in_order[0] not in kept:
            in_order.popleft()
        while others and others[0][1] not in kept:
            heapq.heappop(others)
        times = [self._time_of(kept[in_order[0]])] if in_order else []
        if others:
            times.append(others[0][0])
        return min(times, default=None)

    def keep_only(self, kept: dict[str, Job]) -> None:
        """Drop the ids of jobs no longer kept."""
        self._in_order = deque(request_id for request_id in self._in_order if request_id in kept)
        self._others = [entry for entry in self._others if entry[1] in kept]
        heapq.heapify(self._others)


class _StateCounts:
    """How many kept jobs had started and ended by the latest time read, kept as that time moves on.

    A job's start and end wait in two timelines until the time read passes them (then counted); a
    job dropped before they pass leaves its entries behind, skipped when they come up, and the
    timelines are rebuilt without them as a job is added once more jobs were dropped since the
    last rebuild than are kept (each left two entries at most: amortised O(1) a job), so they never
    keep dropped jobs alive for long, whether or not anyone reads the counts.
    """

    def __init__(self) -> None:
        self.reached = -math.inf  # every start and end up to this time is counted
        self.started = self.completed = self.failed = 0
        self._starts = _Timeline(operator.attrgetter("started_at"))
        self._ends = _Timeline(operator.attrgetter("finished_at"))
        self._dropped = 0  # jobs removed since the timelines were last rebuilt

    def add(self, job: Job, kept: dict[str, Job]) -> None:
        """Count a new job when the time read passes its start and its end (`kept`: the jobs kept, with it)."""
        if self._dropped > len(kept) + 512:  # the timelines may hold mostly entries of jobs gone
            self._starts.keep_only(kept)
            self._ends.keep_only(kept)
            self._dropped = 0
        # Each time read once: a job's times are properties, computed at each read, on every submit.
        started_at, finished_at = job.started_at, job.finished_at
        if started_at <= self.reached:  # only a clock moved back by a reset, which clears first
            self.started += 1
        else:
            self._starts.push(job.request_id, started_at)
        if finished_at <= self.reached:
            self._count_end(job, 1)
        else:
            self._ends.push(job.request_id, finished_at)

    def remove(self, job: Job) -> None:
        """Uncount a job leaving the store (its entries still waiting are skipped when they come up)."""
        self._dropped += 1
        if job.started_at <= self.reached:
            self.started -= 1
        if job.finished_at <= self.reached:
            self._count_end(job, -1)

    def reach(self, until: float, kept: dict[str, Job]) -> None:
        """Count every start and end of a kept job up to `until`."""
        self.started += len(self._starts.pop_until(until, kept))
        for job in self._ends.pop_until(until, kept):
            self._count_end(job, 1)
        self.reached = max(self.reached, until)

    def next_end(self, kept: dict[str, Job]) -> float | None:
        """The soonest end not yet reached of a kept job."""
        return self._ends.first(kept)

    def _count_end(self, job: Job, change: int) -> None:
        if job.error is not None:
            self.failed += change
        else:
            self.completed += change


class MemoryRuleStore:
    """Rules in a tuple, replaced whole when one is added or removed; counted under a lock."""

    def __init__(self) -> None:
        self._rules: tuple[Rule, ...] = ()
        self._by_id: dict[str, Rule] = {}  # the same rules, for `take` to find its candidates without a scan
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def next_id(self) -> str:
        """The next number."""
        return str(next(self._ids))

    def add(self, rule: Rule) -> None:
        """Keep a new rule, tried last."""
        with self._lock:
            self._rules = (*self._rules, rule)
            self._by_id[rule.id] = rule

    def rules(self) -> Sequence[Rule]:
        """The rules in order (read without the lock: the tuple is never changed in place)."""
        return self._rules

    def matching(self) -> Sequence[Rule]:
        """The rules in order, as `rules`."""
        return self._rules

    def count(self) -> int:
        """How many rules there are."""
        return len(self._rules)

    def remove(self, rule_id: str) -> bool:
        """Remove one rule; tell whether it existed."""
        with self._lock:
            if self._by_id.pop(rule_id, None) is None:
                return False
            self._rules = tuple(rule for rule in self._rules if rule.id != rule_id)
            return True

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules = ()
            self._by_id = {}

    def take(self, candidates: Sequence[tuple[str, bool]], count_undecided: bool) -> Rule | None:
        """Count the request and use the deciding rule up, under the lock."""
        with self._lock:
            by_id = self._by_id
            matching = [(by_id[rule_id], may) for rule_id, may in candidates if rule_id in by_id]
            decider = next(((rule, may) for rule, may in matching if rule.seen + 1 >= rule.nth), None)
            if (decider is None and count_undecided) or (decider is not None and decider[1]):
                for rule, _ in matching:
                    rule.seen += 1
            if decider is None or not decider[1]:
                return None
            chosen = decider[0]
            chosen.hits += 1
            if chosen.times > 0:
                chosen.times -= 1
                if chosen.times == 0:
                    del self._by_id[chosen.id]
                    self._rules = tuple(rule for rule in self._rules if rule is not chosen)
            return chosen


class MemoryJournal:
    """A bounded deque of exchanges, oldest first."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self.size = size
        # No lock: a deque's append, copy and clear are each one step that other threads cannot split.
        self._entries: deque[Entry] = deque(maxlen=size)
        # Adding an exchange, the oldest dropped past the journal's size: the deque's own append,
        # called straight on every request.
        self.record: Callable[[Entry], None] = self._entries.append

    def entries(self) -> list[Entry]:
        """Every kept exchange."""
        return list(self._entries.copy())

    def clear(self) -> None:
        """Forget every exchange."""
        self._entries.clear()


@dataclass
class Account:
    """One key's usage in memory: its ledger and the times of its recent submissions."""

    topped_up: float = 0.0
    spent: float = 0.0
    pending: list[Charge] = field(default_factory=list)  # a heap, soonest due first
    # An unlimited key's charges (every key's in open mode): only their totals are ever shown, so
    # each is its due time alone, in one heap per (price, billed): a float a job, not a Charge.
    dues: dict[tuple[float, bool], list[float]] = field(default_factory=dict)
    held: float = 0.0  # the sum of the pending charges, kept as they come and go (as the Redis ledger does)
    # Balance right after each completed job's charge, with when it was charged, oldest first.
    after: dict[str, tuple[float, float]] = field(default_factory=dict)
    window: deque[float] = field(default_factory=deque)

    def settle(self, now: float, credits: float | None, kept_since: float) -> None:
        """Apply every charge due by `now`, in time order; forget balances after charges due by `kept_since`."""
        while self.pending and self.pending[0].due <= now:
            charge = heapq.heappop(self.pending)
            self._apply(charge.price, charge.billed)
            balance = balance_of(credits, self.topped_up, self.spent)
            if charge.billed and balance is not None:
                self.after[charge.request_id] = (charge.due, balance)
        for (price, billed), dues in self.dues.items():
            while dues and dues[0] <= now:
                heapq.heappop(dues)
                self._apply(price, billed)
        while self.after:
            request_id, (due, _) = next(iter(self.after.items()))
            if due > kept_since:
                break
            del self.after[request_id]

    def hold(self, charge: Charge) -> None:
        """Hold a new job's charge until it is due."""
        heapq.heappush(self.pending, charge)
        self.held = round_credits(self.held + charge.price)

    def hold_unlimited(self, charge: Charge, now: float, kept_since: float) -> None:
        """Hold an unlimited key's charge: by its due time alone (nothing to refuse, no balance to record)."""
        dues = self.dues.setdefault((charge.price, charge.billed), [])
        if dues and dues[0] <= now:
            self.settle(now, None, kept_since)
        heapq.heappush(dues, charge.due)
        self.held = round_credits(self.held + charge.price)

    def _apply(self, price: float, billed: bool) -> None:
        # A charge comes due: released from what is held; spent if its job completed.
        self.held = round_credits(self.held - price)
        if billed:
            self.spent = round_credits(self.spent + price)

    def recent(self, window_since: float) -> deque[float]:
        """The submissions counted after `window_since` (rate-limit clock): the sliding window's."""
        while self.window and self.window[0] <= window_since:
            self.window.popleft()
        return self.window

    def usage(self, key: str, now: float, credits: float | None, kept_since: float, window_since: float) -> Usage:
        """The account settled at `now`, its window after `window_since`."""
        self.settle(now, credits, kept_since)
        window = self.recent(window_since)
        return Usage(key, self.topped_up, self.spent, self.held, len(window), window[0] if window else None)


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

    def count(self, key: str, rpm: int, window_now: float, window_since: float) -> float | None:
        """Count a submission in the window, or return the window's oldest count when it is full."""
        with self._lock:
            recent = self._account(key).recent(window_since)
            if len(recent) >= rpm:
                return recent[0]
            recent.append(window_now)
            return None

    def hold(
        self, key: str, charge: Charge, credits: float | None, now: float, kept_since: float
    ) -> tuple[float, float] | None:
        """Hold the charge unless the key cannot pay it."""
        with self._lock:
            account = self._account(key)
            if credits is None:  # unlimited (every key in open mode): nothing to refuse
                account.hold_unlimited(charge, now, kept_since)
                return None
            account.settle(now, credits, kept_since)
            balance = balance_of(credits, account.topped_up, account.spent)
            if balance is not None and round_credits(balance - account.held) < charge.price:
                return balance, account.held
            account.hold(charge)
            return None

    def remaining(self, key: str, request_id: str, credits: float, now: float, kept_since: float) -> float | None:
        """The balance right after the job's charge."""
        with self._lock:
            account = self._account(key)
            account.settle(now, credits, kept_since)
            after = account.after.get(request_id)
            return after[1] if after is not None else None

    def top_up(
        self, key: str, add: float, credits: float | None, now: float, kept_since: float, window_since: float
    ) -> Usage:
        """Add credits after settling."""
        with self._lock:
            account = self._account(key)
            account.settle(now, credits, kept_since)
            account.topped_up = round_credits(account.topped_up + add)
            return account.usage(key, now, credits, kept_since, window_since)

    def usage(
        self, credits: Callable[[str], float | None], now: float, kept_since: float, window_since: float
    ) -> list[Usage]:
        """Every account under the lock, in the order they were created."""
        with self._lock:
            accounts = self._accounts.items()
            return [account.usage(key, now, credits(key), kept_since, window_since) for key, account in accounts]

    def clear(self) -> None:
        """Forget every account."""
        with self._lock:
            self._accounts.clear()

    def _account(self, key: str) -> Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = Account()
        return account


class MemoryBackend:
    """Every piece of state in this process."""

    name = MEMORY
    shared = False

    async def run_step(self, work: Callable[[*Args], Result], *args: *Args) -> Result:
        """`work(*args)`, right here: an in-process store never waits."""
        return work(*args)

    def clock(self, speed: float) -> MemoryClock:
        """A clock in this process."""
        return MemoryClock(speed)

    def jobs(self, clock: object, max_kept: int = MAX_JOBS_KEPT) -> MemoryJobStore:
        """Jobs in dicts, evicted lazily and past `max_kept`."""
        return MemoryJobStore(max_kept)

    def rules(self) -> MemoryRuleStore:
        """Rules in a tuple."""
        return MemoryRuleStore()

    def journal(self, size: int) -> MemoryJournal:
        """A bounded deque."""
        return MemoryJournal(size)

    def ledger(self) -> MemoryLedger:
        """Accounts in a dict."""
        return MemoryLedger()

    def flush(self) -> int:
        """Nothing is queued: every write is done when asked."""
        return 0

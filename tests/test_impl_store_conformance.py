"""The storage layer's conformance suite: the same unit tests on the memory store and on Redis, edge values included.

Each test gets a fresh `backend` (a Redis one on a namespace of its own) and checks one concept
directly, through the layer above the stores where it lives: the clock, the rule book, the job
store, the journal and the ledger (through `Accounts`), and the service's rules that sit on them.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterator

import pytest

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import api_errors, pricing
from mock_server.accounts import Accounts, parse_config
from mock_server.clock import Clock
from mock_server.defaults import MEMORY
from mock_server.jobs import Job, State
from mock_server.journal import Entry
from mock_server.rulebook import RuleBook
from mock_server.scenarios import LARGEST_COUNT
from mock_server.service import Service, Settings
from mock_server.storage import Backend
from mock_server.store_urls import open_backend
from tests.support_stores import namespaced

pytestmark = pytest.mark.stores

SVD = MODELS["svd"]
KEY = "SG_00000000000000aa"


@pytest.fixture
def url(store: str) -> str:
    """A store URL of the test's own: memory, or a fresh Redis namespace."""
    return store if store == MEMORY else namespaced(store)


@pytest.fixture
def backend(url: str) -> Backend:
    """A fresh backend on the test's store."""
    return open_backend(url)


def _job(request_id: str = "r1", submitted_at: float = 1000.0, error: str | None = None, **params: object) -> Job:
    return Job(request_id, "svd", dict(params), KEY, submitted_at, 2.0, 10.0, 7, error)


# The clock.


def test_the_clock_advances_freezes_and_resets(backend: Backend) -> None:
    clock = Clock(backend.clock(0.0))
    start = clock.now()
    assert clock.now() == start  # frozen
    assert clock.advance(60) == pytest.approx(start + 60)
    clock.set_speed(1000)
    assert clock.speed == 1000
    clock.set_speed(0)
    frozen = clock.now()
    assert clock.now() == frozen
    clock.reset(0)
    assert clock.now() == pytest.approx(time.time(), abs=5)
    assert clock.speed == 0


def test_the_rate_limit_clock_runs_in_real_time_and_moves_with_every_advance(backend: Backend) -> None:
    clock = Clock(backend.clock(0.0))  # frozen: only real time and advances move the rate-limit clock
    start = clock.window_now()
    clock.advance(90)
    moved = clock.window_now()
    assert 90 <= moved - start < 95
    clock.set_speed(100)  # a change of speed is no jump
    clock.set_speed(0)
    assert moved <= clock.window_now() < moved + 5
    clock.reset(0)  # back to real time: the advances are forgotten with the usage they timed
    assert start <= clock.window_now() < moved


@pytest.mark.parametrize("speed", [math.inf, -math.inf, math.nan, -1.0])
def test_a_speed_that_is_not_finite_and_0_or_more_is_refused_by_every_store(url: str, speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be a finite number, 0 or more"):
        Service(Settings(speed=speed, store=url))
    clock = Service(Settings(speed=0, store=url)).clock
    with pytest.raises(ValueError, match="speed must be a finite number"):
        clock.set_speed(speed)
    assert clock.speed == 0 and math.isfinite(clock.now())


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_an_advance_backwards_or_by_no_number_is_refused(backend: Backend, seconds: float) -> None:
    clock = Clock(backend.clock(0.0))
    before = clock.now()
    with pytest.raises(ValueError):
        clock.advance(seconds)
    assert clock.now() == before


def test_a_virtual_wait_jumps_to_its_deadline(backend: Backend) -> None:
    clock = Clock(backend.clock(0.0), virtual=True)
    deadline = clock.now() + 3600
    asyncio.run(clock.wait_until(deadline))
    assert clock.now() >= deadline


def test_a_wait_sees_an_advance_made_elsewhere(backend: Backend) -> None:
    store = backend.clock(0.0)
    clock, other = Clock(store), Clock(store)

    async def wait_and_advance() -> None:
        deadline = clock.now() + 50
        async with asyncio.timeout(10):
            waiting = asyncio.create_task(clock.wait_until(deadline))
            await asyncio.sleep(0.05)
            with store.pinned():  # a request's pinned read must not hide the advance
                other.advance(50)
            await waiting

    asyncio.run(wait_and_advance())


# The rule book.


def _book(backend: Backend) -> RuleBook:
    return RuleBook(backend.rules())


def test_the_first_matching_rule_decides_and_its_times_count_down(backend: Backend) -> None:
    book = _book(backend)
    first = book.add({"outcome": "failed", "times": 2, "match": {"frames": 14}})
    book.add({"outcome": "rai_blocked"})
    decided = [book.take("submit", "svd", KEY, {"frames": 14}) for _ in range(3)]
    assert [rule.id if rule else None for rule in decided] == [first.id, first.id, "2"]
    assert [(rule.id, rule.times, rule.hits, rule.seen) for rule in book.rules()] == [("2", -1, 1, 3)]
    assert book.take("status", "svd", KEY, {}) is None  # other targets are not the rule's


def test_nth_counts_matching_requests_whichever_rule_decided_them(backend: Backend) -> None:
    book = _book(backend)
    book.add({"outcome": "failed", "nth": 3, "times": 1})
    book.add({"outcome": "rai_blocked", "times": 2})
    outcomes = [getattr(book.take("submit", "svd", KEY, {}), "outcome", None) for _ in range(4)]
    assert outcomes == ["rai_blocked", "rai_blocked", "failed", None]
    assert book.rules() == []


def test_a_refused_request_counts_for_no_rule_unless_an_http_error_answers_it(backend: Backend) -> None:
    book = _book(backend)
    book.add({"outcome": "failed", "times": 1})
    assert book.take("submit", "svd", KEY, {}, refused=True) is None
    assert [(rule.seen, rule.times) for rule in book.rules()] == [(0, 1)]  # left as it was
    book.clear()
    book.add({"outcome": "http_error", "status": 500, "times": 1})
    taken = book.take("submit", "svd", KEY, {}, refused=True)
    assert taken is not None and taken.status == 500
    assert book.rules() == []


def test_an_empty_book_decides_nothing_and_ids_keep_counting_after_a_clear(backend: Backend) -> None:
    book = _book(backend)
    assert book.take("submit", "svd", KEY, {}) is None
    book.add({"outcome": "failed"})
    book.clear()
    assert book.add({"outcome": "failed"}).id == "2"
    assert book.remove("2") and not book.remove("2")


@pytest.mark.parametrize("field", ["times", "nth"])
def test_counts_no_store_can_hold_exactly_are_refused_and_the_largest_counts_down_exactly(
    backend: Backend, field: str
) -> None:
    book = _book(backend)
    for count in (LARGEST_COUNT + 1, 10**20):
        with pytest.raises(ValueError, match=f"{field} must be a positive integer"):
            book.add({"outcome": "failed", field: count})
    book.add({"outcome": "failed", "times": LARGEST_COUNT})
    assert book.take("submit", "svd", KEY, {}) is not None
    assert [rule.times for rule in book.rules()] == [LARGEST_COUNT - 1]
    assert book.take("submit", "svd", KEY, {}) is not None  # submissions go on being decided


# The job store (retention is the service's, below).


@pytest.mark.parametrize("params", [{}, {"prompt": ""}, {"image": "x" * 1_000_000, "note": "é\u2603"}])
def test_jobs_come_back_as_they_went_in(backend: Backend, params: dict[str, object]) -> None:
    jobs = backend.jobs(backend.clock(0.0))
    job = _job(**params)
    jobs.add(job, 1000.0 + RESULT_RETENTION_SECONDS, 2000.0, 1000.0)
    assert jobs.get("r1") == job and jobs.output("r1") == job
    assert jobs.jobs(1000.0) == [job] and jobs.count() == 1
    assert jobs.get("unknown") is None


def test_jobs_leave_after_their_deadline_and_a_failing_job_has_no_output(backend: Backend) -> None:
    jobs = backend.jobs(backend.clock(0.0))
    jobs.add(_job("old"), 1100.0, None, 1000.0)
    jobs.add(_job("new", 1050.0, error="boom"), 1150.0, None, 1050.0)
    assert [job.request_id for job in jobs.jobs(1120.0)] == ["new"]
    assert jobs.output("new") is None
    jobs.clear()
    assert (jobs.jobs(1000.0), jobs.count(), jobs.get("new")) == ([], 0, None)


def test_the_counts_by_state_agree_with_the_jobs_kept_through_many_drops_past_the_cap(backend: Backend) -> None:
    # Jobs out of time order (the timelines' heap), failures, and a cap that drops most of them, so
    # that what waits to be counted is rebuilt many times: the counts stay what the jobs say.
    jobs = backend.jobs(backend.clock(0.0), max_kept=5)
    rng = random.Random(24)
    now = 1000.0
    for index in range(600):
        now += rng.choice([0.0, 0.5, 3.0, 40.0])
        job = Job(
            f"r{index}",
            "svd",
            {},
            KEY,
            now,
            rng.choice([0.0, 2.0, 30.0]),
            rng.choice([1.0, 40.0, 900.0]),
            7,
            rng.choice([None, None, "boom"]),
        )
        jobs.add(job, now + RESULT_RETENTION_SECONDS, None, now)
        if index % 7 == 0:
            now += rng.choice([0.0, 1.0, 10.0, 100.0])
            summary, kept = jobs.summary(now), jobs.jobs(now)
            states = [job.state_at(now) for job in kept]
            counted = (summary.jobs, summary.queued, summary.processing, summary.completed, summary.failed)
            assert counted == (len(kept), *(states.count(state) for state in State)), index
    assert jobs.count() == 5


# The journal.


def _entry(body: bytes, status: int | None = 200) -> Entry:
    return Entry(1.5, "POST", "/v2/svd", b"a=1", b"", body, len(body), status, b"application/json", b"", 0)


def test_the_journal_keeps_the_latest_exchanges_bytes_as_they_were(backend: Backend) -> None:
    journal = backend.journal(2)
    bodies = [b"", b"\xff\x00 not utf-8", b"x" * 4096]
    for body in bodies:
        journal.record(_entry(body, None))
    assert journal.entries() == [_entry(body, None) for body in bodies[1:]]
    journal.clear()
    assert journal.entries() == []


# The ledger, through the accounts above it.


def _accounts(backend: Backend, credits: float = 1.0, rpm: int | None = None) -> Accounts:
    table: dict[str, object] = {"credits": credits} if rpm is None else {"credits": credits, "rpm": rpm}
    return Accounts(parse_config({"keys": {KEY: table}, "prices": {"svd": 0.25}}), backend.ledger())


def test_charges_are_held_then_spent_when_due_and_a_key_cannot_start_more_than_it_can_pay(backend: Backend) -> None:
    accounts = _accounts(backend, credits=0.5)
    first, second = _job("a"), _job("b")
    accounts.charge(first, 1000.0)
    accounts.charge(second, 1000.0)
    with pytest.raises(api_errors.ApiError) as refused:
        accounts.charge(_job("c"), 1000.0)
    assert refused.value.status == 406 and "of which 0.5 is held" in refused.value.message
    (usage,) = accounts.view(first.finished_at, 0.0)["accounts"]
    assert (usage["spent"], usage["held"], usage["balance"]) == (0.5, 0.0, 0.0)
    assert accounts.billing(first, first.finished_at) == {"cost": 0.25, "remaining_credits": 0.25}


def test_a_failing_jobs_charge_is_released_and_top_ups_settle_first(backend: Backend) -> None:
    accounts = _accounts(backend)
    accounts.charge(_job("a", error="boom"), 1000.0)
    view = accounts.top_up(KEY, 2.0, 2000.0, 0.0)
    assert (view["spent"], view["held"], view["balance"]) == (0.0, 0.0, 3.0)


def test_the_rate_limit_window_slides(backend: Backend) -> None:
    accounts = _accounts(backend, rpm=2)
    accounts.admit(KEY, "svd", 1000.0)
    accounts.admit(KEY, "svd", 1010.0)
    with pytest.raises(api_errors.ApiError) as limited:
        accounts.admit(KEY, "svd", 1020.0)
    assert limited.value.status == 429
    accounts.admit(KEY, "svd", 1000.0 + pricing.RATE_LIMIT_RESET_SECONDS)


# The service's rules above the stores.


@pytest.fixture
def service(url: str) -> Iterator[Service]:
    """A frozen service on the test's store."""
    yield Service(Settings(speed=0, store=url))


def test_a_job_ended_within_the_clocks_slack_is_completed_and_its_output_served(service: Service) -> None:
    job, _ = service.submit(SVD, SVD.example, KEY)
    service.clock.advance(job.queue_seconds + job.processing_seconds - 5e-7)
    assert service.lookup(job.request_id)[1] is State.COMPLETED
    assert service.output(job.request_id) == job


def test_results_are_kept_for_the_retention_after_submission(service: Service) -> None:
    job, _ = service.submit(SVD, SVD.example, KEY)
    service.clock.advance(RESULT_RETENTION_SECONDS - 1)
    assert service.lookup(job.request_id)[0] == job
    service.clock.advance(1)
    with pytest.raises(api_errors.ApiError):
        service.lookup(job.request_id)
    assert service.job_views() == ([], 0)


def test_configure_declares_only_the_new_configs_keys(service: Service) -> None:
    service.configure(Settings(speed=0, accounts=parse_config({"keys": {"SG_old_key_0001": {"credits": 1}}})))
    service.configure(Settings(speed=0, accounts=parse_config({"keys": {"SG_new_key_0002": {"credits": 2}}})))
    keys = [account["key"] for account in service.account_view()["accounts"]]
    assert keys == ["SG_…0002"]  # masked, like every key the fake shows

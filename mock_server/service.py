"""The service: Segmind's API as state and rules, with no HTTP in it (moto's backend).

Submitting, polling, results, billing, scenarios and the clock, in one place that Segmind's routes,
the admin API and the Python API (`SegmindMock`) all call. Plain arguments in; typed results out,
or an `ApiError` carrying the status and message the real service would answer. Each request is
served in one pass: the key is authenticated once and the model looked up once.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, TypeVarTuple

import msgspec

from contracts import MODELS, ModelSpec, PayloadError
from contracts.responses import RESULT_RETENTION_SECONDS
from contracts.spec import is_image_reference
from mock_server import api_errors, outputs, pricing, wire
from mock_server.accounts import Accounts, AccountsConfig
from mock_server.clock import Clock, check_speed
from mock_server.defaults import (
    FETCH_THREADS,
    JOURNAL_SIZE,
    MAX_BODY_BYTES,
    MAX_JOBS_KEPT,
    MAX_SCENARIO_BYTES,
    MAX_SCENARIOS,
    MEMORY,
    QUEUE_SECONDS,
    RENDER_THREADS,
    SPEED,
    VIDEO_CACHE_BYTES,
)
from mock_server.har import Har
from mock_server.images import ImageError, ImageSource, fetches_image, inspect_image, reads_image
from mock_server.jobs import Job, State, new_request_id, resolve_seed
from mock_server.journal import Entry, mask_key
from mock_server.journal_har import journal_har
from mock_server.pools import StoreCalls, WorkerPools
from mock_server.rulebook import RuleBook
from mock_server.scenarios import Rule, Target
from mock_server.storage import Backend, JobsSummary, JobStore, JournalStore, StoreUnavailable
from mock_server.store_urls import open_backend
from mock_server.version import installed_version
from mock_server.video import VideoCache, checked_params

# What `Service.configure` cannot change, fixed when the stores were opened: the journal's size, the
# cap on jobs kept, the store, and the admin token.
KEPT_SETTINGS = ("journal_size", "max_jobs_kept", "store", "admin_token")
# Parameter strings longer than this (base64 images) are shortened in the admin views.
VIEW_STRING_LIMIT = 120

Result = TypeVar("Result")
Args = TypeVarTuple("Args")
LOG = logging.getLogger("segmind_mock")
# Read on every poll: through its class an enum member costs 60 ns in Python 3.11 (a module's name, 10).
_COMPLETED = State.COMPLETED


@dataclass(frozen=True)
class Settings:
    """How the fake runs; every field but `virtual` (a pytest fixture setting) has a CLI flag."""

    speed: float = SPEED
    virtual: bool = False
    queue_seconds: float = QUEUE_SECONDS
    max_body_bytes: int = MAX_BODY_BYTES
    journal_size: int = JOURNAL_SIZE
    # Jobs kept, and as many outputs, at most: past it the oldest go first (docs/robustness.md).
    max_jobs_kept: int = MAX_JOBS_KEPT
    # No keys declared: any non-empty key, unlimited credits, no rate limit (`--config` declares keys).
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    # Where input images may come from: inline data only, unless directories or fetching are allowed.
    images: ImageSource = field(default_factory=ImageSource)
    video_cache_bytes: int = VIDEO_CACHE_BYTES
    # Worker threads for fetching remote input images, and for decoding and rendering (pools.py).
    fetch_threads: int = FETCH_THREADS
    render_threads: int = RENDER_THREADS
    # Where state lives: "memory", or redis://HOST:PORT/DB[?prefix=NAME] to share it (docs/scaling.md).
    store: str = MEMORY
    # The token the admin API requires (None: open). Servers bound beyond loopback get one
    # generated unless one is given (server.admin_token_for); docs/robustness.md.
    admin_token: str | None = None
    # Scenario rules kept at once, and the size of each as JSON (rulebook.py).
    max_scenarios: int = MAX_SCENARIOS
    max_scenario_bytes: int = MAX_SCENARIO_BYTES
    # The models served, by slug: the shipped two, and those of `--model-file` (docs/models.md).
    models: Mapping[str, ModelSpec] = field(default_factory=lambda: MODELS)


# Plain tuples, built on every request at no cost (a NamedTuple's constructor is a Python call).
# An accepted submission: the job, and the scenario rule that decided it (it may shape the answer).
Accepted = tuple[Job, Rule | None]
# A polled job: its state now, the scenario rule for this answer, and the billing of a completed job.
Polled = tuple[Job, State, Rule | None, dict[str, float]]


def result_kept(job: Job, now: float) -> bool:
    """Tell whether a job's result is still retained at `now`: for the result retention after submission."""
    return now < job.submitted_at + RESULT_RETENTION_SECONDS


def output_served(job: Job, now: float) -> bool:
    """Tell whether a completed job's output file is served at `now`: from its end, for the output retention."""
    return job.ended_by(now) and now < job.finished_at + wire.OUTPUT_RETENTION_SECONDS


class Service:
    """The fake Segmind service: its clock, jobs, scenarios, journal and accounts, on one store."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.backend: Backend = open_backend(self.settings.store)
        self.shared = self.backend.shared  # several processes may serve the same state
        # Where the routes call the store from: awaiting its waits when it is shared (it may stall).
        self.store_calls = StoreCalls(self.backend)
        clock_store = self.backend.clock(check_speed(self.settings.speed))
        self.clock = Clock(clock_store, virtual=self.settings.virtual, calls=self.store_calls)
        self.jobs: JobStore = self.backend.jobs(clock_store, self.settings.max_jobs_kept)
        self.rules = RuleBook(self.backend.rules(), self.settings.models)
        self.journal: JournalStore = self.backend.journal(self.settings.journal_size)
        self.journaling = self.journal.size > 0  # `--journal-size 0` keeps nothing: nothing is recorded
        self.accounts = Accounts(self.settings.accounts.priced(self.settings.models), self.backend.ledger())
        self.videos = VideoCache(self.settings.video_cache_bytes)
        self.pools = WorkerPools(self.settings.fetch_threads, self.settings.render_threads)
        self.journal_dropped = 0  # exchanges the store could not journal (it was unavailable)
        self._dropped_lock = threading.Lock()  # store threads count them at once

    # Segmind's API.

    def model(self, model: str, api_key: str) -> ModelSpec:
        """Authenticate a submission and look its model up (401, then 404), before its body is read."""
        self.accounts.authenticate(api_key)
        models = self.settings.models
        spec = models.get(model)
        if spec is None:
            raise api_errors.ApiError(404, f"Model {model!r} not found: this fake serves {', '.join(models)}")
        return spec

    def reads_image(self, spec: ModelSpec, payload: Mapping[str, Any]) -> bool:
        """Tell whether submitting `payload` reads an image (decoding takes milliseconds: not on the event loop)."""
        name = spec.image_name
        return name is not None and reads_image(payload.get(name), self.settings.images)

    def fetches_image(self, spec: ModelSpec, payload: Mapping[str, Any]) -> bool:
        """Tell whether submitting `payload` (or rendering its video) fetches a remote image: the fetch pool's work."""
        name = spec.image_name
        return name is not None and fetches_image(payload.get(name), self.settings.images)

    async def run_blocking(self, spec: ModelSpec, payload: Mapping[str, Any], work: Callable[[], Result]) -> Result:
        """Run blocking work on `payload`'s image (a submission reading it) in the pool it belongs to."""
        return await self.pools.run(work, fetches=self.fetches_image(spec, payload))

    def submit(
        self,
        spec: ModelSpec,
        payload: Mapping[str, Any],
        api_key: str,
        *,
        sync: bool = False,
        override: Rule | None = None,
        checked: bool = False,
        moves_clock: bool = True,
    ) -> Accepted:
        """Accept a submission of an authenticated key (see `model`), or raise the ApiError the service would answer.

        An `override` (from `x-mock-*` headers) decides instead of the rule book and uses no rule
        up. `checked` says the payload is already what the contract's validation returns
        (`contracts.decoding.decode_params`), so it is not validated twice. Checks, in order:
        403 (model not allowed), 429 (rate limit), the rule's `http_error`, 400 (parameters),
        406 (credits). A `sync` call, whose wait jumps a stopped clock for every client, is first
        refused (400) unless the caller `moves_clock` (the front end decides who may: the admin's rights).
        """
        now = self.clock.now()
        if sync and not moves_clock and self.clock.jumps():
            raise api_errors.ApiError(400, api_errors.STOPPED_CLOCK)
        self.accounts.admit(api_key, spec.slug, self.clock.window_now())
        try:
            params: Mapping[str, Any] = payload if checked else self._validate(spec, payload)
            image = params[spec.image_name] if spec.image_name is not None else None
            # Nearly every submission names a URL the fake does not fetch: the test card, no reading.
            reading = image is not None and reads_image(image, self.settings.images)
            image_digest = self._inspect_image(spec, image) if image is not None and reading else None
        except (PayloadError, ImageError) as error:
            # Refused for its parameters, the submission uses no rule up, unless an `http_error`
            # rule answers it first (a gateway refuses before anyone reads the parameters).
            rule = (
                override
                if override is not None
                else self.rules.take("submit", spec.slug, api_key, payload, refused=True)
            )
            if rule is not None and rule.outcome == "http_error":
                raise self._http_error(rule) from None
            raise api_errors.ApiError(400, str(error)) from None
        rule = override if override is not None else self.rules.take("submit", spec.slug, api_key, params)
        if rule is not None and rule.outcome == "http_error":
            raise self._http_error(rule)
        # A decoded payload is built for this call alone: kept as it is; any other mapping is copied.
        owned = params if checked and isinstance(params, dict) else dict(params)
        job = self._new_job(spec, owned, api_key, rule, now, sync, image_digest)
        self.accounts.charge(job, now)
        finished_at = job.finished_at
        result_until = now + RESULT_RETENTION_SECONDS
        # An output is kept only if its URL can be handed out: by a result polled before it
        # expires. So output deadlines stay within one retention of submission order, and a job
        # made to run for years (`x-mock-processing-seconds`) cannot hold every later output in
        # memory behind it (stores evict from the oldest end).
        output_until = None
        if job.error is None and finished_at < result_until:
            output_until = finished_at + wire.OUTPUT_RETENTION_SECONDS
        self.jobs.add(job, result_until, output_until, now)
        return job, rule

    def lookup(self, request_id: str) -> tuple[Job, State]:
        """Return a retained job and its current state, or raise the 404 the service answers."""
        job = self.jobs.get(request_id)  # first: a shared store reads the clock in the same round trip
        now = self.clock.now()
        if job is None or not result_kept(job, now):
            raise api_errors.not_found(request_id)
        return job, job.state_at(now)

    def poll(self, request_id: str, api_key: str, target: Target) -> Polled:
        """Serve a `status` or `result` request: authenticate, look the job up, apply the scenario rule, bill.

        Rules match on the polled job's model, key and parameters; an `http_error` one is raised.
        Only a completed job is billed.
        """
        self.accounts.authenticate(api_key)
        job, state = self.lookup(request_id)
        rule = self.rules.take(target, job.model, job.api_key, job.params)
        if rule is not None and rule.outcome == "http_error":
            raise self._http_error(rule)
        billing = self.billing(job) if state is _COMPLETED else {}
        return job, state, rule, billing

    def account_view(self) -> dict[str, Any]:
        """Every account as `GET /_mock/accounts` shows it: credits at the fake's time, windows at the rate clock's."""
        return self.accounts.view(self.clock.now(), self.clock.window_now())

    def top_up(self, api_key: str, credits: float) -> dict[str, Any]:
        """Add credits to a declared key (see `Accounts.top_up`) and return its view."""
        return self.accounts.top_up(api_key, credits, self.clock.now(), self.clock.window_now())

    def billing(self, job: Job) -> dict[str, float]:
        """`cost` and `remaining_credits` of a completed job, for its metrics and v1 headers."""
        return self.accounts.billing(job, self.clock.now())

    def output(self, request_id: str) -> Job:
        """The completed job whose output file is served now, or raise its 404."""
        job = self.jobs.output(request_id)
        if job is None or not output_served(job, self.clock.now()):
            raise api_errors.ApiError(404, f"Output {request_id} not found")
        return job

    def spec_of(self, job: Job) -> ModelSpec:
        """The spec of a job's model (its output type, its steering)."""
        return self.settings.models[job.model]

    async def video(self, job: Job) -> bytes:
        """Return the output file (MP4 or image) of a completed job, the same for the same request and seed."""
        spec = self.spec_of(job)
        cached = outputs.cached_video(spec, job, self.videos)
        if cached is not None:  # served on the event loop: no pool, however busy, holds it up
            return cached
        render = functools.partial(outputs.video_for, spec, job, self.settings.images, self.videos)
        return await self.run_blocking(spec, job.params, render)

    # Controls, as the admin API and SegmindMock offer them.

    def add_scenario(self, data: Mapping[str, Any]) -> Rule:
        """Add a scenario rule from its JSON form; raise ValueError saying what to fix."""
        return self.rules.add(data, self.settings.max_scenarios, self.settings.max_scenario_bytes)

    def finish(self, entry: Entry | None) -> None:
        """End a request's step: journal its exchange (stamped with the fake's time) and store what its answer names.

        A shared store sends what the request queued (the job the answer names, and the entry) in
        one round trip, before the answer goes: StoreUnavailable (a 503) if it could not take the
        job; an entry it could not take, or a bug building it, loses the entry alone (counted).
        """
        if entry is not None:
            try:
                entry.at = self.clock.now()
                self.journal.record(entry)
            except StoreUnavailable:
                self.count_dropped(1)
            except Exception:  # a bug, not an outage: logged, and still never allowed to cut the answer
                self.count_dropped(1)
                LOG.exception("segmind-mock: journaling an exchange failed")
        if self.shared:
            self.count_dropped(self.backend.flush())

    async def run_step(
        self, work: Callable[[*Args], Result], *args: *Args, image: tuple[ModelSpec, Mapping[str, Any]] | None = None
    ) -> Result:
        """Run a request's step where it belongs: on the worker pools if it reads `image`, else by `store_calls`."""
        if image is not None:
            return await self.run_blocking(*image, functools.partial(work, *args))
        return await self.store_calls(work, *args)

    def count_dropped(self, exchanges: int) -> None:
        """Count exchanges the store could not journal (`journal_dropped`, shown by the health check)."""
        if exchanges:
            with self._dropped_lock:
                self.journal_dropped += exchanges

    def requests(self) -> list[dict[str, Any]]:
        """The journal of exchanges with the Segmind routes, oldest first, described."""
        return [entry.to_dict() for entry in self.journal.entries()]

    def journal_recording(self, base_url: str) -> Har:
        """The journal as a HAR recording of the fake at `base_url`, its times simulated (`journal_har`)."""
        return journal_har(self.journal.entries(), self.jobs.get, base_url, installed_version(), self.clock.now())

    def clear_journal(self) -> None:
        """Forget every journaled exchange."""
        self.journal.clear()

    def scenarios(self) -> list[dict[str, Any]]:
        """The active scenario rules in the order they are tried, as the admin API shows them."""
        return [rule.to_dict() for rule in self.rules.rules()]

    def remove_scenario(self, rule_id: str) -> bool:
        """Remove one scenario rule; tell whether it existed."""
        return self.rules.remove(rule_id)

    def clear_scenarios(self) -> None:
        """Remove every scenario rule."""
        self.rules.clear()

    def clock_view(self) -> dict[str, Any]:
        """The clock as `GET /_mock/clock` shows it: the fake's time, its speed, and whether it is virtual."""
        clock = self.clock
        return {"now": clock.now(), "speed": clock.speed, "virtual": clock.virtual}

    def set_speed(self, speed: float) -> None:
        """Run the clock at `speed` (finite, 0 or more) from now on, without a jump."""
        self.clock.set_speed(speed)

    def advance(self, seconds: float) -> float:
        """Move the fake's time forward by `seconds` (finite, 0 or more); return the new time."""
        return self.clock.advance(seconds)

    def pinned(self) -> AbstractContextManager[None]:
        """Around one request: a shared store's clock read once, its writes queued (`finish` sends them)."""
        return self.clock.pinned()

    async def wait_until(self, deadline: float, *, jumps: bool) -> bool:
        """Wait until the fake's time reaches `deadline` (`Clock.wait_until`); False if the server shuts down first."""
        return await self.clock.wait_until(deadline, jumps=jumps)

    def retained(self, now: float) -> list[Job]:
        """Every job whose result is retained at `now`, oldest first."""
        return [job for job in self.jobs.jobs(now) if result_kept(job, now)]

    def summary(self) -> JobsSummary:
        """The retained jobs counted by state now, with the next end and the cap's evictions (no walk over the jobs)."""
        return self.jobs.summary(self.clock.now())

    def job_views(
        self, state: State | None = None, page: Callable[[list[Job]], list[Job]] = list
    ) -> tuple[list[dict[str, Any]], int]:
        """The retained jobs (in `state`, if given) as `GET /_mock/jobs` shows them, `page` of them; and how many."""
        now = self.clock.now()
        found = [job for job in self.retained(now) if state is None or job.state_at(now) is state]
        return [self.describe(job, now) for job in page(found)], len(found)

    def job_view(self, request_id: str) -> dict[str, Any] | None:
        """One retained job as the admin API shows it, or None once it is unknown or expired."""
        now = self.clock.now()
        job = self.jobs.get(request_id)
        return self.describe(job, now) if job is not None and result_kept(job, now) else None

    def reset(self) -> None:
        """Forget jobs, journal, scenarios and usage; bring the clock back to the time of day at its start-up speed."""
        self.jobs.clear()
        self.journal.clear()
        self.rules.clear()
        self.accounts.reset()
        self.clock.reset(self.settings.speed)

    def configure(self, settings: Settings) -> None:
        """Start afresh under new settings; those in `KEPT_SETTINGS` stay as they are."""
        kept = self.settings
        self.settings = replace(settings, **{name: getattr(kept, name) for name in KEPT_SETTINGS})
        # reset() then declares only the new config's keys
        self.accounts.config = settings.accounts.priced(self.settings.models)
        self.rules.models = settings.models
        self.reset()  # at the new settings' speed
        self.clock.virtual = settings.virtual
        self.videos = VideoCache(settings.video_cache_bytes)
        self.pools = WorkerPools(settings.fetch_threads, settings.render_threads)

    def describe(self, job: Job, now: float) -> dict[str, Any]:
        """Describe a job for the admin API, its key masked and long strings shortened."""
        view = msgspec.structs.asdict(job)
        view.update(
            state=job.state_at(now).value,
            api_key=mask_key(job.api_key),
            params={key: _shorten(value) for key, value in job.params.items()},
            started_at=job.started_at,
            finished_at=job.finished_at,
            expires_at=job.submitted_at + RESULT_RETENTION_SECONDS,
            output_file=f"{job.request_id}.{self.spec_of(job).extension}",
        )
        return view

    def _validate(self, spec: ModelSpec, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Check `payload` by the contract; with directories allowed, the image may also name a local file."""
        reference = payload.get(spec.image_name) if spec.image_name is not None else None
        if not self.settings.images.allowed_dirs or not isinstance(reference, str) or is_image_reference(reference):
            return spec.validate(payload)
        # The contract knows URLs and inline data only: _inspect_image checks the file.
        return checked_params(spec, payload)

    def _inspect_image(self, spec: ModelSpec, image: str) -> str | None:
        """Read and decode the input image now, so a job is never accepted and then fails on it."""
        try:
            return inspect_image(image, self.settings.images)
        except ImageError as error:
            raise ImageError(f"{spec.image_name} cannot be used: {error}") from None

    def _new_job(
        self,
        spec: ModelSpec,
        params: dict[str, Any],
        api_key: str,
        rule: Rule | None,
        now: float,
        sync: bool,
        image_digest: str | None,
    ) -> Job:
        queue = self.settings.queue_seconds
        processing = spec.latency_seconds
        error = None
        if rule is not None:
            queue = rule.queue_seconds if rule.queue_seconds is not None else queue
            processing = rule.processing_seconds if rule.processing_seconds is not None else processing
            error = wire.RAI_BLOCKED if rule.outcome == "rai_blocked" else rule.error
        asked = params.get("seed", -1)  # a model without an integer seed gets a random one, as -1 asks
        seed = resolve_seed(spec, asked if isinstance(asked, int) and not isinstance(asked, bool) else -1)
        if "seed" in params:
            params["seed"] = seed
        return Job(
            request_id=new_request_id(),
            model=spec.slug,
            params=params,
            api_key=api_key,
            submitted_at=now,
            queue_seconds=queue,
            processing_seconds=processing,
            seed=seed,
            error=error,
            sync=sync,
            image_digest=image_digest,
        )

    @staticmethod
    def _http_error(rule: Rule) -> api_errors.ApiError:
        assert rule.status is not None  # parse_rule sets it for every http_error rule
        headers = api_errors.rate_limit_headers(pricing.RATE_LIMIT_RESET_SECONDS) if rule.status == 429 else {}
        message = rule.error or api_errors.STATUS_MESSAGES[rule.status]
        return api_errors.ApiError(rule.status, message, {**headers, **rule.headers}, rule.delay_seconds or 0.0)


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > VIEW_STRING_LIMIT:
        return f"{value[:VIEW_STRING_LIMIT]}… ({len(value)} characters)"
    return value

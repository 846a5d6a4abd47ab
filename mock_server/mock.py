"""SegmindMock: the fake's state and controls, usable from Python with or without pytest."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from contracts import MODELS, ModelSpec, PayloadError
from contracts.spec import is_image_reference
from mock_server import outputs, wire
from mock_server.accounts import Accounts, AccountsConfig
from mock_server.backend import Backend, default_store, open_backend
from mock_server.images import ImageError, ImageSource, fetches_image, inspect_image, reads_image
from mock_server.jobs import Job, State, new_request_id, resolve_seed
from mock_server.journal import JOURNAL_SIZE, mask_key
from mock_server.pools import FETCH_THREADS, RENDER_THREADS, WorkerPools
from mock_server.scenarios import Rule
from mock_server.store import JobStore
from mock_server.video import VIDEO_CACHE_BYTES, VideoCache, checked_params

if TYPE_CHECKING:
    from mock_server.app import App

# Parameter strings longer than this (base64 images) are shortened in the admin views.
VIEW_STRING_LIMIT = 120


@dataclass(frozen=True)
class Settings:
    """How the fake runs; every field but `virtual` (a pytest fixture setting) has a CLI flag."""

    speed: float = 1.0
    virtual: bool = False
    queue_seconds: float = wire.QUEUE_SECONDS
    max_body_bytes: int = wire.MAX_BODY_BYTES
    journal_size: int = JOURNAL_SIZE
    # No keys declared: any non-empty key, unlimited credits, no rate limit (`--config` declares keys).
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    # Where input images may come from: inline data only, unless directories or fetching are allowed.
    images: ImageSource = field(default_factory=ImageSource)
    video_cache_bytes: int = VIDEO_CACHE_BYTES
    # Worker threads for fetching remote input images, and for decoding and rendering (pools.py).
    fetch_threads: int = FETCH_THREADS
    render_threads: int = RENDER_THREADS
    # Where state lives: "memory", or redis://HOST:PORT/DB[?prefix=NAME] to share it (docs/scaling.md).
    store: str = field(default_factory=default_store)


class SegmindMock:
    """The fake Segmind service: its clock, jobs, scenarios and journal, and the ASGI app serving them."""

    def __init__(self, settings: Settings | None = None) -> None:
        from mock_server.app import create_app  # the app's routes import this module

        self.settings = settings or Settings()
        self.backend: Backend = open_backend(self.settings.store)
        self.clock = self.backend.clock(self.settings.speed, self.settings.virtual)
        self.store: JobStore = self.backend.jobs(self.clock)
        self.scenarios = self.backend.rules()
        self.journal = self.backend.journal(self.settings.journal_size)
        self.accounts = Accounts(self.settings.accounts, self.backend.ledger())
        self.videos = VideoCache(self.settings.video_cache_bytes)
        self.pools = WorkerPools(self.settings.fetch_threads, self.settings.render_threads)
        self.app: App = create_app(self)

    # Controls, as the admin API offers them.

    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward and return the new simulated time."""
        return self.clock.advance(seconds)

    def add_scenario(
        self,
        match: Mapping[str, Any] | None = None,
        outcome: str = "completed",
        times: int = -1,
        **details: Any,
    ) -> Rule:
        """Add a scenario rule, with the same meaning as `POST /_mock/scenarios`."""
        return self.scenarios.add({"match": match or {}, "outcome": outcome, "times": times, **details})

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The journal of exchanges with the Segmind routes, oldest first."""
        return self.journal.entries()

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Every retained job, as `GET /_mock/jobs` shows it."""
        now = self.clock.now()
        return [self.describe(job, now) for job in self.store.jobs(now)]

    def job(self, request_id: str) -> dict[str, Any] | None:
        """One retained job, or None once it is unknown or expired."""
        now = self.clock.now()
        job = self.store.get(request_id, now)
        return self.describe(job, now) if job else None

    def reset(self) -> None:
        """Forget jobs, journal, scenarios and account usage, and bring the clock back to the time of day."""
        self.store.clear()
        self.journal.clear()
        self.scenarios.clear()
        self.accounts.reset()
        self.clock.reset()

    def configure(self, settings: Settings) -> None:
        """Start afresh under new settings, keeping the app (and any server running it).

        The journal keeps its size, and the store stays where it is.
        """
        self.reset()
        self.settings = replace(settings, store=self.settings.store)
        self.clock.set_speed(settings.speed)
        self.clock.virtual = settings.virtual
        self.accounts = Accounts(settings.accounts, self.backend.ledger())
        self.videos = VideoCache(settings.video_cache_bytes)
        self.pools = WorkerPools(settings.fetch_threads, settings.render_threads)

    # The service itself.

    def submit(
        self,
        model: str,
        payload: Mapping[str, Any],
        api_key: str,
        *,
        sync: bool = False,
        override: Rule | None = None,
    ) -> tuple[Job, Rule | None]:
        """Accept a submission as the real service would, or raise the ApiError it would answer.

        Returns the job and the scenario rule that decided it, which may also shape the answer
        (a delay, a network fault). An `override` (from `x-mock-*` headers) decides instead of the
        rule book and uses no rule up. Checks, in order: 401 (key), 403 (model not allowed),
        429 (rate limit), the rule's `http_error`, 400 (parameters), 406 (credits).
        """
        spec = model_spec(model)
        now = self.clock.now()
        self.accounts.admit(api_key, model, now)
        image_digest = None
        try:
            params: Mapping[str, Any] = self._validate(spec, payload)
            image_digest = self._inspect_image(spec, params)
        except (PayloadError, ImageError) as error:
            invalid = error
            params = payload
        else:
            invalid = None
        if invalid is not None:
            # Refused for its parameters, the submission uses no rule up, unless an `http_error`
            # rule answers it first (a gateway refuses before anyone reads the parameters).
            first = override if override is not None else self._first_rule(model, api_key, params)
            if first is not None and first.outcome == "http_error":
                if override is None:
                    self.scenarios.take(model, api_key, params)  # it answers, so it is used up
                raise self._http_error(first, now)
            raise wire.ApiError(400, str(invalid))
        rule = override if override is not None else self.scenarios.take(model, api_key, params)
        if rule is not None and rule.outcome == "http_error":
            raise self._http_error(rule, now)
        job = self._new_job(spec, dict(params), api_key, rule, now, sync, image_digest)
        self.accounts.charge(job, now)
        self.store.add(job, now)
        return job, rule

    def _first_rule(self, model: str, api_key: str, params: Mapping[str, Any]) -> Rule | None:
        """The rule that would decide this submission, left as it is."""
        applying = (rule for rule in self.scenarios.rules() if rule.applies("submit", model, api_key, params))
        return next((rule for rule in applying if rule.seen + 1 >= rule.nth), None)

    def lookup(self, request_id: str) -> tuple[Job, State]:
        """Return a retained job and its current state, or raise the 404 the service answers."""
        now = self.clock.now()
        job = self.store.get(request_id, now)
        if job is None:
            raise wire.not_found(request_id)
        return job, job.state_at(now)

    def poll(self, request_id: str, target: str) -> tuple[Job, State, Rule | None]:
        """Look a job up for a `status` or `result` request, with the scenario rule for this answer.

        Rules match on the polled job's model, key and parameters; an `http_error` one is raised.
        """
        job, state = self.lookup(request_id)
        rule = self.scenarios.take(job.model, job.api_key, job.params, target=target)
        if rule is not None and rule.outcome == "http_error":
            raise self._http_error(rule, self.clock.now())
        return job, state, rule

    def billing(self, job: Job) -> dict[str, float]:
        """`cost` and `remaining_credits` of a completed job, for its metrics and v1 headers."""
        return self.accounts.billing(job, self.clock.now())

    def reads_image(self, model: str, payload: Mapping[str, Any]) -> bool:
        """Tell whether submitting `payload` reads an image (decoding takes milliseconds: not on the event loop)."""
        spec = MODELS.get(model)
        return spec is not None and reads_image(payload.get(spec.image_param.name), self.settings.images)

    def fetches_image(self, model: str, payload: Mapping[str, Any]) -> bool:
        """Tell whether submitting `payload` (or rendering its video) fetches a remote image: the fetch pool's work."""
        spec = MODELS.get(model)
        return spec is not None and fetches_image(payload.get(spec.image_param.name), self.settings.images)

    async def video(self, job: Job) -> bytes:
        """Return the MP4 bytes of a completed job, the same for the same request and seed."""
        cached = outputs.cached_video(job, self.videos)
        if cached is not None:  # served on the event loop: no pool, however busy, holds it up
            return cached
        policy, videos = self.settings.images, self.videos
        render = functools.partial(outputs.video_for, job, policy, videos)
        return await self.pools.run(render, fetches=self.fetches_image(job.model, job.params))

    def describe(self, job: Job, now: float) -> dict[str, Any]:
        """Describe a job for the admin API, its key masked and long strings shortened."""
        view = asdict(job)
        view.update(
            state=job.state_at(now).value,
            api_key=mask_key(job.api_key),
            params={key: _shorten(value) for key, value in job.params.items()},
            started_at=job.started_at,
            finished_at=job.finished_at,
            expires_at=job.submitted_at + wire.RESULT_RETENTION_SECONDS,
        )
        return view

    def _validate(self, spec: ModelSpec, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Check `payload` by the contract; with directories allowed, the image may also name a local file."""
        name = spec.image_param.name
        reference = payload.get(name)
        if not self.settings.images.allowed_dirs or not isinstance(reference, str) or is_image_reference(reference):
            return spec.validate(payload)
        # The contract knows URLs and inline data only: _inspect_image checks the file.
        return checked_params(spec.slug, payload)

    def _inspect_image(self, spec: ModelSpec, params: Mapping[str, Any]) -> str | None:
        """Read and decode the input image now, so a job is never accepted and then fails on it."""
        name = spec.image_param.name
        try:
            return inspect_image(params[name], self.settings.images)
        except ImageError as error:
            raise ImageError(f"{name} cannot be used: {error}") from None

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
        params["seed"] = resolve_seed(spec, params["seed"])
        return Job(
            request_id=new_request_id(),
            model=spec.slug,
            params=params,
            api_key=api_key,
            submitted_at=now,
            queue_seconds=queue,
            processing_seconds=processing,
            seed=params["seed"],
            error=error,
            sync=sync,
            image_digest=image_digest,
        )

    @staticmethod
    def _http_error(rule: Rule, now: float) -> wire.ApiError:
        assert rule.status is not None  # parse_rule sets it for every http_error rule
        headers = wire.rate_limit_headers(now + wire.RATE_LIMIT_RESET_SECONDS) if rule.status == 429 else {}
        message = rule.error or wire.STATUS_MESSAGES[rule.status]
        return wire.ApiError(rule.status, message, {**headers, **rule.headers}, rule.delay_seconds or 0.0)


def model_spec(model: str) -> ModelSpec:
    """Return the spec of a served model, or raise the 404 for an unknown one."""
    spec = MODELS.get(model)
    if spec is None:
        raise wire.ApiError(404, f"Model {model!r} not found: this fake serves {', '.join(MODELS)}")
    return spec


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > VIEW_STRING_LIMIT:
        return f"{value[:VIEW_STRING_LIMIT]}… ({len(value)} characters)"
    return value

"""Segmind's own routes as raw ASGI handlers: v2 submit and polls, v1 sync and poll, the OpenAPI document.

These are the routes clients poll in loops and load-test, so no framework stands between uvicorn
and the service. Every route has one shape, a `Route`: `read` what the request says (headers from
the scope, the body from `receive`, a submission decoded and checked in one pass; the v1 call's
wait), then `answer` it in one step against the service and its store, which `app.App` runs (as a
step awaiting its round trip where a shared store needs one), journals and sends.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import anyio
from starlette.datastructures import Headers as StarletteHeaders
from starlette.requests import Request
from starlette.types import Receive, Scope

from contracts import ModelSpec
from contracts.decoding import decode_params
from contracts.openapi import POLL_PATH, RESULT_PATH, STATUS_PATH, SUBMIT_PATH, SYNC_PATH, openapi_document
from contracts.responses import (
    BASE64_IMAGE_KEY,
    BASE64_VIDEO_KEY,
    FAILED_STATUS,
    SYNC_FAILED_STATUS,
)
from mock_server import api_errors, wire
from mock_server.admin_token import may_move_clock
from mock_server.answers import Answer, answer, error_answer, header_list, with_length
from mock_server.bounded_cache import BoundedCache
from mock_server.faults import Shape
from mock_server.jobs import WAITING, Job, State
from mock_server.payload import read_body
from mock_server.scenarios import Rule, rule_from_headers
from mock_server.service import Accepted, Polled, Service
from mock_server.strict_json import parse_json_object
from mock_server.templates import submit_answer, waiting_answer

# An answer, with how it goes out when a scenario rule delays or breaks it (faults.py).
Reply = tuple[Answer, Shape | None]
# A submission as read: its model, its parameters, whether they are already checked, an `x-mock-*` rule.
Submission = tuple[ModelSpec, Mapping[str, Any], bool, Rule | None]
# A v1 call once its job ended: the job, its rule and its video (None: it failed); None: the client hung up.
Waited = tuple[Job, Rule | None, bytes | None] | None


BASE_CACHE_SIZE = 256
_BASES: BoundedCache[tuple[object, ...], str] = BoundedCache(BASE_CACHE_SIZE)


class SegmindRequest:
    """One request to a Segmind route as its handler sees it: what its headers say, its path's parameter, its body."""

    __slots__ = (
        "api_key",
        "body",
        "host",
        "image",
        "key",
        "length",
        "mocked",
        "param",
        "prefix",
        "receive",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        # A submission whose image is read (decoding takes milliseconds): its step runs on the worker pools.
        self.image: tuple[ModelSpec, Mapping[str, Any]] | None = None
        self.param = ""  # the model or the request id named in the path
        self.prefix = ""  # or wire.MIRROR_PREFIX: the answer's URLs stay under the path's prefix
        self.body = b""  # what the journal shows of the request
        # The headers the fake reads, in one pass over the raw list (first value of each).
        self.key = self.length = b""
        host: bytes | None = None
        self.mocked = False  # any x-mock-* header: nearly no request has one
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                self.key = self.key or value
            elif name == b"host":
                # The first, even empty, as Starlette's `base_url` reads it: the base cache's key
                # must be what the base is built from, or one request could name another's host.
                host = value if host is None else host
            elif name == b"content-length":
                self.length = self.length or value
            elif name.startswith(b"x-mock-"):
                self.mocked = True
        self.host = host or b""
        self.api_key = self.key.decode("latin-1")  # as the service reads it; empty when none was sent

    def base(self, prefix: str | None = None) -> str:
        """The base of the answer's URLs: the host the client called (the SDK follows them), then `prefix`.

        The prefix is the route's (its poll URLs stay under it) unless given: "" for the fake's
        own routes (outputs), `wire.MIRROR_PREFIX` for a `mirror_urls` rule's.
        """
        # Building Starlette's `base_url` costs a tenth of a submit, and clients call few hosts: cache
        # it by what it is built from (bounded, since the Host header is the client's to choose).
        scope = self.scope
        server = scope.get("server")  # a tuple from servers, a list from some in-process transports
        key = (scope.get("scheme"), tuple(server or ()), scope.get("root_path"), scope.get("app_root_path"), self.host)
        base = _BASES.get(key)
        if base is None:
            base = str(Request(scope).base_url).rstrip("/")
            _BASES.keep(key, base, len(base))
        return base + (self.prefix if prefix is None else prefix)

    def override(self) -> Rule | None:
        """The rule given by `x-mock-*` headers (see `mocked`); 400 for a header that says nothing valid."""
        try:
            return rule_from_headers(StarletteHeaders(raw=self.scope["headers"]))
        except ValueError as error:
            raise api_errors.ApiError(400, f"Invalid x-mock-* header: {error}") from None


class Route(NamedTuple):
    """A Segmind route: what is read of a request before its step, and the step that answers it."""

    # Read what the request says, or wait for what it asks (async, on the event loop); None: nothing to read.
    read: Callable[[SegmindRequest], Awaitable[Any]] | None
    # The step: the service's answer to what was read, run once, where the store needs it (app.App).
    answer: Callable[[SegmindRequest, Any], Reply]


class SegmindRoutes:
    """Segmind's routes, served for one fake: HTTP in and out, the service in between."""

    def __init__(self, service: Service) -> None:
        self.service = service
        get, post = ("GET", "HEAD"), ("POST",)  # a GET route answers HEAD too, its body left out by the server
        result = Route(self.read_result, self.result)
        polls = ((STATUS_PATH, Route(None, self.status)), (RESULT_PATH, result), (POLL_PATH, result))
        self.routes: list[tuple[str, tuple[str, ...], Route, str]] = [
            (SUBMIT_PATH, post, Route(self.read_submission, self.submit), ""),
            *((path, get, route, "") for path, route in polls),
            (SYNC_PATH, post, Route(self.wait_for_job, self.run_sync), ""),
            ("/openapi.json", get, Route(None, self.openapi), ""),
            # The poll routes again under the mirror prefix (client verification, `mirror_urls`).
            *((wire.MIRROR_PREFIX + path, get, route, wire.MIRROR_PREFIX) for path, route in polls),
        ]

    async def read_submission(self, request: SegmindRequest) -> Submission:
        """Read a submission: 401, then 404, before the body is read; then `x-mock-*` headers (400), the body (413)."""
        service = self.service
        spec = service.model(request.param, request.api_key)
        override = request.override() if request.mocked else None
        body = request.body = await read_body(request.length, request.receive, service.settings.max_body_bytes)
        # One pass for the bodies clients nearly always send; the reference path for any other,
        # so every message stays the one that names each broken parameter.
        checked = decode_params(spec, body)
        payload = parse_json_object(body) if checked is None else checked
        if service.reads_image(spec, payload):
            request.image = spec, payload
        return spec, payload, checked is not None, override

    def submit(self, request: SegmindRequest, submission: Submission) -> Reply:
        """`POST /v2/{model}`: queue a job and answer with its id and poll URLs."""
        spec, payload, checked, override = submission
        job, rule = self.service.submit(spec, payload, request.api_key, override=override, checked=checked)
        prefix = wire.MIRROR_PREFIX if rule is not None and rule.mirror_urls else None
        return submit_answer(job.request_id, request.base(prefix)), rule

    def status(self, request: SegmindRequest, _: None) -> Reply:
        """`GET /v2/requests/{id}/status`: the job's state, FAILED served as 422."""
        job, state, rule, billing = self.service.poll(request.param, request.api_key, "status")
        if state in WAITING:  # nearly every poll: from a template
            return waiting_answer(job.request_id, state, request.base()), rule
        body = wire.ended_status_body(job, state, billing)
        return answer(body, FAILED_STATUS if state is State.FAILED else 200), rule

    async def read_result(self, request: SegmindRequest) -> tuple[Polled, bytes | None]:
        """Poll the job whose result is asked, and render a completed job's video (on the worker pools)."""
        service = self.service
        polled = await service.store_calls(service.poll, request.param, request.api_key, "result")
        job, state = polled[0], polled[1]
        return polled, (await service.video(job) if state is State.COMPLETED else None)

    def result(self, request: SegmindRequest, read: tuple[Polled, bytes | None]) -> Reply:
        """`GET /v2/requests/{id}` (and the v1 poll URL): the final body, FAILED served as 422."""
        (job, state, rule, billing), video = read
        if state is State.FAILED:
            return answer(wire.failed_body(job), FAILED_STATUS), rule
        if video is not None:
            media_type = self.service.spec_of(job).output
            return answer(wire.completed_body(job, request.base(""), video, billing, media_type)), rule
        return answer(wire.pending_result_body(job, state, request.base())), rule

    async def wait_for_job(self, request: SegmindRequest) -> Waited:
        """Accept a v1 call's submission (stored at once), then wait for its job's end and render its video."""
        service = self.service
        spec, payload, checked, override = await self.read_submission(request)
        moves_clock = self._moves_clock(request)
        image, request.image = request.image, None  # the answer's step reads no image
        job, rule = await service.run_step(
            self._accept_sync, spec, payload, request.api_key, checked, override, moves_clock, image=image
        )
        if not await self._wait_for_end(request, job, moves_clock):
            return None
        return job, rule, (await service.video(job) if job.error is None else None)

    def run_sync(self, request: SegmindRequest, waited: Waited) -> Reply:
        """`POST /v1/{model}`: block for the job's simulated duration and answer with the video."""
        if waited is None:  # the client hung up: journaled only
            return (api_errors.CLIENT_GONE_STATUS, with_length(b""), b""), None
        job, rule, video = waited
        headers = wire.sync_headers(job, self.service.billing(job))
        if job.error is not None:
            return error_answer(api_errors.ApiError(SYNC_FAILED_STATUS, job.error, headers)), rule
        assert video is not None  # rendered for every job that did not fail
        spec = self.service.spec_of(job)
        if job.params.get("base64"):  # a model file may have no base64 parameter
            key = BASE64_VIDEO_KEY if spec.is_video else BASE64_IMAGE_KEY
            return answer({key: base64.b64encode(video).decode()}, headers=headers), rule
        media_type = (b"content-type", spec.output.encode())  # video/mp4 for a video model
        return (200, with_length(video, media_type, *header_list(headers)), video), rule

    def openapi(self, request: SegmindRequest, _: None) -> Reply:
        """`GET /openapi.json`: the contract's OpenAPI document, served from the host the client called."""
        return answer(openapi_document(request.base(), self.service.settings.models)), None

    def _accept_sync(
        self,
        spec: ModelSpec,
        payload: Mapping[str, Any],
        api_key: str,
        checked: bool,
        override: Rule | None,
        moves_clock: bool,
    ) -> Accepted:
        """Accept a v1 call's submission and store its job before the wait (`moves_clock`: see `_moves_clock`)."""
        service = self.service
        accepted = service.submit(
            spec, payload, api_key, sync=True, override=override, checked=checked, moves_clock=moves_clock
        )
        service.finish(None)
        return accepted

    def _moves_clock(self, request: SegmindRequest) -> bool:
        """Tell whether a v1 call may jump a stopped clock to its job's end (`admin_token.may_move_clock`)."""
        return may_move_clock(request.scope, self.service.settings.admin_token)

    async def _wait_for_end(self, request: SegmindRequest, job: Job, moves_clock: bool) -> bool:
        """Wait for the job's end on the fake's clock; False if the client hung up first, the 503 on shutdown.

        A frozen clock may never get there: without this, an abandoned call would wait forever and
        hold up the server's shutdown. A shutdown ends the wait too (`Clock.waits_stopped`), so
        that it takes no longer than the answer.
        """
        ended: bool | None = None  # None: the client hung up first
        async with anyio.create_task_group() as waiting:

            async def watch_for_hang_up() -> None:
                # The body is read: the next message is the disconnect, whenever it comes.
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                waiting.cancel_scope.cancel()

            waiting.start_soon(watch_for_hang_up)
            ended = await self.service.wait_until(job.finished_at, jumps=moves_clock)
            waiting.cancel_scope.cancel()
        if ended is False:
            raise api_errors.ApiError(503, api_errors.SHUTTING_DOWN)
        return ended is not None

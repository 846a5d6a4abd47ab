"""Segmind's own routes as raw ASGI handlers: v2 submit and polls, v1 sync and poll, the OpenAPI document.

These are the routes clients poll in loops and load-test, so no framework stands between uvicorn
and the service: headers are read from the scope, the body from `receive`, a submission is decoded
and checked in one pass, and every handler returns a plain `Answer` (status, header list, body
bytes) that `app.App` sends and journals.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.datastructures import Headers as StarletteHeaders
from starlette.requests import Request
from starlette.types import Receive, Scope

from contracts.decoding import decode_params
from contracts.openapi import POLL_PATH, RESULT_PATH, STATUS_PATH, SUBMIT_PATH, SYNC_PATH, openapi_document
from contracts.responses import (
    BASE64_IMAGE_KEY,
    BASE64_VIDEO_KEY,
    FAILED_STATUS,
    SYNC_FAILED_STATUS,
    VIDEO_CONTENT_TYPE,
)
from mock_server import wire
from mock_server.admin_token import carries_token
from mock_server.bounded_cache import BoundedCache
from mock_server.jobs import WAITING, Job, State
from mock_server.payload import read_body
from mock_server.responses import Answer, answer, header_list
from mock_server.scenarios import Rule, rule_from_headers
from mock_server.service import Accepted, Service
from mock_server.strict_json import parse_json_object
from mock_server.templates import submit_answer, waiting_answer

_VIDEO_TYPE = (b"content-type", VIDEO_CONTENT_TYPE.encode())
# An answer with the scenario rule that may delay or break it on its way out (faults.py).
Reply = tuple[Answer, Rule | None]
# Journals an answer and stores what it names, or gives the 503 instead (app.App._settle).
Settle = Callable[["Call", Answer, Rule | None], Reply]


BASE_CACHE_SIZE = 256
_BASES: BoundedCache[tuple[object, ...], str] = BoundedCache(BASE_CACHE_SIZE)


class Call:
    """One request to a Segmind route as its handler sees it: what its headers say, its path's parameter, its body."""

    __slots__ = (
        "api_key",
        "body",
        "host",
        "key",
        "length",
        "mocked",
        "param",
        "prefix",
        "receive",
        "scope",
        "settled",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.settled = False  # journaled, and what the answer names stored (the app's `Settle`)
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

    def base(self) -> str:
        """The base of the answer's URLs: the host the client called (the SDK follows them), then the route's prefix."""
        return self.host_base() + self.prefix

    def host_base(self) -> str:
        """The host the client called, as a base URL: what the fake's own routes (outputs) are served under."""
        # Building Starlette's `base_url` costs a tenth of a submit, and clients call few hosts: cache
        # it by what it is built from (bounded, since the Host header is the client's to choose).
        scope = self.scope
        server = scope.get("server")  # a tuple from servers, a list from some in-process transports
        key = (scope.get("scheme"), tuple(server or ()), scope.get("root_path"), scope.get("app_root_path"), self.host)
        base = _BASES.get(key)
        if base is None:
            base = str(Request(scope).base_url).rstrip("/")
            _BASES.keep(key, base, len(base))
        return base

    def override(self) -> Rule | None:
        """The rule given by `x-mock-*` headers (see `mocked`); 400 for a header that says nothing valid."""
        try:
            return rule_from_headers(StarletteHeaders(raw=self.scope["headers"]))
        except ValueError as error:
            raise wire.ApiError(400, f"Invalid x-mock-* header: {error}") from None


Handler = Callable[[Call], Awaitable[Reply]]
Result = TypeVar("Result")


def _accepted(call: Call, accepted: Accepted) -> Accepted:
    return accepted  # a v1 call waits for its job before it answers


class SegmindRoutes:
    """Segmind's routes, served for one fake: HTTP in and out, the service in between."""

    def __init__(self, service: Service, settle: Settle) -> None:
        self.service = service
        # Journals an answer and stores what it names, in the step that made it: one hand-off to
        # the store's threads for submit and status.
        self._settle = settle
        get, post = ("GET", "HEAD"), ("POST",)  # a GET route answers HEAD too, its body left out by the server
        polls = ((STATUS_PATH, self.status), (RESULT_PATH, self.result), (POLL_PATH, self.result))
        # `POST /v2/{model}`: queue a job and answer with its id and poll URLs. A partial of the
        # accepting step, not a method calling it: a coroutine less on every submission.
        submit: Handler = functools.partial(self._accept, then=self._submitted, sync=False)
        self.routes: list[tuple[str, tuple[str, ...], Handler, str]] = [
            (SUBMIT_PATH, post, submit, ""),
            *((path, get, handler, "") for path, handler in polls),
            (SYNC_PATH, post, self.run_sync, ""),
            ("/openapi.json", get, self.openapi, ""),
            # The poll routes again under the mirror prefix (client verification, `mirror_urls`).
            *((wire.MIRROR_PREFIX + path, get, handler, wire.MIRROR_PREFIX) for path, handler in polls),
        ]

    async def status(self, call: Call) -> Reply:
        """`GET /v2/requests/{id}/status`: the job's state, FAILED served as 422."""
        calls = self.service.store_calls
        return self._status(call) if calls.inline else await calls(self._status, call)

    async def result(self, call: Call) -> Reply:
        """`GET /v2/requests/{id}` (and the v1 poll URL): the final body, FAILED served as 422."""
        job, state, rule, billing = await self.service.store_calls(
            self.service.poll, call.param, call.api_key, "result"
        )
        if state is State.FAILED:
            return answer(wire.failed_body(job), FAILED_STATUS), rule
        if state is State.COMPLETED:
            video = await self.service.video(job)
            media_type = self.service.spec_of(job).output
            return answer(wire.completed_body(job, call.host_base(), video, billing, media_type)), rule
        return answer(wire.pending_result_body(job, state, call.base())), rule

    async def run_sync(self, call: Call) -> Reply:
        """`POST /v1/{model}`: block for the job's simulated duration and answer with the video."""
        service = self.service
        moves_clock = self._moves_clock(call)
        job, rule = await self._accept(call, then=_accepted, sync=True, moves_clock=moves_clock)
        if not await self._wait_for_end(call, job, moves_clock):
            return (wire.CLIENT_GONE_STATUS, [(b"content-length", b"0")], b""), None  # journaled only
        headers = wire.sync_headers(job, await service.store_calls(service.billing, job))
        if job.error is not None:
            return answer(wire.error_body(job.error), SYNC_FAILED_STATUS, headers), rule
        video = await service.video(job)
        spec = service.spec_of(job)
        if job.params.get("base64"):
            key = BASE64_VIDEO_KEY if spec.is_video else BASE64_IMAGE_KEY
            return answer({key: base64.b64encode(video).decode()}, headers=headers), rule
        media_type = _VIDEO_TYPE if spec.is_video else (b"content-type", spec.output.encode())
        return (200, [(b"content-length", b"%d" % len(video)), media_type, *header_list(headers)], video), rule

    async def openapi(self, call: Call) -> Reply:
        """`GET /openapi.json`: the contract's OpenAPI document, served from the host the client called."""
        return answer(openapi_document(call.base(), self.service.settings.models)), None

    def _submitted(self, call: Call, accepted: Accepted) -> Reply:
        job, rule = accepted
        base = call.base() + (wire.MIRROR_PREFIX if rule is not None and rule.mirror_urls else "")
        return self._settle(call, submit_answer(job.request_id, base), rule)

    def _status(self, call: Call) -> Reply:
        job, state, rule, billing = self.service.poll(call.param, call.api_key, "status")
        if state in WAITING:  # nearly every poll: from a template
            return self._settle(call, waiting_answer(job.request_id, state, call.base()), rule)
        body = wire.ended_status_body(job, state, billing)
        return self._settle(call, answer(body, FAILED_STATUS if state is State.FAILED else 200), rule)

    async def _accept(
        self, call: Call, *, then: Callable[[Call, Accepted], Result], sync: bool, moves_clock: bool = True
    ) -> Result:
        """Accept a submission and pass it to `then`, in the one step that calls the store.

        `moves_clock`: whether a sync call may jump a stopped clock (`_moves_clock`).
        """
        service = self.service
        api_key = call.api_key
        spec = service.model(call.param, api_key)  # 401, then 404, before the body is read
        override = call.override() if call.mocked else None
        body = call.body = await read_body(call.length, call.receive, service.settings.max_body_bytes)
        # One pass for the bodies clients nearly always send; the reference path for any other,
        # so every message stays the one that names each broken parameter.
        checked = decode_params(spec, body)
        payload = parse_json_object(body) if checked is None else checked
        decoded = checked is not None

        def submit() -> Result:
            accepted = service.submit(
                spec, payload, api_key, sync=sync, override=override, checked=decoded, moves_clock=moves_clock
            )
            return then(call, accepted)

        if service.reads_image(spec, payload):
            return await service.run_blocking(spec, payload, submit)
        calls = service.store_calls
        return submit() if calls.inline else await calls(submit)

    def _moves_clock(self, call: Call) -> bool:
        """Tell whether a v1 call may jump a stopped clock, which every job shares, to its job's end.

        That takes the admin API's rights: the admin token, where one is set (docs/admin.md).
        """
        token = self.service.settings.admin_token
        return token is None or carries_token(call.scope, token)

    async def _wait_for_end(self, call: Call, job: Job, moves_clock: bool) -> bool:
        """Wait for the job's end on the fake's clock; False if the client hung up first, the 503 on shutdown.

        A frozen clock may never get there: without this, an abandoned call would wait forever and
        hold up the server's shutdown. A shutdown ends the wait too (`Clock.waits_stopped`), so
        that it takes no longer than the answer.
        """
        ended: bool | None = None  # None: the client hung up first
        async with anyio.create_task_group() as waiting:

            async def watch_for_hang_up() -> None:
                # The body is read: the next message is the disconnect, whenever it comes.
                while (await call.receive())["type"] != "http.disconnect":
                    pass
                waiting.cancel_scope.cancel()

            waiting.start_soon(watch_for_hang_up)
            ended = await self.service.clock.wait_until(job.finished_at, jumps=moves_clock)
            waiting.cancel_scope.cancel()
        if ended is False:
            raise wire.ApiError(503, wire.SHUTTING_DOWN)
        return ended is not None

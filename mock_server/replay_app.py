"""Replay over HTTP: an ASGI layer in front of the fake's app, serving recorded flows (`replay.py`).

A request the recordings match is answered here, as recorded (ids, host and output URLs made the
fake's own); the job it starts lives in the fake's store under a fresh id, with the recorded
timeline, so retention, the journal and the admin views see it as any other. Anything else goes on
to the fake's app, or, with a strict replay, a submission nothing matches is refused.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.responses import BASE64_VIDEO_KEY
from mock_server import api_errors, har, ranges, wire
from mock_server.admin_token import may_move_clock
from mock_server.answers import Answer, encode_json, error_answer, send_answer, with_length
from mock_server.jobs import Job
from mock_server.journaling import entry
from mock_server.payload import read_body
from mock_server.replay import (
    STARTS,
    Flow,
    Replay,
    Seen,
    answer_headers,
    kept_bytes,
    rendered_as_recorded,
    replacements,
    rewrite,
)
from mock_server.routes import SegmindRequest
from mock_server.scenarios import Target
from mock_server.service import Service
from mock_server.storage import StoreUnavailable

# Where the fake serves outputs (`wire.OUTPUTS_PATH`); a replayed job's kept bytes are served there.
OUTPUTS = wire.OUTPUTS_PATH
OUTPUT_SUFFIX = ".mp4"
# The status of a strict replay's refusal: nothing recorded answers it (WireMock's and MockServer's choice).
UNMATCHED_STATUS = 404


class ReplayApp:
    """The fake's app with recorded flows served in front of it."""

    def __init__(self, app: ASGIApp, service: Service, replay: Replay) -> None:
        self.app = app
        self.service = service
        self.replay = replay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a recorded answer where one applies; pass anything else to the fake's app."""
        if scope["type"] == "http":
            route = har.route_of(scope["method"], scope["path"])
            if route is not None and route[0] in STARTS:
                await self._start(SegmindRequest(scope, receive), route[0], route[1] or "", send)
                return
            if route is not None and route[2]:
                target: Target = "status" if route[0] == "status" else "result"
                await self._poll(SegmindRequest(scope, receive), target, route[2], send)
                return
            path = scope["path"]
            if path.startswith(OUTPUTS) and path.endswith(OUTPUT_SUFFIX) and await self._output(scope, receive, send):
                return
        await self.app(scope, receive, send)

    async def _start(self, call: SegmindRequest, role: str, model: str, send: Send) -> None:
        service = self.service
        try:
            body = call.body = await read_body(call.length, call.receive, service.settings.max_body_bytes)
        except api_errors.ApiError as error:
            await self._send(call, send, error_answer(error))
            return
        except ClientDisconnect:
            return
        payload = _json(body)
        flow = self.replay.find(role, model, payload, bool(call.key))
        if flow is None:
            if self.replay.strict:
                message = (
                    f"segmind-mock --replay-strict: no recorded request matches {call.scope['method']} "
                    f"{call.scope['path']}; {self.replay.nearest(role, model, payload)}"
                )
                await self._send(call, send, error_answer(api_errors.ApiError(UNMATCHED_STATUS, message)))
            else:
                await self.app(call.scope, _body_again(body, call.receive), send)
            return
        if not flow.accepted:  # refused as recorded: no job
            await self._send(call, send, _recorded(flow.answer, replacements(flow, "", call.base(""), "")))
            return
        if not isinstance(payload, dict):  # the fake says what is wrong with the body
            await self.app(call.scope, _body_again(body, call.receive), send)
            return
        try:
            answer = await self._accept(call, role, model, payload, flow)
        except api_errors.ApiError as error:
            answer = error_answer(error)
        await self._send(call, send, answer)

    async def _accept(self, call: SegmindRequest, role: str, model: str, payload: dict[str, Any], flow: Flow) -> Answer:
        """Make the job with the recorded timeline, and answer as recorded (a v1 call once the job has ended)."""
        service = self.service
        spec = service.model(model, call.api_key)
        jumps = may_move_clock(call.scope, service.settings.admin_token)
        sync = role == "sync"
        submit = functools.partial(service.submit, sync=sync, override=flow.rule(), moves_clock=jumps)
        job, _ = await service.store_calls(submit, spec, payload, call.api_key)
        self.replay.start(job.request_id, flow)
        base = call.base("")
        pairs = replacements(flow, job.request_id, base, wire.output_url(base, job.request_id))
        if not sync:
            return _recorded(flow.answer, pairs)
        if not await service.wait_until(job.finished_at, jumps=jumps):
            raise api_errors.ApiError(503, api_errors.SHUTTING_DOWN)
        if flow.answer.text is None:
            return _recorded(flow.answer, pairs, await self._video(flow, job))
        if flow.answer.whole or job.error is not None:
            return _recorded(flow.answer, pairs)
        # A base64 answer the journal cut: the video in the fake's own base64 body, the recorded headers.
        video = base64.b64encode(await self._video(flow, job)).decode()
        return _recorded(flow.answer, pairs, encode_json({BASE64_VIDEO_KEY: video}))

    async def _poll(self, call: SegmindRequest, role: Target, request_id: str, send: Send) -> None:
        service = self.service
        flow = self.replay.job(request_id)
        if flow is None:
            missing = self.replay.missing(role)
            if missing is None or await self._known(request_id):
                await self.app(call.scope, call.receive, send)
                return
            recorded, recorded_id = missing
            await self._send(call, send, _recorded(recorded, [(recorded_id, request_id)]))
            return
        try:
            seen = await service.store_calls(self.replay.recorded_poll, service, request_id, call.api_key, role)
        except api_errors.ApiError as error:
            await self._send(call, send, error_answer(error))
            return
        if seen is None:  # never seen in this state on this route: the fake's own answer, on the same timeline
            await self.app(call.scope, call.receive, send)
            return
        base = call.base("")
        pairs = replacements(flow, request_id, base, wire.output_url(base, request_id))
        await self._send(call, send, _recorded(seen, pairs))

    async def _output(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve a replayed job's output as recorded (its bytes, or rendered with its facts); False: not one."""
        request_id = scope["path"][len(OUTPUTS) : -len(OUTPUT_SUFFIX)]
        flow = self.replay.job(request_id)
        if flow is None or flow.output is None:
            return False
        try:
            job = await self.service.store_calls(self.service.output, request_id)
            video = await self._video(flow, job)
            response = ranges.ranged_response(Request(scope), video, flow.output.content.mimeType)
        except api_errors.ApiError as error:
            await send_answer(send, error_answer(error))
            return True
        await response(scope, receive, send)
        return True

    async def _known(self, request_id: str) -> bool:
        try:
            await self.service.store_calls(self.service.lookup, request_id)
        except api_errors.ApiError:
            return False
        return True

    async def _video(self, flow: Flow, job: Job) -> bytes:
        """The recorded output's kept bytes, else the fake's render with the recorded frames and fps."""
        kept = kept_bytes(flow)
        return (
            kept
            if kept is not None
            else await self.service.video(rendered_as_recorded(flow, job, self.service.spec_of(job)))
        )

    async def _send(self, call: SegmindRequest, send: Send, answer: Answer) -> None:
        """Journal the answer and store what it names, as the fake's app does, then send it (the 503 if it cannot)."""
        try:
            await self.service.store_calls(self._finish, call, answer)
        except StoreUnavailable as error:
            answer = error_answer(error)
        await send_answer(send, answer)

    def _finish(self, call: SegmindRequest, answer: Answer) -> None:
        service = self.service
        service.finish(entry(call.scope, call.key, call.body, *answer) if service.journaling else None)


def _recorded(seen: Seen, pairs: list[tuple[str, str]], body: bytes | None = None) -> Answer:
    """A recorded answer, its recorded values made the replaying job's; `body` instead of one not recorded whole."""
    if body is None:
        body = rewrite(seen.text, pairs).encode() if seen.text is not None else b""
    headers = answer_headers(seen, pairs)
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", seen.content.mimeType.encode("latin-1")))
    return seen.status, with_length(body, *headers), body


def _json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _body_again(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read once more, then what the client sends next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again

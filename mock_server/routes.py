"""Segmind's own routes: v2 submit and poll, v1 sync, and the OpenAPI document."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts.openapi import POLL_PATH, RESULT_PATH, STATUS_PATH, SUBMIT_PATH, SYNC_PATH, openapi_document
from contracts.responses import BASE64_VIDEO_KEY, FAILED_STATUS, SYNC_FAILED_STATUS, VIDEO_CONTENT_TYPE
from mock_server import faults, wire
from mock_server.jobs import Job, State
from mock_server.payload import read_json_object
from mock_server.recording import header
from mock_server.responses import JSONResponse
from mock_server.scenarios import Rule, rule_from_headers
from mock_server.service import Accepted, Service

BASE_CACHE_SIZE = 256
_BASES: dict[tuple[object, ...], str] = {}


def base_url(request: Request) -> str:
    """The base of the absolute URLs handed back: the host the client called (the SDK follows them)."""
    # Building `request.base_url` costs a tenth of a submit, and clients call few hosts: cache it
    # by what it is built from (bounded, since the Host header is the client's to choose).
    scope = request.scope
    host = header(scope["headers"], b"host")
    server = scope.get("server")  # a tuple from servers, a list from some in-process transports
    key = (scope.get("scheme"), tuple(server or ()), scope.get("root_path"), scope.get("app_root_path"), host)
    base = _BASES.get(key)
    if base is None:
        base = str(request.base_url).rstrip("/")
        if len(_BASES) < BASE_CACHE_SIZE:
            _BASES[key] = base
    return base


def _override(request: Request) -> Rule | None:
    # Nearly every request has no x-mock-* header: check the raw (lower-case) names before parsing.
    if not any(name.startswith(b"x-mock-") for name, _ in request.scope["headers"]):
        return None
    try:
        return rule_from_headers(request.headers)
    except ValueError as error:
        raise wire.ApiError(400, f"Invalid x-mock-* header: {error}") from None


def _api_key(request: Request) -> str:
    # Straight from the scope: cheaper than `request.headers`, and this runs on every request.
    return header(request.scope["headers"], b"x-api-key").decode("latin-1")


def _mirrored(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Serve `endpoint` under wire.MIRROR_PREFIX, its answers' URLs staying under the prefix too."""

    async def mirrored(request: Request) -> Response:
        # The prefix becomes part of the base the answer's URLs are built from.
        request.scope["root_path"] = request.scope.get("root_path", "") + wire.MIRROR_PREFIX
        return await endpoint(request)

    return mirrored


class SegmindRoutes:
    """Segmind's routes, served for one fake: HTTP in and out, the service in between."""

    def __init__(self, service: Service) -> None:
        self.service = service
        # The hottest routes first: they are tried in order.
        self.routes = [
            Route(STATUS_PATH, self.status, methods=["GET"]),
            Route(SUBMIT_PATH, self.submit, methods=["POST"]),
            Route(RESULT_PATH, self.result, methods=["GET"]),
            Route(POLL_PATH, self.result, methods=["GET"]),
            Route(SYNC_PATH, self.run_sync, methods=["POST"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            *(
                Route(wire.MIRROR_PREFIX + path, _mirrored(endpoint), methods=["GET"])
                for path, endpoint in ((STATUS_PATH, self.status), (RESULT_PATH, self.result), (POLL_PATH, self.result))
            ),
        ]

    async def submit(self, request: Request) -> Response:
        """`POST /v2/{model}`: queue a job and answer with its id and poll URLs."""
        job, rule = await self._accept(request, sync=False)
        base = base_url(request) + (wire.MIRROR_PREFIX if rule is not None and rule.mirror_urls else "")
        return faults.respond(JSONResponse(wire.submit_body(job, base)), rule)

    async def run_sync(self, request: Request) -> Response:
        """`POST /v1/{model}`: block for the job's simulated duration and answer with the video."""
        service = self.service
        job, rule = await self._accept(request, sync=True)
        if not await self._wait_for_end(request, job):
            return Response(status_code=wire.CLIENT_GONE_STATUS)  # recorded in the journal only
        headers = wire.sync_headers(job, service.billing(job))
        if job.error is not None:
            return faults.respond(JSONResponse(wire.error_body(job.error), SYNC_FAILED_STATUS, headers), rule)
        video = await service.video(job)
        if job.params["base64"]:
            encoded = base64.b64encode(video).decode()
            response: Response = JSONResponse({BASE64_VIDEO_KEY: encoded}, headers=headers)
        else:
            response = Response(video, media_type=VIDEO_CONTENT_TYPE, headers=headers)
        return faults.respond(response, rule)

    async def status(self, request: Request) -> Response:
        """`GET /v2/requests/{id}/status`: the job's state, FAILED served as 422."""
        job, state, rule, billing = self.service.poll(request.path_params["request_id"], _api_key(request), "status")
        body = wire.status_body(job, state, base_url(request), billing)
        return faults.respond(JSONResponse(body, FAILED_STATUS if state is State.FAILED else 200), rule)

    async def result(self, request: Request) -> Response:
        """`GET /v2/requests/{id}` (and the poll URL): the final body, FAILED served as 422."""
        job, state, rule, billing = self.service.poll(request.path_params["request_id"], _api_key(request), "result")
        if state is State.FAILED:
            response = JSONResponse(wire.failed_body(job), FAILED_STATUS)
        elif state is State.COMPLETED:
            video = await self.service.video(job)
            response = JSONResponse(wire.completed_body(job, base_url(request), video, billing))
        else:
            response = JSONResponse(wire.pending_result_body(job, state, base_url(request)))
        return faults.respond(response, rule)

    async def openapi(self, request: Request) -> Response:
        """`GET /openapi.json`: the contract's OpenAPI document, served from the host the client called."""
        return JSONResponse(openapi_document(base_url(request)))

    async def _accept(self, request: Request, *, sync: bool) -> Accepted:
        service = self.service
        api_key = _api_key(request)
        spec = service.model(request.path_params["model"], api_key)  # 401, then 404, before the body is read
        override = _override(request)
        payload = await read_json_object(request, service.settings.max_body_bytes)
        if service.reads_image(spec, payload):
            return await service.run_blocking(
                spec, payload, lambda: service.submit(spec, payload, api_key, sync=sync, override=override)
            )
        return service.submit(spec, payload, api_key, sync=sync, override=override)

    async def _wait_for_end(self, request: Request, job: Job) -> bool:
        """Wait for the job's end on the fake's clock; False if the client hung up first.

        A frozen clock may never get there: without this, an abandoned call would wait forever and
        hold up the server's shutdown.
        """
        ended = False
        async with anyio.create_task_group() as waiting:

            async def watch_for_hang_up() -> None:
                # The body is read: the next message is the disconnect, whenever it comes.
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                waiting.cancel_scope.cancel()

            waiting.start_soon(watch_for_hang_up)
            await self.service.clock.wait_until(job.finished_at)
            ended = True
            waiting.cancel_scope.cancel()
        return ended

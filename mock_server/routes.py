"""Segmind's own routes: v2 submit and poll, v1 sync, and the output files."""

from __future__ import annotations

import base64
import functools

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_server import media, wire
from mock_server.jobs import Job, State
from mock_server.mock import SegmindMock, model_spec
from mock_server.payload import read_json_object


def _mock(request: Request) -> SegmindMock:
    return request.app.state.mock


def _base(request: Request) -> str:
    # The URLs handed back are absolute, on the host the client called (the SDK follows them).
    return str(request.base_url).rstrip("/")


def _api_key(request: Request) -> str:
    key = request.headers.get("x-api-key", "")
    if not key:
        raise wire.ApiError(401, wire.MISSING_KEY)
    return key


async def _accept(request: Request, *, sync: bool) -> Job:
    mock = _mock(request)
    api_key = _api_key(request)
    model = request.path_params["model"]
    model_spec(model)  # an unknown model is 404 before its body is read
    payload = await read_json_object(request, mock.settings.max_body_bytes)
    submit = functools.partial(mock.submit, model, payload, api_key, sync=sync)
    if mock.reads_image(model, payload):
        return await anyio.to_thread.run_sync(submit)
    return submit()


async def submit(request: Request) -> Response:
    """`POST /v2/{model}`: queue a job and answer with its id and poll URLs."""
    job = await _accept(request, sync=False)
    return JSONResponse(wire.submit_body(job, _base(request)))


async def run_sync(request: Request) -> Response:
    """`POST /v1/{model}`: block for the job's simulated duration and answer with the video."""
    mock = _mock(request)
    job = await _accept(request, sync=True)
    await mock.clock.wait_until(job.finished_at)
    headers = wire.sync_headers(job)
    if job.error is not None:
        return JSONResponse(wire.error_body(job.error), wire.SYNC_FAILED_STATUS, headers)
    video = await mock.video(job)
    if job.params["base64"]:
        return JSONResponse({wire.BASE64_VIDEO_KEY: base64.b64encode(video).decode()}, headers=headers)
    return Response(video, media_type=wire.VIDEO_CONTENT_TYPE, headers=headers)


async def status(request: Request) -> Response:
    """`GET /v2/requests/{id}/status`: the job's state, FAILED served as 422."""
    _api_key(request)
    job, state = _mock(request).lookup(request.path_params["request_id"])
    body = wire.status_body(job, state, _base(request))
    return JSONResponse(body, 422 if state is State.FAILED else 200)


async def result(request: Request) -> Response:
    """`GET /v2/requests/{id}` (and the poll URL): the final body, FAILED served as 422."""
    _api_key(request)
    mock = _mock(request)
    job, state = mock.lookup(request.path_params["request_id"])
    if state is State.FAILED:
        return JSONResponse(wire.failed_body(job), 422)
    if state is State.COMPLETED:
        return JSONResponse(wire.completed_body(job, _base(request), await mock.video(job)))
    return JSONResponse(wire.pending_result_body(job, state, _base(request)))


async def output(request: Request) -> Response:
    """`GET`/`HEAD /_mock/outputs/{id}.mp4`: a completed job's video, public like a CDN link, with ranges."""
    mock = _mock(request)
    request_id = request.path_params["request_id"]
    job = mock.store.output(request_id, mock.clock.now())
    if job is None:
        raise wire.ApiError(404, f"Output {request_id}.mp4 not found")
    return media.ranged_response(request, await mock.video(job), wire.VIDEO_CONTENT_TYPE)


ROUTES = [
    Route("/v2/requests/{request_id}/status", status, methods=["GET"]),
    Route("/v2/requests/{request_id}", result, methods=["GET"]),
    Route("/v1/requests/{request_id}", result, methods=["GET"]),
    Route("/v2/{model}", submit, methods=["POST"]),
    Route("/v1/{model}", run_sync, methods=["POST"]),
    Route("/_mock/outputs/{request_id}.mp4", output, methods=["GET"]),
]

"""Helpers for the contract tests: an API key, the SDK as a reference client, and broken variants of the fake."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from segmind import SegmindClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import MODELS, ModelSpec
from mock_server import SegmindMock, Settings
from mock_server.app import App
from mock_server.jobs import Job, State
from mock_server.render import encode_mp4
from mock_server.service import Accepted, Service
from tests.support import API_KEY

OTHER_KEY = "SG_fedcba9876543210"  # another client of a shared fake
Change = Callable[[str, str, int, Any], tuple[int, Any]]


def sdk_client(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
    """The official SDK as a verified client: submit, wait, return the result or raise."""
    client = SegmindClient(api_key=api_key, base_url=f"{base_url}/v1")
    try:
        return client.submit_async(model, **payload).wait(timeout=20)  # polls at its default interval
    finally:
        client._client.close()


def rewrite(app: ASGIApp, change: Change) -> ASGIApp:
    """Wrap `app` so `change(method, path, status, body)` rewrites each JSON answer."""

    def change_json(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        if _type(headers).startswith(b"application/json"):
            status, data = change(scope["method"], scope["path"], status, json.loads(body))
            body = json.dumps(data).encode()
        return status, headers, body

    return rewrite_raw(app, change_json)


def shared_fake(mock: SegmindMock, *, other_client: bool, refuse_next_submit: bool) -> tuple[ASGIApp, list[Job]]:
    """The fake as others share it: right after the first scenario is added, another client (its own key) submits
    a job if `other_client`, and the next submission is refused with 502 if `refuse_next_submit`.
    """
    others: list[Job] = []
    refusing = False
    acted: list[str] = []

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal refusing
        path, method = scope.get("path", ""), scope.get("method")
        if refusing and method == "POST" and path.startswith("/v2/"):
            refusing = False
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 502, "headers": headers})
            await send({"type": "http.response.body", "body": json.dumps({"error": "Bad gateway"}).encode()})
            return
        await mock.app(scope, receive, send)
        if method == "POST" and path == "/_mock/scenarios" and not acted:
            acted.append(path)  # the suite's first scenario only: its FAILED job
            if other_client:
                others.append(mock.submit("svd", MODELS["svd"].example, OTHER_KEY)[0])
            refusing = refuse_next_submit

    return wrapped, others


def keyless_allowed(app: ASGIApp) -> ASGIApp:
    """Wrap `app` so a call without x-api-key is served as if it had one."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(name == b"x-api-key" for name, _ in scope["headers"]):
            scope = {**scope, "headers": [*scope["headers"], (b"x-api-key", API_KEY.encode())]}
        await app(scope, receive, send)

    return wrapped


class AcceptsOutOfRange(Service):
    """Drift: fps above the documented maximum is clamped and accepted instead of refused."""

    def submit(self, spec: ModelSpec, payload: Mapping[str, Any], api_key: str, **options: Any) -> Accepted:
        maximum = spec.param("fps").maximum
        if isinstance(payload.get("fps"), int) and maximum is not None and payload["fps"] > maximum:
            payload = {**payload, "fps": maximum}
        return super().submit(spec, payload, api_key, **options)


class NonUuidIds(Service):
    """Drift: request ids are counters, not uuids."""

    _ids = itertools.count(1)

    def _new_job(self, *args: Any) -> Job:
        job = super()._new_job(*args)
        job.request_id = f"job-{next(self._ids)}"
        return job


class GoesBackToProcessing(Service):
    """Drift: a job seen COMPLETED is reported PROCESSING again."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._seen: set[str] = set()

    def lookup(self, request_id: str) -> tuple[Job, State]:
        job, state = super().lookup(request_id)
        if state is State.COMPLETED:
            if request_id in self._seen:
                return job, State.PROCESSING
            self._seen.add(request_id)
        return job, state


def _relative_urls(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    if method == "POST" and path.startswith("/v2/") and status == 200:
        body = {**body, "status_url": urlsplit(body["status_url"]).path}
    return status, body


def _failed_as_200(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    return (200 if path.startswith("/v2/requests/") and status == 422 else status), body


def _unknown_id_200(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    if path.startswith("/v2/requests/") and status == 404:
        return 200, {"status": "QUEUED", "request_id": path.split("/")[3]}
    return status, body


def _message_envelope(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    if status >= 400 and "error" in body and "status" not in body:
        return status, {"message": body["error"]}
    return status, body


def broken_variants() -> dict[str, tuple[Callable[[], ASGIApp], str]]:
    """Each deliberately broken variant of the fake, and the suite rule it must be caught by."""
    frozen = Settings(speed=0)

    def wrapped(change: Change) -> Callable[[], ASGIApp]:
        return lambda: rewrite(SegmindMock(frozen).app, change)

    return {
        "accepts an out-of-range value": (lambda: App(AcceptsOutOfRange(frozen)), "invalid-refused"),
        "returns a relative status_url": (wrapped(_relative_urls), "submit-shape"),
        "returns a non-uuid request_id": (lambda: App(NonUuidIds(frozen)), "submit-shape"),
        "goes COMPLETED -> PROCESSING": (lambda: App(GoesBackToProcessing(frozen)), "states-forward"),
        "answers FAILED with 200": (wrapped(_failed_as_200), "failed-422"),
        "answers an unknown id with 200": (wrapped(_unknown_id_200), "unknown-id-404"),
        "serves calls without a key": (lambda: keyless_allowed(SegmindMock(frozen).app), "missing-key-401"),
        "uses a non-envelope error body": (wrapped(_message_envelope), "error-envelope"),
    }


# Broken variants for the product and lifecycle rules: each an ASGI wrapper around the fake that
# breaks exactly one documented fact, served by real uvicorn in the tests.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
RawChange = Callable[[Scope, int, list[tuple[bytes, bytes]], bytes], Answer]


def rewrite_raw(app: ASGIApp, change: RawChange) -> ASGIApp:
    """Wrap `app` so `change(scope, status, headers, body)` rewrites every whole answer."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = [(name, value) for name, value in start["headers"] if name != b"content-length"]
            status, headers, body = change(scope, start["status"], headers, b"".join(chunks))
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return wrapped


def _type(headers: list[tuple[bytes, bytes]]) -> bytes:
    return dict(headers).get(b"content-type", b"")


def _with_type(headers: list[tuple[bytes, bytes]], content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [*((name, value) for name, value in headers if name != b"content-type"), (b"content-type", content_type)]


def substitute_video(frames: int, fps: int, size: tuple[int, int]) -> RawChange:
    """Every video the fake serves (output URL, v1 bytes) becomes this one, whatever was asked."""
    video = encode_mp4((np.full((size[1], size[0], 3), 128, np.uint8) for _ in range(frames)), size, fps)

    def change(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        return status, headers, video if _type(headers).startswith(b"video/") else body

    return change


def _cut_videos(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    # Half an MP4: its index (written last) is gone, so no player can open it.
    return status, headers, body[: len(body) // 2] if _type(headers).startswith(b"video/") else body


def _output_404(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    if scope["path"].startswith("/_mock/outputs/"):
        return 404, _with_type(headers, b"application/json"), b'{"error": "gone"}'
    return status, headers, body


def _output_as_text(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    if scope["path"].startswith("/_mock/outputs/"):
        return 200, _with_type(headers, b"text/plain"), b"your video is being prepared"
    return status, headers, body


def _sync_as_json(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    if scope["path"].startswith("/v1/") and status == 200 and _type(headers).startswith(b"video/"):
        return 200, _with_type(headers, b"application/json"), json.dumps({"output": "https://cdn/x.mp4"}).encode()
    return status, headers, body


def _base64_as_bytes(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    if scope["path"].startswith("/v1/") and status == 200 and _type(headers).startswith(b"application/json"):
        return 200, _with_type(headers, b"video/mp4"), base64.b64decode(json.loads(body)["video"])
    return status, headers, body


def _no_sync_headers(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    if scope["path"].startswith("/v1/"):
        headers = [(name, value) for name, value in headers if not name.startswith(b"x-")]
    return status, headers, body


def _errors_as_text(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    return status, _with_type(headers, b"text/plain") if status >= 400 else headers, body


def _no_reset_header(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    return status, [(name, value) for name, value in headers if name != b"x-rate-limit-reset-at-utc"], body


def _status_body(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Change:
    def rewrite_status(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
        if path.endswith("/status") and isinstance(body, dict):
            return status, change(body)
        return status, body

    return rewrite_status


def _without_inference_time(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("status") == "COMPLETED":
        return {**body, "metrics": {key: value for key, value in body["metrics"].items() if key != "inference_time"}}
    return body


def _other_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "request_id": "00000000-0000-4000-8000-000000000000"}


def _poll_url_404(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    return (404, {"error": "no such route"}) if path.startswith("/v1/requests/") else (status, body)


def _406_as_402(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    return (402 if status == 406 else status), body


def kept_forever(app: ASGIApp) -> ASGIApp:
    """Results are never dropped: once a poll route answered, a later 404 replays that answer."""
    seen: dict[str, Answer] = {}

    def change(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        path = scope["path"]
        if "/requests/" not in path:
            return status, headers, body
        if status == 404 and path in seen:
            return seen[path]
        seen[path] = (status, list(headers), body)
        return status, headers, body

    return rewrite_raw(app, change)


def dropped_early(mock: SegmindMock, seconds: float) -> ASGIApp:
    """Results are dropped `seconds` after submission instead of the documented hour."""

    def change(scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        request_id = scope["path"].split("/")[3] if "/requests/" in scope["path"] else None
        job = mock.job(request_id) if request_id else None
        if job is not None and mock.clock.now() >= job["submitted_at"] + seconds:
            return 404, _with_type(headers, b"application/json"), b'{"error": "Request not found"}'
        return status, headers, body

    return rewrite_raw(mock.app, change)


def product_variants() -> dict[str, tuple[Callable[[], ASGIApp], str]]:
    """Each variant breaking one fact of the product or lifecycle, and the rule that must name it."""
    frozen = Settings(speed=0)

    def raw(change: RawChange) -> Callable[[], ASGIApp]:
        return lambda: rewrite_raw(SegmindMock(frozen).app, change)

    def wrapped(change: Change) -> Callable[[], ASGIApp]:
        return lambda: rewrite(SegmindMock(frozen).app, change)

    return {
        "output URL answers 404": (raw(_output_404), "output-video"),
        "output served as text": (raw(_output_as_text), "output-video"),
        "videos cut in half": (raw(_cut_videos), "video-playable"),
        "14 frames when 25 were asked": (lambda: raw(substitute_video(14, 7, (512, 288)))(), "video-frames"),
        "the wrong frame rate": (lambda: raw(substitute_video(14, 24, (512, 288)))(), "video-fps"),
        "a square frame for crop_to_16_9": (lambda: raw(substitute_video(25, 7, (288, 288)))(), "video-16-9"),
        "v1 answers JSON instead of the video": (raw(_sync_as_json), "sync-video"),
        "v1 base64 answers raw bytes": (raw(_base64_as_bytes), "sync-base64"),
        "v1 without its x- headers": (raw(_no_sync_headers), "sync-headers"),
        "results kept forever": (lambda: kept_forever(SegmindMock(frozen).app), "retention-1h"),
        "results dropped after ten minutes": (lambda: dropped_early(SegmindMock(frozen), 600), "retention-1h"),
        "errors served as text/plain": (raw(_errors_as_text), "error-content-type"),
        "a 429 without its reset header": (raw(_no_reset_header), "rate-limit-reset"),
        "COMPLETED without metrics.inference_time": (
            wrapped(_status_body(_without_inference_time)),
            "completed-metrics",
        ),
        "a status naming another request id": (wrapped(_status_body(_other_request_id)), "status-request-id"),
        "poll_url answering unlike response_url": (wrapped(_poll_url_404), "poll-url"),
        "406 answered as 402": (wrapped(_406_as_402), "error-codes"),
    }

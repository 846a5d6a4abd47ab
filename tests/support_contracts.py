"""Helpers for the contract tests: an API key, the SDK as a reference client, and broken variants of the fake."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from segmind import SegmindClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import MODELS, ModelSpec
from mock_server import SegmindMock, Settings
from mock_server.app import App
from mock_server.jobs import Job, State
from mock_server.service import Accepted, Service
from tests.support import API_KEY

OTHER_KEY = "SG_fedcba9876543210"  # another client of a shared fake
Change = Callable[[str, str, int, Any], tuple[int, Any]]


def sdk_client(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
    """The official SDK as a verified client: submit, wait, return the result or raise."""
    client = SegmindClient(api_key=api_key, base_url=f"{base_url}/v1")
    try:
        return client.submit_async(model, **payload).wait(timeout=10, interval=0.01)
    finally:
        client._client.close()


def rewrite(app: ASGIApp, change: Change) -> ASGIApp:
    """Wrap `app` so `change(method, path, status, body)` rewrites each JSON answer."""

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
            status, body = start["status"], b"".join(chunks)
            headers = [(name, value) for name, value in start["headers"] if name != b"content-length"]
            if dict(headers).get(b"content-type", b"").startswith(b"application/json"):
                status, data = change(scope["method"], scope["path"], status, json.loads(body))
                body = json.dumps(data).encode()
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return wrapped


def shared_fake(mock: SegmindMock, *, other_client: bool, refuse_next_submit: bool) -> tuple[ASGIApp, list[Job]]:
    """The fake as others share it: right after a scenario is added, another client (its own key) submits a
    job if `other_client`, and the next submission is refused with 502 if `refuse_next_submit`.
    """
    others: list[Job] = []
    refusing = False

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
        if method == "POST" and path == "/_mock/scenarios":
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

"""Recordings for the replay and drift tests: the official SDK through `segmind-mock record`'s proxy.

The "live" upstream is a segmind-mock fake on its own port (never the internet), or that fake
behind `Moved`, an ASGI layer playing a live API that moved. Its clock is frozen: the SDK's sleeps
advance it (virtual time), and the recorder reads the time from it too, so a 30-second job is
recorded at its simulated times in milliseconds of real time, as a live recording would show it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from segmind import SegmindClient, SegmindError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import MODELS
from mock_server import SegmindMock, Settings, recorder
from mock_server.recorder import Recorder
from mock_server.server import ServerThread
from mock_server.virtual_time import SDK_MODULES, virtual_time
from tests.support import API_KEY

# The SDK's poll interval while recording, in simulated seconds (a live recording's usual cadence).
RECORDED_INTERVAL = 2.0
# A request id nobody submitted: its polls are recorded 404s.
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
UNKNOWN_HEADER = "x-segmind-region"
# Paid calls a recording forwards (the probe session makes four: v2, two v1, the refused one).
PAID_CALLS = 10


@dataclass(frozen=True)
class Moves:
    """How a moved live API differs from the fake: each flag one documented or guessed fact broken."""

    v1_json: bool = False  # v1 answers JSON, not the video's bytes
    no_inference_time: bool = False  # a COMPLETED status without metrics.inference_time
    unknown_header: bool = False  # every answer carries a header nobody knows
    poll_shape: bool = False  # a waiting status body of another shape (`state`, not `status`)


class Moved:
    """The fake's app, its answers changed as `moves` says: a live API that moved since the docs."""

    def __init__(self, app: ASGIApp, moves: Moves) -> None:
        self.app = app
        self.moves = moves

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        start, body = messages[0], b"".join(message.get("body", b"") for message in messages[1:])
        status, headers, body = self._move(scope["path"], start["status"], list(start["headers"]), body)
        headers = [(name, value) for name, value in headers if name != b"content-length"]
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _move(self, path: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[Any, ...]:
        moves = self.moves
        if moves.unknown_header:
            headers.append((UNKNOWN_HEADER.encode(), b"eu-west"))
        is_json = (b"content-type", b"application/json") in headers
        if moves.v1_json and path.startswith("/v1/") and not is_json and status == 200:
            headers = [(name, value) for name, value in headers if name != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            body = json.dumps({"status": "COMPLETED", "output": "https://cdn.example/out.mp4"}).encode()
        elif path.endswith("/status") and is_json:
            data = json.loads(body)
            if moves.no_inference_time and data.get("status") == "COMPLETED":
                data["metrics"].pop("inference_time", None)
            if moves.poll_shape and data.get("status") in ("QUEUED", "PROCESSING"):
                data = {"state": data.pop("status"), "id": data.pop("request_id"), **data}
            body = json.dumps(data).encode()
        return status, headers, body


@dataclass
class Session:
    """A recording in progress: the SDK pointed at the proxy, the upstream fake, the file."""

    sdk: SegmindClient
    http: httpx.Client
    upstream: SegmindMock
    out: Path


@contextmanager
def recording(out: Path, moves: Moves | None = None, keep_media: Path | None = None) -> Iterator[Session]:
    """Record through the proxy into `out` for the block; the upstream is stopped when the block ends."""
    upstream = SegmindMock(Settings(speed=0))
    app: ASGIApp = upstream.app if moves is None else Moved(upstream.app, moves)
    clock = upstream.clock
    with ExitStack() as stack:
        upstream_url = stack.enter_context(ServerThread(app))
        proxy = Recorder(
            upstream_url, out, version="test", max_jobs=PAID_CALLS, keep_media=keep_media, say=lambda line: None
        )
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        # The recorder's clock is the upstream's simulated one (see the module's docstring).
        patch.setattr(recorder, "time", SimpleNamespace(time=clock.now, perf_counter=clock.now))
        proxy_url = stack.enter_context(ServerThread(proxy))
        stack.enter_context(virtual_time(clock, SDK_MODULES))
        sdk = SegmindClient(api_key=API_KEY, base_url=f"{proxy_url}/v1")
        stack.callback(sdk._client.close)
        http = stack.enter_context(httpx.Client(base_url=proxy_url, headers={"x-api-key": API_KEY}))
        yield Session(sdk, http, upstream, out)


def record_session(session: Session, *, sync: bool = True, errors: bool = True) -> dict[str, Any]:
    """The usual probe session: v2 submit, wait and result, the output; v1 bytes and base64; a 400 and a 404."""
    example = MODELS["svd"].example
    job = session.sdk.submit_async("svd", **example)
    result = job.wait(timeout=600, interval=RECORDED_INTERVAL)
    session.http.get(result["output"])
    if sync:
        session.http.post("/v1/svd", json=example)
        session.http.post("/v1/svd", json={**example, "base64": True})
    if errors:
        with pytest.raises(SegmindError):
            session.sdk.submit_async("svd", **{**example, "frames": 30})
        session.http.get(f"/v2/requests/{UNKNOWN_ID}/status")
    return result


def recorded(tmp_path: Path, name: str = "live.har", moves: Moves | None = None, **session: bool) -> Path:
    """A file recorded with `record_session`, its upstream stopped by the time it is returned."""
    out = tmp_path / name
    with recording(out, moves) as running:
        record_session(running, **session)
    return out


def same_result(result: dict[str, Any]) -> dict[str, Any]:
    """An SDK result without what differs by nature between two runs: ids and the URLs naming them."""
    kept = {key: value for key, value in result.items() if key not in ("request_id", "output")}
    if isinstance(kept.get("video"), dict):
        kept["video"] = {key: value for key, value in kept["video"].items() if key not in ("url", "file_name")}
    return kept


def states_seen(sdk: SegmindClient, now: Callable[[], float], interval: float) -> tuple[dict[str, Any], list[Any]]:
    """Submit the svd example and wait, polling every `interval`: the result, and each (time, state) polled."""
    job = sdk.submit_async("svd", **MODELS["svd"].example)
    started = now()
    seen: list[tuple[float, str]] = []
    status = job.status

    def polled() -> dict[str, Any]:
        body: dict[str, Any] = status()
        seen.append((round(now() - started, 3), body["status"]))
        return body

    job.status = polled  # type: ignore[method-assign]
    return job.wait(timeout=600, interval=interval), seen

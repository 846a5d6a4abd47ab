"""The recording proxy: forwards each call to the upstream (the live API) and records the exchange as HAR.

A loopback reverse proxy a client points its base URL at. Each request is forwarded once (a
submission is never retried: Segmind has no idempotency) and its answer passed back, videos
streamed through; URLs of the upstream in a JSON answer are rewritten to the proxy, so the SDK's
polls (it follows `status_url` and `response_url`) come back through it. The exchange is written
to the HAR file before the last bytes of the answer go out, so a client that has its answer finds
it recorded. Paid calls (v2 submissions and v1 calls) are bounded by `max_jobs`: past it, a 406 in
the envelope naming the flag, never forwarded.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio.to_thread
import httpx
from msgspec import UNSET, UnsetType
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from contracts import media
from contracts.openapi import API_KEY_HEADER
from contracts.responses import STATES
from mock_server import api_errors, defaults, har, redaction
from mock_server.answers import asgi_header, error_answer, send_answer, with_length
from mock_server.payload import read_body

# Headers that describe one connection, not the message: never passed on (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)
# Media bodies kept in memory for the probe and --keep-media up to this size; past it, size and sha256 only.
MEDIA_BUFFER_BYTES = 256 * 1024 * 1024


def media_facts(data: bytes) -> har.MediaFacts | None:
    """A video's (or image's) frames, fps, size and duration as `contracts.media.decode` finds them, or None."""
    av = media.pyav()
    if av is None:
        return None
    try:
        facts = media.decode(av, data)
    except media.DecodeError:
        return None
    fps = float(facts.fps) if facts.fps else None
    return har.MediaFacts(facts.frames, fps, facts.width, facts.height, facts.duration)


@dataclass
class _Job:
    """What the recorder saw of one job: its model, and when its submission started (monotonic seconds)."""

    model: str | None
    submitted: float


@dataclass
class Exchange:
    """One call as it passes through: what came in, what went out, and when (monotonic seconds)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    started_wall: float
    started: float
    role: har.Role
    model: str | None
    request_id: str | None
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    response_size: int = 0
    wire_size: int = 0
    digest: str | None = None
    answering: bool = False  # the answer's head has gone to the client
    sent: float = 0.0
    head: float = 0.0
    ended: float = 0.0


class Recorder:
    """A recording session: the upstream, the HAR writer, the jobs seen and the budget of paid calls.

    `say` prints what the user must know (a refused write); `version` is segmind-mock's.
    """

    def __init__(
        self,
        upstream: str,
        out: Path,
        *,
        version: str,
        max_jobs: int = defaults.RECORD_MAX_JOBS,
        keep_media: Path | None = None,
        timeout: float = defaults.RECORD_TIMEOUT_SECONDS,
        max_body_bytes: int = defaults.MAX_BODY_BYTES,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.out = out
        self.max_jobs = max_jobs
        self.keep_media = keep_media
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.say = say or _stderr(sys.stderr)
        self.writer = har.HarWriter(out, har.log_facts(version, self.upstream, time.time()), version)
        self.paid_calls = 0  # v2 submissions and v1 calls forwarded
        self.refusals: list[str] = []  # writes refused for a secret
        self._jobs: dict[str, _Job] = {}
        self._outputs: dict[str, str] = {}  # output path on the upstream -> request id
        self._lock = threading.Lock()  # the writer and the maps, shared by the writing threads
        self._client: httpx.AsyncClient | None = None

    # Serving.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request and record it; lifespan events open and close the upstream client."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._forward(scope, receive, send)
        except api_errors.ApiError as error:
            await send_answer(send, error_answer(error))
        except ClientDisconnect:
            pass  # the client left while sending its request: nothing was forwarded, nobody to answer

    async def aclose(self) -> None:
        """Close the connections to the upstream."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _upstream_client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No retries, no redirects followed: the client sees what the upstream answered, once.
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, defaults.FETCH_TIMEOUT_SECONDS))
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        return self._client

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = self._exchange(scope)
        declared = asgi_header(scope["headers"], b"content-length")
        exchange.body = await read_body(declared, receive, self.max_body_bytes)
        if exchange.role in ("submit", "sync"):
            if self.paid_calls >= self.max_jobs:
                raise api_errors.budget_spent(self.max_jobs)
            self.paid_calls += 1  # counted before it goes: calls at once cannot pass the budget together
        client = self._upstream_client()
        forwarded = [(name, value) for name, value in exchange.headers if name.lower() not in _NOT_FORWARDED]
        url = self.upstream + exchange.path + (f"?{exchange.query}" if exchange.query else "")
        request = client.build_request(exchange.method, url, headers=forwarded, content=exchange.body)
        exchange.sent = time.perf_counter()
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise api_errors.unreachable(self.upstream, error) from None
        try:
            exchange.head = time.perf_counter()
            exchange.status = response.status_code
            exchange.response_headers = [(name, value) for name, value in response.headers.multi_items()]
            proxy = f"http://{_host(scope)}"
            content_type = response.headers.get("content-type", "")
            if har.is_media(content_type):
                await self._stream(exchange, response, send)
            else:
                body = await response.aread()
                exchange.response_body = body
                exchange.response_size = len(body)
                exchange.wire_size = response.num_bytes_downloaded
                exchange.ended = time.perf_counter()
                await self._record(exchange)
                shown = body.replace(self.upstream.encode(), proxy.encode())
                headers = with_length(shown, *_passed_headers(response, (self.upstream, proxy)))
                await send_answer(send, (exchange.status, headers, shown))
        except httpx.HTTPError as error:
            if exchange.answering:
                return  # the answer broke off halfway: the client's connection closes with it; not recorded
            raise api_errors.unreachable(self.upstream, error) from None
        finally:
            await response.aclose()

    async def _stream(self, exchange: Exchange, response: httpx.Response, send: Send) -> None:
        """Pass a media body on as it arrives; what completes it goes out only once the exchange is recorded.

        With a known length, the piece that completes it is held back (the client is done when it has
        them all); without one, the body's end (the last, empty chunk).
        """
        headers = _passed_headers(response, None)
        # Passed on as it arrives, the body keeps the upstream's length, unless httpx decodes it.
        declared = None if "content-encoding" in response.headers else response.headers.get("content-length")
        if declared is not None:
            headers.append((b"content-length", declared.encode("latin-1")))
        length = int(declared) if declared is not None and declared.isdigit() else None
        await send({"type": "http.response.start", "status": exchange.status, "headers": headers})
        exchange.answering = True
        digest = hashlib.sha256()
        kept: list[bytes] | None = []
        size = 0
        last = b""
        async for chunk in response.aiter_bytes():
            digest.update(chunk)
            size += len(chunk)
            if kept is not None:
                kept.append(chunk)
                if size > MEDIA_BUFFER_BYTES:
                    kept = None
            if length is not None and size >= length:
                last += chunk
            else:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        exchange.ended = time.perf_counter()
        exchange.digest = digest.hexdigest()
        exchange.response_size = size
        exchange.wire_size = response.num_bytes_downloaded
        exchange.response_body = b"".join(kept) if kept is not None else b""
        await self._record(exchange)
        await send({"type": "http.response.body", "body": last})

    # Recording.

    def _exchange(self, scope: Scope) -> Exchange:
        method: str = scope["method"]
        path: str = scope["path"]
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        route = har.route_of(method, path)
        with self._lock:
            request_id = self._outputs.get(path) if route is None and method in ("GET", "HEAD") else None
        if route is not None:
            role, model, request_id = route
        else:
            role, model = ("output" if request_id is not None else "error"), None
        return Exchange(
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=b"",
            started_wall=time.time(),
            started=time.perf_counter(),
            role=role,
            model=model,
            request_id=request_id,
        )

    async def _record(self, exchange: Exchange) -> None:
        """Describe the exchange (the media probe off the event loop) and write it; a refused write is said."""
        facts = None
        if exchange.digest is not None and exchange.response_body:
            facts = await anyio.to_thread.run_sync(media_facts, exchange.response_body)
        try:
            await anyio.to_thread.run_sync(self._write, exchange, facts)
        except har.SecretFound as refused:
            self.refusals.append(str(refused))
            self.say(f"segmind-mock record: {refused}")
        except OSError as error:  # a full disk: the exchange is lost, said; the client still gets its answer
            self.say(f"segmind-mock record: cannot write {self.out}: {error.strerror or error}")

    def _write(self, exchange: Exchange, facts: har.MediaFacts | None) -> None:
        with self._lock:
            self.writer.secrets.update(_keys(exchange.headers))  # the key this client sends is never written
            self.writer.add(self._entry(exchange, facts))

    def _entry(self, exchange: Exchange, facts: har.MediaFacts | None) -> har.Entry:
        """The HAR entry of an exchange, redacted; learns the job it names (called under the lock)."""
        role, model, request_id = exchange.role, exchange.model, exchange.request_id
        body = har.decoded_json(exchange.response_body) if exchange.digest is None else None
        state = None
        if role == "submit" and isinstance(body, dict) and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
        if role == "sync":
            request_id = har.text_header(exchange.response_headers, "x-request-id")
            state = har.sync_state(exchange.status)
        if isinstance(body, dict) and body.get("status") in STATES and role != "error":
            state = body["status"]
        if role in ("submit", "sync") and request_id is not None and exchange.status < 400:
            self._jobs[request_id] = _Job(model, exchange.started)
        job = self._jobs.get(request_id) if request_id is not None else None
        since = round(exchange.started - job.submitted, 3) if job is not None else None
        if job is not None and model is None:
            model = job.model
        if role == "result" and isinstance(body, dict):
            self._learn_outputs(body, request_id)
        url = self.upstream + exchange.path + (f"?{exchange.query}" if exchange.query else "")
        return har.Entry(
            startedDateTime=har.iso_time(exchange.started_wall),
            time=_ms(exchange.ended - exchange.started),
            request=self._request(exchange, redaction.unsigned_url(url) if role == "output" else url),
            response=self._response(exchange, facts),
            timings=har.Timings(
                send=_ms(exchange.sent - exchange.started),
                wait=_ms(exchange.head - exchange.sent),
                receive=_ms(exchange.ended - exchange.head),
            ),
            segmind=har.EntryFacts(role, model, request_id, since, state),
        )

    def _learn_outputs(self, body: dict[str, Any], request_id: str | None) -> None:
        """Remember the output URLs a result names on the upstream, so their downloads are told apart."""
        video = body.get("video")
        for url in (body.get("output"), video.get("url") if isinstance(video, dict) else None):
            if isinstance(url, str) and url.startswith(self.upstream + "/") and request_id is not None:
                self._outputs[httpx.URL(url).path] = request_id

    def _request(self, exchange: Exchange, url: str) -> har.Request:
        headers = redaction.request_headers(exchange.headers)
        content_type = har.text_header(exchange.headers, "content-type") or ""
        post = har.PostData(content_type, exchange.body.decode("utf-8", "replace")) if exchange.body else UNSET
        return har.Request(
            method=exchange.method,
            url=url,
            httpVersion="HTTP/1.1",
            headers=[har.Header(name, value) for name, value in headers],
            queryString=har.query_string(url),
            bodySize=len(exchange.body),
            postData=post,
        )

    def _response(self, exchange: Exchange, facts: har.MediaFacts | None) -> har.Response:
        headers = redaction.response_headers(exchange.response_headers)
        content_type = har.text_header(exchange.response_headers, "content-type") or ""
        if exchange.digest is not None:
            content = har.Content(
                size=exchange.response_size,
                mimeType=content_type,
                sha256=exchange.digest,
                media=facts,
                file=self._keep(exchange, content_type),
            )
        else:
            text = redaction.unsigned_text(exchange.response_body.decode("utf-8", "replace"))
            content = har.Content(size=exchange.response_size, mimeType=content_type, text=text)
        return har.Response(
            status=exchange.status,
            statusText=har.status_text(exchange.status),
            httpVersion="HTTP/1.1",
            headers=[har.Header(name, value) for name, value in headers],
            content=content,
            bodySize=exchange.wire_size,
        )

    def _keep(self, exchange: Exchange, content_type: str) -> str | UnsetType:
        """With --keep-media, the body saved by its sha256 beside the HAR, and its path relative to the HAR."""
        if self.keep_media is None or not exchange.response_body or exchange.digest is None:
            return UNSET
        suffix = "." + content_type.partition("/")[2].partition(";")[0].strip() if "/" in content_type else ""
        path = self.keep_media / f"{exchange.digest}{suffix}"
        if not path.exists():
            self.keep_media.mkdir(parents=True, exist_ok=True)
            har.write_atomically(path, exchange.response_body)
        return os.path.relpath(path, self.out.parent)


# Not passed to the upstream: the connection's own headers, and the length httpx computes itself.
_NOT_FORWARDED = HOP_BY_HOP | {"content-length", "accept-encoding"}


def _passed_headers(response: httpx.Response, rewrite: tuple[str, str] | None) -> list[tuple[bytes, bytes]]:
    """The upstream's headers as the client gets them, but their length: decoded bodies lose their encoding.

    `rewrite` (upstream, proxy) points a redirect at the proxy, as the JSON bodies' URLs are.
    """
    dropped = HOP_BY_HOP | {"content-encoding", "content-length"}
    headers = []
    for name, value in response.headers.multi_items():
        if name.lower() in dropped:
            continue
        if rewrite is not None and name.lower() == "location":
            value = value.replace(*rewrite)
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


def _keys(headers: Sequence[tuple[str, str]]) -> list[str]:
    """The credentials the client sends (its API key, a bearer token): secrets never to be written."""
    keys = []
    for name, value in headers:
        lower = name.lower()
        if lower == API_KEY_HEADER and value:
            keys.append(value)
        elif lower in ("authorization", "proxy-authorization"):
            keys.append(value.partition(" ")[2] or value)
    return keys


def _host(scope: Scope) -> str:
    host = asgi_header(scope["headers"], b"host").decode("latin-1")
    if host:
        return host
    server = scope.get("server") or ("127.0.0.1", 80)
    return f"{server[0]}:{server[1]}"


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 3)


def _stderr(stream: TextIO) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say

"""Running the fake on a real uvicorn server: in the foreground for the CLI, or in a thread for tests."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mock_server import wire
from mock_server.app import App
from mock_server.responses import JSON_TYPE, encode_json, error_answer, send_answer

STARTUP_TIMEOUT_SECONDS = 10.0
LISTEN_BACKLOG = 2048  # uvicorn's own default


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen on a TCP socket, so the real port is known (and reachable) before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    # Listen now: a client told the URL may connect before uvicorn takes the socket over.
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL a client uses to reach a bound socket; loopback when it listens on every interface."""
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(host).is_unspecified:  # 0.0.0.0 or ::, which are no address to send to
        host = "::1" if ":" in host else "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Tell whether a host to bind to is loopback only (127.0.0.0/8, ::1, localhost): reachable from here alone."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"  # any other name may resolve anywhere


def admin_token_for(host: str, given: str | None = None) -> str | None:
    """The admin token a server bound to `host` requires: the one given, else a fresh one beyond loopback, else none."""
    if given or is_loopback(host):
        return given or None
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server: header bytes, seconds to send a request, requests at once."""

    # The request line and headers together; a larger head is answered 431 and its connection closed
    # before it is kept anywhere (uvicorn's httptools parser has no limit of its own).
    max_header_bytes: int = 32 * 1024
    # Seconds from a request's first byte (or the connection's opening) until its body is complete;
    # a client still sending by then gets a 408 and its connection closed (slowloris).
    request_timeout: float = 10.0
    # Requests served at once by one worker; more are answered 503 at once rather than queued.
    max_concurrent: int = 1000


# Seconds a client is told to wait after a 503 for too many requests at once (GUESS).
BUSY_RETRY_SECONDS = 1


class EnvelopeHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering in the JSON envelope and holding clients to `Limits`.

    - uvicorn answers a request it cannot parse (a made-up method, a bad header, a NUL in the path)
      itself, in plain text, before the app sees it; clients of the fake get the envelope there too.
    - A head over `max_header_bytes` gets a 431, a request unfinished after `request_timeout`
      a 408, and past `max_concurrent` requests a 503, all in the envelope.
    - A body refused before it was read (a 413) on a `Connection: close` request is read to its end
      (and thrown away) before the connection closes, so the client gets its answer, not a reset.
    """

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or Limits()
        self._head_pending = True  # the next request's line and headers have not all arrived
        self._head_bytes = 0
        self._refusal: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering = False
        self._discarding = False  # answered and half-closed: what still arrives is thrown away

    # The deadline: armed when a connection opens or a request begins, disarmed once its body is in.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection; it must send a whole request before the deadline."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request starts: its head and body must be in before the deadline."""
        super().on_message_begin()
        self._head_pending = True
        self._head_bytes = 0
        self._arm()

    def on_message_complete(self) -> None:
        """The request's body is all in: no deadline until the next one begins."""
        self._disarm()
        self._head_pending = True
        self._head_bytes = 0
        super().on_message_complete()
        if self._lingering:
            self.transport.close()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._discarding:
            self.transport.close()
            return
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The app is still reading the body: it gets http.disconnect and its answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        if self.scope is not None and not answered and not self._lingering:
            seconds = f"{self.limits.request_timeout:g}"
            self._answer(408, f"Request Timeout: the request was not complete within {seconds} s; send it whole")
        else:
            self.transport.close()

    # The header limit.

    def data_received(self, data: bytes) -> None:
        """Feed the parser, refusing a head that grows past the limit."""
        if self._discarding:
            return
        pending = self._head_pending
        super().data_received(data)
        if pending and self._head_pending and self.parser is not None and not self.transport.is_closing():
            # The head spans more than this chunk: count it whole (at most one read too many).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer(431, self._too_large_message(), drain=True)

    def on_headers_complete(self) -> None:
        """Check the whole head's size, then serve the request, or answer 503 when too many are in progress."""
        self._head_pending = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refusal = (431, self._too_large_message())
            raise ValueError("request head too large")  # the parser stops; send_400_response answers
        if len(self.tasks) < self.limits.max_concurrent:
            super().on_headers_complete()
        else:
            app, self.app = self.app, _busy
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        cycle = self.cycle
        if cycle is not None and not cycle.keep_alive and _has_body(self.headers):
            cycle.transport = _LingeringTransport(self.transport, self)  # type: ignore[assignment]

    def _unsupported_upgrade_warning(self) -> None:
        """Say nothing: the fake serves no websocket, and answers an upgrade request as any other (a 404)."""

    def _too_large_message(self) -> str:
        return (
            f"Request Header Fields Too Large: the request line and headers passed the fake's limit of "
            f"{self.limits.max_header_bytes} bytes (--max-header-bytes)"
        )

    def send_400_response(self, msg: str) -> None:
        """Answer 400 in the JSON envelope (or the refusal a parser callback raised) and close the connection."""
        if self._refusal is not None:
            self._answer(*self._refusal, drain=True)
        else:
            self._answer(400, f"{msg.rstrip('.')}: {wire.UNPARSABLE_REQUEST}")

    def _answer(self, status: int, message: str, *, drain: bool = False) -> None:
        """Write an answer in the JSON envelope straight to the socket and close the connection.

        With `drain`, the client may still be sending (a huge head): closing with its bytes unread
        would reset the connection before it reads the answer, so the fake half-closes and throws
        away what still comes until the client closes or the deadline passes.
        """
        body = encode_json(wire.error_body(message))
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n" % (status, HTTPStatus(status).phrase.encode(), JSON_TYPE)
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        self.transport.write(head + body)
        if drain and self.transport.can_write_eof():
            self.transport.write_eof()
            self._discarding = True
            self._arm()
        else:
            self._disarm()
            self.transport.close()

    def linger(self) -> None:
        """Half-close after an answer sent before the body was read; close once the body is in (or at the deadline)."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._lingering = True


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if (name == b"content-length" and value.strip() not in (b"", b"0")) or name == b"transfer-encoding":
            return True
    return False


class _LingeringTransport:
    """The connection as a `Connection: close` request's answer sees it: closing it waits for the body."""

    def __init__(self, transport: asyncio.Transport, protocol: EnvelopeHTTPProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        """Close now if the request's body is in; otherwise read it to its end first, so the client sees the answer."""
        if self._protocol._head_pending or self._transport.is_closing():
            self._transport.close()
        else:
            self._protocol.linger()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def _busy(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer past `max_concurrent` requests: 503 in the envelope, retry shortly."""
    await send_answer(send, error_answer(wire.ApiError(503, wire.BUSY, {"retry-after": str(BUSY_RETRY_SECONDS)})))


# Seconds an idle keep-alive connection stays open (GUESS: the service's own is unknown).
KEEP_ALIVE_SECONDS = 75


def config(app: ASGIApp | Callable[[], ASGIApp], limits: Limits | None = None, **options: Any) -> uvicorn.Config:
    """uvicorn settings shared by the CLI and the test server: the fastest stack, quiet access log, `limits` held."""
    settings: dict[str, Any] = {
        "loop": "auto",
        "http": functools.partial(EnvelopeHTTPProtocol, limits=limits or Limits()),
        # The fake serves no websocket: an upgrade request is an ordinary request, answered (404) in the envelope.
        "ws": "none",
        "access_log": False,
        "lifespan": "off",  # the fake sets itself up when built, not at start-up
        "log_level": "warning",
        # uvicorn's 5 s default closes idle keep-alive connections so soon that a pooled client
        # reusing one at that moment loses its request ("Server disconnected"); keep them longer.
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
    return uvicorn.Config(app, **{**settings, **options})


class ServerThread:
    """A real uvicorn server on a free loopback port, in a daemon thread: `with ServerThread(app) as url:`."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None) -> None:
        # Beyond loopback, the fake's admin API needs a token: its own, else a fresh one (`admin_token`).
        self.admin_token: str | None = None
        if isinstance(app, App):
            settings = app.service.settings
            self.admin_token = admin_token_for(host, settings.admin_token)
            if self.admin_token != settings.admin_token:
                app.service.settings = replace(settings, admin_token=self.admin_token)
        self._socket = bind(host, port)
        self.url = url_of(self._socket)
        self._server = uvicorn.Server(config(app, limits))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> str:
        """Start serving and return the base URL once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            # A failure inside the thread kills it silently: check it is still alive.
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()  # `with` never reaches __exit__ when __enter__ fails: free the socket here
                raise RuntimeError("uvicorn did not start; see its log above")
            time.sleep(0.005)
        return self.url

    def stop(self) -> None:
        """Ask the server to finish and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(STARTUP_TIMEOUT_SECONDS)
        self._socket.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

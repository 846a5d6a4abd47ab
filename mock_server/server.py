"""Running the fake on a real uvicorn server: in the foreground for the CLI, or in a thread for tests."""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import logging
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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from mock_server import api_errors
from mock_server.answers import error_answer, send_answer
from mock_server.app import App
from mock_server.clock import Clock
from mock_server.defaults import MAX_CONCURRENT_REQUESTS, MAX_HEADER_BYTES, REQUEST_TIMEOUT_SECONDS

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

    # One request's line and headers together, in their usual form (no body, no blank lines before
    # it); a larger head is answered 431 and its connection closed before it is kept anywhere or
    # dispatched (uvicorn's httptools parser has no limit of its own).
    max_header_bytes: int = MAX_HEADER_BYTES
    # Seconds from a request's first byte (a blank line too; pipelined behind an answer, from that
    # answer's end; a new connection, from its opening) until its body is complete: a client still
    # sending by then gets a 408 and its connection closed (slowloris), on every request of a connection.
    request_timeout: float = REQUEST_TIMEOUT_SECONDS
    # Requests served at once by one worker; more are answered 503 at once rather than queued.
    max_concurrent: int = MAX_CONCURRENT_REQUESTS


# Seconds a client is told to wait after a 503 for too many requests at once (GUESS).
BUSY_RETRY_SECONDS = 1


class Phase(enum.Enum):
    """Where a connection stands, which decides its one timer: what the fake waits for, and how long."""

    IDLE = "idle"  # between requests: closed after the keep-alive seconds (a new connection: the request deadline)
    HEAD = "head"  # a request's line and headers arriving, from its first byte (a blank line too): the request deadline
    BODY = "body"  # its body arriving: the same deadline, which runs on from the head's
    DISPATCHED = "dispatched"  # an answer is owed: the fake's turn, so no deadline for the client
    STALLED = "stalled"  # an answer is owed and the client reads none of it: the request deadline, then dropped
    CLOSING = "closing"  # refused, half-closed: what still arrives is thrown away until the client closes or time is up


# The phases as plain names: a request reads some twenty of them, and through the class an enum
# member costs 60 ns each in Python 3.11 (a module's name, 10).
_IDLE, _HEAD, _BODY, _DISPATCHED, _STALLED, _CLOSING = (
    Phase.IDLE,
    Phase.HEAD,
    Phase.BODY,
    Phase.DISPATCHED,
    Phase.STALLED,
    Phase.CLOSING,
)


# Bytes of a request line and head besides the method and target: two spaces, "HTTP/1.1", two CRLFs.
_HEAD_FRAMING = 14
# Bytes each header adds to its name and value on the wire: ": " and CRLF.
_HEADER_FRAMING = 4
# A timer may fire this early (uvloop rounds to milliseconds): not early enough to move a deadline.
_TIMER_SLACK = 0.001


class EnvelopeHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering in the JSON envelope and holding clients to `Limits`.

    - uvicorn answers a request it cannot parse (a made-up method, a bad header, a NUL in the path)
      itself, in plain text, before the app sees it; clients of the fake get the envelope there too.
    - A head over `max_header_bytes` gets a 431, a request unfinished after `request_timeout`
      a 408, and past `max_concurrent` requests a 503, all in the envelope.
    - A body refused before it was read (a 413) on a `Connection: close` request is read to its end
      (and thrown away) before the connection closes, so the client gets its answer, not a reset.

    The connection's `phase` decides its one timer (uvicorn's keep-alive timer is never left armed),
    so no order of bytes leaves a connection without one, nor a client that stops reading. A refusal
    (400, 408, 431) is written once every answer owed before it is complete, and never to a request
    already answered: a head is refused before the request reaches the app, never after.
    """

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or Limits()
        self._reading = _IDLE  # what the parser reads: IDLE, HEAD, BODY, or CLOSING once refused
        self._owed: RequestResponseCycle | None = None  # the newest request read whole, until it is answered
        self._requests = 0  # requests read whole
        self._head_bytes = 0  # bytes of the head being read, as far as earlier reads tell
        self._rejection: tuple[int, str] | None = None  # why a parser callback stopped the parser
        self._refusal: bytes | None = None  # a refusal waiting for the answers owed before it
        self._lingering = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # the loop's time when the phase's time is up; None: never
        self._stalls = 0  # times the client stopped taking what the fake writes
        self._timed: tuple[Phase, int, int] | None = None  # the phase (request, stall) the deadline was set for

    @property
    def phase(self) -> Phase:
        """The connection's phase: dispatched (or stalled) while an answer is owed, else what the parser reads."""
        owed = self._owed
        if owed is not None and not owed.response_complete:
            return _STALLED if self.flow.write_paused else _DISPATCHED
        return self._reading

    # The timer: one per connection, set by `_retime` after every event that may change the phase.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection; it must send a whole request before the deadline."""
        super().connection_made(transport)
        self._retime()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the timer with the connection."""
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """An answer is complete: write a refusal that waited for it, and time what comes next."""
        super().on_response_complete()  # starts a queued request, or arms uvicorn's keep-alive timer
        self._unset_keepalive_if_required()  # the connection's one timer is this class's
        refusal = self._refusal
        if refusal is not None and self.phase is not _DISPATCHED:
            self._refusal = None
            self._send_refusal(refusal)
        self._retime()

    def _retime(self) -> None:
        """Set the deadline of the phase the connection is in, unless it is already set for it."""
        phase = self.phase
        # A request's head and body share one deadline, from its first byte; each stall has its own.
        stalls = self._stalls if phase is _STALLED else 0
        timed = (_HEAD if phase is _BODY else phase, self._requests, stalls)
        if timed == self._timed:
            return
        self._timed = timed
        if phase is _DISPATCHED:
            self._deadline = None  # a timer still pending finds nothing to do
            return
        seconds = self.limits.request_timeout
        if phase is _IDLE and self._requests:
            seconds = self.timeout_keep_alive
        self._deadline = deadline = self.loop.time() + seconds
        timer = self._timer
        # A pending timer set for a later moment is moved; one set earlier fires and looks again.
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return
        if deadline - self.loop.time() > _TIMER_SLACK:  # the deadline moved on since the timer was set
            self._timer = self.loop.call_at(deadline, self._on_timer)
            return
        self._expire()

    def _expire(self) -> None:
        """Time is up: a request begun gets its 408; an idle, closing or stalled connection is closed."""
        if self.phase in (_HEAD, _BODY):
            seconds = f"{self.limits.request_timeout:g}"
            self._refuse(408, f"Request Timeout: the request was not complete within {seconds} s; send it whole")
        elif self.transport.get_write_buffer_size():
            self.transport.abort()  # closing would wait for the client to take what is written: it takes nothing
        else:
            self.transport.close()

    def pause_writing(self) -> None:
        """The client takes no more for now: an answer owed is stalled, under the request deadline."""
        super().pause_writing()
        self._stalls += 1
        self._retime()

    def resume_writing(self) -> None:
        """The client takes what is written again."""
        super().resume_writing()
        self._retime()

    # Reading: the phase follows the parser's callbacks; the head is counted as it arrives.

    def data_received(self, data: bytes) -> None:
        """Feed the parser, refusing a head that grows past the limit."""
        if self._reading is _CLOSING:
            return
        if self._reading is _IDLE:
            self._reading = _HEAD  # any byte begins the next request, a blank line too (httptools skips those)
        requests = self._requests
        super().data_received(data)
        if self._reading is _HEAD:
            # The head is still incomplete. Begun before this read, every byte of it is the head's;
            # begun after a request that ended in it, what the parser has shown of it (never more
            # than was sent: the head is refused for what it holds, never for a neighbour's body).
            if self._requests == requests:
                # Blank lines before a request line are skipped, not kept: they do not count.
                self._head_bytes += len(data.lstrip(b"\r\n") if not self._head_bytes else data)
            else:
                self._head_bytes = self._shown_head_bytes()
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, self._too_large_message())
        self._retime()

    def on_message_begin(self) -> None:
        """A request starts."""
        super().on_message_begin()
        self._reading = _HEAD

    def on_headers_complete(self) -> None:
        """Check the whole head's size, then serve the request, or answer 503 when too many are in progress."""
        if len(self.parser.get_method()) + _HEAD_FRAMING + self._shown_head_bytes() > self.limits.max_header_bytes:
            self._rejection = (431, self._too_large_message())
            raise ValueError("request head too large")  # the parser stops; send_400_response answers
        self._reading = _BODY
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

    def on_message_complete(self) -> None:
        """The request is read whole: it is the answer owed until the app completes it."""
        super().on_message_complete()
        self._reading = _IDLE
        self._head_bytes = 0
        self._requests += 1
        self._owed = self.cycle
        if self._lingering:
            self.transport.close()

    def _shown_head_bytes(self) -> int:
        """Bytes of the head being read that the parser has handed over: its target and complete headers."""
        return len(self.url) + sum(len(name) + len(value) + _HEADER_FRAMING for name, value in self.headers)

    def _unsupported_upgrade_warning(self) -> None:
        """Say nothing: the fake serves no websocket, and answers an upgrade request as any other (a 404)."""

    def _too_large_message(self) -> str:
        return (
            f"Request Header Fields Too Large: the request line and headers passed the fake's limit of "
            f"{self.limits.max_header_bytes} bytes (--max-header-bytes)"
        )

    # Refusing: in the envelope, after the answers owed, then half-closed.

    def send_400_response(self, msg: str) -> None:
        """Answer 400 in the JSON envelope (or the refusal a parser callback raised) and close the connection."""
        rejection, self._rejection = self._rejection, None
        if rejection is None:
            rejection = (400, f"{msg.rstrip('.')}: {api_errors.UNPARSABLE_REQUEST}")
        self._refuse(*rejection)

    def _refuse(self, status: int, message: str) -> None:
        """Refuse the request being read with an answer in the envelope, written once the answers owed are.

        A request answered before its body was in (a 413) gets no second answer: the connection closes.
        """
        reading, self._reading = self._reading, _CLOSING
        cycle = self.cycle if reading is _BODY else None  # a request has its cycle once its head is in
        if cycle is not None and cycle.response_started:
            refusal = b""
        else:
            if cycle is not None:
                # The app waits for the rest of the body: it gets http.disconnect, and its answer goes nowhere.
                cycle.disconnected = True
                cycle.message_event.set()
            refusal = _envelope(status, message)
        if self.phase is _DISPATCHED:
            self._refusal = refusal  # on_response_complete writes it
        else:
            self._send_refusal(refusal)
        self._retime()

    def _send_refusal(self, refusal: bytes) -> None:
        """Write a refusal (if there is one) and half-close.

        Closing with the client's bytes unread would reset the connection before it reads the answer:
        what still comes is thrown away (the closing phase) until the client closes or time is up.
        """
        transport = self.transport
        if transport.is_closing():
            return
        if refusal:
            transport.write(refusal)
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    def linger(self) -> None:
        """Half-close after an answer sent before the body was read; close once the body is in (or at the deadline)."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._lingering = True


def _envelope(status: int, message: str) -> bytes:
    """A whole answer in the JSON envelope (`answers.error_answer`) that closes its connection, as bytes."""
    status, headers, body = error_answer(api_errors.ApiError(status, message))
    head = b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())
    fields = b"".join(b"%s: %s\r\n" % header for header in headers)
    return head + fields + b"connection: close\r\n\r\n" + body


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
        if self._protocol.phase is not _BODY or self._transport.is_closing():
            self._transport.close()
        else:
            self._protocol.linger()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def _busy(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer past `max_concurrent` requests: 503 in the envelope, retry shortly."""
    await send_answer(
        send, error_answer(api_errors.ApiError(503, api_errors.BUSY, {"retry-after": str(BUSY_RETRY_SECONDS)}))
    )


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


# Seconds a shutdown gives the requests in progress to finish (v1 calls answer at once: see
# `Server`); what is still running then (a scenario's long delay) has its connection closed.
SHUTDOWN_GRACE_SECONDS = 1.0


class _QuietCancellation(logging.Filter):
    """Drops uvicorn's report of a request cancelled by the shutdown: its connection was closed first, on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but a cancelled request's traceback."""
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class Server(uvicorn.Server):
    """uvicorn's server, shutting down within `SHUTDOWN_GRACE_SECONDS` whatever is in progress, without a 500.

    uvicorn waits for every request in progress, and a v1 call waits for its job (half a minute
    at --speed 1); a second Ctrl-C then cancels it into a traceback and a 500. Here the shutdown
    first ends the waits on the fake's `clock` (the calls answer 503 in the envelope), gives
    every request the grace, however many signals came, then closes the connections of what
    still runs (a scenario's delay) before cancelling it, so that nothing answers 500.
    """

    def __init__(self, config: uvicorn.Config, clock: Clock | None = None) -> None:
        super().__init__(config)
        self._clock = clock

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the waits, let uvicorn shut down within the grace, then close what still runs."""
        clock = self._clock
        if clock is not None:
            clock.waits_stopped = True
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE_SECONDS):
                await super().shutdown(sockets)
                while self.server_state.tasks:  # a second Ctrl-C skips uvicorn's own wait
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pass
        await self._close_the_rest()
        if clock is not None:  # nothing of this server waits any more; the fake may be served again
            clock.waits_stopped = False

    async def _close_the_rest(self) -> None:
        tasks = list(self.server_state.tasks)
        if not tasks:
            return
        for connection in list(self.server_state.connections):
            connection.transport.close()  # the client sees its connection close, not a 500
        await asyncio.sleep(0)  # uvicorn marks those requests disconnected: nothing more is sent on them
        quiet = _QuietCancellation()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        try:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        finally:
            logging.getLogger("uvicorn.error").removeFilter(quiet)


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
        self._server = Server(config(app, limits), app.service.clock if isinstance(app, App) else None)
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

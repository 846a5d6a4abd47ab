"""Running the fake on a real uvicorn server: in the foreground for the CLI, or in a thread for tests."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from mock_server import wire

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


class EnvelopeHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's fastest HTTP/1.1 protocol (httptools, else h11), answering unparsable requests in the JSON envelope.

    uvicorn answers a request it cannot parse (a made-up method, a bad header, a NUL in the path)
    itself, in plain text, before the app sees it; clients of the fake get the documented
    `{"error": ...}` body there too.
    """

    def send_400_response(self, msg: str) -> None:
        """Answer 400 in the JSON envelope and close the connection, as uvicorn does."""
        body = json.dumps(wire.error_body(f"{msg.rstrip('.')}: {wire.UNPARSABLE_REQUEST}")).encode()
        head = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()


# Seconds an idle keep-alive connection stays open (GUESS: the service's own is unknown).
KEEP_ALIVE_SECONDS = 75


def config(app: ASGIApp | Callable[[], ASGIApp], **options: Any) -> uvicorn.Config:
    """uvicorn settings shared by the CLI and the test server: the fastest stack, quiet access log."""
    settings: dict[str, Any] = {
        "loop": "auto",
        "http": EnvelopeHTTPProtocol,
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

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = bind(host, port)
        self.url = url_of(self._socket)
        self._server = uvicorn.Server(config(app))
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

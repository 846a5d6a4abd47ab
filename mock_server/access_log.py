"""The opt-in access log of `segmind-mock serve --access-log`: one line per HTTP request."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Shown for a request that ended without an answer (a `disconnect` scenario, a client gone).
NO_STATUS = "-"


def print_line(line: str) -> None:
    """Write one log line to standard output at once, so it interleaves whole with the workers' lines."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


class AccessLog:
    """ASGI middleware writing `METHOD PATH STATUS TIME ms` when each HTTP request has been answered."""

    def __init__(self, app: ASGIApp, write: Callable[[str], None] = print_line) -> None:
        self.app = app
        self.write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = NO_STATUS

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000
            self.write(f"{scope['method']} {scope['path']} {status} {elapsed_ms:.1f} ms")

"""A small loopback load generator: keep-alive HTTP/1.1 connections on raw sockets, one request in flight each.

A Python HTTP client such as httpx spends more time per request than the server does, which would
make every server look alike. This one writes pre-built request bytes and reads only the status
line and Content-Length of each response, so the server under test is the bottleneck.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import uvloop


@dataclass(frozen=True)
class Result:
    """What one load run achieved."""

    requests: int
    seconds: float
    errors: int

    @property
    def per_second(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds


def build_request(method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """Return the bytes of one keep-alive HTTP/1.1 request."""
    parts = urlsplit(url)
    lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection that sends the next request as soon as a response is complete."""

    def __init__(self, requests: itertools.cycle[bytes], run: _Run) -> None:
        self._requests = requests
        self._run = run
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        transport.write(next(self._requests))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self._buffer[:end]).lower()
            total = end + 4 + _content_length(head)
            if len(self._buffer) < total:
                return
            self._run.count(int(head[9:12]))
            del self._buffer[:total]
            assert self._transport is not None
            if self._run.stopping:
                self._transport.close()
                return
            self._transport.write(next(self._requests))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


def _content_length(head: bytes) -> int:
    start = head.find(b"content-length:")
    if start < 0:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    stop = head.find(b"\r\n", start)
    return int(head[start + 15 : stop if stop >= 0 else len(head)])


class _Run:
    """Counts responses inside the measured window."""

    def __init__(self, warmup: float) -> None:
        self.started = time.perf_counter()
        self.window_start = self.started + warmup
        self.measured = 0
        self.errors = 0
        self.stopping = False

    def count(self, status: int) -> None:
        if time.perf_counter() >= self.window_start:
            self.measured += 1
            self.errors += status >= 400


async def _load(url: str, requests: Sequence[bytes], connections: int, seconds: float, warmup: float) -> Result:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    run = _Run(warmup)
    conns = []
    for index in range(connections):
        # Each connection walks the request list from its own offset, so ids are spread out.
        offset = index * len(requests) // connections
        cycle = itertools.cycle([*requests[offset:], *requests[:offset]])
        _, conn = await loop.create_connection(lambda c=cycle: _Connection(c, run), parts.hostname, parts.port)
        conns.append(conn)
    await asyncio.sleep(warmup + seconds)
    run.stopping = True
    ended = time.perf_counter()
    measured, errors = run.measured, run.errors
    await asyncio.wait_for(asyncio.gather(*(conn.closed for conn in conns)), 10)
    return Result(measured, ended - run.window_start, errors)


def load(
    url: str, requests: Sequence[bytes], connections: int = 16, seconds: float = 2.0, warmup: float = 0.5
) -> Result:
    """Drive `url` with `connections` keep-alive clients cycling through `requests`; count completions."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load(url, requests, connections, seconds, warmup))

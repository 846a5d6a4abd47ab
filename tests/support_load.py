"""Helpers for the load and fuzz tests: job stores to run them on, and a raw HTTP/1.1 client."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    """A response as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


def raw_exchange(url: str, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send `data` as-is on a new connection and read one response; fail rather than hang."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        return _read_response(sock, time.monotonic() + timeout, has_body=not data.startswith(b"HEAD "))


def _read_response(sock: socket.socket, deadline: float, has_body: bool) -> RawResponse:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += _receive(sock, deadline)
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0")) if has_body else 0
    while len(body) < length:
        body += _receive(sock, deadline)
    return RawResponse(int(status_line.split()[1]), headers, body[:length])


def _receive(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection before a full response")
    return chunk


def request_bytes(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """Build an HTTP/1.1 request with `Connection: close`, the target sent exactly as given."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body and not any(name.lower() == "transfer-encoding" for name in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body

"""Journaling an exchange as it passes: the server's `receive` and `send`, wrapped to keep what goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import Message, Receive, Scope, Send

from mock_server.journal import BODY_CAPTURE_BYTES, KEY_CAPTURE_BYTES, TEXT_CAPTURE_CHARS, Entry


class Recording:
    """One exchange as it happens: the server's `receive` and `send`, wrapped to keep what passes.

    The exchange is journaled as its answer ends, before the last of it goes out: a client that
    has its answer can read the journal at once. This runs on every request: it keeps references
    only, and decoding waits for Entry.to_dict.
    """

    __slots__ = (
        "_clock",
        "_journal",
        "_receive",
        "_request",
        "_response",
        "_response_type",
        "_send",
        "_status",
        "scope",
    )

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, record: Callable[[Entry], None], now: Callable[[], float]
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._journal: Callable[[Entry], None] | None = record  # None once the exchange is journaled
        self._clock = now
        self._request = _Capture()
        self._response = _Capture()
        self._status: int | None = None  # None until a response starts; stays None for a dropped connection
        self._response_type = b""

    async def receive(self) -> Message:
        """Receive from the server, keeping the request body's head."""
        message = await self._receive()
        if message["type"] == "http.request":
            self._request.add(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        """Send to the server, keeping the response's status, headers and body head."""
        if message["type"] == "http.response.body":
            self._response.add(message.get("body", b""))
            if not message.get("more_body", False):
                self.finish()
        elif message["type"] == "http.response.start":
            self._status = message["status"]
            self._response_type = header(message.get("headers", []), b"content-type")
        await self._send(message)

    def finish(self) -> None:
        """Journal the exchange as it stands (an answer cut short, or none), unless it already is."""
        if self._journal is not None:
            self._journal(self._entry())
            self._journal = None

    def _entry(self) -> Entry:
        scope = self.scope
        return Entry(
            self._clock(),
            scope["method"],
            scope["path"][:TEXT_CAPTURE_CHARS],
            scope.get("query_string", b"")[:TEXT_CAPTURE_CHARS],
            _key_ends(header(scope["headers"], b"x-api-key")),
            self._request.body(),
            self._request.size,
            self._status,
            self._response_type,
            self._response.body(),
            self._response.size,
        )


class Unrecorded:
    """Stands in for a Recording when the journal keeps nothing: the server's own `receive` and `send`."""

    __slots__ = ("receive", "send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send

    def finish(self) -> None:
        """Nothing to journal."""


class _Capture:
    """The first BODY_CAPTURE_BYTES of a body, and its whole size."""

    __slots__ = ("chunks", "room", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.room = BODY_CAPTURE_BYTES
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.room > 0 and chunk:
            # Slicing a bytes object no longer than the room returns it without a copy.
            kept = chunk[: self.room]
            self.chunks.append(kept)
            self.room -= len(kept)

    def body(self) -> bytes:
        """The captured head of the body."""
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


def _key_ends(key: bytes) -> bytes:
    """The ends of a long key, which is all its masked view shows (a key of a megabyte costs 32 bytes)."""
    if len(key) <= 2 * KEY_CAPTURE_BYTES:
        return key
    return key[:KEY_CAPTURE_BYTES] + key[-KEY_CAPTURE_BYTES:]


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    """The first value of the header `name` (lower case, as ASGI names are) in raw ASGI headers; empty if absent."""
    for key, value in headers:
        if key == name:
            return value
    return b""

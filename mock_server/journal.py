"""The journal: what clients sent to the Segmind routes and what they got back."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import Message, Receive, Scope, Send

from mock_server.clock import SimClock
from mock_server.payload import parse_json
from mock_server.wire import ApiError

# Bodies are kept up to this size; base64 images would otherwise fill memory.
BODY_CAPTURE_BYTES = 4096
# Every other field is bounded too, so a thousand entries cost at most some megabytes whatever
# clients send: paths and query strings are cut to this many characters, and of an API key only
# the ends the masked view shows are kept (KEY_CAPTURE_BYTES at each end).
TEXT_CAPTURE_CHARS = 2048
KEY_CAPTURE_BYTES = 16
JOURNAL_SIZE = 1000
# Query parameters whose values are shown masked, like the x-api-key header.
_SECRET_PARAMETER = re.compile(r"((?:^|&)[^=&]*(?:key|token|secret|password)[^=&]*=)([^&]*)", re.IGNORECASE)


def mask_key(key: str | None) -> str | None:
    """Hide all of an API key but its first three and last four characters."""
    if not key:
        return key
    return key[:3] + "…" + key[-4:] if len(key) > 10 else "…"


def mask_query(query: str, api_key: str | None) -> str:
    """A query string with the values of key-like parameters, and the request's own API key, masked."""
    if api_key and len(api_key) > 3:
        query = query.replace(api_key, mask_key(api_key) or "")
    return _SECRET_PARAMETER.sub(lambda found: found.group(1) + (mask_key(found.group(2)) or ""), query)


@dataclass(slots=True)
class Entry:
    """One exchange, kept raw as the server saw it; decoding waits until someone reads the journal.

    Of the headers, only the two the journal shows are kept: holding whole header lists for a
    thousand exchanges measurably slowed every poll in a server (docs/benchmarks.md).
    """

    at: float
    method: str
    path: str
    query: bytes
    api_key: bytes  # the x-api-key header, empty when none was sent
    request_body: bytes
    request_size: int
    status: int | None  # None: no response was sent (a dropped connection)
    response_type: bytes  # the content-type header
    response_body: bytes
    response_size: int

    def to_dict(self) -> dict[str, Any]:
        """Describe the exchange as `GET /_mock/requests` shows it, the API key masked."""
        response_type = self.response_type.decode("latin-1")
        response = _decode(self.response_body, self.response_size) if "json" in response_type else None
        request_id = response.get("request_id") if isinstance(response, dict) else None
        api_key = self.api_key.decode("latin-1") or None
        return {
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "query": mask_query(self.query.decode("latin-1"), api_key),
            "api_key": mask_key(api_key),
            "request": _decode(self.request_body, self.request_size),
            "request_size": self.request_size,
            "status": self.status,
            "request_id": request_id,
            "response_type": response_type,
            "response": response,
            "response_size": self.response_size,
        }


class JournalStore(Protocol):
    """Where the journal is kept: in the process (`Journal`) or shared (the Redis store)."""

    size: int  # the exchanges it keeps; 0 keeps none, and the app then records nothing

    def record(self, entry: Entry) -> None:
        """Add an exchange, dropping the oldest past the journal's size."""

    def entries(self) -> list[dict[str, Any]]:
        """Return every kept exchange, described."""

    def clear(self) -> None:
        """Forget every exchange."""


class Journal:
    """A bounded record of the latest exchanges, oldest first."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self.size = size
        self._entries: deque[Entry] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, entry: Entry) -> None:
        """Add an exchange, dropping the oldest past the journal's size."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """Return every kept exchange, described."""
        with self._lock:
            entries = list(self._entries)
        return [entry.to_dict() for entry in entries]

    def clear(self) -> None:
        """Forget every exchange."""
        with self._lock:
            self._entries.clear()


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

    def __init__(self, scope: Scope, receive: Receive, send: Send, journal: JournalStore, clock: SimClock) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._journal: JournalStore | None = journal  # None once the exchange is journaled
        self._clock = clock
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
            self._journal.record(self._entry())
            self._journal = None

    def _entry(self) -> Entry:
        scope = self.scope
        return Entry(
            self._clock.now(),
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


def _decode(body: bytes, size: int) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    if size > len(body):
        return text + f"… ({size} bytes in all)"
    try:
        # As strict as the request path: a body it refused (NaN, 1e400, "\ud800") is shown as text,
        # since the journal's own JSON answer could not carry it back.
        return parse_json(body)
    except ApiError:
        return text

"""Redis's protocol (RESP2 and RESP3), as the store writes its commands and reads their answers itself.

The store sends its batches straight on connections of its own (`session.Namespace`), on the
event loop's (`loop_connection`) or, off it, on redis-py's. Both write what `pack` writes; the
loop's reads what `RespReader` reads: the values redis-py's own parser gives for the same bytes
(a Hypothesis test compares them on a real Redis), error replies as redis-py's exceptions,
returned in their place rather than raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from redis._parsers import BaseParser  # redis-py's own mapping of error codes to its exceptions


def pack(commands: Iterable[tuple[Any, ...]]) -> bytes:
    """The commands in Redis's protocol (RESP), in one piece to send.

    redis-py's encoder takes about 1.5 µs an argument (a submission's job script has 23): this
    takes a third of it. The arguments are what the stores pass: bytes (a job, a journal entry,
    encoded by msgspec) as they are, str, int and float as their text in UTF-8, as redis-py writes them.
    """
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for argument in command:
            data = argument if isinstance(argument, bytes) else str(argument).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def reply_error(message: str) -> redis.RedisError:
    """An error reply as redis-py's own parser makes it: the exception its code names (`NoScriptError`, ...).

    A `redis.ConnectionError` among them (a server loading its data, out of clients) fails the
    connection, as redis-py raises it; any other is an answer in its place.
    """
    error: redis.RedisError = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


class Incomplete(Exception):
    """The buffer ends inside a reply: more bytes are needed, at least `needed` in all where it is known."""

    def __init__(self, needed: int = 0) -> None:
        super().__init__(needed)
        self.needed = needed


class RespReader:
    """Replies parsed from the bytes a connection receives, in order, as they complete.

    Strings are decoded as redis-py decodes them with `decode_responses` (`encoding`, `errors`;
    None: kept as bytes); push messages (RESP3's out-of-band data) are skipped, as a connection
    with no tracking never gets them.
    """

    def __init__(self, encoding: str | None = "utf-8", errors: str = "strict") -> None:
        self._encoding = encoding
        self._errors = errors
        self._buffer = bytearray()
        # How long the buffer must grow before the reply under way can end: a large string (a job
        # with its image) comes in many pieces, and is parsed again only once it may be whole.
        self._needed = 0

    def read(self, data: bytes) -> list[Any]:
        """Every reply that `data`, received after what was read before, completes, in order (none may be)."""
        self._buffer += data
        found: list[Any] = []
        if len(self._buffer) < self._needed:
            return found
        self._needed = 0
        buffer = bytes(self._buffer)
        position = 0
        while position < len(buffer):
            try:
                reply, end = self._parse(buffer, position)
            except Incomplete as short:
                self._needed = short.needed - position
                break
            position = end
            if not isinstance(reply, _Push):
                found.append(reply)
        del self._buffer[:position]
        return found

    def _text(self, data: bytes) -> Any:
        return data if self._encoding is None else data.decode(self._encoding, self._errors)

    def _parse(self, buffer: bytes, position: int) -> tuple[Any, int]:
        """The reply starting at `position`, and where the next starts; Incomplete if it does not end in `buffer`."""
        end = buffer.find(b"\r\n", position)
        if end < 0:
            raise Incomplete
        kind = buffer[position : position + 1]
        line = buffer[position + 1 : end]
        position = end + 2
        if kind in b"$=!":  # a bulk string, a verbatim string, an error as a bulk string
            size = int(line)
            if size < 0:
                return None, position
            if len(buffer) < position + size + 2:
                raise Incomplete(position + size + 2)
            data = buffer[position : position + size]
            position += size + 2
            if kind == b"!":
                return reply_error(data.decode(errors="replace")), position
            return self._text(data[4:] if kind == b"=" else data), position
        if kind in b"*~>%|":  # an array, a set, a push message, a map (pairs), an attribute (pairs)
            count = int(line)
            if count < 0:
                return None, position
            items: list[Any] = []
            for _ in range(count * 2 if kind in b"%|" else count):
                item, position = self._parse(buffer, position)
                items.append(item)
            if kind == b"%":
                return dict(zip(items[::2], items[1::2], strict=True)), position
            if kind == b"|":  # what an attribute describes is the reply after it
                return self._parse(buffer, position)
            return (_Push(items) if kind == b">" else items), position
        return _simple(kind, line, self._text), position


class _Push(list[Any]):
    """A push message: out-of-band data, not a reply."""


def _simple(kind: bytes, line: bytes, text: Any) -> Any:
    """A reply held on its one line: a status, an error, a number, a boolean, a null."""
    if kind == b"+":
        return text(line)
    if kind == b"-":
        return reply_error(line.decode(errors="replace"))
    if kind in b":(":
        return int(line)
    if kind == b",":
        return float(line)
    if kind == b"#":
        return line == b"t"
    if kind == b"_":
        return None
    raise redis.exceptions.InvalidResponse(f"Protocol Error: {kind!r}, {line!r}")

"""Answers as the fake sends them: compact UTF-8 JSON encoded by msgspec, with pre-built header lists.

Segmind's routes send plain `Answer` tuples straight to the server (`app.App`); the fake's own
routes use `JSONResponse`, Starlette's with the same encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from starlette import responses
from starlette.types import Send

from mock_server import api_errors, wire

# What a Segmind route answers: the status, the ASGI header list, the body bytes.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

JSON_TYPE = b"application/json"
JSON_CONTENT_TYPE = (b"content-type", JSON_TYPE)  # built once: every JSON answer sends it
# Compact UTF-8 JSON in the keys' own order: what json.dumps(separators=(",", ":"), ensure_ascii=False) writes.
encode_json = msgspec.json.Encoder().encode


def header_list(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI headers from a mapping, names in lower case as Starlette sends them."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def with_length(body: bytes, *headers: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """The ASGI header list sending `body`: its Content-Length, then `headers` (the one place the length is written)."""
    return [(b"content-length", b"%d" % len(body)), *headers]


def answer(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    """A JSON answer, with its headers and any `headers` more."""
    body = encode_json(content)
    listed = with_length(body, JSON_CONTENT_TYPE)
    return status, (listed + header_list(headers) if headers else listed), body


async def send_answer(send: Send, answer: Answer) -> None:
    """Send an answer whole: its head, then its body."""
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_answer(error: api_errors.ApiError) -> Answer:
    """The documented `{"error": ...}` envelope of an ApiError, with its headers."""
    return answer(wire.error_body(error.message), error.status, error.headers)


def server_error(error: BaseException) -> api_errors.ApiError:
    """The 500 of an unexpected exception: never expected, a bug in the fake, said in the envelope."""
    return api_errors.ApiError(500, f"The fake failed unexpectedly: {type(error).__name__}: {error}")


def asgi_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    """The first value of the header `name` (lower case, as ASGI names are) in raw ASGI headers; empty if absent.

    ASGI's byte pairs, whose names the server has lower-cased: an exact match, and bytes for the
    caller to parse. Text headers as HAR holds them, in any case, are `har.text_header`'s.
    """
    for key, value in headers:
        if key == name:
            return value
    return b""


class JSONResponse(responses.JSONResponse):
    """Starlette's JSONResponse, with the encoding of Segmind's answers."""

    def render(self, content: Any) -> bytes:
        """Encode `content` as compact UTF-8 JSON."""
        return encode_json(content)

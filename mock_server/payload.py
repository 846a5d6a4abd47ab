"""Reading a request's JSON body safely: bounded in size, strict JSON (`strict_json`), an object at the top."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from mock_server.api_errors import ApiError
from mock_server.strict_json import parse_json_object


async def read_body(declared: bytes, receive: Receive, limit: int) -> bytes:
    """Return the raw body from `receive`, answering 413 as soon as it is known to pass `limit` bytes.

    `declared` is the content-length header (empty without one).
    """
    # More digits than any limit has is too large, without converting them (int() of 4,300+ raises).
    if declared.isdigit() and (len(declared) > len(str(limit)) or int(declared) > limit):
        raise _too_large(limit)
    # Straight from `receive`: Starlette's `request.stream()` async generator costs a tenth of a submit.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if not message.get("more_body", False):
            # A body in one message (nearly all) comes back as it is.
            return b"".join((*chunks, chunk)) if chunks else chunk
        chunks.append(chunk)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """Return the body parsed as a JSON object, or raise a 400/413 that says what to fix."""
    declared = request.headers.get("content-length", "").encode("latin-1")
    return parse_json_object(await read_body(declared, request.receive, limit))


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than the fake's limit of {limit} bytes")

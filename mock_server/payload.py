"""Reading a request's JSON body safely: bounded in size, strict JSON, an object at the top."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from mock_server.wire import ApiError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON but overflows to infinity, which no JSON answer can carry back.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float")
    return value


def _readable_int(text: str) -> int:
    # int() refuses more digits than this, with advice (sys.set_int_max_str_digits) meant for the server.
    digits, limit = len(text.lstrip("-")), sys.get_int_max_str_digits()  # a limit of 0: none
    if limit and digits > limit:
        raise ValueError(f"the number {text[:20]}… has {digits} digits, more than any value the fake takes")
    return int(text)


# Built once: `json.loads` with options builds a decoder on every call, a third of a submit's parsing.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_readable_int)


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


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse `body` as one strict JSON object, or raise a 400 that says what to fix."""
    value = parse_json(body)
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise ApiError(400, f"Request body must be a JSON object of parameters, got {kind}")
    return value


def parse_json(body: bytes) -> Any:
    """Parse `body` as one strict JSON value that a JSON answer can carry back, or raise a 400 saying why not.

    Strict: no NaN or Infinity, no number overflowing a float, no unpaired surrogate escape.
    """
    if not body.strip():
        raise ApiError(400, "Request body is empty: send the parameters as a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"Request body is not valid UTF-8 (byte {error.start}): send UTF-8 JSON") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise ApiError(400, "Request body is nested too deeply: send a flat JSON object of parameters") from None
    except ValueError as error:
        raise ApiError(400, f"Request body is not valid JSON: {error}") from None
    if (b"\\ud" in body or b"\\uD" in body) and not _encodable(value):
        raise ApiError(400, "Request body has an unpaired surrogate escape such as \\ud800: send valid Unicode text")
    return value


def _encodable(value: Any) -> bool:
    # JSON may spell a lone UTF-16 surrogate ("\ud800"); Python decodes it to a str no response
    # can encode. Checked only when the raw body holds such an escape, so valid bodies pay nothing.
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than the fake's limit of {limit} bytes")

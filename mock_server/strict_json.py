"""Strict JSON: a body parsed as one JSON value a JSON answer can carry back, or a 400 saying why not.

No HTTP here: the journal (storage) parses the bodies it shows with it, as the request path does.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from mock_server.api_errors import ApiError


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

"""The journal's records: what clients sent to the Segmind routes and what they got back, kept raw."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

import msgspec

from contracts.openapi import API_KEY_PATTERN
from mock_server.api_errors import ApiError
from mock_server.strict_json import parse_json

# Bodies are kept up to this size; base64 images would otherwise fill memory.
BODY_CAPTURE_BYTES = 4096
# Every other field is bounded too, so a thousand entries cost at most some megabytes whatever
# clients send: paths and query strings are cut to this many characters, and of an API key only
# the ends the masked view shows are kept (KEY_CAPTURE_BYTES at each end).
TEXT_CAPTURE_CHARS = 2048
KEY_CAPTURE_BYTES = 16
# Query parameters whose values are shown masked whatever they hold, like the x-api-key header
# (matched in the decoded name: `api%5Fkey` is `api_key`).
_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|credential|signature|session|bearer", re.IGNORECASE)
# Of a masked key, the fixed prefix every Segmind key has is shown (it tells nothing), then at most
# this many of its last characters, and never more than a third of them.
KEY_PREFIX = "SG_"
SHOWN_KEY_CHARS = 4


def mask_key(key: str | None) -> str | None:
    """Hide all of an API key but the `SG_` prefix and at most its last 4 characters (never over a third of them)."""
    if not key:
        return key
    prefix = KEY_PREFIX if key.startswith(KEY_PREFIX) else ""
    rest = key[len(prefix) :]
    shown = min(SHOWN_KEY_CHARS, len(rest) // 3)
    return prefix + "…" + (rest[-shown:] if shown else "")


def mask_query(query: str, api_key: str | None) -> str:
    """A query string with key-like parameters, and any parameter holding a key, masked: decoded before matching."""
    if not query:
        return query
    pieces = _key_pieces(api_key)
    return "&".join(_mask_parameter(part, pieces) for part in query.split("&"))


def _key_pieces(api_key: str | None) -> tuple[str, ...]:
    """What of the request's key to look for: the key, and its kept ends (a long key is journaled by its ends)."""
    if not api_key or len(api_key) <= 3:
        return ()
    if len(api_key) < 2 * KEY_CAPTURE_BYTES:
        return (api_key,)
    return (api_key, api_key[:KEY_CAPTURE_BYTES], api_key[-KEY_CAPTURE_BYTES:])


def _mask_parameter(part: str, pieces: tuple[str, ...]) -> str:
    name, equals, value = part.partition("=")
    clear_name, clear_value = unquote_plus(name), unquote_plus(value)
    if _holds_key(clear_name, pieces):
        name = mask_key(clear_name) or ""
    if value and (_SECRET_NAME.search(clear_name) or _holds_key(clear_value, pieces)):
        value = mask_key(clear_value) or ""
    return name + equals + value


def _holds_key(text: str, pieces: tuple[str, ...]) -> bool:
    # The request's key (or the ends kept of a long one), or any Segmind-shaped key, whoever's it is.
    return any(piece in text for piece in pieces) or API_KEY_PATTERN.search(text) is not None


class Entry(msgspec.Struct, gc=False):
    """One exchange, kept raw as the server saw it; decoding waits until someone reads the journal.

    A msgspec struct holding only strings, bytes and numbers, which the garbage collector never
    tracks (`gc=False`): a thousand entries, each living a thousand requests, cost no collections
    (docs/benchmarks.md). Of the headers, only the two the journal shows are kept: holding whole
    header lists for a thousand exchanges measurably slowed every poll in a server.
    """

    at: float  # the fake's time when journaled (`Service.finish` stamps it)
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

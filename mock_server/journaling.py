"""Journaling an exchange with a Segmind route: references to what passed, nothing built until read."""

from __future__ import annotations

from starlette.types import Scope

from mock_server.answers import asgi_header
from mock_server.journal import BODY_CAPTURE_BYTES, KEY_CAPTURE_BYTES, TEXT_CAPTURE_CHARS, Entry


def entry(
    scope: Scope,
    api_key: bytes,
    request: bytes,
    status: int | None,
    headers: list[tuple[bytes, bytes]],
    response: bytes,
) -> Entry:
    """The journal's entry of one exchange: the bodies' heads (no copies of shorter bodies) and sizes.

    `status`, `headers` and `response` are what reached the client (None: nothing was sent). The
    entry's time is left for the service to stamp (`Service.finish`).
    """
    response_type = asgi_header(headers, b"content-type")
    query: bytes = scope.get("query_string", b"")
    kept_key = api_key
    if len(api_key) > 2 * KEY_CAPTURE_BYTES:
        # Of a long key, only the ends its masked view shows (a key of a megabyte costs 32 bytes).
        kept_key = api_key[:KEY_CAPTURE_BYTES] + api_key[-KEY_CAPTURE_BYTES:]
        if api_key in query:
            # The journal masks the key it keeps wherever the query repeats it: keep the same ends there.
            query = query.replace(api_key, kept_key)
    return Entry(
        0.0,
        scope["method"],
        scope["path"][:TEXT_CAPTURE_CHARS],
        query[:TEXT_CAPTURE_CHARS],
        kept_key,
        request[:BODY_CAPTURE_BYTES],
        len(request),
        status,
        response_type,
        response[:BODY_CAPTURE_BYTES],
        len(response),
    )

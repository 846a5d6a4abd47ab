"""Journaling an exchange with a Segmind route: references to what passed, nothing built until read."""

from __future__ import annotations

from starlette.types import Scope

from mock_server.journal import BODY_CAPTURE_BYTES, Entry


def entry(at: float, scope: Scope, api_key: bytes, request: bytes, answer: tuple[int | None, bytes, bytes]) -> Entry:
    """The journal's record of one exchange: the bodies' heads (no copies of shorter bodies) and sizes.

    `answer` is what reached the client: its status (None: nothing was sent), content type and body.
    """
    status, response_type, response = answer
    return Entry(
        at,
        scope["method"],
        scope["path"],
        scope.get("query_string", b""),
        api_key,
        request[:BODY_CAPTURE_BYTES],
        len(request),
        status,
        response_type,
        response[:BODY_CAPTURE_BYTES],
        len(response),
    )

"""Answers whose only varying part is the request id: encoded once per base URL, then filled in by bytes.join.

A submit's answer and a waiting job's status are what clients get most, and for one base URL
(the host the client called) they differ only in the request id. Each is encoded once, from the
body `wire` defines, with a marker where the id goes, and split there; an answer is then the
pieces joined with the id. The shape is still written once, in `wire`; only its encoding is kept.
Request ids are the fake's own (`jobs.new_request_id`: hex digits and dashes), which JSON writes
as they are, so joining them in needs no escaping.
"""

from __future__ import annotations

from mock_server import wire
from mock_server.answers import JSON_CONTENT_TYPE, Answer, answer, encode_json, with_length
from mock_server.bounded_cache import BoundedCache
from mock_server.jobs import WAITING, State

# Clients call few hosts, but the Host header is theirs to choose: so many bases are kept, and a
# base too long to keep (`bounded_cache.LONGEST_KEY_CHARS`) gets its answers encoded whole.
TEMPLATE_CACHE_SIZE = 256
# Where the request id goes. JSON escapes its NUL characters (\u0000), which no Host header holds,
# so its encoding is found only where the id goes; a base whose encoding holds it is encoded whole.
_MARKER = "\x00request-id\x00"
_ENCODED_MARKER = encode_json(_MARKER)[1:-1]


class Templates:
    """The answers of one base URL that vary only by request id, each split where the id goes."""

    __slots__ = ("submit", "waiting")

    def __init__(self, base: str | None) -> None:
        """Split the answers on `base`; None, or a base whose encoding holds the marker, gets none."""
        self.submit: list[bytes] | None = None
        self.waiting: dict[State, list[bytes]] = {}
        if base is not None and _ENCODED_MARKER not in encode_json(base):  # else it would be split there
            self.submit = _split(wire.submit_body(_MARKER, base))
            self.waiting = {state: _split(wire.waiting_body(state, _MARKER, base)) for state in WAITING}


_TEMPLATES: BoundedCache[str, Templates] = BoundedCache(TEMPLATE_CACHE_SIZE)
_NONE = Templates(None)  # for a base too long to keep: its answers are encoded whole


def templates(base: str) -> Templates:
    """The templates of answers on `base`, built at its first use."""
    found = _TEMPLATES.get(base)
    if found is None:
        if len(base) > _TEMPLATES.longest:  # not kept: not worth splitting for one answer
            return _NONE
        found = Templates(base)
        _TEMPLATES.keep(base, found, len(base))
    return found


def submit_answer(request_id: str, base: str) -> Answer:
    """The 200 answer to `POST /v2/{model}` for the job `request_id`, its URLs on `base`."""
    pieces = templates(base).submit
    if pieces is None:
        return answer(wire.submit_body(request_id, base))
    body = request_id.encode().join(pieces)
    return 200, with_length(body, JSON_CONTENT_TYPE), body


def waiting_answer(request_id: str, state: State, base: str) -> Answer:
    """The 200 status answer of a job still waiting (`state` one of `jobs.WAITING`), its URLs on `base`."""
    pieces = templates(base).waiting.get(state)
    if pieces is None:
        return answer(wire.waiting_body(state, request_id, base))
    body = request_id.encode().join(pieces)
    return 200, with_length(body, JSON_CONTENT_TYPE), body


def _split(body: dict[str, object]) -> list[bytes]:
    return encode_json(body).split(_ENCODED_MARKER)

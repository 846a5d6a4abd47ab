"""The fake's journal as a HAR recording, with the same `_segmind` fields as a live one (times simulated).

So fake and live traffic are read by one tool and diffed (`GET /_mock/journal.har`,
`segmind-mock journal`, `SegmindMock.journal_har`). The journal keeps less than a recorder: of the
headers, the key (written as the placeholder) and the answer's content type; bodies up to 4 KiB
(a longer one is cut, and its HAR body says so in `comment`); so a video answer is described by
its size alone (`_sha256` and `_media` null). Keys the journal saw, and anything shaped like a
Segmind key, are replaced by the placeholder wherever they appear; the scan then runs as for a
recording.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from msgspec import UNSET, UnsetType

from contracts.openapi import API_KEY_HEADER
from contracts.responses import STATES
from mock_server import har, redaction
from mock_server.jobs import Job
from mock_server.journal import Entry

# The journal answers at one simulated moment: no time passes in it.
_INSTANT = har.Timings(send=0.0, wait=0.0, receive=0.0)


def journal_har(
    entries: Sequence[Entry], job: Callable[[str], Job | None], base_url: str, version: str, now: float
) -> har.Har:
    """The journal's `entries` (oldest first) as HAR: `job` looks a retained job up, `base_url` is where the fake is."""
    base = base_url.rstrip("/")
    keys = {entry.api_key.decode("latin-1") for entry in entries if entry.api_key}
    submitted: dict[str, tuple[float, str | None]] = {}
    described = [_entry(entry, base, keys, submitted, job) for entry in entries]
    began = entries[0].at if entries else now
    return har.Har(
        har.Log(har.HAR_VERSION, har.Creator(har.TOOL, version), described, har.log_facts(version, base, began))
    )


def _entry(
    entry: Entry,
    base: str,
    keys: set[str],
    submitted: dict[str, tuple[float, str | None]],
    job: Callable[[str], Job | None],
) -> har.Entry:
    route = har.route_of(entry.method, entry.path)
    role, model, request_id = route if route is not None else ("error", None, None)
    response_type = entry.response_type.decode("latin-1")
    body = har.decoded_json(entry.response_body) if entry.response_size == len(entry.response_body) else None
    state = body.get("status") if isinstance(body, dict) and body.get("status") in STATES else None
    if role == "submit" and isinstance(body, dict) and isinstance(body.get("request_id"), str):
        request_id = body["request_id"]
        submitted[request_id] = (entry.at, model)
    if role == "sync":
        state = har.sync_state(entry.status)
    seen = submitted.get(request_id) if request_id is not None else None
    if seen is None and request_id is not None and (found := job(request_id)) is not None:
        seen = submitted[request_id] = (found.submitted_at, found.model)
    since = round(entry.at - seen[0], 3) if seen is not None else (0.0 if role == "sync" else None)
    query = _clean(entry.query.decode("latin-1"), keys)
    return har.Entry(
        startedDateTime=har.iso_time(entry.at),
        time=0.0,
        request=_request(entry, base + _clean(entry.path, keys) + (f"?{query}" if query else ""), keys),
        response=_response(entry, response_type, keys),
        timings=_INSTANT,
        segmind=har.EntryFacts(role, model or (seen[1] if seen else None), request_id, since, state),
    )


def _request(entry: Entry, url: str, keys: set[str]) -> har.Request:
    headers = [har.Header(API_KEY_HEADER, har.REDACTED)] if entry.api_key else []
    post: har.PostData | UnsetType = UNSET
    if entry.request_size:
        text = _clean(entry.request_body.decode("utf-8", "replace"), keys)
        post = har.PostData("application/json", text, _cut(len(entry.request_body), entry.request_size))
    return har.Request(
        method=entry.method,
        url=url,
        httpVersion="HTTP/1.1",
        headers=headers,
        queryString=har.query_string(url),
        bodySize=entry.request_size,
        postData=post,
    )


def _response(entry: Entry, response_type: str, keys: set[str]) -> har.Response:
    headers = [har.Header("content-type", response_type)] if response_type else []
    if har.is_media(response_type):
        content = har.Content(
            size=entry.response_size,
            mimeType=response_type,
            comment=f"the journal keeps the first {len(entry.response_body)} bytes only",
            sha256=None,
            media=None,
        )
    else:
        text = redaction.unsigned_text(_clean(entry.response_body.decode("utf-8", "replace"), keys))
        comment = _cut(len(entry.response_body), entry.response_size)
        content = har.Content(size=entry.response_size, mimeType=response_type, text=text, comment=comment)
    status = entry.status or 0  # 0: no answer was sent (HAR's aborted request)
    return har.Response(
        status=status,
        statusText=har.status_text(status),
        httpVersion="HTTP/1.1",
        headers=headers,
        content=content,
        bodySize=entry.response_size if entry.status is not None else -1,
    )


def _clean(text: str, keys: set[str]) -> str:
    return redaction.without_keys(text, keys)


def _cut(kept: int, size: int) -> str | UnsetType:
    return f"cut by the journal to its first {kept} of {size} bytes" if size > kept else UNSET

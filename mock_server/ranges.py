"""Serving bytes held in memory as a player expects a file: length, HEAD and single byte ranges.

Starlette's FileResponse does ranges for files on disk; the fake's videos are bytes in memory.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from mock_server import api_errors

# One range of the `bytes` unit: "a-b", "a-" or "-n" (RFC 9110, section 14.1.2).
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# Offsets of more digits than this are past the end of any video, so they are not converted
# (int() of 4,300+ digits raises); the range then reads as asking for more than there is.
OFFSET_DIGITS = 18
PAST_ANY_END = 10**OFFSET_DIGITS


def ranged_response(request: Request, body: bytes, media_type: str) -> Response:
    """Answer with `body`, or the part a `Range` header asks for (206); raise the 416 when none of it is there."""
    size = len(body)
    headers = {"accept-ranges": "bytes"}
    wanted = byte_range(request.headers.get("range", ""), size)
    if wanted is None:
        status, part = 200, body
    elif not wanted:
        headers["content-range"] = f"bytes */{size}"
        message = f"Range {request.headers['range'][:100]} is outside the video, which is {size} bytes long"
        raise api_errors.ApiError(416, message, headers)
    else:
        status, part = 206, body[wanted.start : wanted.stop]
        headers["content-range"] = f"bytes {wanted.start}-{wanted.stop - 1}/{size}"
    headers["content-length"] = str(len(part))
    # HEAD answers the same headers without the bytes (Starlette routes HEAD to GET endpoints).
    return Response(b"" if request.method == "HEAD" else part, status, headers, media_type)


def byte_range(header: str, size: int) -> range | None:
    """Parse a `Range` header for a body of `size` bytes: the offsets asked for, empty if none exist (416).

    None means serve the whole body, as RFC 9110 lets a server do with a header it does not parse,
    another unit, or several ranges.
    """
    match = _SINGLE_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        return range(max(size - _offset(last_text), 0), size)  # the last n bytes; "-0" asks for none
    first = _offset(first_text)
    if not last_text:
        return range(first, max(first, size))  # empty when `first` is past the end
    last = _offset(last_text)
    if last < first:
        return None  # not a valid range-spec, so the header is ignored
    return range(first, max(first, min(last + 1, size)))


def _offset(digits: str) -> int:
    return int(digits) if len(digits) <= OFFSET_DIGITS else PAST_ANY_END

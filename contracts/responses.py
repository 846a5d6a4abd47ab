"""The documented response shapes, as JSON-Schema-like data, and a small checker for them.

The OpenAPI document embeds these schemas and the contract suite checks live bodies against
them, so each shape is written once. Evidence as in `shared/wire-format.md`: DOCS, SDK, 2ND, GUESS.
Schemas stay as loose as the evidence: they require what the docs and the SDK rely on and
allow extra keys, so a harmless addition on the real service is not reported as drift.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from contracts.spec import VIDEO_OUTPUT, show_value

Schema = dict[str, Any]

# The documented states of a v2 request, in the order a job may move through them (DOCS).
STATES = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED")
WAITING_STATES = ("QUEUED", "PROCESSING")
FINAL_STATES = ("COMPLETED", "FAILED")
# A FAILED request is served with this status, on the status and result endpoints alike (DOCS, SDK).
FAILED_STATUS = 422
# A v1 call whose job fails answers this status with the error envelope (GUESS, like v2's FAILED).
SYNC_FAILED_STATUS = FAILED_STATUS
# Results and statuses are kept this long after submission, then every poll endpoint is 404 (DOCS).
RESULT_RETENTION_SECONDS = 3600.0
# Rate limits count requests in a sliding window of one minute (DOCS); a 429 says when the client
# may try again in this header, as UTC (2ND), written in this format (GUESS).
RATE_LIMIT_WINDOW_SECONDS = 60.0
RATE_LIMIT_RESET_HEADER = "x-rate-limit-reset-at-utc"
RATE_LIMIT_RESET_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# A v1 answer's headers (2ND): always these, and the billing ones when the call is billed (DOCS).
SYNC_HEADERS = ("x-request-id", "x-generation-time", "x-seed-value")
SYNC_BILLING_HEADERS = ("x-cost", "x-remaining-credits")
# Output videos are MP4 (GUESS for the exact content type); the v1 reply with "base64": true is
# JSON with the video under this key (GUESS).
VIDEO_CONTENT_TYPE = VIDEO_OUTPUT  # the media type a video model's file declares
BASE64_VIDEO_KEY = "video"
# An image model's v1 reply with "base64": true has its picture under this key (GUESS).
BASE64_IMAGE_KEY = "image"

# The documented error codes and their meanings, common to both models (DOCS).
ERROR_CODES: dict[int, str] = {
    400: "Bad Request: invalid parameters or request format",
    401: "Unauthorized: missing or invalid API key",
    403: "Forbidden: insufficient permissions",
    404: "Not Found: model or endpoint not found",
    406: "Insufficient Credits: not enough credits to process request",
    429: "Rate Limited: too many requests",
    500: "Server Error: internal server error",
    502: "Bad Gateway: service temporarily unavailable",
    504: "Timeout: request timed out",
}
# Errors a client may retry rather than raise: the call may succeed next time. The others are
# refusals that will not change, so a client must not send the same call again.
TRANSIENT_CODES = frozenset({429, 500, 502, 504})
FINAL_CODES = frozenset(ERROR_CODES) - TRANSIENT_CODES
# Codes a submission may answer, and codes a poll may answer: a poll has no body to refuse and
# costs no credits, and an unknown or expired id is 404 (DOCS).
SUBMIT_ERROR_CODES = tuple(ERROR_CODES)
POLL_ERROR_CODES = (401, 403, 404, 429, 500, 502, 504)

_UUID = {"type": "string", "format": "uuid"}
# JSON Schema's "uri" is an absolute URI; the SDK follows these URLs as given (SDK tests).
_URL = {"type": "string", "format": "uri"}
# Metric keys vary: inference_time (DOCS, SDK), queue_time, total_time, cost (2ND).
_METRICS = {"type": "object"}

ERROR: Schema = {
    "title": "Error",
    "description": 'The error envelope of every refused call: {"error": "<message>"} (SDK reads only `error`).',
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "minLength": 1}},
}
SUBMIT: Schema = {
    "title": "Submitted",
    "description": "200 answer to POST /v2/{model}: the request id and absolute poll URLs (DOCS, SDK).",
    "type": "object",
    "required": ["request_id", "status", "status_url", "response_url"],
    "properties": {
        "request_id": _UUID,
        "status": {"type": "string", "enum": ["QUEUED"]},
        "poll_url": _URL,
        "status_url": _URL,
        "response_url": _URL,
    },
}
STATUS_WAITING: Schema = {
    "title": "Waiting",
    "description": "Status while QUEUED (DOCS) or PROCESSING (same shape, GUESS).",
    "type": "object",
    "required": ["status", "request_id"],
    "properties": {
        "status": {"type": "string", "enum": list(WAITING_STATES)},
        "request_id": _UUID,
        "status_url": _URL,
        "response_url": _URL,
        "metrics": _METRICS,
    },
}
STATUS_COMPLETED: Schema = {
    "title": "Completed status",
    "description": "Status once COMPLETED: the result is ready at response_url (DOCS).",
    "type": "object",
    "required": ["status", "request_id"],
    "properties": {"status": {"type": "string", "enum": ["COMPLETED"]}, "request_id": _UUID, "metrics": _METRICS},
}
FAILED: Schema = {
    "title": "Failed",
    "description": f"A FAILED request, content (RAI) blocks included, served with HTTP {FAILED_STATUS} (DOCS, SDK).",
    "type": "object",
    "required": ["status", "error"],
    "properties": {
        "status": {"type": "string", "enum": ["FAILED"]},
        "error": {"type": "string", "minLength": 1},
        "request_id": _UUID,
        "metrics": _METRICS,
    },
}
RESULT_COMPLETED: Schema = {
    "title": "Result",
    "description": "The result of a COMPLETED request: output is the video URL, or base64 video data (DOCS, SDK).",
    "type": "object",
    "required": ["status", "output", "metrics"],
    "properties": {
        "status": {"type": "string", "enum": ["COMPLETED"]},
        "output": {"type": "string", "minLength": 1},
        "metrics": _METRICS,
        "request_id": _UUID,
    },
}
RESULT_WAITING: Schema = {
    "title": "Result not ready",
    "description": "The result endpoint before the request ends: its status, no output (GUESS: undocumented).",
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": list(WAITING_STATES)}},
}
# The 200 bodies of the poll endpoints: each alternative is told apart by its `status`.
STATUS: Schema = {"oneOf": [STATUS_WAITING, STATUS_COMPLETED]}
RESULT: Schema = {"oneOf": [RESULT_COMPLETED, RESULT_WAITING]}

# The schema a status body must meet, per state; FAILED is served with FAILED_STATUS.
STATUS_BY_STATE: dict[str, Schema] = {
    "QUEUED": STATUS_WAITING,
    "PROCESSING": STATUS_WAITING,
    "COMPLETED": STATUS_COMPLETED,
    "FAILED": FAILED,
}
RESULT_BY_STATE: dict[str, Schema] = {
    "QUEUED": RESULT_WAITING,
    "PROCESSING": RESULT_WAITING,
    "COMPLETED": RESULT_COMPLETED,
    "FAILED": FAILED,
}

_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}


def show_seconds(seconds: float) -> str:
    """A duration in its largest whole unit, as a message says it: `1 hour`, `90 minutes`, `45 s`."""
    for unit, name in ((3600, "hour"), (60, "minute")):
        if seconds >= unit and seconds % unit == 0:
            count = int(seconds // unit)
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds:g} s"


def is_absolute_url(value: str) -> bool:
    """Tell whether `value` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def problems(schema: Schema, value: Any, path: str = "") -> list[str]:
    """Return what in `value` breaks `schema`, one readable line each; empty when it conforms.

    Understands the subset these schemas use: type, required, properties, enum, minLength,
    oneOf, and the formats uuid and uri (absolute).
    """
    where = f"{path}: " if path else ""
    if "oneOf" in schema:
        return _one_of(schema["oneOf"], value, path)
    wanted = schema.get("type")
    if wanted is not None and not _is_type(value, wanted):
        return [f"{where}expected {wanted}, got {show_value(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(show_value(option) for option in schema["enum"])
        return [f"{where}{show_value(value)} is not one of {options}"]
    if isinstance(value, str):
        return [f"{where}{line}" for line in _string_problems(schema, value)]
    if isinstance(value, dict):
        found = [f"{where}missing required key {key!r}" for key in schema.get("required", ()) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += problems(sub, value[key], f"{path}.{key}" if path else key)
        return found
    return []


def _one_of(options: list[Schema], value: Any, path: str) -> list[str]:
    results = [problems(option, value, path) for option in options]
    matched = sum(not result for result in results)
    if matched == 1:
        return []
    if matched > 1:
        return [f"{path or 'body'}: matches more than one documented shape"]
    # Report against the alternative whose `status` the body claims, when there is one.
    for option, result in zip(options, results, strict=True):
        if isinstance(value, dict) and value.get("status") in option.get("properties", {}).get("status", {}).get(
            "enum", ()
        ):
            return result
    titles = ", ".join(option.get("title", "?") for option in options)
    return [f"{path or 'body'}: matches none of the documented shapes ({titles}): {results[0][0]}"]


def _string_problems(schema: Schema, value: str) -> list[str]:
    if len(value) < schema.get("minLength", 0):
        return ["must not be empty"]
    form = schema.get("format")
    if form == "uuid" and not _UUID_TEXT.fullmatch(value):
        return [f"{show_value(value)} is not a uuid"]
    if form == "uri" and not is_absolute_url(value):
        return [f"{show_value(value)} is not an absolute URL"]
    return []


def _is_type(value: Any, wanted: str | list[str]) -> bool:
    names = [wanted] if isinstance(wanted, str) else wanted
    if isinstance(value, bool):
        return "boolean" in names
    if isinstance(value, float) and value.is_integer() and "integer" in names:
        return True
    return any(isinstance(value, _TYPES[name]) for name in names)

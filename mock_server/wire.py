"""The real service's wire format: bodies, messages and timings, with every guess kept here.

Each choice names its evidence as `shared/wire-format.md` does: DOCS (Segmind's pages), SDK
(segmind 1.3.0), 2ND (a third-party copy of the docs) or GUESS (the fake's own choice; change
it here when the truth is known).
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.models import MODELS
from contracts.openapi import API_KEY_SHAPE, POLL_PATH, RESULT_PATH, STATUS_PATH
from contracts.responses import (
    ERROR_CODES,
    RATE_LIMIT_RESET_FORMAT,
    RATE_LIMIT_RESET_HEADER,
    RATE_LIMIT_WINDOW_SECONDS,
    VIDEO_CONTENT_TYPE,
)
from contracts.spec import EXTENSIONS
from mock_server.jobs import Job, State

# Output files outlive results (2ND).
OUTPUT_RETENTION_SECONDS = 7 * 24 * 3600.0
# A scenario's 429 tells the client to retry one documented rate-limit window later (GUESS).
RATE_LIMIT_RESET_SECONDS = RATE_LIMIT_WINDOW_SECONDS
# The documented plans, in requests a minute (DOCS).
RATE_LIMIT_PLANS: dict[str, int] = {"free": 5, "pro": 50}
# Price of one run in credits: the "~$" figure on each model page (DOCS), one credit taken to be
# one US dollar (GUESS). The real price varies a little with the parameters ("Affects Pricing").
PRICES: dict[str, float] = {spec.slug: spec.price for spec in MODELS.values()}
# Recorded in the journal for a v1 call whose client hung up before its job ended (nginx's code
# for it); nobody receives it.
CLIENT_GONE_STATUS = 499
# Fake-only: an accepted job's input image (a local file, or a remote one the fake was allowed to
# fetch) is read again to render its video; if it is gone or changed by then, whatever needs the
# video (result, output URL, v1) answers this instead of a video of other pixels (GUESS: the real
# service reads its input only once).
INPUT_CHANGED_STATUS = 422
INPUT_CHANGED = "The input image changed or became unreadable after the job was accepted"

# Said when a request is not HTTP/1.1 the server can parse (GUESS: the real front end's text is unknown).
UNPARSABLE_REQUEST = "check the method (upper case), the path (no spaces or control characters) and the headers"
# The 503 past the server's limit of requests at once (GUESS: the real front end's text is unknown).
BUSY = (
    "Service Unavailable: the fake is serving as many requests as it allows at once "
    "(--max-concurrent-requests); retry shortly"
)
# The 401 of a request without a key: the real text (2ND), then which header to send (CHOICE): Segmind's
# docs and SDK send the key in x-api-key, and an `Authorization: Bearer` key is not read.
MISSING_KEY = (
    "Missing Authorization or x-api-key in header. Send your key as `x-api-key: SG_...`, the header "
    "Segmind's docs and SDK use (an `Authorization: Bearer` key is not read)"
)
# The 503 of a v1 call still waiting for its job when the server shuts down (GUESS: the fake's own).
SHUTTING_DOWN = "Service Unavailable: the fake is shutting down; send the request again once it is back"
# The 400 of a v1 call that would move a stopped clock for every client on a fake whose admin API
# needs its token, from a caller without it (CHOICE: the fake's own rule, docs/admin.md).
STOPPED_CLOCK = (
    "The fake's clock is stopped (speed 0, or virtual time): a v1 call would move it to its job's end for every "
    "client, which this fake allows only with its admin token (send `Authorization: Bearer <token>`). Or start "
    'the clock (POST /_mock/clock {"speed": 1}), or submit with POST /v2/{model} and poll'
)
# The balance reported (v1's `x-remaining-credits`, a completed job's `remaining_credits`) for a key
# without one: any key in open mode, a declared key without `credits`. A number, since clients parse
# it as one (segmind-workflow's total_credits_left() calls float()); it never goes down (CHOICE).
OPEN_KEY_CREDITS = 1_000_000.0
# The error of a `failed` scenario that names none (GUESS: the real text varies by cause).
FAILED_DEFAULT_ERROR = "Inference failed"
RAI_BLOCKED = "Content blocked: the input image or generated video violates the content policy (RAI)."  # GUESS

# The message of each documented error status is its documented meaning (DOCS), except 401's,
# whose real text is known (2ND). The codes themselves are the contract's.
STATUS_MESSAGES: dict[int, str] = {**ERROR_CODES, 401: "Unauthorized. API key is invalid or may have expired"}
# The 401 of a key the open mode refuses for its shape: the real text, then what the fake expected (CHOICE).
MALFORMED_KEY = (
    f"{STATUS_MESSAGES[401]}. Segmind's keys look like {API_KEY_SHAPE} (e.g. SG_0123456789abcdef); "
    "send the key alone in x-api-key, or start the fake with a config declaring yours"
)


class ApiError(Exception):
    """An error answered to the client in the documented `{"error": ...}` envelope, after `delay_seconds`."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, delay_seconds: float = 0.0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.delay_seconds = delay_seconds


def error_body(message: str) -> dict[str, str]:
    """Return the documented error envelope (SDK reads only `error`)."""
    return {"error": message}


def not_found(request_id: str) -> ApiError:
    """The 404 for an unknown or expired request id (DOCS, message 2ND)."""
    return ApiError(404, f"Request {request_id} not found")


def no_route(method: str, path: str) -> ApiError:
    """The 404 for a path the fake does not serve (GUESS: the service's own answer is unknown)."""
    return ApiError(404, f"No route for {method} {path}: see docs/wire-format.md for the routes")


def method_not_allowed(method: str, path: str, allowed: list[str]) -> ApiError:
    """The 405 for a served path called with another method, naming the ones it takes (GUESS)."""
    allow = ", ".join(allowed)
    message = f"Method {method} is not allowed on {path}" + (f"; use {allow}" if allow else "")
    return ApiError(405, message, {"Allow": allow})


def rate_limit_headers(seconds_left: float) -> dict[str, str]:
    """Headers of a 429: when the client may try again, in UTC (2ND; format GUESS); see `reset_time`."""
    return {RATE_LIMIT_RESET_HEADER: reset_time(seconds_left)}


def reset_time(seconds_left: float) -> str:
    """The time of day `seconds_left` real seconds from now, as a 429 states it: ISO 8601 UTC on the wall clock.

    The `Date` header's clock, never the fake's, which may run at any speed or have jumped: a client
    waiting until then, by `Date` or its own clock, has waited `seconds_left` (docs/accounts.md).
    Rounded up to the second, so that waiting until then is enough.
    """
    return datetime.fromtimestamp(math.ceil(time.time() + seconds_left), UTC).strftime(RATE_LIMIT_RESET_FORMAT)


def rate_limited(rpm: int) -> str:
    """The 429 message of a key past its rate limit (wording GUESS)."""
    return f"Rate limit exceeded: this API key allows {rpm} requests a minute"


def forbidden_model(model: str, allowed: list[str]) -> str:
    """The 403 message of a key that may not call `model` (wording GUESS)."""
    return f"Forbidden: this API key is not allowed to use {model}; it may use {', '.join(allowed)}"


def insufficient_credits(price: float, balance: float, held: float) -> str:
    """The 406 message, naming the balance and the price (wording GUESS)."""
    message = "Insufficient credits to process this request: "
    message += f"it costs {amount(price)} credits and the balance is {amount(balance)}"
    return message + (f", of which {amount(held)} is held for requests in progress" if held else "")


def amount(credits: float) -> str:
    """Credits as text, without float noise or exponents: 0.833, 12, -4.5."""
    return f"{credits:.6f}".rstrip("0").rstrip(".")


# The contract's poll paths, split once around the request id: filling them in on every submit and
# poll costs a tenth of what `str.format` would.
_POLL, _STATUS, _RESULT = (path.split("{request_id}") for path in (POLL_PATH, STATUS_PATH, RESULT_PATH))


def urls(base: str, request_id: str) -> dict[str, str]:
    """The absolute poll URLs of a request, on the host the client called (SDK tests)."""
    return {
        "poll_url": f"{base}{_POLL[0]}{request_id}{_POLL[1]}",
        "status_url": f"{base}{_STATUS[0]}{request_id}{_STATUS[1]}",
        "response_url": f"{base}{_RESULT[0]}{request_id}{_RESULT[1]}",
    }


# Fake-only: the poll routes are also served under this prefix, an equivalent path a `mirror_urls`
# scenario hands out instead of the usual ones (client verification: does a client follow them?).
MIRROR_PREFIX = "/mirror"


def output_url(base: str, request_id: str, extension: str = "mp4") -> str:
    """Where the fake serves a completed job's output file on the host `base` (real outputs live on a CDN)."""
    return f"{base}/_mock/outputs/{request_id}.{extension}"


def submit_body(request_id: str, base: str) -> dict[str, Any]:
    """The 200 answer to `POST /v2/{model}` (DOCS, SDK tests)."""
    # States go into answers as members: a StrEnum is its text, and `.value` costs a Python call.
    return {"request_id": request_id, "status": State.QUEUED, **urls(base, request_id)}


def metrics(job: Job, billing: Mapping[str, float] | None = None) -> dict[str, float]:
    """The metrics of a finished job; `inference_time` is the model's latency (DOCS).

    `billing` (`cost`, `remaining_credits`, 2ND) is given for completed jobs only: billing fields are
    left out on failure (2ND).
    """
    return {
        "inference_time": round(job.processing_seconds, 2),
        "queue_time": round(job.queue_seconds, 2),
        "total_time": round(job.queue_seconds + job.processing_seconds, 2),
        **(billing or {}),
    }


def ended_status_body(job: Job, state: State, billing: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The body of `GET /v2/requests/{id}/status` once COMPLETED or FAILED (DOCS); `waiting_body` before."""
    if state is State.FAILED:
        return failed_body(job)
    return {"status": state, "request_id": job.request_id, "metrics": metrics(job, billing)}


def failed_body(job: Job) -> dict[str, Any]:
    """The FAILED body, served with HTTP 422 on status and result alike (SDK)."""
    return {
        "status": State.FAILED.value,
        "error": job.error,
        "metrics": metrics(job),
        "request_id": job.request_id,
    }


def pending_result_body(job: Job, state: State, base: str) -> dict[str, Any]:
    """The body of `GET /v2/requests/{id}` while the job waits: its status (GUESS: undocumented)."""
    return _waiting({"status": state, "error": None, "output": None}, job.request_id, base)


def completed_body(
    job: Job, base: str, video: bytes, billing: Mapping[str, float] | None = None, media_type: str = VIDEO_CONTENT_TYPE
) -> dict[str, Any]:
    """The body of `GET /v2/requests/{id}` once COMPLETED, its output on the host `base`.

    Outputs are not mirrored: a result polled under the mirror prefix names the one output route.

    `output` is the output file's URL (DOCS), or the base64 file when the request set
    `"base64": true` (GUESS). An image model's result has no `video` object (GUESS).
    """
    extension = EXTENSIONS[media_type]
    url = output_url(base, job.request_id, extension)
    body: dict[str, Any] = {
        "status": State.COMPLETED.value,
        "error": None,
        "output": base64.b64encode(video).decode() if job.params.get("base64") else url,
        "metrics": metrics(job, billing),
        "request_id": job.request_id,
    }
    if media_type == VIDEO_CONTENT_TYPE:
        # 2ND: a `video` object may accompany the output.
        body["video"] = {
            "url": url,
            "content_type": VIDEO_CONTENT_TYPE,
            "file_name": f"{job.request_id}.{extension}",
            "file_size": len(video),
        }
    return body


def sync_headers(job: Job, billing: Mapping[str, float] | None = None) -> dict[str, str]:
    """Headers of a v1 reply (2ND): `billing` adds `x-cost` and `x-remaining-credits` (DOCS)."""
    return {
        "x-request-id": job.request_id,
        "x-generation-time": f"{job.processing_seconds:.2f}",
        "x-seed-value": str(job.seed),
        **{"x-" + name.replace("_", "-"): amount(value) for name, value in (billing or {}).items()},
    }


def waiting_body(state: State, request_id: str, base: str) -> dict[str, Any]:
    """The body of `GET /v2/requests/{id}/status` while the job is QUEUED or PROCESSING (DOCS; PROCESSING GUESS)."""
    return _waiting({"status": state}, request_id, base)


def _waiting(body: dict[str, Any], request_id: str, base: str) -> dict[str, Any]:
    # Filled in place, the two URLs built straight.
    body["request_id"] = request_id
    body["status_url"] = f"{base}{_STATUS[0]}{request_id}{_STATUS[1]}"
    body["response_url"] = f"{base}{_RESULT[0]}{request_id}{_RESULT[1]}"
    body["metrics"] = {}
    return body

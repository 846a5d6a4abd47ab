"""Errors the fake answers in the documented `{"error": ...}` envelope: `ApiError`, and every message of its own.

Each choice names its evidence as `shared/wire-format.md` does: DOCS (Segmind's pages), 2ND (a
third-party copy of the docs) or GUESS (the fake's own choice; change it here when the truth is
known). `answers.error_answer` writes the envelope.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from contracts.openapi import API_KEY_SHAPE
from contracts.responses import ERROR_CODES, RATE_LIMIT_RESET_FORMAT, RATE_LIMIT_RESET_HEADER
from mock_server.pricing import amount

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


def budget_spent(max_jobs: int) -> ApiError:
    """The 406 of a paid call past `segmind-mock record`'s budget, never forwarded (CHOICE: Segmind's "no credits")."""
    return ApiError(
        406,
        f"Not forwarded: this recording session has sent its {max_jobs} paid "
        f"call{'s' if max_jobs != 1 else ''} (--max-jobs {max_jobs}); restart `segmind-mock record` with a larger "
        "--max-jobs to record more",
    )


def unreachable(upstream: str, error: Exception) -> ApiError:
    """The 502 of a call the recorder could not forward or whose answer broke off (not retried, not recorded)."""
    return ApiError(502, f"Bad Gateway: the recorder got no whole answer from {upstream}: {error!r}; not retried")

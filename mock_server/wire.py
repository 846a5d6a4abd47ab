"""The real service's wire format: its answers' bodies and URLs, and the timings and texts they carry.

Each choice names its evidence as `shared/wire-format.md` does: DOCS (Segmind's pages), SDK
(segmind 1.3.0), 2ND (a third-party copy of the docs) or GUESS (the fake's own choice; change
it here when the truth is known). Errors and their messages live in `api_errors.py`, prices and
plans in `pricing.py`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from contracts.openapi import POLL_PATH, RESULT_PATH, STATUS_PATH
from contracts.responses import VIDEO_CONTENT_TYPE
from contracts.spec import EXTENSIONS
from mock_server.jobs import Job, State
from mock_server.pricing import amount

# Output files outlive results (2ND).
OUTPUT_RETENTION_SECONDS = 7 * 24 * 3600.0
# The error of a `failed` scenario that names none (GUESS: the real text varies by cause).
FAILED_DEFAULT_ERROR = "Inference failed"
RAI_BLOCKED = "Content blocked: the input image or generated video violates the content policy (RAI)."  # GUESS


def error_body(message: str) -> dict[str, str]:
    """Return the documented error envelope (SDK reads only `error`)."""
    return {"error": message}


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


# Fake-only: where the fake serves completed jobs' output files (real outputs live on a CDN).
OUTPUTS_PATH = "/_mock/outputs/"


def output_url(base: str, request_id: str, extension: str = "mp4") -> str:
    """Where the fake serves a completed job's output file on the host `base` (real outputs live on a CDN)."""
    return f"{base}{OUTPUTS_PATH}{request_id}.{extension}"


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

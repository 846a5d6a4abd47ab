"""Drift: recordings of the live API graded against the contract's rules and against the fake itself.

Every fact is a contract rule (`contracts.rules`, graded DOCS, SDK, 2ND or GUESS), one of the
fake's GUESS choices (`wire.py`), the fake's agreement with live (the recorded requests re-sent to
an in-process fake at the same simulated times), or the known surface (no field or header nobody
knows). Per fact a verdict: confirmed, contradicted (expected and seen, with the HAR entry),
unobserved (with what recording would observe it), or stale (seen only in recordings older than
`--max-age`). Per contradiction a diagnosis. See docs/recording.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msgspec import UnsetType

from contracts import MODELS, PayloadError
from contracts.openapi import API_KEY_HEADER
from contracts.responses import (
    BASE64_VIDEO_KEY,
    ERROR,
    FAILED_STATUS,
    FINAL_STATES,
    RATE_LIMIT_RESET_FORMAT,
    RATE_LIMIT_RESET_HEADER,
    RESULT_BY_STATE,
    STATUS_BY_STATE,
    SUBMIT,
    SYNC_HEADERS,
    VIDEO_CONTENT_TYPE,
    is_absolute_url,
    problems,
)
from mock_server import har, redaction
from mock_server.drift_facts import FAKE_AGREES, KNOWN_FIELDS, OWN_FACTS, Found, check
from mock_server.drift_fake import against_fake
from mock_server.drift_report import Drift, Observation


class CannotRun(Exception):
    """Drift cannot judge: a file is not a recording, or cannot be read (exit 2)."""


class SecretInFile(Exception):
    """A recording holds a secret (exit 3): the message says what and where."""


def read(path: Path) -> har.Har:
    """Read a recording for drift: SecretInFile when it holds a secret, CannotRun when it is not a recording."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CannotRun(f"{path} cannot be read: {error.strerror or error}") from None
    try:
        decoded = json.loads(data)
    except ValueError:
        decoded = None
    findings = redaction.scan(decoded) if decoded is not None else []
    if findings:
        raise SecretInFile(f"{path} holds a secret: {redaction.describe(findings)}")
    try:
        return har.loads(data, str(path))
    except har.NotARecording as error:
        raise CannotRun(str(error)) from None


def grade(paths: Sequence[Path], max_age_seconds: float | None = None, now: float | None = None) -> Drift:
    """Grade recordings against the contract and the fake; raise CannotRun or SecretInFile."""
    drift = Drift([str(path) for path in paths])
    moment = datetime.now(UTC).timestamp() if now is None else now
    for path in paths:
        recording = read(path)
        recorded = datetime.fromisoformat(recording.log.segmind.recorded_at).timestamp()
        stale = max_age_seconds is not None and moment - recorded > max_age_seconds
        found = [*_contract(recording), *against_fake(path, recording)]
        broken = {index: fact for fact, index, held, _, _ in found if not held and fact not in OWN_FACTS}
        drift.observations += [
            Observation(fact, path.name, index, held, expected, seen, stale, _explaining(fact, index, broken))
            for fact, index, held, expected, seen in found
        ]
    return drift


def _explaining(fact: str, index: int, broken: Mapping[int, str]) -> str | None:
    """The contract fact live contradicts at an entry where the fake differs from live, if any."""
    return broken.get(index) if fact == FAKE_AGREES.name else None


def _contract(recording: har.Har) -> Iterator[Found]:
    """The contract's rules and the fake's guesses, checked entry by entry and job by job."""
    submitted: dict[str, tuple[str | None, dict[str, Any] | None]] = {}
    states: dict[str, list[str]] = {}
    for index, entry in enumerate(recording.log.entries):
        facts, request, response = entry.segmind, entry.request, entry.response
        # A journal keeps only the content type of the headers, and cuts long bodies (saying so in `comment`).
        kept = _Kept(
            headers=any(header.name.lower() != "content-type" for header in response.headers),
            body=isinstance(response.content.comment, UnsetType),
        )
        body = response.json() if kept.body else None
        kind = response.header("content-type") or response.content.mimeType
        yield from _surface(index, response, body)
        if request.header(API_KEY_HEADER) is None and facts.role != "output":
            yield check("missing-key-401", index, response.status == 401, "401", response.status)
        refused = response.status >= 400 and not (response.status == FAILED_STATUS and _is_failed(body))
        if refused:
            yield check("error-envelope", index, not problems(ERROR, body), '{"error": "<message>"}', body)
            yield check("error-content-type", index, kind.startswith("application/json"), "application/json", kind)
        if response.status == 429 and kept.headers:
            yield check(
                "rate-limit-reset",
                index,
                _is_reset_time(response.header(RATE_LIMIT_RESET_HEADER)),
                f"{RATE_LIMIT_RESET_HEADER}: {RATE_LIMIT_RESET_FORMAT}",
                response.header(RATE_LIMIT_RESET_HEADER) or "absent",
            )
        if request.method == "POST" and facts.model in MODELS and request.header(API_KEY_HEADER) is not None:
            payload = request.json()
            params = _validated(facts.model or "", payload)
            yield from _submission(index, facts.model or "", payload, params, response, body, kind, kept)
            if facts.request_id and response.status == 200:
                submitted[facts.request_id] = (facts.model, params)
        elif facts.role in ("status", "result") and facts.request_id:
            if facts.request_id not in submitted and response.status == 404:
                yield check("unknown-id-404", index, True, "404", 404)
            elif facts.request_id in submitted:
                yield from _poll(index, facts.role, facts.request_id, response.status, body, request.url)
                if isinstance(body, dict) and isinstance(body.get("status"), str):
                    states.setdefault(facts.request_id, []).append(body["status"])
                    yield from _order(index, states[facts.request_id])
        elif facts.role == "output":
            yield from _output(index, kind, response.content, *submitted.get(facts.request_id or "", (None, None)))


def _submission(
    index: int,
    model: str,
    payload: Any,
    params: dict[str, Any] | None,
    response: har.Response,
    body: Any,
    kind: str,
    kept: _Kept,
) -> Iterator[Found]:
    """The facts of a submission, `params` its payload as validation reads it (None: refused)."""
    spec = MODELS[model]
    if response.status in (401, 403, 406, 429) or response.status >= 500:
        return  # refused for another cause than its parameters
    if params is None:
        yield check("invalid-refused", index, response.status == 400, "400", response.status)
        return
    accepted = response.status == 200
    yield check("valid-accepted", index, accepted, "200", response.status)
    if dict(payload) == dict(spec.example):
        yield check("example-accepted", index, accepted, "200", response.status)
    if not accepted:
        return
    if isinstance(body, dict) and "status_url" in body:  # a v2 submission
        held = not problems(SUBMIT, body) and all(
            is_absolute_url(str(body.get(k))) for k in ("status_url", "response_url")
        )
        yield check(
            "submit-shape", index, held, "request_id, status QUEUED, absolute status_url and response_url", body
        )
        return
    if params.get("base64") and kept.body:
        carried = isinstance(body, dict) and any(isinstance(value, str) and len(value) > 100 for value in body.values())
        yield check(
            "sync-base64", index, carried, "JSON carrying the video as base64", body if body is not None else kind
        )
        if carried:
            yield check("base64-key", index, BASE64_VIDEO_KEY in body, f"key {BASE64_VIDEO_KEY!r}", sorted(body))
    elif not params.get("base64"):
        yield check("sync-video", index, kind.startswith("video/") and body is None, "a video/* body", kind)
        if kind.startswith("video/"):
            yield check("video-type", index, kind == VIDEO_CONTENT_TYPE, VIDEO_CONTENT_TYPE, kind)
    if not kept.headers:
        return
    missing = [name for name in SYNC_HEADERS if response.header(name) is None]
    yield check(
        "sync-headers",
        index,
        not missing,
        ", ".join(SYNC_HEADERS),
        f"missing {', '.join(missing)}" if missing else "all",
    )


@dataclass(frozen=True)
class _Kept:
    """What a recording kept of an answer: its headers (a journal keeps the content type alone), its whole body."""

    headers: bool
    body: bool


def _poll(index: int, role: str, request_id: str, status: int, body: Any, url: str) -> Iterator[Found]:
    state = body.get("status") if isinstance(body, dict) else None
    if status >= 400 and state != "FAILED":
        return
    failed = state == "FAILED"
    yield check("poll-answers", index, status == (FAILED_STATUS if failed else 200), "200, or 422 once FAILED", status)
    if failed or status == FAILED_STATUS:
        yield check(
            "failed-422", index, failed and status == FAILED_STATUS, "422 with status FAILED", f"{status} {state}"
        )
    if not isinstance(state, str):
        if role == "status" and status == 200:
            yield check("status-shape", index, False, "a status body with its `status`", body)
        return
    if role == "status":
        fact = "processing-shape" if state == "PROCESSING" else "status-shape"
        schema = STATUS_BY_STATE.get(state)
        yield check(fact, index, schema is not None and not problems(schema, body), f"the {state} status shape", body)
        yield check(
            "status-request-id", index, body.get("request_id") == request_id, request_id, body.get("request_id")
        )
        if state == "COMPLETED":
            metric = (
                (body.get("metrics") or {}).get("inference_time") if isinstance(body.get("metrics"), dict) else None
            )
            held = isinstance(metric, (int, float)) and not isinstance(metric, bool) and metric > 0
            yield check("completed-metrics", index, held, "metrics.inference_time > 0", body.get("metrics"))
        if state in FINAL_STATES:
            yield check("job-finishes", index, True, "COMPLETED or FAILED", state)
    else:
        schema = RESULT_BY_STATE.get(state)
        fact = "result-shape" if state in FINAL_STATES else "pending-result"
        yield check(fact, index, schema is not None and not problems(schema, body), f"the {state} result shape", body)
        if "/v1/requests/" in url:
            yield check("poll-url", index, True, "answers as response_url", state)


def _order(index: int, states: list[str]) -> Iterator[Found]:
    order = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED")
    ranks = [min(order.index(state), 2) if state in order else -1 for state in states]
    if len(ranks) > 1:
        held = ranks[-1] >= ranks[-2] and not (states[-2] in FINAL_STATES and states[-1] != states[-2])
        yield check("states-forward", index, held, f"after {states[-2]}, not an earlier state", states[-1])


def _validated(model: str, payload: Any) -> dict[str, Any] | None:
    """A payload as the contract's validation reads it (frames and fps as numbers); None if it does not pass."""
    try:
        return MODELS[model].validate(payload) if isinstance(payload, dict) else None
    except PayloadError:
        return None


def _output(index: int, kind: str, content: har.Content, model: str | None, params: Any) -> Iterator[Found]:
    yield check("output-video", index, kind.startswith("video/"), "video/*", kind)
    if kind.startswith("video/"):
        yield check("video-type", index, kind == VIDEO_CONTENT_TYPE, VIDEO_CONTENT_TYPE, kind)
    media = content.media if isinstance(content.media, har.MediaFacts) else None
    if media is None or not isinstance(params, dict):
        return
    yield check("video-playable", index, bool(media.frames), "decodable frames", f"{media.frames} frames")
    if model == "svd" and "frames" in params and media.frames is not None:  # the rule is svd's
        wanted = int(params["frames"])
        yield check("video-frames", index, media.frames == wanted, f"{wanted} frames", f"{media.frames} frames")
    if "fps" in params and media.fps is not None:
        wanted_fps = float(params["fps"])
        yield check("video-fps", index, abs(media.fps - wanted_fps) < 0.01, f"{wanted_fps:g} fps", f"{media.fps:g} fps")


def _surface(index: int, response: har.Response, body: Any) -> Iterator[Found]:
    unknown = [header.name for header in response.headers if header.value == redaction.PLACEHOLDER]
    unknown += [name for name in _fields(body) if name not in KNOWN_FIELDS]
    if unknown:
        yield check("known-surface", index, False, "only known fields and headers", ", ".join(unknown))
    elif body is not None or response.headers:
        yield check("known-surface", index, True, "only known fields and headers", "none new")


def _fields(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    names = []
    for key, value in body.items():
        names.append(key)
        if key in ("metrics", "video") and isinstance(value, dict):
            names += [f"{key}.{inner}" for inner in value]
    return names


def _is_failed(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") == "FAILED"


def _is_reset_time(value: str | None) -> bool:
    try:
        datetime.strptime(value or "", RATE_LIMIT_RESET_FORMAT)
    except ValueError:
        return False
    return True


def max_age(text: str) -> float:
    """Parse `--max-age`: seconds, or a number with s, m, h or d (e.g. 30d); raise ValueError."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    seconds = float(number) * unit
    if not seconds > 0:
        raise ValueError(f"--max-age must be a positive duration such as 30d, 12h or 3600 (got {text!r})")
    return seconds

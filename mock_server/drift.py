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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from msgspec import UnsetType

from contracts import MODELS, PayloadError
from contracts.openapi import API_KEY_HEADER
from contracts.report import Report, Violation
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
from contracts.rules import RULES, Grade
from contracts.rules import Rule as Fact
from mock_server import har, redaction
from mock_server.mock import SegmindMock
from mock_server.replay import Flow, Seen, load_recording
from mock_server.scenarios import LONGEST_HEADER_SECONDS
from mock_server.service import Settings
from mock_server.transport import PortalTransport

Verdict = Literal["confirmed", "contradicted", "unobserved", "stale"]
# Exit codes: no graded fact contradicted; one is; cannot run (or not a recording); a secret found.
EXIT_OK, EXIT_DRIFT, EXIT_ERROR, EXIT_SECRET = 0, 1, 2, 3
# Grades whose contradiction fails the run; GUESS ones (and new surface) fail only with --strict.
FAILING: frozenset[Grade] = frozenset({"DOCS", "SDK", "2ND"})
JUNIT_SUITE = "segmind-drift"

# The fake's GUESS choices a recording can settle (each kept in wire.py).
GUESSES = (
    Fact("processing-shape", "a PROCESSING status has the QUEUED status's shape (wire.waiting_body)", "GUESS"),
    Fact("pending-result", "the result of a waiting job is 200 with its status and no output", "GUESS"),
    Fact("video-type", f"videos are served as exactly {VIDEO_CONTENT_TYPE}", "GUESS"),
    Fact("base64-key", f"a base64 v1 answer carries the video under {BASE64_VIDEO_KEY!r}", "GUESS"),
)
# The fake against live, and what nobody knows: graded GUESS, since only --strict fails on them.
FAKE_AGREES = Fact("fake-agrees", "the fake answers each recorded request as live did, field by field", "GUESS")
KNOWN_SURFACE = Fact(
    "known-surface", "every field and header live sends is one the contract or the fake knows", "GUESS"
)
# The facts drift adds to the contract's: the fake against live, and the known surface.
OWN_FACTS = frozenset({FAKE_AGREES.name, KNOWN_SURFACE.name})
FACTS: dict[str, Fact] = {fact.name: fact for fact in (*RULES.values(), *GUESSES, FAKE_AGREES, KNOWN_SURFACE)}

# What recording observes each fact: said of an unobserved one.
OBSERVED_BY: dict[str, str] = {
    "missing-key-401": "a call sent without x-api-key",
    "unknown-id-404": "a poll of a request id that was never submitted",
    "invalid-refused": "a submission breaking a documented rule (e.g. svd frames 30)",
    "error-envelope": "any refused call (a 400, 401 or 404)",
    "error-content-type": "any refused call (a 400, 401 or 404)",
    "example-accepted": "a submission of a model's documented example",
    "valid-accepted": "a valid submission",
    "submit-shape": "a v2 submission",
    "poll-answers": "status polls of a submitted job",
    "states-forward": "status polls of a job until it ends",
    "status-shape": "status polls of a job until it ends",
    "status-request-id": "status polls of a job",
    "completed-metrics": "status polls of a job until COMPLETED",
    "result-shape": "the result of a COMPLETED job",
    "poll-url": "a poll of the submit answer's poll_url",
    "failed-422": "polls of a job that ends FAILED (a content-blocked input)",
    "job-finishes": "status polls of a job until it ends",
    "output-video": "fetching a completed job's output URL",
    "video-playable": "fetching an output with PyAV installed (recorded media facts)",
    "video-frames": "fetching an svd output with PyAV installed (recorded media facts)",
    "video-fps": "fetching an output with PyAV installed (recorded media facts)",
    "video-16-9": "`segmind-mock contract` against live (drift does not read a frame's shape)",
    "sync-video": "a v1 call without base64",
    "sync-base64": 'a v1 call with "base64": true',
    "sync-headers": "a v1 call",
    "retention-1h": "polls of a job more than an hour after its submission",
    "error-codes": "scenarios of the fake only (a recording sees only the codes live gave)",
    "rate-limit-reset": "a 429 (more calls a minute than the plan allows)",
    "processing-shape": "status polls while a job is PROCESSING",
    "pending-result": "a result fetched before the job ends",
    "video-type": "an output fetched, or a v1 call",
    "base64-key": 'a v1 call with "base64": true',
    "fake-agrees": "any recorded job",
    "known-surface": "any answer",
}
# The metrics and video fields the fake sends (wire.metrics, wire.completed_body; 2ND beside inference_time).
METRIC_FIELDS = tuple(
    f"metrics.{name}" for name in ("inference_time", "queue_time", "total_time", "cost", "remaining_credits")
)
VIDEO_FIELDS = tuple(f"video.{name}" for name in ("url", "content_type", "file_name", "file_size"))
# Fields of the fake's answers that differ by nature, compared by type only: ids, URLs, times, money, texts.
VOLATILE = frozenset(
    {"request_id", "poll_url", "status_url", "response_url", "output", "error", *METRIC_FIELDS}
    | set(VIDEO_FIELDS) - {"video.content_type"}
)
# Fields the contract or the fake knows: any other is new surface.
KNOWN_FIELDS = frozenset(
    {
        *(
            name
            for schema in (SUBMIT, ERROR, *STATUS_BY_STATE.values(), *RESULT_BY_STATE.values())
            for name in schema["properties"]
        ),
        *VOLATILE,
        "metrics",
        "video",
        *VIDEO_FIELDS,
        BASE64_VIDEO_KEY,
    }
)
# The key the in-process fake is called with; it accepts any well-formed one.
FAKE_KEY = "SG_0123456789abcdef"
FAKE_URL = "http://segmind-drift.invalid"


class CannotRun(Exception):
    """Drift cannot judge: a file is not a recording, or cannot be read (exit 2)."""


class SecretInFile(Exception):
    """A recording holds a secret (exit 3): the message says what and where."""


@dataclass(frozen=True)
class Observation:
    """One observation of a fact: where, whether it held, what was expected and what was seen."""

    fact: str
    file: str
    index: int
    held: bool
    expected: str = ""
    seen: str = ""
    stale: bool = False
    # For the fake differing from live: the contract fact live contradicts at the same entry, if any.
    explained_by: str | None = None

    @property
    def where(self) -> str:
        """The HAR entry, as a report names it."""
        return f"{self.file} entry {self.index}"

    @property
    def diagnosis(self) -> str:
        """What this contradiction means, and who acts on it."""
        if self.explained_by is not None:
            return (
                f"the fake does what the contract says, and live contradicts the contract here "
                f"({self.explained_by}): settle that fact first"
            )
        return diagnosis(FACTS[self.fact])


@dataclass
class Drift:
    """The verdicts of some recordings."""

    files: list[str]
    observations: list[Observation] = field(default_factory=list)

    def verdict(self, name: str) -> Verdict:
        """A fact's verdict over every recording."""
        found = [item for item in self.observations if item.fact == name]
        fresh = [item for item in found if not item.stale]
        if not found:
            return "unobserved"
        if not fresh:
            return "stale"
        return "contradicted" if any(not item.held for item in fresh) else "confirmed"

    def contradictions(self, name: str) -> list[Observation]:
        """The fresh observations contradicting a fact."""
        return [item for item in self.observations if item.fact == name and not item.held and not item.stale]

    def failed(self, strict: bool) -> bool:
        """Whether a fact of a failing grade (any, with `strict`) is contradicted."""
        return any(
            self.verdict(name) == "contradicted" and (strict or fact.grade in FAILING) for name, fact in FACTS.items()
        )

    def to_dict(self) -> dict[str, Any]:
        """The verdicts as JSON-ready data: per fact its grade, verdict, and each contradiction diagnosed."""
        facts = []
        for name, fact in FACTS.items():
            verdict = self.verdict(name)
            item: dict[str, Any] = {"fact": name, "description": fact.description, "grade": fact.grade}
            item["verdict"] = verdict
            item["observations"] = sum(1 for seen in self.observations if seen.fact == name)
            if verdict == "unobserved":
                item["observe_with"] = OBSERVED_BY[name]
            item["contradictions"] = [
                {"entry": seen.where, "expected": seen.expected, "seen": seen.seen, "diagnosis": seen.diagnosis}
                for seen in self.contradictions(name)
            ]
            facts.append(item)
        return {"files": self.files, "failed": self.failed(False), "facts": facts}

    def render(self) -> str:
        """The verdicts in words: a summary line, then each contradicted fact with its diagnosis."""
        counts = {verdict: 0 for verdict in ("confirmed", "contradicted", "unobserved", "stale")}
        for name in FACTS:
            counts[self.verdict(name)] += 1
        lines = [f"Drift over {', '.join(self.files)}: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."]
        for name, fact in FACTS.items():
            found = self.contradictions(name)
            if not found:
                continue
            lines.append(f"\nCONTRADICTED {name} [{fact.grade}]: {fact.description}\n  {diagnosis(fact)}")
            lines += [
                f"  - {seen.where}: expected {seen.expected}; seen {seen.seen}{_explained(seen)}" for seen in found[:3]
            ]
            if len(found) > 3:
                lines.append(f"  ... and {len(found) - 3} more")
        stale = [name for name in FACTS if self.verdict(name) == "stale"]
        if stale:
            lines.append(f"\nStale (seen only in recordings older than --max-age): {', '.join(stale)}")
        unobserved = [name for name in FACTS if self.verdict(name) == "unobserved"]
        if unobserved:
            lines.append(f"\nUnobserved ({len(unobserved)}):")
            lines += [f"  - {name}: observed by {OBSERVED_BY[name]}" for name in unobserved]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The verdicts as a markdown table, contradictions listed under it."""
        lines = ["# Drift report", "", f"Recordings: {', '.join(self.files)}", ""]
        lines += ["| fact | grade | verdict | note |", "| --- | --- | --- | --- |"]
        for name, fact in FACTS.items():
            verdict = self.verdict(name)
            found = self.contradictions(name)
            note = found[0].where if found else (f"observed by {OBSERVED_BY[name]}" if verdict == "unobserved" else "")
            lines.append(f"| {name} | {fact.grade} | {verdict} | {note} |")
        for name, fact in FACTS.items():
            found = self.contradictions(name)
            if found:
                lines += ["", f"## {name} [{fact.grade}]", "", diagnosis(fact), ""]
                lines += [
                    f"- {seen.where}: expected {seen.expected}; seen {seen.seen}{_explained(seen)}" for seen in found
                ]
        return "\n".join(lines) + "\n"

    def to_junit(self) -> str:
        """The verdicts as JUnit XML, through the contract suite's report: a fact per test case."""
        report = Report(base_url=", ".join(self.files), catalog=FACTS, suite=JUNIT_SUITE)
        for name in FACTS:
            verdict = self.verdict(name)
            report.checked[name] = sum(1 for seen in self.observations if seen.fact == name and not seen.stale)
            if verdict in ("unobserved", "stale"):
                report.left_out[name] = f"{verdict}: observed by {OBSERVED_BY[name]}"
            for seen in self.contradictions(name):
                message = f"{seen.where}: {seen.diagnosis}"
                report.violations.append(
                    Violation(name, message, seen.where, f"expected {seen.expected}; seen {seen.seen}")
                )
        return report.to_junit()


def _explained(seen: Observation) -> str:
    return f" (explained: live contradicts {seen.explained_by} here)" if seen.explained_by else ""


def diagnosis(fact: Fact) -> str:
    """What a contradiction of `fact` means, and who acts on it."""
    if fact is FAKE_AGREES:
        return "the fake differs from live where the contract agrees with live or is silent: change the fake (wire.py)"
    if fact is KNOWN_SURFACE:
        return "new surface: live sends a field or header nobody knows; decide whether the fake should send it"
    if fact.grade == "GUESS":
        return "live contradicts a GUESS: the guess was wrong; make the fake do what live did (wire.py)"
    return (
        f"live contradicts a documented fact ({fact.grade}): the vendor moved, or the evidence was wrong; "
        "a person decides"
    )


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
        found = [*_contract(recording), *_against_fake(path, recording)]
        broken = {index: fact for fact, index, held, _, _ in found if not held and fact not in OWN_FACTS}
        drift.observations += [
            Observation(fact, path.name, index, held, expected, seen, stale, _explaining(fact, index, broken))
            for fact, index, held, expected, seen in found
        ]
    return drift


# One observation before it is placed: the fact, the entry's index, whether it held, expected, seen.
Found = tuple[str, int, bool, str, str]


def _explaining(fact: str, index: int, broken: Mapping[int, str]) -> str | None:
    """The contract fact live contradicts at an entry where the fake differs from live, if any."""
    return broken.get(index) if fact == FAKE_AGREES.name else None


def _check(fact: str, index: int, held: bool, expected: str, seen: Any) -> Found:
    return fact, index, held, expected, seen if isinstance(seen, str) else json.dumps(seen)[:200]


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
            yield _check("missing-key-401", index, response.status == 401, "401", response.status)
        refused = response.status >= 400 and not (response.status == FAILED_STATUS and _is_failed(body))
        if refused:
            yield _check("error-envelope", index, not problems(ERROR, body), '{"error": "<message>"}', body)
            yield _check("error-content-type", index, kind.startswith("application/json"), "application/json", kind)
        if response.status == 429 and kept.headers:
            yield _check(
                "rate-limit-reset",
                index,
                _is_reset_time(response.header(RATE_LIMIT_RESET_HEADER)),
                f"{RATE_LIMIT_RESET_HEADER}: {RATE_LIMIT_RESET_FORMAT}",
                response.header(RATE_LIMIT_RESET_HEADER) or "absent",
            )
        if request.method == "POST" and facts.model in MODELS and request.header(API_KEY_HEADER) is not None:
            yield from _submission(index, facts.model or "", request.json(), response, body, kind, kept)
            if facts.request_id and response.status == 200:
                submitted[facts.request_id] = (facts.model, _validated(facts.model or "", request.json()))
        elif facts.role in ("status", "result") and facts.request_id:
            if facts.request_id not in submitted and response.status == 404:
                yield _check("unknown-id-404", index, True, "404", 404)
            elif facts.request_id in submitted:
                yield from _poll(index, facts.role, facts.request_id, response.status, body, request.url)
                if isinstance(body, dict) and isinstance(body.get("status"), str):
                    states.setdefault(facts.request_id, []).append(body["status"])
                    yield from _order(index, states[facts.request_id])
        elif facts.role == "output":
            yield from _output(index, kind, response.content, *submitted.get(facts.request_id or "", (None, None)))


def _submission(
    index: int, model: str, payload: Any, response: har.Response, body: Any, kind: str, kept: _Kept
) -> Iterator[Found]:
    spec = MODELS[model]
    if response.status in (401, 403, 406, 429) or response.status >= 500:
        return  # refused for another cause than its parameters
    params = _validated(model, payload)
    if params is None:
        yield _check("invalid-refused", index, response.status == 400, "400", response.status)
        return
    accepted = response.status == 200
    yield _check("valid-accepted", index, accepted, "200", response.status)
    if dict(payload) == dict(spec.example):
        yield _check("example-accepted", index, accepted, "200", response.status)
    if not accepted:
        return
    if isinstance(body, dict) and "status_url" in body:  # a v2 submission
        held = not problems(SUBMIT, body) and all(
            is_absolute_url(str(body.get(k))) for k in ("status_url", "response_url")
        )
        yield _check(
            "submit-shape", index, held, "request_id, status QUEUED, absolute status_url and response_url", body
        )
        return
    if params.get("base64") and kept.body:
        carried = isinstance(body, dict) and any(isinstance(value, str) and len(value) > 100 for value in body.values())
        yield _check(
            "sync-base64", index, carried, "JSON carrying the video as base64", body if body is not None else kind
        )
        if carried:
            yield _check("base64-key", index, BASE64_VIDEO_KEY in body, f"key {BASE64_VIDEO_KEY!r}", sorted(body))
    elif not params.get("base64"):
        yield _check("sync-video", index, kind.startswith("video/") and body is None, "a video/* body", kind)
        if kind.startswith("video/"):
            yield _check("video-type", index, kind == VIDEO_CONTENT_TYPE, VIDEO_CONTENT_TYPE, kind)
    if not kept.headers:
        return
    missing = [name for name in SYNC_HEADERS if response.header(name) is None]
    yield _check(
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
    yield _check("poll-answers", index, status == (FAILED_STATUS if failed else 200), "200, or 422 once FAILED", status)
    if failed or status == FAILED_STATUS:
        yield _check(
            "failed-422", index, failed and status == FAILED_STATUS, "422 with status FAILED", f"{status} {state}"
        )
    if not isinstance(state, str):
        if role == "status" and status == 200:
            yield _check("status-shape", index, False, "a status body with its `status`", body)
        return
    if role == "status":
        fact = "processing-shape" if state == "PROCESSING" else "status-shape"
        schema = STATUS_BY_STATE.get(state)
        yield _check(fact, index, schema is not None and not problems(schema, body), f"the {state} status shape", body)
        yield _check(
            "status-request-id", index, body.get("request_id") == request_id, request_id, body.get("request_id")
        )
        if state == "COMPLETED":
            metric = (
                (body.get("metrics") or {}).get("inference_time") if isinstance(body.get("metrics"), dict) else None
            )
            held = isinstance(metric, (int, float)) and not isinstance(metric, bool) and metric > 0
            yield _check("completed-metrics", index, held, "metrics.inference_time > 0", body.get("metrics"))
        if state in FINAL_STATES:
            yield _check("job-finishes", index, True, "COMPLETED or FAILED", state)
    else:
        schema = RESULT_BY_STATE.get(state)
        fact = "result-shape" if state in FINAL_STATES else "pending-result"
        yield _check(fact, index, schema is not None and not problems(schema, body), f"the {state} result shape", body)
        if "/v1/requests/" in url:
            yield _check("poll-url", index, True, "answers as response_url", state)


def _order(index: int, states: list[str]) -> Iterator[Found]:
    order = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED")
    ranks = [min(order.index(state), 2) if state in order else -1 for state in states]
    if len(ranks) > 1:
        held = ranks[-1] >= ranks[-2] and not (states[-2] in FINAL_STATES and states[-1] != states[-2])
        yield _check("states-forward", index, held, f"after {states[-2]}, not an earlier state", states[-1])


def _validated(model: str, payload: Any) -> dict[str, Any] | None:
    """A payload as the contract's validation reads it (frames and fps as numbers); None if it does not pass."""
    try:
        return MODELS[model].validate(payload) if isinstance(payload, dict) else None
    except PayloadError:
        return None


def _output(index: int, kind: str, content: har.Content, model: str | None, params: Any) -> Iterator[Found]:
    yield _check("output-video", index, kind.startswith("video/"), "video/*", kind)
    if kind.startswith("video/"):
        yield _check("video-type", index, kind == VIDEO_CONTENT_TYPE, VIDEO_CONTENT_TYPE, kind)
    media = content.media if isinstance(content.media, har.MediaFacts) else None
    if media is None or not isinstance(params, dict):
        return
    yield _check("video-playable", index, bool(media.frames), "decodable frames", f"{media.frames} frames")
    if model == "svd" and "frames" in params and media.frames is not None:  # the rule is svd's
        wanted = int(params["frames"])
        yield _check("video-frames", index, media.frames == wanted, f"{wanted} frames", f"{media.frames} frames")
    if "fps" in params and media.fps is not None:
        wanted_fps = float(params["fps"])
        yield _check(
            "video-fps", index, abs(media.fps - wanted_fps) < 0.01, f"{wanted_fps:g} fps", f"{media.fps:g} fps"
        )


def _surface(index: int, response: har.Response, body: Any) -> Iterator[Found]:
    unknown = [header.name for header in response.headers if header.value == redaction.PLACEHOLDER]
    unknown += [name for name in _fields(body) if name not in KNOWN_FIELDS]
    if unknown:
        yield _check("known-surface", index, False, "only known fields and headers", ", ".join(unknown))
    elif body is not None or response.headers:
        yield _check("known-surface", index, True, "only known fields and headers", "none new")


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


def _against_fake(path: Path, recording: har.Har) -> Iterator[Found]:
    """Each recorded flow's requests re-sent to an in-process fake at the same simulated times, answers compared."""
    flows = load_recording(path, recording).flows
    mock = SegmindMock(Settings(speed=0, virtual=True))
    with PortalTransport(mock.app) as transport, httpx.Client(transport=transport, base_url=FAKE_URL) as client:
        for flow in flows:
            yield from _replayed(client, mock, flow)


def _replayed(client: httpx.Client, mock: SegmindMock, flow: Flow) -> Iterator[Found]:
    headers = {API_KEY_HEADER: FAKE_KEY} if flow.keyed else {}
    if flow.accepted:
        queue, processing, error = flow.timeline()
        headers["x-mock-queue-seconds"] = str(min(queue, LONGEST_HEADER_SECONDS))
        headers["x-mock-processing-seconds"] = str(min(processing, LONGEST_HEADER_SECONDS))
        if error is not None:
            headers.update({"x-mock-outcome": "failed", "x-mock-error": error})
    path = f"/{'v1' if flow.role == 'sync' else 'v2'}/{flow.model}"
    started = mock.clock.now()
    answer = client.post(path, json=flow.params, headers=headers)
    yield from _compare(flow.answer, answer)
    fake_id = answer.json().get("request_id") if flow.role == "submit" and answer.status_code == 200 else None
    if not isinstance(fake_id, str):
        return
    seen_all = sorted(
        ((role, seen) for role, items in flow.polls.items() for seen in items), key=lambda pair: pair[1].since
    )
    for role, seen in seen_all:
        lag = started + seen.since - mock.clock.now()
        if lag > 0:
            mock.advance(lag)
        suffix = "/status" if role == "status" else ""
        polled = client.get(f"/v2/requests/{fake_id}{suffix}", headers={API_KEY_HEADER: FAKE_KEY})
        yield from _compare(seen, polled)


def _compare(seen: Seen, answer: httpx.Response) -> Iterator[Found]:
    """Live's recorded answer against the fake's, field by field; volatile fields by type only."""
    differences = []
    if answer.status_code != seen.status:
        differences.append(f"status {answer.status_code} (live {seen.status})")
    fake_type = answer.headers.get("content-type", "")
    live_type = seen.content.mimeType
    if fake_type.split(";")[0] != live_type.split(";")[0]:
        differences.append(f"content-type {fake_type} (live {live_type})")
    if seen.body is not None and seen.whole and fake_type.startswith("application/json"):
        differences += _field_differences(seen.body, answer.json())
    if differences:
        yield _check("fake-agrees", seen.index, False, "the fake answering as live did", "; ".join(differences))
    else:
        yield _check("fake-agrees", seen.index, True, "the fake answering as live did", "the same")


def _field_differences(live: Any, fake: Any, prefix: str = "") -> list[str]:
    if not isinstance(live, dict) or not isinstance(fake, dict):
        return (
            []
            if type(live) is type(fake)
            else [f"{prefix or 'body'} is {type(fake).__name__} (live {type(live).__name__})"]
        )
    found = []
    for key in sorted(set(live) | set(fake)):
        name = f"{prefix}{key}"
        if key not in fake:
            found.append(f"{name} missing (live sends it)")
        elif key not in live:
            found.append(f"{name} sent (live does not)")
        elif isinstance(live[key], dict) and isinstance(fake[key], dict):
            found += _field_differences(live[key], fake[key], f"{name}.")
        elif name in VOLATILE:
            if live[key] is not None and fake[key] is not None and type(live[key]) is not type(fake[key]):
                found.append(f"{name} is {type(fake[key]).__name__} (live {type(live[key]).__name__})")
        elif live[key] != fake[key]:
            found.append(f"{name} {json.dumps(fake[key])[:60]} (live {json.dumps(live[key])[:60]})")
    return found


def max_age(text: str) -> float:
    """Parse `--max-age`: seconds, or a number with s, m, h or d (e.g. 30d); raise ValueError."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    seconds = float(number) * unit
    if not seconds > 0:
        raise ValueError(f"--max-age must be a positive duration such as 30d, 12h or 3600 (got {text!r})")
    return seconds


def write_reports(drift: Drift, outputs: Mapping[str, str | None]) -> None:
    """Write the reports asked for: `json`, `junit`, `markdown` paths (None: not asked)."""
    makers = {
        "json": lambda: json.dumps(drift.to_dict(), indent=2) + "\n",
        "junit": drift.to_junit,
        "markdown": drift.to_markdown,
    }
    for kind, target in outputs.items():
        if target:
            Path(target).write_text(makers[kind](), encoding="utf-8")

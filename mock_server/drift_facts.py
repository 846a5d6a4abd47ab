"""Drift's facts: the contract's rules, the fake's GUESS choices a recording settles, the fake against live
and the known surface; what observes each, what a contradiction means, and the fields the fake knows.
"""

from __future__ import annotations

import json
from typing import Any

from contracts.responses import BASE64_VIDEO_KEY, ERROR, RESULT_BY_STATE, STATUS_BY_STATE, SUBMIT, VIDEO_CONTENT_TYPE
from contracts.rules import RULES
from contracts.rules import Rule as Fact

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


# One observation before it is placed: the fact, the entry's index, whether it held, expected, seen.
Found = tuple[str, int, bool, str, str]


def check(fact: str, index: int, held: bool, expected: str, seen: Any) -> Found:
    return fact, index, held, expected, seen if isinstance(seen, str) else json.dumps(seen)[:200]


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

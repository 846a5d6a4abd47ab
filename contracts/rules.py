"""The contract suite's rules: what each checks, and how sure we are of it.

Each rule names its evidence as `shared/wire-format.md` grades it, so a violation found on the
live API says whether the service moved (DOCS: Segmind's own pages) or only our understanding of
it did (SDK: the official SDK relies on it; 2ND: a third-party copy of the docs; GUESS: not seen
anywhere, the fake's choice). `Options.documented_only` keeps a run to DOCS rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from contracts.models import DOCUMENTED_WIDE_MODELS, MODELS
from contracts.openapi import API_KEY_HEADER, SYNC_PATH
from contracts.responses import (
    FAILED_STATUS,
    RATE_LIMIT_RESET_HEADER,
    RESULT_RETENTION_SECONDS,
    SYNC_HEADERS,
    show_seconds,
)

Grade = Literal["DOCS", "SDK", "2ND", "GUESS"]
GRADES: tuple[Grade, ...] = get_args(Grade)
DOCUMENTED: Grade = "DOCS"


@dataclass(frozen=True)
class Rule:
    """One checked fact of the contract: its name, what the target must do, and its evidence."""

    name: str
    description: str
    grade: Grade
    # Checked only against segmind-mock, whose scenarios and clock can force the case.
    fake_only: bool = False


def _listed(names: tuple[str, ...]) -> str:
    """Names as a sentence lists them: `a, b and c`."""
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


_ALL = (
    Rule("missing-key-401", f"a call without {API_KEY_HEADER} is refused with 401", "DOCS"),
    Rule("unknown-id-404", "polling an unknown request id answers 404", "DOCS"),
    Rule("invalid-refused", "each payload breaking one documented rule is refused with 400", "DOCS"),
    Rule("error-envelope", 'every error answer is a JSON {"error": "<message>"} envelope', "SDK"),
    Rule("error-content-type", "every error answer is served as application/json", "SDK"),
    Rule("example-accepted", "each documented example is accepted with 200", "DOCS"),
    Rule("valid-accepted", "each generated valid payload is accepted with 200", "DOCS"),
    Rule(
        "submit-shape",
        "a submit answer has a uuid request_id, status QUEUED, absolute status_url and response_url",
        "DOCS",
    ),
    Rule("poll-answers", f"each poll of an accepted job answers 200, or {FAILED_STATUS} once FAILED", "DOCS"),
    Rule(
        "states-forward",
        "a job only moves forward (QUEUED, PROCESSING, then COMPLETED or FAILED) and stays ended",
        "DOCS",
    ),
    Rule("status-shape", "each status answer has the documented shape of its state", "DOCS"),
    Rule("status-request-id", "a status body's request_id is the id that was polled", "DOCS"),
    Rule("completed-metrics", "a COMPLETED status carries metrics.inference_time, a number above 0", "DOCS"),
    Rule("result-shape", "a COMPLETED job's result is 200 with status COMPLETED, output and metrics", "SDK"),
    Rule("poll-url", "the submit answer's poll_url answers as its response_url does", "GUESS"),
    Rule(
        "failed-422",
        f"a FAILED job is served with {FAILED_STATUS} and an error, on the status and result endpoints",
        "SDK",
    ),
    Rule("job-finishes", "each job reaches COMPLETED or FAILED within the poll timeout", "DOCS"),
    Rule("output-video", "a COMPLETED job's output is fetchable and served as a video (video/*)", "DOCS"),
    Rule("video-playable", "the output is a playable MP4 whose every frame decodes", "DOCS"),
    Rule("video-frames", "an svd video has exactly the requested `frames` frames", "DOCS"),
    Rule("video-fps", "the video plays at the requested `fps`", "DOCS"),
    Rule(
        "video-16-9",
        f"{'; '.join(MODELS[slug].wide_request_text() for slug in DOCUMENTED_WIDE_MODELS)} gives a 16:9 frame",
        "DOCS",
    ),
    Rule("sync-video", f"POST {SYNC_PATH} answers the video's bytes with a video content type", "SDK"),
    Rule("sync-base64", f'with "base64": true, POST {SYNC_PATH} answers JSON carrying the video as base64', "2ND"),
    Rule("sync-headers", f"a v1 answer carries the {_listed(SYNC_HEADERS)} headers", "2ND"),
    Rule(
        "retention-1h",
        f"a result is kept until {show_seconds(RESULT_RETENTION_SECONDS)} after submission, "
        "then all three poll routes answer 404",
        "DOCS",
        fake_only=True,
    ),
    Rule(
        "error-codes",
        "each documented error code, forced by a scenario, comes in the JSON envelope as application/json",
        "DOCS",
        fake_only=True,
    ),
    Rule(
        "rate-limit-reset",
        f"a 429 carries {RATE_LIMIT_RESET_HEADER}, a parseable UTC time not in the past",
        "2ND",
    ),
)
RULES: dict[str, Rule] = {rule.name: rule for rule in _ALL}


def counts(rule: str, documented_only: bool) -> bool:
    """Tell whether a run limited to documented facts (or not) checks `rule`."""
    return not documented_only or RULES[rule].grade == DOCUMENTED


# What a rule needs before it can be checked: only free calls, a job the target accepted, a COMPLETED
# job, a decoded video. A rule the run could not check is reported with the cause (Report.skipped).
FREE_RULES = ("missing-key-401", "unknown-id-404", "invalid-refused", "error-envelope", "error-content-type")
JOB_RULES = ("submit-shape", "poll-answers", "states-forward", "status-shape", "status-request-id", "job-finishes")
COMPLETED_RULES = ("completed-metrics", "result-shape", "output-video", "poll-url")
VIDEO_RULES = ("video-playable", "video-frames", "video-fps", "video-16-9")
AFTER_COMPLETED = (*COMPLETED_RULES, *VIDEO_RULES)
AFTER_ENDED = ("failed-422", *AFTER_COMPLETED)
AFTER_SUBMIT = (*JOB_RULES, *AFTER_ENDED)

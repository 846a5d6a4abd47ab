"""Scenarios: rules that decide how the next matching submissions end, or how answers reach the client."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, get_args

from contracts import MODELS, ModelSpec, ParamError
from contracts.responses import POLL_ERROR_CODES, RESULT_RETENTION_SECONDS
from contracts.spec import number_in, show_range, show_value
from mock_server import wire
from mock_server.api_errors import STATUS_MESSAGES
from mock_server.journal import mask_key

# How a rule decides: how the job ends, an error instead of the answer, or a network fault on the answer.
Outcome = Literal["completed", "failed", "rai_blocked", "http_error", "latency", "disconnect", "truncated", "malformed"]
# Which requests a rule applies to: submissions (v2 and v1), status polls, or result fetches.
Target = Literal["submit", "status", "result"]
TARGETS: tuple[Target, ...] = get_args(Target)

# The fields each outcome takes beside the ones every rule takes.
OUTCOME_FIELDS: dict[Outcome, frozenset[str]] = {
    # How the job ends (target submit only).
    "completed": frozenset(),
    "failed": frozenset({"error"}),
    "rai_blocked": frozenset(),
    # The request is refused with an error status (a 502/504 with delay_seconds is a slow gateway).
    "http_error": frozenset({"status", "error", "headers"}),
    # Network faults on the answer's way back; the request itself is served as usual.
    "latency": frozenset(),  # the answer arrives after delay_seconds
    "disconnect": frozenset(),  # the connection closes with no answer at all
    "truncated": frozenset(),  # headers promise the whole body, half of it arrives, the connection closes
    "malformed": frozenset(),  # a 200 whose JSON body is cut in half
}
JOB_OUTCOMES: frozenset[Outcome] = frozenset({"completed", "failed", "rai_blocked"})
# The network faults that break the answer, rather than only delay it (`latency`).
BROKEN_ANSWERS: frozenset[Outcome] = frozenset({"disconnect", "truncated", "malformed"})
COMMON_FIELDS = frozenset(
    {
        "match",
        "outcome",
        "times",
        "target",
        "nth",
        "delay_seconds",
        "queue_seconds",
        "processing_seconds",
        "mirror_urls",
    }
)
# Fields that shape a new job or its submit answer, so only rules for submissions take them.
SUBMIT_FIELDS = frozenset({"queue_seconds", "processing_seconds", "mirror_urls"})
# Request headers that force an outcome for one submission, and the rule field each sets.
HEADER_FIELDS: dict[str, str] = {
    "x-mock-outcome": "outcome",
    "x-mock-status": "status",
    "x-mock-error": "error",
    "x-mock-delay-seconds": "delay_seconds",
    "x-mock-queue-seconds": "queue_seconds",
    "x-mock-processing-seconds": "processing_seconds",
}

# The timing fields a header may set, and their bound there: any client can send headers, and a
# timeline longer than the result retention only makes a job no client will see end.
HEADER_SECONDS = frozenset({"delay_seconds", "queue_seconds", "processing_seconds"})
LONGEST_HEADER_SECONDS = RESULT_RETENTION_SECONDS
# Scenario seconds (through the admin API) stay below this.
LARGEST_SECONDS = 1e9

_MATCH_SPECIAL = ("model", "api_key")
# `times` and `nth` stay below this: every store counts them exactly (Redis's Lua numbers are
# doubles, exact to 2**53; a larger count would come back as 1e+20 and break every submission).
LARGEST_COUNT = 2**53 - 1
# What HTTP/1.1 allows in a header's name (a token) and value (RFC 9110, section 5).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Headers that frame the answer on the wire: the server sets them, a scenario setting them would break it.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer"})


@dataclass
class Rule:
    """One scenario: which submissions it matches, how they end, and how many more it applies to."""

    id: str
    outcome: Outcome
    match: dict[str, Any] = field(default_factory=dict)
    times: int = -1
    target: Target = "submit"
    nth: int = 1
    error: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float | None = None
    queue_seconds: float | None = None
    processing_seconds: float | None = None
    # The submit answer's poll URLs point at the fake's mirror of the poll routes (wire.MIRROR_PREFIX),
    # so client verification sees whether a client follows the URLs it is given.
    mirror_urls: bool | None = None
    hits: int = 0
    seen: int = 0

    def applies(self, target: Target, model: str, api_key: str, params: Mapping[str, Any]) -> bool:
        """Tell whether a request for `target` (a submission, or a poll of such a job) is one of this rule's."""
        return self.target == target and self.matches(model, api_key, params)

    def matches(self, model: str, api_key: str, params: Mapping[str, Any]) -> bool:
        """Tell whether a submission of `model` with `params` under `api_key` is one of this rule's."""
        for key, wanted in self.match.items():
            actual = {"model": model, "api_key": api_key}[key] if key in _MATCH_SPECIAL else params.get(key)
            if actual != wanted or isinstance(actual, bool) != isinstance(wanted, bool):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """Describe the rule as the admin API shows it."""
        shown = {name: getattr(self, name) for name in OUTCOME_FIELDS[self.outcome] | COMMON_FIELDS}
        shown = {key: value for key, value in shown.items() if value is not None}
        if "api_key" in self.match:  # shown masked, as everywhere else
            shown["match"] = {**self.match, "api_key": mask_key(str(self.match["api_key"]))}
        return {"id": self.id, "hits": self.hits, "seen": self.seen, **shown}


def parse_rule(data: Any, rule_id: str, models: Mapping[str, ModelSpec] = MODELS) -> Rule:
    """Build a rule from the admin API's JSON for a fake serving `models`; raise ValueError naming the field to fix."""
    if not isinstance(data, Mapping):
        raise ValueError('a scenario must be a JSON object such as {"outcome": "failed", "times": 1}')
    outcome = data.get("outcome", "completed")
    if not _is_outcome(outcome):
        raise ValueError(f"outcome must be one of {', '.join(OUTCOME_FIELDS)} (got {outcome!r})")
    target = _parse_target(outcome, data.get("target", "submit"))
    fields = COMMON_FIELDS | OUTCOME_FIELDS[outcome]
    unknown = set(data) - (fields if target == "submit" else fields - SUBMIT_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(fields if target == "submit" else fields - SUBMIT_FIELDS))
        raise ValueError(
            f"unknown field(s) {', '.join(sorted(unknown))} for outcome {outcome!r} on target {target!r}; "
            f"allowed: {allowed}"
        )
    delay = _parse_seconds("delay_seconds", data.get("delay_seconds"))
    if outcome == "latency" and not delay:
        raise ValueError("outcome 'latency' needs delay_seconds, the real seconds to hold the answer back")
    return Rule(
        id=rule_id,
        outcome=outcome,
        match=_parse_match(data.get("match", {}), models),
        times=_parse_times(data.get("times", -1)),
        target=target,
        nth=_parse_nth(data.get("nth", 1)),
        error=_parse_error(outcome, data.get("error")),
        status=_parse_status(outcome, data.get("status"), target),
        headers=_parse_headers(data.get("headers", {})),
        delay_seconds=delay,
        queue_seconds=_parse_seconds("queue_seconds", data.get("queue_seconds")),
        processing_seconds=_parse_seconds("processing_seconds", data.get("processing_seconds")),
        mirror_urls=_parse_mirror(data.get("mirror_urls")),
    )


def rule_from_headers(headers: Mapping[str, str]) -> Rule | None:
    """Build the one-submission rule that `x-mock-*` request headers ask for, or None without any.

    Raise ValueError naming the header to fix.
    """
    data: dict[str, Any] = {}
    for name, value in headers.items():
        name = name.lower()
        if not name.startswith("x-mock-"):
            continue
        if name not in HEADER_FIELDS:
            raise ValueError(f"unknown header {name}; use {', '.join(HEADER_FIELDS)}")
        field_name = HEADER_FIELDS[name]
        data[field_name] = value if field_name in ("outcome", "error") else _header_number(name, value)
        if field_name in HEADER_SECONDS and not 0 <= data[field_name] <= LONGEST_HEADER_SECONDS:
            raise ValueError(
                f"{name} must be a number of seconds, 0 or more and at most {LONGEST_HEADER_SECONDS:g} (one hour, "
                "the result retention); a longer timeline needs a scenario added through the admin API "
                f"(got {show_value(value)})"
            )
    if not data:
        return None
    if "status" in data:
        data.setdefault("outcome", "http_error")
    return parse_rule(data, rule_id="x-mock")


def _header_number(name: str, value: str) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number (got {value!r})") from None
    return int(number) if number.is_integer() and name == "x-mock-status" else number


def _parse_match(match: Any, models: Mapping[str, ModelSpec]) -> dict[str, Any]:
    """Check a rule's `match`, refusing what no request could carry: such a rule would never fire."""
    if not isinstance(match, Mapping):
        raise ValueError(
            f'match must be a JSON object of model, api_key and parameter values, e.g. {{"frames": 14}} '
            f"(got {show_value(match)})"
        )
    if "model" in match and (not isinstance(match["model"], str) or match["model"] not in models):
        raise ValueError(f"match.model must be one of {', '.join(models)} (got {match['model']!r})")
    if "api_key" in match and not isinstance(match["api_key"], str):
        raise ValueError(f"match.api_key must be a string, the key a request sends (got {match['api_key']!r})")
    specs = [models[match["model"]]] if "model" in match else list(models.values())
    return {
        key: value if key in _MATCH_SPECIAL else _canonical(key, value, specs, models) for key, value in match.items()
    }


def _canonical(name: str, value: Any, specs: list[ModelSpec], models: Mapping[str, ModelSpec]) -> Any:
    """Return a matched parameter's value in the types validation produces, so {"frames": "14"} matches 14.

    Raise ValueError when no request of `specs` can carry it: a parameter no model (or another
    model than the matched one) takes, or a value outside its documented range or values.
    """
    params = [param for spec in specs for param in spec.params if param.name == name]
    if not params:
        owners = [spec.slug for spec in models.values() if any(param.name == name for param in spec.params)]
        if owners:
            raise ValueError(
                f"match.{name} is a parameter of {', '.join(owners)}, not of {specs[0].slug}: "
                "the rule could never match"
            )
        names = sorted({param.name for spec in models.values() for param in spec.params})
        raise ValueError(
            f"match has an unknown key {name!r}: it takes {', '.join(_MATCH_SPECIAL)} or a parameter "
            f"({', '.join(names)}); the rule could never match"
        )
    errors: list[str] = []
    for param in params:
        try:
            return param.check(value)
        except ParamError as error:
            errors.append(error.message)
    raise ValueError(f"match.{name}: {' or '.join(dict.fromkeys(errors))}; the rule could never match")


def _is_outcome(value: Any) -> TypeGuard[Outcome]:
    return isinstance(value, str) and value in OUTCOME_FIELDS


def _is_target(value: Any) -> TypeGuard[Target]:
    return isinstance(value, str) and value in TARGETS


def _parse_target(outcome: Outcome, target: Any) -> Target:
    if not _is_target(target):
        raise ValueError(f"target must be one of {', '.join(TARGETS)} (got {target!r})")
    if target != "submit" and outcome in JOB_OUTCOMES:
        raise ValueError(f"outcome {outcome!r} decides how a job ends, so its target must be 'submit'")
    return target


def _parse_nth(nth: Any) -> int:
    if isinstance(nth, bool) or not isinstance(nth, int) or not 1 <= nth <= LARGEST_COUNT:
        raise ValueError(
            f"nth must be a positive integer (up to {LARGEST_COUNT}), the matching request it starts at "
            f"(got {show_value(nth)})"
        )
    return nth


def _parse_times(times: Any) -> int:
    if isinstance(times, bool) or not isinstance(times, int) or not (1 <= times <= LARGEST_COUNT or times == -1):
        raise ValueError(
            f"times must be a positive integer (up to {LARGEST_COUNT}), or -1 for until removed "
            f"(got {show_value(times)})"
        )
    return times


def _parse_error(outcome: Outcome, error: Any) -> str | None:
    if error is not None and not isinstance(error, str):
        raise ValueError("error must be a string")
    if error:
        return str(error)
    return wire.FAILED_DEFAULT_ERROR if outcome == "failed" else None


def _parse_status(outcome: Outcome, status: Any, target: Target) -> int | None:
    if outcome != "http_error":
        return None
    if isinstance(status, bool) or not isinstance(status, int) or status not in STATUS_MESSAGES:
        codes = ", ".join(str(code) for code in STATUS_MESSAGES)
        raise ValueError(f"status must be one of the documented error codes {codes} (got {show_value(status)})")
    if target != "submit" and status not in POLL_ERROR_CODES:
        # The contract's list, which the OpenAPI document gives the poll operations: nothing else.
        codes = ", ".join(str(code) for code in POLL_ERROR_CODES)
        raise ValueError(
            f"status {status} is not an answer to a poll (target {target!r}): a poll may answer {codes}, "
            "since it has no body to refuse and costs no credits; use target 'submit' for it"
        )
    return status


def _parse_headers(headers: Any) -> dict[str, str]:
    if not isinstance(headers, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise ValueError("headers must be an object of string names to string values")
    # Checked now, since a header HTTP cannot carry would fail only later, as a 500 on a submission.
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} must be letters, digits and -, as HTTP allows")
        if name.lower() in FRAMING_HEADERS:
            framing = ", ".join(sorted(FRAMING_HEADERS))
            raise ValueError(f"header {name} frames the answer, so the server sets it; a scenario may not ({framing})")
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"header {name} must be printable Latin-1 text without line breaks (got {value!r})")
    return dict(headers)


def _parse_mirror(mirror: Any) -> bool | None:
    if mirror is not None and not isinstance(mirror, bool):
        raise ValueError(f"mirror_urls must be true or false (got {show_value(mirror)})")
    return mirror or None


def _parse_seconds(name: str, seconds: Any, below: float = LARGEST_SECONDS) -> float | None:
    if seconds is None:
        return None
    if not number_in(seconds, 0, below):
        raise ValueError(f"{name} must be a number of seconds, {show_range(0, below)} (got {show_value(seconds)})")
    return float(seconds)

"""Client verification: drive a user's client through every scenario of the fake and report what it handled.

    def my_client(base_url: str, api_key: str, model: str, payload: dict) -> object:
        ...  # submit to base_url, wait for the end, return the result; raise on any failure

    report = verify_client(my_client, "http://127.0.0.1:8000")  # a running `segmind-mock serve`
    print(report.render()); assert report.ok

Each scenario is set up through the fake's admin API (`/_mock/scenarios`, scoped to the
harness's API key), the client runs in a thread, and the harness moves the fake's clock past the
job's end (or past the documented one-hour retention, for "expired") once the job appears, so a
client polling at any interval sees the outcome at its next poll. After a client hangs (no answer
within `timeout`) the run stops: the later scenarios are reported as not run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts.models import MODELS
from contracts.responses import ERROR_CODES, RESULT_RETENTION_SECONDS

Client = Callable[[str, str, str, dict[str, Any]], Any]

VERIFY_API_KEY = "SG_00000000c0ffee00"
# Simulated seconds the harness moves the clock once the client's job exists: past the end of
# any job (queue plus the slowest model's latency), and far past the documented 1-hour retention.
PAST_THE_END_SECONDS = 1000.0
PAST_RETENTION_SECONDS = 86400.0
# A job that outlives its retention while still PROCESSING (the admin API caps seconds at 1e9).
NEVER_ENDS_SECONDS = 1e8
# Errors a client may retry rather than raise: the call may succeed next time.
TRANSIENT_CODES = frozenset({429, 500, 502, 504})
_WATCH_STEP_SECONDS = 0.005


@dataclass(frozen=True)
class Scenario:
    """One way a call can end, and how a client handles it as documented."""

    name: str
    description: str
    rule: dict[str, Any] | None  # the scenario posted to /_mock/scenarios; None for a plain job
    expect: str  # "result", "error", or "error-or-result" (retrying a transient error is fine)
    advance: float = PAST_THE_END_SECONDS


@dataclass(frozen=True)
class Outcome:
    """What the client did in one scenario."""

    scenario: Scenario
    got: str
    handled: bool


@dataclass
class Verification:
    """Which scenarios a client handled as documented; after a client hangs, the rest are not run."""

    outcomes: list[Outcome] = field(default_factory=list)
    not_run: list[Scenario] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the client handled every scenario."""
        return all(outcome.handled for outcome in self.outcomes) and not self.not_run

    @property
    def failed(self) -> list[str]:
        """The names of the scenarios the client mishandled."""
        return [outcome.scenario.name for outcome in self.outcomes if not outcome.handled]

    def render(self) -> str:
        """One line per scenario: handled or not, what was expected and what the client did."""
        handled = sum(outcome.handled for outcome in self.outcomes)
        lines = [f"Client verification: {handled}/{len(self.outcomes)} scenarios handled as documented"]
        for outcome in self.outcomes:
            mark = "ok  " if outcome.handled else "FAIL"
            lines.append(f"{mark} {outcome.scenario.name}: {outcome.scenario.description}; {outcome.got}")
        if self.not_run:
            names = ", ".join(scenario.name for scenario in self.not_run)
            lines.append(f"not run, since the client hung and may still be calling the fake: {names}")
        return "\n".join(lines)


def scenarios() -> list[Scenario]:
    """Every scenario the harness drives: completed, failed, RAI-blocked, expired, and each error code."""
    found = [
        Scenario("completed", "the job completes: return the result", None, "result"),
        Scenario(
            "failed",
            "the job FAILED (422): raise",
            {"outcome": "failed", "error": "Inference failed: verification scenario"},
            "error",
        ),
        Scenario("rai_blocked", "a content (RAI) block is FAILED (422): raise", {"outcome": "rai_blocked"}, "error"),
        Scenario(
            "expired",
            f"the result expired after {RESULT_RETENTION_SECONDS:g} s (404): raise",
            {"outcome": "completed", "processing_seconds": NEVER_ENDS_SECONDS},
            "error",
            PAST_RETENTION_SECONDS,
        ),
    ]
    for code, meaning in ERROR_CODES.items():
        transient = code in TRANSIENT_CODES
        how = "raise, or retry and return the result" if transient else "raise"
        rule = {"outcome": "http_error", "status": code}
        found.append(
            Scenario(
                f"http_{code}",
                f"submit answers {code} ({meaning}): {how}",
                rule,
                "error-or-result" if transient else "error",
            )
        )
    return found


def verify_client(
    client: Client,
    base_url: str,
    *,
    model: str = "svd",
    api_key: str = VERIFY_API_KEY,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> Verification:
    """Drive `client` through every scenario of the fake at `base_url`; `transport` reaches its admin API in-process."""
    base = base_url.rstrip("/")
    payload = dict(MODELS[model].example)
    report = Verification()
    planned = scenarios()
    with httpx.Client(base_url=base, transport=transport, timeout=30.0) as admin:
        for index, scenario in enumerate(planned):
            outcome, hung = _drive(admin, client, scenario, base, api_key, model, payload, timeout)
            report.outcomes.append(outcome)
            if hung:
                # Its thread cannot be stopped: it could take the next scenario's rule or set off its
                # clock move, so the later scenarios would judge the wrong call.
                report.not_run = planned[index + 1 :]
                break
    return report


def _drive(
    admin: httpx.Client,
    client: Client,
    scenario: Scenario,
    base: str,
    api_key: str,
    model: str,
    payload: dict[str, Any],
    timeout: float,
) -> tuple[Outcome, bool]:
    rule_id = None
    if scenario.rule is not None:
        rule = {**scenario.rule, "times": 1, "match": {"api_key": api_key, "model": model}}
        response = admin.post("/_mock/scenarios", json=rule)
        response.raise_for_status()
        rule_id = response.json()["id"]
    before = _job_ids(admin)
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["value"] = client(base, api_key, model, dict(payload))
        except BaseException as error:  # the client's failure is what is being observed
            result["error"] = error

    thread = threading.Thread(target=call, name=f"verify-{scenario.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    advanced = False
    while thread.is_alive() and time.monotonic() < deadline:
        if not advanced and _job_ids(admin) - before:
            admin.post("/_mock/clock/advance", json={"seconds": scenario.advance}).raise_for_status()
            advanced = True
        thread.join(_WATCH_STEP_SECONDS)
    if rule_id is not None:
        admin.delete(f"/_mock/scenarios/{rule_id}")  # 404 once used up: nothing left to remove
    hung = thread.is_alive()
    return _judge(scenario, result, hung, timeout), hung


def _judge(scenario: Scenario, result: dict[str, Any], hung: bool, timeout: float) -> Outcome:
    if hung:
        return Outcome(scenario, f"no answer within {timeout:g}s", False)
    if "error" in result:
        error = result["error"]
        return Outcome(scenario, f"raised {type(error).__name__}: {_short(str(error))}", scenario.expect != "result")
    value = result.get("value")
    # Any value is a result, except a body saying the call did not complete.
    failure = isinstance(value, dict) and (value.get("error") or value.get("status", "COMPLETED") != "COMPLETED")
    completed = not failure
    return Outcome(scenario, f"returned {_short(repr(value))}", completed and scenario.expect != "error")


def _job_ids(admin: httpx.Client) -> set[str]:
    response = admin.get("/_mock/jobs")
    response.raise_for_status()
    return {job["request_id"] for job in response.json()}


def _short(text: str) -> str:
    text = " ".join(text.split())  # exception texts span lines (the SDK's do)
    return text if len(text) <= 160 else text[:157] + "..."

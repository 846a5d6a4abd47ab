"""The contract suite: checks any base URL (the fake, the live API, a proxy) against the documented contract.

    from contracts.suite import Options, run_suite
    report = run_suite("https://api.segmind.com", "SG_...", Options(max_jobs=1))
    print(report.render())  # report.ok, report.violations (rule, message, request, response)

Free checks first (refusals cost nothing on the real service), then at most `max_jobs` paid
submissions, each polled to its end. Against the fake (detected by `GET /_mock/health`) the suite
moves the fake's clock with `POST /_mock/clock/advance` instead of waiting, and drives one extra
job to FAILED with a scenario; against anything else it polls in real time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from contracts import responses
from contracts.models import MODELS
from contracts.openapi import API_KEY_HEADER, RESULT_PATH, STATUS_PATH, SUBMIT_PATH
from contracts.responses import (
    FAILED_STATUS,
    FINAL_STATES,
    RATE_LIMIT_RESET_FORMAT,
    RATE_LIMIT_RESET_HEADER,
    RATE_LIMIT_WINDOW_SECONDS,
    STATES,
    problems,
)
from contracts.strategies import invalid_cases, invalid_payloads, valid_payloads

# Every rule the suite checks, by the name its violations carry.
RULES: dict[str, str] = {
    "example-accepted": "each documented example is accepted with 200",
    "valid-accepted": "each generated valid payload is accepted with 200",
    "submit-shape": "a submit answer has a uuid request_id, status QUEUED, absolute status_url and response_url",
    "invalid-refused": "each payload breaking one documented rule is refused with 400",
    "error-envelope": 'every error answer is a JSON {"error": "<message>"} envelope',
    "missing-key-401": "a call without x-api-key is refused with 401",
    "unknown-id-404": "polling an unknown request id answers 404",
    "poll-answers": "each poll of an accepted job answers 200, or 422 once FAILED",
    "states-forward": "a job only moves forward (QUEUED, PROCESSING, then COMPLETED or FAILED) and stays ended",
    "status-shape": "each status answer has the documented shape of its state",
    "result-shape": "a COMPLETED job's result is 200 with status COMPLETED, output and metrics",
    "failed-422": "a FAILED job is served with 422 and an error, on the status and result endpoints",
    "job-finishes": "each job reaches COMPLETED or FAILED within the poll timeout",
}
# How many violations of one rule the report prints in full.
SHOWN_PER_RULE = 3
# Waiting for a rate limit to lift: at most this many waits per call, each at most this long (in
# real time; against the fake the suite moves its clock instead, as far as the reset needs).
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_CAP_SECONDS = 90.0
_TEXT_LIMIT = 300


@dataclass(frozen=True)
class Options:
    """What the suite sends: how many paid jobs and invalid payloads, and how it polls."""

    max_jobs: int = 2
    jobs: bool = True
    invalid_examples: int = 25
    poll_interval: float = 2.0
    poll_timeout: float = 900.0
    seed: int = 0
    models: tuple[str, ...] = tuple(MODELS)


@dataclass(frozen=True)
class Violation:
    """One broken rule: what was sent and what came back."""

    rule: str
    message: str
    request: str
    response: str


@dataclass
class Report:
    """The suite's findings against one base URL."""

    base_url: str
    fake: bool = False
    checks: int = 0
    jobs: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the target met every rule checked."""
        return not self.violations

    @property
    def rules(self) -> set[str]:
        """The names of the broken rules."""
        return {violation.rule for violation in self.violations}

    def render(self) -> str:
        """The report in words: a summary line, then each broken rule with its violations."""
        head = f"Contract suite against {self.base_url}: {self.checks} checks, {self.jobs} paid jobs, "
        if self.ok:
            return head + "no violations: the target conforms."
        lines = [head + f"{len(self.violations)} violations of {len(self.rules)} rules."]
        for rule in sorted(self.rules):
            found = [violation for violation in self.violations if violation.rule == rule]
            lines.append(f"\nFAIL {rule} ({len(found)}x): {RULES[rule]}")
            for violation in found[:SHOWN_PER_RULE]:
                lines += [
                    f"  - {violation.message}",
                    f"    sent: {violation.request}",
                    f"    got:  {violation.response}",
                ]
            if len(found) > SHOWN_PER_RULE:
                lines.append(f"  ... and {len(found) - SHOWN_PER_RULE} more")
        return "\n".join(lines)


def run_suite(
    base_url: str,
    api_key: str,
    options: Options | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Report:
    """Run the contract suite against `base_url` and return its report; `transport` serves it in-process."""
    base = base_url.rstrip("/")
    with httpx.Client(transport=transport, timeout=60.0, follow_redirects=False) as client:
        run = _Run(client, base, api_key, options or Options(), progress or (lambda message: None))
        run.all()
    return run.report


def assert_conforms(base_url: str, api_key: str, options: Options | None = None, **kwargs: Any) -> Report:
    """Run the suite and raise AssertionError with the readable report unless the target conforms."""
    report = run_suite(base_url, api_key, options, **kwargs)
    if not report.ok:
        raise AssertionError(report.render())
    return report


def draw(strategy: st.SearchStrategy[Any], count: int, seed: int = 0) -> list[Any]:
    """Draw up to `count` examples of a strategy, reproducibly for a given seed."""
    found: list[Any] = []
    if count <= 0:
        return found

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        if len(found) < count:
            found.append(value)

    collect()
    return found


@dataclass
class _Job:
    request_id: str
    model: str
    status_url: str
    response_url: str
    sent: str
    expect_failed: bool = False
    states: list[str] = field(default_factory=list)
    done: bool = False


class _Run:
    def __init__(
        self, client: httpx.Client, base: str, api_key: str, options: Options, progress: Callable[[str], None]
    ) -> None:
        self.client = client
        self.base = base
        self.api_key = api_key
        self.options = options
        self.progress = progress
        self.report = Report(base)

    def all(self) -> None:
        self.report.fake = self._is_fake()
        how = (
            "a segmind-mock fake: its clock is advanced instead of waiting"
            if self.report.fake
            else "polled in real time"
        )
        self.progress(f"Checking {self.base} ({how})")
        self.progress("[1/4] requests without x-api-key and unknown request ids")
        self._missing_key()
        self._unknown_ids()
        self._invalid_payloads()
        if self.options.jobs:
            jobs = self._submit_jobs()
            self._poll(jobs)
        else:
            self.progress("[3/4] paid jobs skipped (--no-jobs)")
        self.progress(f"Done: {self.report.checks} checks, {len(self.report.violations)} violations")

    # The free checks.

    def _missing_key(self) -> None:
        model = self.options.models[0]
        for method, url, body in (
            ("POST", self.base + SUBMIT_PATH.format(model=model), dict(MODELS[model].example)),
            ("GET", self.base + STATUS_PATH.format(request_id=uuid.uuid4()), None),
        ):
            response, sent = self._call(method, url, body, key=False)
            self._expect(response.status_code == 401, "missing-key-401", "answered without 401", sent, response)
            self._envelope(response, sent)

    def _unknown_ids(self) -> None:
        request_id = uuid.uuid4()
        for path in (STATUS_PATH, RESULT_PATH):
            url = self.base + path.format(request_id=request_id)
            response, sent = self._call("GET", url)
            self._expect(response.status_code == 404, "unknown-id-404", "answered without 404", sent, response)
            self._envelope(response, sent)

    def _invalid_payloads(self) -> None:
        cases = []
        for model in self.options.models:
            generated = draw(invalid_payloads(model), self.options.invalid_examples, self.options.seed)
            cases += [(model, payload, broken) for payload, broken in [*invalid_cases(model), *generated]]
        self.progress(f"[2/4] {len(cases)} invalid payloads, each breaking one documented rule (free)")
        for index, (model, payload, broken) in enumerate(cases, 1):
            response, sent = self._call("POST", self.base + SUBMIT_PATH.format(model=model), payload)
            message = f"{model} payload breaking {broken} answered {response.status_code}, not 400"
            self._expect(response.status_code == 400, "invalid-refused", message, sent, response)
            self._envelope(response, sent)
            if index % 25 == 0 or index == len(cases):
                self.progress(f"      {index}/{len(cases)} sent")

    # The paid checks.

    def _submit_jobs(self) -> list[_Job]:
        planned = list(self._planned_jobs())
        self.progress(f"[3/4] submitting {len(planned)} paid jobs (--max-jobs {self.options.max_jobs})")
        jobs = [job for rule, model, payload in planned if (job := self._submit(rule, model, payload))]
        if self.report.fake:
            jobs += self._forced_failed_job()
        return jobs

    def _forced_failed_job(self) -> list[_Job]:
        # Scoped to the suite's own key and model, and removed by id after the one submission
        # (gone once used, 404 then), so a shared fake's other clients never meet it.
        model = self.options.models[0]
        rule = {"outcome": "failed", "times": 1, "match": {"api_key": self.api_key, "model": model}}
        added = self.client.post(f"{self.base}/_mock/scenarios", json=rule).raise_for_status()
        try:
            job = self._submit("example-accepted", model, dict(MODELS[model].example), expect_failed=True)
        finally:
            self.client.delete(f"{self.base}/_mock/scenarios/{added.json()['id']}")
        return [job] if job else []

    def _planned_jobs(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        budget = self.options.max_jobs
        examples = [("example-accepted", model, dict(MODELS[model].example)) for model in self.options.models]
        yield from examples[:budget]
        left = budget - len(examples)
        for index, model in enumerate(self.options.models):
            share = left // len(self.options.models) + (index < left % len(self.options.models))
            for payload in draw(valid_payloads(model), share, self.options.seed):
                yield "valid-accepted", model, payload

    def _submit(self, rule: str, model: str, payload: dict[str, Any], expect_failed: bool = False) -> _Job | None:
        response, sent = self._call("POST", self.base + SUBMIT_PATH.format(model=model), payload)
        if not expect_failed:
            self.report.jobs += 1
        self._expect(
            response.status_code == 200, rule, f"valid {model} payload answered {response.status_code}", sent, response
        )
        if response.status_code != 200:
            self._envelope(response, sent)
            return None
        body = _json(response)
        found = problems(responses.SUBMIT, body)
        self._expect(not found, "submit-shape", "; ".join(found), sent, response)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            return None
        request_id = body["request_id"]
        return _Job(
            request_id,
            model,
            self._url(body.get("status_url"), STATUS_PATH.format(request_id=request_id)),
            self._url(body.get("response_url"), RESULT_PATH.format(request_id=request_id)),
            sent,
            expect_failed,
        )

    def _poll(self, jobs: list[_Job]) -> None:
        interval, timeout = self.options.poll_interval, self.options.poll_timeout
        self.progress(f"[4/4] polling {len(jobs)} jobs every {interval:g}s (timeout {timeout:g}s)")
        waited = 0.0
        while True:
            for job in jobs:
                if not job.done:
                    self._poll_once(job)
            pending = [job for job in jobs if not job.done]
            if not pending:
                return
            if waited >= timeout:
                for job in pending:
                    message = f"job {job.request_id} still {job.states[-1] if job.states else '?'} after {timeout:g}s"
                    self._expect(False, "job-finishes", message, job.sent, "(no final state)")
                return
            self._wait(interval)
            waited += interval

    def _poll_once(self, job: _Job) -> None:
        response, sent = self._call("GET", job.status_url)
        body = _json(response)
        state = body.get("status") if isinstance(body, dict) else None
        if response.status_code not in (200, FAILED_STATUS):
            self._expect(
                False, "poll-answers", f"status of an accepted job answered {response.status_code}", sent, response
            )
            self._envelope(response, sent)
            job.done = True
            return
        if state not in STATES:
            self._expect(False, "status-shape", f"status {state!r} is not a documented state", sent, response)
            job.done = True
            return
        self._check_state(job, state, response, sent)
        if state in FINAL_STATES:
            self._finish(job, state)

    def _check_state(self, job: _Job, state: str, response: httpx.Response, sent: str) -> None:
        previous = job.states[-1] if job.states else "QUEUED"
        moved_back = STATES.index(state) < STATES.index(previous) or (previous in FINAL_STATES and state != previous)
        self._expect(
            not moved_back, "states-forward", f"job {job.request_id} went {previous} -> {state}", sent, response
        )
        job.states.append(state)
        if state == "FAILED":
            self._expect(
                response.status_code == FAILED_STATUS,
                "failed-422",
                f"FAILED status answered {response.status_code}",
                sent,
                response,
            )
        else:
            self._expect(
                response.status_code == 200,
                "poll-answers",
                f"{state} status answered {response.status_code}",
                sent,
                response,
            )
        found = problems(responses.STATUS_BY_STATE[state], _json(response))
        self._expect(not found, "status-shape", f"{state}: " + "; ".join(found), sent, response)

    def _finish(self, job: _Job, state: str) -> None:
        job.done = True
        self.progress(f"      {job.model} job {job.request_id}: {' -> '.join(_runs(job.states))}")
        response, sent = self._call("GET", job.response_url)
        body = _json(response)
        if state == "COMPLETED":
            ok = response.status_code == 200
            self._expect(
                ok, "result-shape", f"result of a COMPLETED job answered {response.status_code}", sent, response
            )
            found = problems(responses.RESULT_COMPLETED, body) if ok else []
            self._expect(not found, "result-shape", "; ".join(found), sent, response)
        else:
            ok = response.status_code == FAILED_STATUS
            self._expect(ok, "failed-422", f"result of a FAILED job answered {response.status_code}", sent, response)
            found = problems(responses.FAILED, body)
            self._expect(not found, "failed-422", "; ".join(found), sent, response)
        # Once ended, a job stays ended: poll its status once more.
        again, sent = self._call("GET", job.status_url)
        body = _json(again)
        later = body.get("status") if isinstance(body, dict) else None
        self._expect(later == state, "states-forward", f"job {job.request_id} went {state} -> {later}", sent, again)

    # Plumbing.

    def _is_fake(self) -> bool:
        try:
            response = self.client.get(f"{self.base}/_mock/health")
        except httpx.HTTPError:
            return False
        body = _json(response)
        return response.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok" and "now" in body

    def _wait(self, seconds: float) -> None:
        if self.report.fake:
            self.client.post(f"{self.base}/_mock/clock/advance", json={"seconds": seconds}).raise_for_status()
        else:
            time.sleep(seconds)

    def _url(self, given: Any, path: str) -> str:
        # Follow the URL the service gave, as the SDK does; a broken one is reported by submit-shape.
        return given if isinstance(given, str) and responses.is_absolute_url(given) else f"{self.base}{path}"

    def _call(self, method: str, url: str, body: Any = None, *, key: bool = True) -> tuple[httpx.Response, str]:
        headers = {API_KEY_HEADER: self.api_key} if key else {}
        sent = f"{method} {url}" + ("" if key else f" (no {API_KEY_HEADER})")
        sent += f" {_short(body)}" if body is not None else ""
        response = self.client.request(method, url, json=body, headers=headers)
        for _ in range(RATE_LIMIT_RETRIES):
            if response.status_code != 429:
                break
            self._wait_for_reset(response)
            response = self.client.request(method, url, json=body, headers=headers)
        return response, sent

    def _wait_for_reset(self, response: httpx.Response) -> None:
        # The reset is in the target's time: the fake's simulated clock, or the real one.
        if self.report.fake:
            now = self.client.get(f"{self.base}/_mock/clock").raise_for_status().json()["now"]
            wait = _until_reset(response, datetime.fromtimestamp(now, UTC))
            self.progress(f"      rate limited: moving the fake's clock {wait:.0f}s before retrying")
        else:
            wait = min(_until_reset(response, datetime.now(UTC)), RATE_LIMIT_WAIT_CAP_SECONDS)
            self.progress(f"      rate limited: waiting {wait:.0f}s before retrying")
        self._wait(wait)

    def _expect(self, ok: bool, rule: str, message: str, sent: str, response: httpx.Response | str) -> None:
        self.report.checks += 1
        if not ok:
            got = response if isinstance(response, str) else f"{response.status_code} {_short(response.text)}"
            self.report.violations.append(Violation(rule, message, sent, got))

    def _envelope(self, response: httpx.Response, sent: str) -> None:
        if response.status_code < 400:
            return
        body = _json(response)
        found = problems(responses.ERROR, body) if body is not None else ["the body is not JSON"]
        self._expect(
            not found, "error-envelope", f"{response.status_code} error body: " + "; ".join(found), sent, response
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = {key: _short(item) if isinstance(item, str) else item for key, item in value.items()}
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _runs(states: list[str]) -> list[str]:
    # QUEUED, QUEUED, PROCESSING -> QUEUED x2, PROCESSING: one entry per run of equal states.
    shown: list[str] = []
    for state in states:
        if shown and shown[-1].split(" x")[0] == state:
            count = int(shown[-1].split(" x")[1]) + 1 if " x" in shown[-1] else 2
            shown[-1] = f"{state} x{count}"
        else:
            shown.append(state)
    return shown


def _until_reset(response: httpx.Response, now: datetime) -> float:
    reset = response.headers.get(RATE_LIMIT_RESET_HEADER, "")
    try:
        at = datetime.strptime(reset, RATE_LIMIT_RESET_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return RATE_LIMIT_WINDOW_SECONDS  # nothing readable about the reset: wait one documented window
    return max((at - now).total_seconds(), 1.0)

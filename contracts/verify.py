"""Client verification: drive a client through the fake's scenarios; judge what it did, not only what it returned.

    def my_client(base_url: str, api_key: str, model: str, payload: dict) -> object:
        ...  # submit to base_url, wait for the end, return the result; raise on any failure

    report = verify_client(my_client, "http://127.0.0.1:8000")  # a running `segmind-mock serve`
    print(report.render()); assert report.ok

`verify_client` also takes the official SDK's `SegmindClient` built for the fake
(`base_url=f"{fake}/v1"`), and `verify_command` a client in any language, run as a command (the
protocol is in docs/contracts.md). Each scenario is set up through the fake's admin API
(`/_mock/scenarios`, scoped to the harness's API key and model); the client runs in a thread, and
the harness runs the fake's clock at real time and moves it past the job's end (or runs it fast)
so a client polling at any interval sees the outcome. Afterwards the fake's journal
(`/_mock/requests`) shows what the client called and when, in real seconds: whether it followed the
URLs it was given, how often a second it polled, whether it retried a refusal or retried a 429 at
once, whether it fetched the result it returned. A client that does not handle the plain completed
job is not judged on the rest; after a client hangs, the rest are not run. What keeps the harness
from judging at all (a key the fake refuses, a command that cannot start) raises CannotVerify.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import math
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts.fake_admin import FakeAdmin
from contracts.models import spec_of
from contracts.options import COMMAND_TIMEOUT_SECONDS, COMMAND_VARIABLES, VERIFY_API_KEY
from contracts.responses import (
    ERROR_CODES,
    FAILED_STATUS,
    FINAL_CODES,
    RATE_LIMIT_WINDOW_SECONDS,
    RESULT_RETENTION_SECONDS,
    TRANSIENT_CODES,
    WAITING_STATES,
)
from contracts.spec import ModelSpec

Client = Callable[[str, str, str, dict[str, Any]], Any]

# The key the client gets unless told otherwise: shaped like Segmind's, so a fake without declared
# keys accepts it.
# Simulated seconds the harness moves the clock once the client's job exists: past the end of
# any job (queue plus the slowest model's latency), and far past the documented retention.
PAST_THE_END_SECONDS = 1000.0
PAST_RETENTION_SECONDS = 86400.0
# A job that outlives its retention while still PROCESSING (the admin API caps seconds at 1e9).
NEVER_ENDS_SECONDS = 1e8
# While a client runs the clock runs at real time: the journal's times, less the one move the
# harness makes, are then the real times of the client's calls, whatever the machine's speed.
REAL_TIME = 1.0
# Pace, judged in real time: the completed job's status polls, while it waits, at most this many a
# second on average (a client sleeping 0.25 s or more between polls).
MAX_POLLS_PER_SECOND = 4.0
# The harness watches the completed job until the client has polled it this many times, or for
# this many real seconds, before moving the clock past its end: a client sleeping 1 s is judged
# on 3 gaps after 3 s, a client without pause after a few milliseconds. The job runs this long
# (simulated seconds, at real time), far past the watch, PROCESSING from the start: a client's
# patience with a queue is long_queue's to judge.
PACE_POLLS = 4
PACE_WINDOW_SECONDS = 5.0
PACE_JOB_SECONDS = 300.0
_PACE_WATCH_STEP_SECONDS = 0.05
# A 429 retried sooner than this, in real seconds, is retried at once.
RATE_LIMIT_RETRY_SECONDS = 1.0
# A long queue: the job waits this long QUEUED, with the clock run this fast (about 2 s of real time).
LONG_QUEUE_SECONDS = 1800.0
LONG_QUEUE_SPEED = 1000.0
_WATCH_STEP_SECONDS = 0.005
_RESULT_LIMIT = 160


class CannotVerify(Exception):
    """The harness cannot judge the client: the fake refuses its key, or its command cannot start."""


class KeyRefused(CannotVerify):
    """The fake answers the harness's key with 401 or 403: no client could handle a scenario with it."""


class KeyRateLimited(CannotVerify):
    """The key's own rate limit answered a scenario's submission: what the client met was not the scenario."""


@dataclass(frozen=True)
class Scenario:
    """One way a call can end, and how a client handles it as documented."""

    name: str
    description: str
    rule: dict[str, Any] | None  # the scenario posted to /_mock/scenarios
    expect: str  # "result", "error", or "error-or-result" (retrying a transient error is fine)
    advance: float = PAST_THE_END_SECONDS  # moved once the client's job exists (0: never)
    speed: float = REAL_TIME  # the clock's speed while the client runs
    judge_pace: bool = False  # watch the client poll the waiting job before moving the clock

    @property
    def submit_status(self) -> int | None:
        """The status the scenario forces on the submission, if it forces one."""
        rule = self.rule or {}
        status: int | None = rule.get("status") if rule.get("target", "submit") == "submit" else None
        return status


@dataclass(frozen=True)
class Outcome:
    """What the client did in one scenario, and what the journal showed of its calls."""

    scenario: Scenario
    got: str
    handled: bool
    calls: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass
class Verification:
    """Which scenarios a client handled as documented, and which were not judged or not run."""

    outcomes: list[Outcome] = field(default_factory=list)
    not_judged: list[Scenario] = field(default_factory=list)
    not_run: list[Scenario] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the client handled every scenario."""
        return all(outcome.handled for outcome in self.outcomes) and not self.not_run and not self.not_judged

    @property
    def failed(self) -> list[str]:
        """The names of the scenarios the client mishandled."""
        return [outcome.scenario.name for outcome in self.outcomes if not outcome.handled]

    def render(self) -> str:
        """One line per scenario: handled or not, what was expected, what the client did and called."""
        handled = sum(outcome.handled for outcome in self.outcomes)
        total = len(self.outcomes) + len(self.not_judged) + len(self.not_run)
        lines = [f"Client verification: {handled}/{total} scenarios handled as documented"]
        for outcome in self.outcomes:
            mark = "ok  " if outcome.handled else "FAIL"
            lines.append(f"{mark} {outcome.scenario.name}: {outcome.scenario.description}; {outcome.got}")
            lines += [f"       {problem}" for problem in outcome.problems]
        if self.not_judged:
            names = ", ".join(scenario.name for scenario in self.not_judged)
            lines.append(f"not judged, since the client did not handle the plain completed job: {names}")
        if self.not_run:
            names = ", ".join(scenario.name for scenario in self.not_run)
            lines.append(f"not run, since the client hung and may still be calling the fake: {names}")
        return "\n".join(lines)


def scenarios() -> list[Scenario]:
    """Every scenario the harness drives, the plain completed job first."""
    mirrored = {"mirror_urls": True}
    found = [
        Scenario(
            "completed",
            "the job completes: follow the URLs given, poll with pauses, return the result",
            {"outcome": "completed", "queue_seconds": 0, "processing_seconds": PACE_JOB_SECONDS, **mirrored},
            "result",
            judge_pace=True,
        ),
        Scenario(
            "long_queue",
            f"the job waits {LONG_QUEUE_SECONDS:g} s QUEUED: keep polling, return the result",
            {"outcome": "completed", "queue_seconds": LONG_QUEUE_SECONDS, **mirrored},
            "result",
            advance=0,
            speed=LONG_QUEUE_SPEED,
        ),
        Scenario(
            "failed",
            f"the job FAILED ({FAILED_STATUS}): raise",
            {"outcome": "failed", "error": "Inference failed: verification scenario", **mirrored},
            "error",
        ),
        Scenario(
            "rai_blocked",
            f"a content (RAI) block is FAILED ({FAILED_STATUS}): raise",
            {"outcome": "rai_blocked", **mirrored},
            "error",
        ),
        Scenario(
            "expired",
            f"the result expired after {RESULT_RETENTION_SECONDS:g} s (404): raise",
            {"outcome": "completed", "processing_seconds": NEVER_ENDS_SECONDS, **mirrored},
            "error",
            PAST_RETENTION_SECONDS,
        ),
        Scenario(
            "poll_502",
            "one status poll answers 502: retry, or raise; never return a result not fetched",
            {"outcome": "http_error", "status": 502, "target": "status"},
            "error-or-result",
        ),
        Scenario(
            "poll_dropped",
            "one status poll's connection drops: retry, or raise; never return a result not fetched",
            {"outcome": "disconnect", "target": "status"},
            "error-or-result",
        ),
    ]
    for code, meaning in ERROR_CODES.items():
        transient = code in TRANSIENT_CODES
        how = "raise, or retry and return the result" if transient else "raise without retrying"
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
    client: Any,
    base_url: str,
    *,
    model: str | ModelSpec = "svd",
    api_key: str = VERIFY_API_KEY,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    admin_token: str | None = None,
) -> Verification:
    """Drive `client` through every scenario of the fake at `base_url`; `transport` reaches its admin API in-process.

    `client` is a callable `(base_url, api_key, model, payload) -> result` that raises on failure,
    or the official SDK's `SegmindClient` built with `base_url=f"{base_url}/v1"` (its own key is
    used). Anything else is refused at once with a TypeError saying what to pass. Raises KeyRefused
    when the fake refuses the key (before any scenario), CannotVerify when a command cannot start.
    """
    base = base_url.rstrip("/")
    call, api_key = _as_client(client, base, api_key)
    spec = spec_of(model)  # a slug of the shipped models, or the spec of one loaded from a file
    model, payload = spec.slug, dict(spec.example)
    report = Verification()
    planned = scenarios()
    with httpx.Client(transport=transport, timeout=30.0) as http:
        admin = FakeAdmin(http, base, admin_token)
        _check_key(http, base, api_key, model)
        # Each scenario sets the speed it runs at; the fake's own is restored afterwards.
        with admin.clock_stopped():
            for index, scenario in enumerate(planned):
                outcome, hung = _Drive(admin, call, scenario, base, api_key, model, payload, timeout).run()
                report.outcomes.append(outcome)
                if hung:
                    # Its thread cannot be stopped: it could take the next scenario's rule or set off
                    # its clock move, so the later scenarios would judge the wrong call.
                    report.not_run = planned[index + 1 :]
                    break
                if index == 0 and not outcome.handled:
                    # Raising on everything would look like handling every failure.
                    report.not_judged = planned[1:]
                    break
    return report


def verify_command(
    command: str, base_url: str, *, timeout: float = COMMAND_TIMEOUT_SECONDS, **options: Any
) -> Verification:
    """Verify a client in any language, run as `command` once per scenario (protocol: docs/contracts.md)."""
    return verify_client(command_client(command, timeout), base_url, timeout=timeout + 5, **options)


class CommandFailed(Exception):
    """A command client exited non-zero: it reported a failure, as a raising client does."""


def command_client(command: str, timeout: float = 60.0) -> Client:
    """A client that runs `command` with the call in its environment and reads its exit status and output.

    Environment: SEGMIND_BASE_URL (the fake, no /v1), SEGMIND_API_KEY, SEGMIND_MODEL and
    SEGMIND_PAYLOAD (the request body as JSON). Exit 0 with the result on stdout (JSON, or text)
    means a result; any other exit status means the client reported a failure (its stderr says why).
    A command that cannot start (not found, not executable) raises CannotVerify, at its first run.
    """
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise CannotVerify(f"cannot read the command {command!r}: {error}") from None
    if not argv:
        raise CannotVerify("the command is empty")

    def run(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
        values = (base_url, api_key, model, json.dumps(payload))
        env = {**os.environ, **dict(zip(COMMAND_VARIABLES, values, strict=True))}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except OSError as error:  # not found, not executable, not a program: nothing of the client ran
            raise CannotVerify(f"cannot start the command {argv[0]!r}: {error.strerror or error}") from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise CommandFailed(f"exit status {done.returncode}: {last}")
        try:
            return json.loads(done.stdout)
        except ValueError:
            return done.stdout.strip()

    return run


def _check_key(http: httpx.Client, base: str, api_key: str, model: str) -> None:
    """Raise KeyRefused unless the fake accepts `api_key` for `model`: one submission it refuses for its empty body."""
    answer = http.post(f"{base}/v2/{model}", json={}, headers={"x-api-key": api_key})
    if answer.status_code in (401, 403):
        try:
            said = answer.json().get("error", answer.text)
        except ValueError:
            said = answer.text
        raise KeyRefused(
            f"the fake refuses the API key …{api_key[-4:]} for {model}: {answer.status_code} {_short(said)}"
        )


def _as_client(client: Any, base: str, api_key: str) -> tuple[Client, str]:
    """The callable to drive and the API key it uses; refuses at once what cannot be driven."""
    if hasattr(client, "submit_async") and hasattr(client, "base_url"):
        wanted = f"{base}/v1"
        if str(client.base_url).rstrip("/") != wanted:
            raise TypeError(
                f"this SegmindClient calls {client.base_url}; build it for the fake with "
                f"SegmindClient(api_key=..., base_url={wanted!r}), or pass a function "
                "(base_url, api_key, model, payload) -> result"
            )
        sdk = client

        def run(base_url: str, key: str, model: str, payload: dict[str, Any]) -> Any:
            return sdk.submit_async(model, **payload).wait()  # at its default interval

        return run, str(client.api_key or api_key)
    if not callable(client):
        raise TypeError(
            f"cannot verify a {type(client).__name__}: pass a function (base_url, api_key, model, payload) -> result "
            "that raises on failure, or a segmind.SegmindClient built with base_url=FAKE_URL + '/v1'"
        )
    try:
        inspect.signature(client).bind("", "", "", {})
    except TypeError:
        raise TypeError(
            "the client must take four arguments (base_url, api_key, model, payload) and return the result"
        ) from None
    except ValueError:
        pass  # no signature to read (a builtin): try it
    return client, api_key


class _Drive:
    """One scenario: set it up, run the client, move the clock, then judge the client and its calls."""

    def __init__(
        self,
        admin: FakeAdmin,
        client: Client,
        scenario: Scenario,
        base: str,
        api_key: str,
        model: str,
        payload: dict[str, Any],
        timeout: float,
    ) -> None:
        self.admin = admin
        self.client = client
        self.scenario = scenario
        self.base = base
        self.api_key = api_key
        self.model = model
        self.payload = payload
        self.timeout = timeout
        self.result: dict[str, Any] = {}
        self.job_id: str | None = None
        self.moved_at: float | None = None  # the simulated time at which the harness moved the clock

    def run(self) -> tuple[Outcome, bool]:
        admin, scenario = self.admin, self.scenario
        # A rate-limit window apart: the key's window (which moves with the fake's clock) starts empty,
        # whatever the last scenario or the key check sent, and the journal's times tell this
        # scenario's calls from the last one's.
        started = admin.advance(RATE_LIMIT_WINDOW_SECONDS + 1)
        admin.set_speed(scenario.speed)
        with contextlib.ExitStack() as scoped:
            if scenario.rule is not None:  # removed once the clock is stopped again
                scoped.enter_context(admin.scenario_once(scenario.rule, self.api_key, self.model))
            before = admin.job_ids()
            thread = threading.Thread(target=self._call, name=f"verify-{scenario.name}", daemon=True)
            thread.start()
            deadline = time.monotonic() + self.timeout
            appeared = 0.0
            while thread.is_alive() and time.monotonic() < deadline:
                if self.job_id is None and self._find_job(before):
                    appeared = time.monotonic()
                watching = self.job_id is not None and self.moved_at is None and scenario.advance > 0
                if watching and not self._watching_pace(appeared):
                    self.moved_at = admin.advance(scenario.advance) - scenario.advance
                    watching = False
                thread.join(_PACE_WATCH_STEP_SECONDS if watching else _WATCH_STEP_SECONDS)
            admin.set_speed(0)
        hung = thread.is_alive()
        if isinstance(self.result.get("error"), CannotVerify):
            raise self.result["error"]
        if self.job_id is None:
            self._find_job(before)
        calls = self._journal(started)
        self._check_no_rate_limit(calls)
        return self._judge(hung, calls), hung

    def _find_job(self, before: set[str]) -> bool:
        """Take the first job the client made since `before` as its job; tell whether there is one."""
        new = self.admin.job_ids() - before
        if new:
            self.job_id = sorted(new)[0]
        return bool(new)

    def _check_no_rate_limit(self, calls: list[dict[str, Any]]) -> None:
        """Raise KeyRateLimited when a 429 the scenario did not force answered the client: no verdict then."""
        forced = self.scenario.submit_status == 429
        limited = [call for call in calls if call["method"] == "POST" and call["status"] == 429]
        if limited[1 if forced else 0 :]:
            raise KeyRateLimited(
                f"the key …{self.api_key[-4:]} has a rate limit, which answered 429 to the client's submission in "
                f"scenario {self.scenario.name}, not the scenario: verify needs a key without a rate limit "
                "(a key with no rpm or plan in the fake's --config, or any key in open mode)"
            )

    def _watching_pace(self, appeared: float) -> bool:
        """Whether the harness still watches the client poll the waiting job before moving the clock."""
        if not self.scenario.judge_pace or time.monotonic() - appeared >= PACE_WINDOW_SECONDS:
            return False
        return self.admin.count_requests(str(self.job_id)) < PACE_POLLS

    def _real(self, at: float) -> float:
        """The real time, in seconds on the fake's clock less the harness's move, of a journal time `at`."""
        if self.moved_at is not None and at >= self.moved_at:
            at -= self.scenario.advance
        return at / self.scenario.speed

    def _call(self) -> None:
        try:
            self.result["value"] = self.client(self.base, self.api_key, self.model, dict(self.payload))
        except BaseException as error:  # the client's failure is what is being observed
            self.result["error"] = error

    def _judge(self, hung: bool, calls: list[dict[str, Any]]) -> Outcome:
        scenario = self.scenario
        shown = tuple(f"{call['method']} {call['path']} -> {call['status']}" for call in calls)
        if hung:
            return Outcome(scenario, f"no answer within {self.timeout:g}s", False, shown)
        problems = self._behaviour(calls)
        if "error" in self.result:
            error = self.result["error"]
            got = f"raised {type(error).__name__}: {_short(str(error))}"
            return Outcome(scenario, got, scenario.expect != "result" and not problems, shown, tuple(problems))
        value = self.result.get("value")
        # Any value is a result, except a body saying the call did not complete.
        failure = isinstance(value, dict) and (value.get("error") or value.get("status", "COMPLETED") != "COMPLETED")
        if not failure and not self._fetched_result(calls):
            problems.append("returned a result it never fetched: no result request for the job answered 200")
        handled = not failure and scenario.expect != "error" and not problems
        return Outcome(scenario, f"returned {_short(repr(value))}", handled, shown, tuple(problems))

    def _behaviour(self, calls: list[dict[str, Any]]) -> list[str]:
        """What the journal shows the client did wrong: own URLs, polling too often, retries."""
        problems: list[str] = []
        polls = [call for call in calls if call["method"] == "GET" and self._is_job_path(call["path"])]
        if self.scenario.rule and self.scenario.rule.get("mirror_urls"):
            built = sorted({call["path"] for call in polls if not call["path"].startswith("/mirror/")})
            if built:
                problems.append(
                    "built its own poll URLs instead of following status_url/response_url: called " + ", ".join(built)
                )
        if self.scenario.judge_pace:
            waiting = [self._real(call["at"]) for call in polls if _answered_waiting(call)]
            problems += _pace_problems(waiting)
        status = self.scenario.submit_status
        if status:
            submits = [call for call in calls if call["method"] == "POST"]
            if status in FINAL_CODES and len(submits) > 1:
                problems.append(f"retried a refusal that will not change ({status}): {len(submits)} submissions")
            for refused, retry in itertools.pairwise(submits):
                waited = self._real(retry["at"]) - self._real(refused["at"])
                if refused["status"] == 429 and waited < RATE_LIMIT_RETRY_SECONDS:
                    problems.append(
                        f"retried a 429 at once: {waited:.3f} s of real time after it (at least "
                        f"{RATE_LIMIT_RETRY_SECONDS:g} s; x-rate-limit-reset-at-utc says when to try again)"
                    )
                    break
        return problems

    def _fetched_result(self, calls: list[dict[str, Any]]) -> bool:
        return any(
            call["method"] == "GET"
            and call["status"] == 200
            and self._is_job_path(call["path"])
            and not call["path"].endswith("/status")
            for call in calls
        ) or any(
            call["method"] == "POST" and call["path"].startswith("/v1/") and call["status"] == 200 for call in calls
        )

    def _is_job_path(self, path: str) -> bool:
        return self.job_id is not None and self.job_id in path

    def _journal(self, since: float) -> list[dict[str, Any]]:
        """The harness key's calls since the scenario started, oldest first."""
        entries = self.admin.requests()
        tail = self.api_key[-4:]
        return [
            entry
            for entry in entries
            if entry["at"] >= since and isinstance(entry.get("api_key"), str) and entry["api_key"].endswith(tail)
        ]


def _answered_waiting(call: dict[str, Any]) -> bool:
    """Whether a poll's answer said the job was still waiting (QUEUED or PROCESSING)."""
    answer = call.get("response")
    return isinstance(answer, dict) and answer.get("status") in WAITING_STATES


def _pace_problems(times: list[float]) -> list[str]:
    """Polling too often, from the real times of the polls: their average rate, as shown, above the limit."""
    if len(times) < 2:
        return []
    span = max(times) - min(times)  # a poll answered across the clock's move may be journaled after a later one
    # Judged on the figure the report shows, so the verdict and its message always agree.
    rate = round((len(times) - 1) / span, 1) if span > 0 else math.inf
    if rate <= MAX_POLLS_PER_SECOND:
        return []
    return [
        f"polled too often: {len(times)} polls of the waiting job in {span:.3f} s of real time, "
        f"{rate:.1f} a second (at most {MAX_POLLS_PER_SECOND:g})"
    ]


def _short(text: str) -> str:
    text = " ".join(text.split())  # exception texts span lines (the SDK's do)
    return text if len(text) <= _RESULT_LIMIT else text[: _RESULT_LIMIT - 3] + "..."

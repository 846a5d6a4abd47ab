"""Client verification: drive a client through the fake's scenarios; judge what it did, not only what it returned.

    def my_client(base_url: str, api_key: str, model: str, payload: dict) -> object:
        ...  # submit to base_url, wait for the end, return the result; raise on any failure

    report = verify_client(my_client, "http://127.0.0.1:8000")  # a running `segmind-mock serve`
    print(report.render()); assert report.ok

`verify_client` also takes the official SDK's `SegmindClient` built for the fake
(`base_url=f"{fake}/v1"`), and `verify_command` a client in any language, run as a command (the
protocol is in docs/contracts.md). Each scenario is set up through the fake's admin API
(`/_mock/scenarios`, scoped to the harness's API key and model); the client runs in a thread, and
the harness moves the fake's clock (or runs it fast) so a client polling at any interval sees the
outcome. Afterwards the fake's journal (`/_mock/requests`) shows what the client called: whether
it followed the URLs it was given, how fast it polled, whether it retried a refusal, whether it
fetched the result it returned. A client that does not handle the plain completed job is not
judged on the rest; after a client hangs, the rest are not run.
"""

from __future__ import annotations

import contextlib
import inspect
import json
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
from contracts.models import MODELS
from contracts.responses import (
    ERROR_CODES,
    FAILED_STATUS,
    FINAL_CODES,
    RESULT_RETENTION_SECONDS,
    TRANSIENT_CODES,
)

Client = Callable[[str, str, str, dict[str, Any]], Any]

VERIFY_API_KEY = "SG_00000000c0ffee00"
# Simulated seconds the harness moves the clock once the client's job exists: past the end of
# any job (queue plus the slowest model's latency), and far past the documented retention.
PAST_THE_END_SECONDS = 1000.0
PAST_RETENTION_SECONDS = 86400.0
# A job that outlives its retention while still PROCESSING (the admin API caps seconds at 1e9).
NEVER_ENDS_SECONDS = 1e8
# Pace: the completed job runs with the clock this many times real time, and a client polling
# more than MAX_POLLS_PER_SECOND times a simulated second (polls under 10 ms of real time apart)
# polls without pause. Any client sleeping between polls (the SDK: 1 s) is far below it.
PACE_SPEED = 100.0
MAX_POLLS_PER_SECOND = 1.0
# A long queue: the job waits this long QUEUED, with the clock run this fast (about 2 s of real time).
LONG_QUEUE_SECONDS = 1800.0
LONG_QUEUE_SPEED = 1000.0
# The SDK client's pause between polls when verify_client is given a SegmindClient (real seconds).
SDK_POLL_INTERVAL = 0.05
# The environment a command client gets (see verify_command).
COMMAND_VARIABLES = ("SEGMIND_BASE_URL", "SEGMIND_API_KEY", "SEGMIND_MODEL", "SEGMIND_PAYLOAD")
_WATCH_STEP_SECONDS = 0.005
# Real seconds one run of a client's command may take (`verify --timeout`).
COMMAND_TIMEOUT_SECONDS = 60.0
_RESULT_LIMIT = 160


@dataclass(frozen=True)
class Scenario:
    """One way a call can end, and how a client handles it as documented."""

    name: str
    description: str
    rule: dict[str, Any] | None  # the scenario posted to /_mock/scenarios
    expect: str  # "result", "error", or "error-or-result" (retrying a transient error is fine)
    advance: float = PAST_THE_END_SECONDS
    # Run the clock at this speed instead of moving it past the end at once.
    speed: float | None = None
    judge_pace: bool = False


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
            {"outcome": "completed", **mirrored},
            "result",
            speed=PACE_SPEED,
            judge_pace=True,
        ),
        Scenario(
            "long_queue",
            f"the job waits {LONG_QUEUE_SECONDS:g} s QUEUED: keep polling, return the result",
            {"outcome": "completed", "queue_seconds": LONG_QUEUE_SECONDS, **mirrored},
            "result",
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
    model: str = "svd",
    api_key: str = VERIFY_API_KEY,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    admin_token: str | None = None,
) -> Verification:
    """Drive `client` through every scenario of the fake at `base_url`; `transport` reaches its admin API in-process.

    `client` is a callable `(base_url, api_key, model, payload) -> result` that raises on failure,
    or the official SDK's `SegmindClient` built with `base_url=f"{base_url}/v1"` (its own key is
    used). Anything else is refused at once with a TypeError saying what to pass.
    """
    base = base_url.rstrip("/")
    call, api_key = _as_client(client, base, api_key)
    payload = dict(MODELS[model].example)
    report = Verification()
    planned = scenarios()
    with httpx.Client(transport=transport, timeout=30.0) as http:
        admin = FakeAdmin(http, base, admin_token)
        speed = admin.speed()
        try:
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
        finally:
            # Best effort, as before: an error answer here must not replace the one in flight.
            with contextlib.suppress(httpx.HTTPStatusError):
                admin.set_speed(speed)
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
    """
    argv = shlex.split(command)

    def run(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
        values = (base_url, api_key, model, json.dumps(payload))
        env = {**os.environ, **dict(zip(COMMAND_VARIABLES, values, strict=True))}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise CommandFailed(f"exit status {done.returncode}: {last}")
        try:
            return json.loads(done.stdout)
        except ValueError:
            return done.stdout.strip()

    return run


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
            return sdk.submit_async(model, **payload).wait(interval=SDK_POLL_INTERVAL)

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

    def run(self) -> tuple[Outcome, bool]:
        admin, scenario = self.admin, self.scenario
        # One simulated second apart: the journal's times tell this scenario's calls from the last one's.
        started = admin.advance(1)
        admin.set_speed(scenario.speed or 0)
        with contextlib.ExitStack() as scoped:
            if scenario.rule is not None:  # removed once the clock is stopped again
                scoped.enter_context(admin.scenario_once(scenario.rule, self.api_key, self.model))
            before = admin.job_ids()
            thread = threading.Thread(target=self._call, name=f"verify-{scenario.name}", daemon=True)
            thread.start()
            deadline = time.monotonic() + self.timeout
            while thread.is_alive() and time.monotonic() < deadline:
                if self.job_id is None and (new := admin.job_ids() - before):
                    self.job_id = sorted(new)[0]
                    if scenario.speed is None:
                        admin.advance(scenario.advance)
                thread.join(_WATCH_STEP_SECONDS)
            admin.set_speed(0)
        hung = thread.is_alive()
        if self.job_id is None and (new := admin.job_ids() - before):
            self.job_id = sorted(new)[0]
        return self._judge(hung, self._journal(started)), hung

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
        """What the journal shows the client did wrong: own URLs, polling without pause, retried refusals."""
        problems: list[str] = []
        polls = [call for call in calls if call["method"] == "GET" and self._is_job_path(call["path"])]
        if self.scenario.rule and self.scenario.rule.get("mirror_urls"):
            built = sorted({call["path"] for call in polls if not call["path"].startswith("/mirror/")})
            if built:
                problems.append(
                    "built its own poll URLs instead of following status_url/response_url: called " + ", ".join(built)
                )
        if self.scenario.judge_pace:
            rate = _poll_rate(polls)
            if rate > MAX_POLLS_PER_SECOND:
                problems.append(
                    f"polled without pause: {len(polls)} polls, {rate:.1f} a simulated second "
                    f"(at most {MAX_POLLS_PER_SECOND:g}; the clock ran {PACE_SPEED:g}x real time)"
                )
        status = (self.scenario.rule or {}).get("status")
        if status in FINAL_CODES and (self.scenario.rule or {}).get("target", "submit") == "submit":
            submits = [call for call in calls if call["method"] == "POST"]
            if len(submits) > 1:
                problems.append(f"retried a refusal that will not change ({status}): {len(submits)} submissions")
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


def _poll_rate(polls: list[dict[str, Any]]) -> float:
    """Polls per simulated second over the span they cover (a burst at one instant counts as unbounded)."""
    if len(polls) < 3:
        return 0.0
    span = polls[-1]["at"] - polls[0]["at"]
    return float("inf") if span <= 0 else (len(polls) - 1) / span


def _short(text: str) -> str:
    text = " ".join(text.split())  # exception texts span lines (the SDK's do)
    return text if len(text) <= _RESULT_LIMIT else text[: _RESULT_LIMIT - 3] + "..."

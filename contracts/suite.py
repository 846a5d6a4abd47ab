"""The contract suite: checks any base URL (the fake, the live API, a proxy) against the documented contract.

    from contracts.suite import Options, run_suite
    report = run_suite("https://api.segmind.com", "SG_...", Options(max_jobs=1))
    print(report.render())  # report.ok, report.violations (rule, message, request, response)

Free checks first (refusals cost nothing on the real service), then at most `max_jobs` paid
submissions, each polled to its end. Against the fake (detected by `GET /_mock/health`) the suite
stops the fake's clock for the run (restoring its speed afterwards), moves it with
`POST /_mock/clock/advance` instead of waiting, and drives one extra job to FAILED with a
scenario; against anything else it polls in real time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from contracts import media, responses
from contracts.fake_admin import FakeAdmin
from contracts.models import DOCUMENTED_WIDE_MODELS
from contracts.openapi import API_KEY_HEADER, RESULT_PATH, STATUS_PATH, SUBMIT_PATH, SYNC_PATH
from contracts.options import Options as Options  # re-exported: users build Options beside run_suite
from contracts.report import MEDIA_SKIPPED, PYAV_MISSING, Report, Violation
from contracts.responses import (
    ERROR_CODES,
    FAILED_STATUS,
    FINAL_STATES,
    RATE_LIMIT_RESET_FORMAT,
    RATE_LIMIT_RESET_HEADER,
    RATE_LIMIT_WINDOW_SECONDS,
    RESULT_RETENTION_SECONDS,
    STATES,
    SYNC_HEADERS,
    problems,
    show_seconds,
)
from contracts.rules import RULES, counts
from contracts.spec import ModelSpec, is_number
from contracts.strategies import invalid_cases, invalid_payloads, valid_payloads

# Waiting for a rate limit to lift: at most this many waits per call, each at most this long (in
# real time; against the fake the suite moves its clock instead, as far as the reset needs).
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_CAP_SECONDS = 90.0
# Real seconds a v1 call to the fake may take (its stopped clock moves to the job's end at once).
SYNC_TIMEOUT_SECONDS = 60.0
# "Just before the retention ends": how many simulated seconds before it ends the result is polled.
RETENTION_MARGIN_SECONDS = 10.0
_TEXT_LIMIT = 300
# What a rule needs before it can be checked: only free calls, a job the target accepted, a COMPLETED
# job, a decoded video. A rule the run could not check is reported with the cause (Report.skipped).
_FREE_RULES = ("missing-key-401", "unknown-id-404", "invalid-refused", "error-envelope", "error-content-type")
_JOB_RULES = ("submit-shape", "poll-answers", "states-forward", "status-shape", "status-request-id", "job-finishes")
_COMPLETED_RULES = ("completed-metrics", "result-shape", "output-video", "poll-url")
_VIDEO_RULES = ("video-playable", "video-frames", "video-fps", "video-16-9")
_AFTER_COMPLETED = (*_COMPLETED_RULES, *_VIDEO_RULES)
_AFTER_ENDED = ("failed-422", *_AFTER_COMPLETED)
_AFTER_SUBMIT = (*_JOB_RULES, *_AFTER_ENDED)


def run_suite(
    base_url: str,
    api_key: str,
    options: Options | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    admin_token: str | None = None,
) -> Report:
    """Run the contract suite against `base_url` and return its report; `transport` serves it in-process.

    `admin_token`: the token of a fake whose admin API requires one (`serve --admin-token`).
    """
    base = base_url.rstrip("/")
    with httpx.Client(transport=transport, timeout=60.0, follow_redirects=False) as client:
        admin = FakeAdmin(client, base, admin_token)
        run = _Run(client, admin, api_key, options or Options(), progress or (lambda message: None))
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
    payload: dict[str, Any]
    status_url: str
    response_url: str
    poll_url: str | None
    sent: str
    states: list[str] = field(default_factory=list)
    done: bool = False


@dataclass(frozen=True)
class _Planned:
    kind: str  # "example-accepted", "valid-accepted" (v2 jobs), "sync-video" or "sync-base64" (v1 calls)
    model: str
    payload: dict[str, Any]


class _Run:
    def __init__(
        self, client: httpx.Client, admin: FakeAdmin, api_key: str, options: Options, progress: Callable[[str], None]
    ) -> None:
        self.client = client
        self.base = admin.base
        self.api_key = api_key
        self.options = options
        self.progress = progress
        self.report = Report(admin.base)
        self.admin = admin
        self.av = media.pyav()
        self.report.media_skipped = self.av is None

    def all(self) -> None:
        self.report.fake = self.admin.is_fake()
        how = (
            "a segmind-mock fake: its clock is stopped for the run and advanced instead of waiting"
            if self.report.fake
            else "polled in real time"
        )
        self.progress(f"Checking {self.base} ({how})")
        self._known_causes()
        # Every verdict on the fake that rests on its clock (jobs' progress and retention, rate-limit
        # resets, v1 calls) is made with the clock stopped: at any speed, on any machine, nothing
        # moves between reading the time and the call that depends on it.
        with self.admin.clock_stopped() if self.report.fake else contextlib.nullcontext():
            self._checks()
        self.progress(f"Done: {self.report.checks} checks, {len(self.report.violations)} violations")

    def _known_causes(self) -> None:
        """The rules this run cannot check, known before it starts, with the cause."""
        if self.options.documented_only:
            for name, rule in RULES.items():
                if not counts(name, True):
                    self._unmet([name], f"graded {rule.grade}: the run keeps to documented facts")
        if not self.report.fake:
            self._unmet([name for name, rule in RULES.items() if rule.fake_only], "checked against segmind-mock only")
            self._unmet(["failed-422"], "no job ended FAILED (only against segmind-mock can the suite make one fail)")
            self._unmet(["rate-limit-reset"], "no 429 answer arose in this run")
        if self.av is None:
            self.progress("      " + MEDIA_SKIPPED)
            self._unmet(_VIDEO_RULES, PYAV_MISSING)
        if not self.options.jobs:
            self._unmet([name for name in RULES if name not in _FREE_RULES], "no paid jobs (--no-jobs)")
        if "svd" not in self.options.models:
            self._unmet(["video-frames"], "only svd's frames are checked, and svd is not among --model")
        if not set(DOCUMENTED_WIDE_MODELS) & set(self.options.models):
            self._unmet(["video-16-9"], "no model checked documents a 16:9 request (--model)")

    def _checks(self) -> None:
        self.progress(f"[1/5] requests without {API_KEY_HEADER} and unknown request ids")
        self._missing_key()
        self._unknown_ids()
        self._invalid_payloads()
        if self.options.jobs:
            planned = list(self._planned())
            jobs = self._submit_jobs([plan for plan in planned if plan.kind.endswith("-accepted")])
            self._poll(jobs)
            self._sync_calls([plan for plan in planned if plan.kind.startswith("sync-")])
        else:
            self.progress("[3/5] paid jobs skipped (--no-jobs)")
        if self.report.fake and self.options.jobs:  # free on the fake, but jobs all the same
            retention = show_seconds(RESULT_RETENTION_SECONDS)
            self.progress(f"[5/5] the fake's lifecycle: forced error codes, then the {retention} retention")
            self._forced_errors()
            self._retention()

    def _spec(self, model: str) -> ModelSpec:
        """The spec of a checked model, among those loaded (`Options.registry`)."""
        return self.options.registry[model]

    # The free checks.

    def _missing_key(self) -> None:
        model = self.options.models[0]
        for method, url, body in (
            ("POST", self.base + SUBMIT_PATH.format(model=model), dict(self._spec(model).example)),
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
            generated = draw(invalid_payloads(self._spec(model)), self.options.invalid_examples, self.options.seed)
            cases += [(model, payload, broken) for payload, broken in [*invalid_cases(self._spec(model)), *generated]]
        self.progress(f"[2/5] {len(cases)} invalid payloads, each breaking one documented rule (free)")
        for index, (model, payload, broken) in enumerate(cases, 1):
            response, sent = self._call("POST", self.base + SUBMIT_PATH.format(model=model), payload)
            message = f"{model} payload breaking {broken} answered {response.status_code}, not 400"
            self._expect(response.status_code == 400, "invalid-refused", message, sent, response)
            self._envelope(response, sent)
            if index % 25 == 0 or index == len(cases):
                self.progress(f"      {index}/{len(cases)} sent")

    # The paid checks.

    def _planned(self) -> Iterator[_Planned]:
        """The paid calls, within --max-jobs: each model's example (v2), one plain and one base64 v1
        call, then generated payloads (v2)."""
        budget = self.options.max_jobs
        models = self.options.models
        videos = [model for model in models if self._spec(model).is_video]
        sync_model = "svd" if "svd" in models else (videos or models)[0]
        # The v1 call asks for what the example does not, so the video checks meet the most frames
        # the docs allow and 16:9.
        spec = self._spec(sync_model)
        frames = spec.param("frames").enum if "frames" in spec.example else None
        longest = {"frames": max(frames)} if frames else {}
        wide = {**longest, **spec.steer.wide} if sync_model in DOCUMENTED_WIDE_MODELS else {}
        fixed = [_Planned("example-accepted", model, dict(self._spec(model).example)) for model in models]
        fixed.append(_Planned("sync-video", sync_model, {**self._spec(sync_model).example, **wide}))
        # Only a model whose page documents `base64` promises the base64 answer (a model file may not).
        if any(param.name == "base64" for param in spec.params):
            fixed.append(_Planned("sync-base64", sync_model, {**spec.example, "base64": True}))
        else:
            self._unmet(["sync-base64"], f"{sync_model} documents no base64 parameter")
        yield from fixed[:budget]
        within = f"--max-jobs {budget}"
        if not any(plan.kind == "example-accepted" for plan in fixed[:budget]):
            self._unmet(["example-accepted", *_JOB_RULES, *_AFTER_COMPLETED], f"{within} leaves no paid v2 job")
        if not any(plan.kind == "sync-video" and wide for plan in fixed[:budget]):
            self._unmet(["video-16-9"], f"its request, the plain v1 call asking for 16:9, is not within {within}")
        left = budget - len(fixed)
        if left <= 0:
            self._unmet(
                ["valid-accepted"],
                f"{within} leaves no paid call for a generated payload: each model's example and the two "
                f"v1 calls ({len(fixed)} calls) come first",
            )
        for index, model in enumerate(models):
            share = left // len(models) + (index < left % len(models))
            for payload in draw(valid_payloads(self._spec(model)), share, self.options.seed):
                yield _Planned("valid-accepted", model, payload)

    def _submit_jobs(self, planned: list[_Planned]) -> list[_Job]:
        self.progress(f"[3/5] submitting {len(planned)} paid jobs (--max-jobs {self.options.max_jobs})")
        jobs = [job for plan in planned if (job := self._submit(plan.kind, plan.model, plan.payload))]
        if self.report.fake:
            jobs += self._forced_failed_job()
        return jobs

    def _forced_failed_job(self) -> list[_Job]:
        model = self.options.models[0]
        with self.admin.scenario_once({"outcome": "failed"}, self.api_key, model):
            job = self._submit("example-accepted", model, dict(self._spec(model).example), paid=False)
        return [job] if job else []

    def _submit(self, rule: str, model: str, payload: dict[str, Any], paid: bool = True) -> _Job | None:
        response, sent = self._call("POST", self.base + SUBMIT_PATH.format(model=model), payload)
        if paid:  # the fake's extra jobs (FAILED, retention) are free
            self.report.jobs += 1
        self._expect(
            response.status_code == 200, rule, f"valid {model} payload answered {response.status_code}", sent, response
        )
        if response.status_code != 200:
            self._envelope(response, sent)
            self._unmet(_AFTER_SUBMIT, f"a {model} submission was refused with {response.status_code}")
            return None
        body = _json(response)
        found = problems(responses.SUBMIT, body)
        self._expect(not found, "submit-shape", "; ".join(found), sent, response)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            self._unmet(_AFTER_SUBMIT, f"a {model} submit answer carried no request_id to poll")
            return None
        request_id = body["request_id"]
        poll_url = body.get("poll_url")
        return _Job(
            request_id,
            model,
            payload,
            self._url(body.get("status_url"), STATUS_PATH.format(request_id=request_id)),
            self._url(body.get("response_url"), RESULT_PATH.format(request_id=request_id)),
            poll_url if isinstance(poll_url, str) and responses.is_absolute_url(poll_url) else None,
            sent,
        )

    def _poll(self, jobs: list[_Job]) -> None:
        interval, timeout = self.options.poll_interval, self.options.poll_timeout
        self.progress(f"[4/5] polling {len(jobs)} jobs every {interval:g}s (timeout {timeout:g}s)")
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
                    self._unmet(_AFTER_ENDED, f"{message} (--poll-timeout)")
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
            self._unmet(_AFTER_SUBMIT, f"the status of job {job.request_id} answered {response.status_code}")
            return
        if state not in STATES:
            self._expect(False, "status-shape", f"status {state!r} is not a documented state", sent, response)
            job.done = True
            shown = _short(repr(state))
            cause = f"job {job.request_id} answered status {shown}, not a documented state, and was left there"
            self._unmet(_AFTER_SUBMIT, cause)
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
        body = _json(response)
        found = problems(responses.STATUS_BY_STATE[state], body)
        self._expect(not found, "status-shape", f"{state}: " + "; ".join(found), sent, response)
        if isinstance(body, dict) and "request_id" in body:
            named = body["request_id"]
            message = f"polled {job.request_id}, the body names {named!r}"
            self._expect(named == job.request_id, "status-request-id", message, sent, response)
        if state == "COMPLETED":
            metrics = body.get("metrics") if isinstance(body, dict) else None
            took = metrics.get("inference_time") if isinstance(metrics, dict) else None
            ok = isinstance(took, (int, float)) and is_number(took) and took > 0
            self._expect(ok, "completed-metrics", f"metrics.inference_time is {took!r}", sent, response)

    def _finish(self, job: _Job, state: str) -> None:
        job.done = True
        self._expect(True, "job-finishes", "", job.sent, "")
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
            if ok and not found:
                self._check_output(job, body["output"], sent, response)
            else:
                self._unmet(_VIDEO_RULES, f"the result of COMPLETED job {job.request_id} carried no usable output")
        else:
            self._unmet(_AFTER_COMPLETED, f"job {job.request_id} ended {state}")
            ok = response.status_code == FAILED_STATUS
            self._expect(ok, "failed-422", f"result of a FAILED job answered {response.status_code}", sent, response)
            found = problems(responses.FAILED, body)
            self._expect(not found, "failed-422", "; ".join(found), sent, response)
        if job.poll_url is not None:
            self._check_poll_url(job.poll_url, response, body)
        else:
            self._unmet(["poll-url"], f"the submit answer of job {job.request_id} carried no absolute poll_url")
        # Once ended, a job stays ended: poll its status once more.
        again, sent = self._call("GET", job.status_url)
        body = _json(again)
        later = body.get("status") if isinstance(body, dict) else None
        self._expect(later == state, "states-forward", f"job {job.request_id} went {state} -> {later}", sent, again)

    def _check_poll_url(self, poll_url: str, result: httpx.Response, result_body: Any) -> None:
        response, sent = self._call("GET", poll_url)
        body = _json(response)
        same = response.status_code == result.status_code and _status_and_output(body) == _status_and_output(
            result_body
        )
        message = f"poll_url answered {response.status_code} {_status_and_output(body)}, response_url "
        message += f"{result.status_code} {_status_and_output(result_body)}"
        self._expect(same, "poll-url", message, sent, response)

    # The product: output videos and the v1 sync call.

    def _check_output(self, job: _Job, output: str, sent: str, result: httpx.Response) -> None:
        if responses.is_absolute_url(output):
            try:
                # No API key: outputs are public CDN links, and the key is not theirs to see.
                fetched = media.fetch(self.client, output)
            except media.FetchError as error:
                self._expect(False, "output-video", str(error), f"GET {output}", "(no answer)")
                self._unmet(_VIDEO_RULES, f"the output of job {job.request_id} could not be fetched: {error}")
                return
            got = f"{fetched.status} {fetched.content_type} ({len(fetched.data)} bytes)"
            spec = self._spec(job.model)
            kind = "video/" if spec.is_video else spec.output
            ok = (
                fetched.status == 200
                and fetched.content_type.startswith(kind)
                and media.is_media(fetched.data, spec.output)
            )
            message = f"the output URL answered {fetched.status} as {fetched.content_type or 'no content type'}"
            self._expect(ok, "output-video", message, f"GET {output}", got)
            if ok:
                self._check_video(job.model, job.payload, fetched.data, f"GET {output} (from {sent})", got)
            else:
                self._unmet(_VIDEO_RULES, f"job {job.request_id}'s {message}")
            return
        data = _base64(output)  # with "base64": true the output is the video itself
        ok = data is not None and job.payload.get("base64") is True
        self._expect(ok, "output-video", "output is neither a URL nor base64 video data", sent, result)
        if data is not None:
            self._check_video(job.model, job.payload, data, sent, f"{len(data)} bytes of base64 output")
        else:
            self._unmet(_VIDEO_RULES, f"the output of job {job.request_id} is neither a URL nor base64 video data")

    def _check_video(self, model: str, payload: dict[str, Any], data: bytes, sent: str, got: str) -> None:
        """Decode a video and check it against what `payload` asked for (skipped without PyAV, and for an image)."""
        spec = self._spec(model)
        if self.av is None or not spec.is_video:
            return
        try:
            facts = media.decode(self.av, data)
        except media.DecodeError as error:
            self._expect(False, "video-playable", str(error), sent, got)
            self._unmet(_VIDEO_RULES, f"a {model} video did not decode: {error}")
            return
        got = f"{got}: {facts.container}, {facts.frames} frames at {facts.fps} fps, {facts.width}x{facts.height}"
        playable = facts.container in media.MP4_FORMATS and facts.frames > 0
        self._expect(playable, "video-playable", f"not a playable MP4 ({facts.container})", sent, got)
        asked = spec.validate(payload)
        if model == "svd":
            message = f"{facts.frames} frames, {asked['frames']} asked"
            self._expect(facts.frames == asked["frames"], "video-frames", message, sent, got)
        if model in DOCUMENTED_WIDE_MODELS and spec.wants_wide(asked):
            message = f"a {facts.width}x{facts.height} frame for {spec.wide_request_text()}"
            self._expect(facts.is_wide(), "video-16-9", message, sent, got)
        fps = spec.steer.fps  # checked where a parameter asks for it; a fixed rate is the fake's own choice
        if isinstance(fps, str):
            self._expect(facts.fps == asked[fps], "video-fps", f"{facts.fps} fps, {asked[fps]} asked", sent, got)

    def _sync_calls(self, planned: list[_Planned]) -> None:
        kinds = {plan.kind for plan in planned}
        for name in ("sync-video", "sync-base64", "sync-headers"):
            if name not in kinds and (name != "sync-headers" or not kinds):
                self._unmet([name], f"no such v1 call within --max-jobs {self.options.max_jobs}")
        if not planned:
            return
        self.progress(f"      {len(planned)} v1 calls (POST /v1/{{model}}, paid)")
        for plan in planned:
            self.report.jobs += 1
            response, sent = self._sync_call(plan.model, plan.payload)
            self._expect(
                response.status_code == 200, plan.kind, f"v1 call answered {response.status_code}", sent, response
            )
            if response.status_code != 200:
                self._envelope(response, sent)
                self._unmet(["sync-headers", *_VIDEO_RULES], f"the {plan.kind} v1 call answered {response.status_code}")
                continue
            missing = [name for name in SYNC_HEADERS if name not in response.headers]
            self._expect(not missing, "sync-headers", f"missing {', '.join(missing)}", sent, _headers(response))
            data = self._sync_video(plan.kind, response, sent, self._spec(plan.model))
            if data is not None:
                self._check_video(plan.model, plan.payload, data, sent, f"{response.status_code} {len(data)} bytes")

    def _sync_video(self, kind: str, response: httpx.Response, sent: str, spec: ModelSpec) -> bytes | None:
        """The output bytes a v1 answer carries, once its form (raw or base64 JSON) is checked."""
        content_type = response.headers.get("content-type", "")
        if kind == "sync-video":
            wanted = "video/" if spec.is_video else spec.output
            ok = content_type.startswith(wanted) and media.is_media(response.content, spec.output)
            message = f"answered {content_type or 'no content type'}, {len(response.content)} bytes, not video bytes"
            self._expect(ok, kind, message, sent, response)
            if not ok:
                self._unmet(_VIDEO_RULES, f"the {kind} v1 call {message}")
            return response.content if ok else None
        body = _json(response)
        videos = [data for value in body.values() if (data := _base64(value))] if isinstance(body, dict) else []
        found = next((data for data in videos if media.is_media(data, spec.output)), None)
        ok = content_type.startswith("application/json") and found is not None
        message = f"answered {content_type or 'no content type'} without base64 MP4"
        self._expect(ok, kind, message, sent, response)
        if not ok:
            self._unmet(_VIDEO_RULES, f"the {kind} v1 call {message}")
        return found

    def _sync_call(self, model: str, payload: dict[str, Any]) -> tuple[httpx.Response, str]:
        url = self.base + SYNC_PATH.format(model=model)
        if not self.report.fake:
            return self._call("POST", url, payload, timeout=self.options.poll_timeout)
        # On the fake's stopped clock the call moves the clock to its job's end and answers at once:
        # with the fake's admin token where it has one, since that move is the admin's to make.
        return self._call("POST", url, payload, admin=True, timeout=SYNC_TIMEOUT_SECONDS)

    # The fake's lifecycle, forced through its scenarios and clock (free).

    def _forced_errors(self) -> None:
        model = self.options.models[0]
        url = self.base + SUBMIT_PATH.format(model=model)
        for code in ERROR_CODES:
            with self.admin.scenario_once({"outcome": "http_error", "status": code}, self.api_key, model) as rule_id:
                # A 429 that left the scenario unused is the key's rate limit, not the forced answer.
                response, sent = self._call(
                    "POST",
                    url,
                    dict(self._spec(model).example),
                    rate_limited=lambda answer: answer.status_code == 429 and rule_id in self.admin.scenario_ids(),
                )
            sent += f" (a scenario forcing {code})"
            message = f"forced {code} answered {response.status_code}"
            self._expect(response.status_code == code, "error-codes", message, sent, response)
            self._envelope(response, sent)
            if response.status_code == 429:
                self._reset_header(response, sent)

    def _retention(self) -> None:
        model = self.options.models[0]
        job = self._submit("example-accepted", model, dict(self._spec(model).example), paid=False)
        if job is None:
            return
        routes = [job.status_url, job.response_url, *([job.poll_url] if job.poll_url else [])]
        submitted = self.admin.job(job.request_id)
        for offset, kept in ((-RETENTION_MARGIN_SECONDS, True), (0.0, False)):
            self._wait(submitted["submitted_at"] + RESULT_RETENTION_SECONDS + offset - self.admin.now())
            when = f"{RESULT_RETENTION_SECONDS + offset:g}s after submission"
            for url in routes:
                response, sent = self._call("GET", url)
                answered = response.status_code != 404
                message = f"{'no result' if kept else 'still answered'} {when}: {response.status_code}"
                self._expect(answered == kept, "retention-1h", message, sent, response)
                self._envelope(response, sent)

    # Plumbing.

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.report.fake:
            self.admin.advance(seconds)
        else:
            time.sleep(seconds)

    def _url(self, given: Any, path: str) -> str:
        # Follow the URL the service gave, as the SDK does; a broken one is reported by submit-shape.
        return given if isinstance(given, str) and responses.is_absolute_url(given) else f"{self.base}{path}"

    def _key(self) -> dict[str, str]:
        return {API_KEY_HEADER: self.api_key}

    def _call(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        key: bool = True,
        admin: bool = False,
        timeout: float | None = None,
        rate_limited: Callable[[httpx.Response], bool] = lambda response: response.status_code == 429,
    ) -> tuple[httpx.Response, str]:
        """Send one call of the suite, waiting out a rate limit as the docs say (the one place 429s are handled)."""
        headers = {**(self._key() if key else {}), **(self.admin.headers if admin else {})}
        sent = f"{method} {url}" + ("" if key else f" (no {API_KEY_HEADER})")
        sent += f" {_short(body)}" if body is not None else ""
        wait = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        response = self.client.request(method, url, json=body, headers=headers, timeout=wait)
        for _ in range(RATE_LIMIT_RETRIES):
            if not rate_limited(response):
                break
            self._reset_header(response, sent)
            self._wait_for_reset(response)
            response = self.client.request(method, url, json=body, headers=headers, timeout=wait)
        return response, sent

    def _reset_header(self, response: httpx.Response, sent: str) -> None:
        reset = response.headers.get(RATE_LIMIT_RESET_HEADER)
        at = _reset_time(reset)
        if at is None:
            message = f"{RATE_LIMIT_RESET_HEADER} is {reset!r}, not a UTC time like 2026-01-31T12:00:00Z"
            self._expect(False, "rate-limit-reset", message, sent, _headers(response))
            return
        # On the wall clock, the fake's too (whatever its speed: docs/accounts.md); a second of slack,
        # as the header is written to the second.
        ok = at >= datetime.now(UTC).replace(microsecond=0)
        self._expect(ok, "rate-limit-reset", f"{RATE_LIMIT_RESET_HEADER} {reset} is in the past", sent, response)

    def _wait_for_reset(self, response: httpx.Response) -> None:
        wait = min(_until_reset(response, datetime.now(UTC)), RATE_LIMIT_WAIT_CAP_SECONDS)
        if self.report.fake:  # moving the fake's clock moves its rate-limit windows too
            self.progress(f"      rate limited: moving the fake's clock {wait:.0f}s before retrying")
        else:
            self.progress(f"      rate limited: waiting {wait:.0f}s before retrying")
        self._wait(wait)

    def _unmet(self, rules: Iterable[str], cause: str) -> None:
        """Say why `rules` may go unchecked; the first cause given is kept, and reported only if they do."""
        for rule in rules:
            self.report.left_out.setdefault(rule, cause)

    def _expect(self, ok: bool, rule: str, message: str, sent: str, response: httpx.Response | str) -> None:
        if not counts(rule, self.options.documented_only):
            return
        self.report.checked[rule] = self.report.checked.get(rule, 0) + 1
        if not ok:
            got = response if isinstance(response, str) else f"{response.status_code} {_short(response.text)}"
            self.report.violations.append(Violation(rule, message, sent, got))

    def _envelope(self, response: httpx.Response, sent: str) -> None:
        if response.status_code < 400:
            return
        content_type = response.headers.get("content-type", "")
        message = f"{response.status_code} error served as {content_type or 'no content type'}"
        self._expect(content_type.startswith("application/json"), "error-content-type", message, sent, response)
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
    at = _reset_time(response.headers.get(RATE_LIMIT_RESET_HEADER))
    if at is None:
        return RATE_LIMIT_WINDOW_SECONDS  # nothing readable about the reset: wait one documented window
    return max((at - now).total_seconds(), 1.0)


def _status_and_output(body: Any) -> tuple[Any, Any]:
    return (body.get("status"), body.get("output")) if isinstance(body, dict) else (None, None)


def _base64(value: Any) -> bytes | None:
    """The bytes a base64 string carries, or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _headers(response: httpx.Response) -> str:
    return f"{response.status_code} headers " + _short(dict(response.headers))


def _reset_time(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", RATE_LIMIT_RESET_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None

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

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from contracts.fake_admin import FakeAdmin
from contracts.models import DOCUMENTED_WIDE_MODELS
from contracts.openapi import API_KEY_HEADER, RESULT_PATH, STATUS_PATH, SUBMIT_PATH
from contracts.options import Options as Options  # re-exported: users build Options beside run_suite
from contracts.report import MEDIA_SKIPPED, PYAV_MISSING, Report
from contracts.responses import ERROR_CODES, RESULT_RETENTION_SECONDS, show_seconds
from contracts.rules import AFTER_COMPLETED, FREE_RULES, JOB_RULES, RULES, VIDEO_RULES, counts
from contracts.strategies import invalid_cases, invalid_payloads, valid_payloads
from contracts.suite_calls import Job, Planned
from contracts.suite_polling import JobChecks

# "Just before the retention ends": how many simulated seconds before it ends the result is polled.
RETENTION_MARGIN_SECONDS = 10.0


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


class _Run(JobChecks):
    """One run: the free checks, the paid calls planned within --max-jobs, and the fake's lifecycle."""

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
            self._unmet(VIDEO_RULES, PYAV_MISSING)
        if not self.options.jobs:
            self._unmet([name for name in RULES if name not in FREE_RULES], "no paid jobs (--no-jobs)")
        if "svd" not in self.options.models:
            self._unmet(["video-frames"], "only svd's frames are checked, and svd is not among --model")
        if not set(DOCUMENTED_WIDE_MODELS) & set(self.options.models):
            self._unmet(["video-16-9"], "no model checked documents a 16:9 request (--model)")
        videos = [self._spec(model) for model in self.options.models if self._spec(model).is_video]
        if videos and not any(isinstance(spec.steer.fps, str) for spec in videos):
            fixed = "; ".join(
                f"{spec.slug}'s is fixed ({spec.steer.fps} fps, its model file's choice)" for spec in videos
            )
            self._unmet(["video-fps"], f"no model checked (--model) has a parameter asking for a frame rate: {fixed}")

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

    def _planned(self) -> Iterator[Planned]:
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
        fixed = [Planned("example-accepted", model, dict(self._spec(model).example)) for model in models]
        fixed.append(Planned("sync-video", sync_model, {**self._spec(sync_model).example, **wide}))
        # Only a model whose page documents `base64` promises the base64 answer (a model file may not).
        if any(param.name == "base64" for param in spec.params):
            fixed.append(Planned("sync-base64", sync_model, {**spec.example, "base64": True}))
        else:
            self._unmet(["sync-base64"], f"{sync_model} documents no base64 parameter")
        yield from fixed[:budget]
        within = f"--max-jobs {budget}"
        if not any(plan.kind == "example-accepted" for plan in fixed[:budget]):
            self._unmet(["example-accepted", *JOB_RULES, *AFTER_COMPLETED], f"{within} leaves no paid v2 job")
        if not any(plan.kind == "sync-video" and wide for plan in fixed[:budget]):
            self._unmet(["video-16-9"], f"its request, the plain v1 call asking for 16:9, is not within {within}")
        left = budget - len(fixed)
        if left <= 0:
            self._unmet(
                ["valid-accepted"], f"{within} leaves no paid call for a generated payload: {_spent(fixed[:budget])}"
            )
        for index, model in enumerate(models):
            share = left // len(models) + (index < left % len(models))
            for payload in draw(valid_payloads(self._spec(model)), share, self.options.seed):
                yield Planned("valid-accepted", model, payload)

    def _submit_jobs(self, planned: list[Planned]) -> list[Job]:
        self.progress(f"[3/5] submitting {len(planned)} paid jobs (--max-jobs {self.options.max_jobs})")
        jobs = [job for plan in planned if (job := self._submit(plan.kind, plan.model, plan.payload))]
        if self.report.fake:
            jobs += self._forced_failed_job()
        return jobs

    def _forced_failed_job(self) -> list[Job]:
        model = self.options.models[0]
        with self.admin.scenario_once({"outcome": "failed"}, self.api_key, model):
            job = self._submit("example-accepted", model, dict(self._spec(model).example), paid=False)
        return [job] if job else []

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


# The v1 calls of the plan, as a reason names them.
_V1_CALLS = {"sync-video": "plain", "sync-base64": "base64"}


def _spent(plans: list[Planned]) -> str:
    """What a budget went to, in words: "it goes to 2 model examples (v2) and the plain v1 call, planned first"."""
    examples = sum(plan.kind == "example-accepted" for plan in plans)
    v1 = [_V1_CALLS[plan.kind] for plan in plans if plan.kind in _V1_CALLS]
    spent = [f"{examples} model example{'s' if examples > 1 else ''} (v2)"] if examples else []
    if v1:
        spent.append(f"the {' and '.join(v1)} v1 call{'s' if len(v1) > 1 else ''}")
    return f"it goes to {' and '.join(spent)}, planned first" if spent else "it allows no paid call"

"""The contract suite's checks of a job's life: its submission, its status polled to the end, its result."""

from __future__ import annotations

from typing import Any

import httpx

from contracts import responses
from contracts.openapi import RESULT_PATH, STATUS_PATH, SUBMIT_PATH
from contracts.responses import FAILED_STATUS, FINAL_STATES, STATES, problems
from contracts.rules import AFTER_COMPLETED, AFTER_ENDED, AFTER_SUBMIT, VIDEO_RULES
from contracts.spec import is_number
from contracts.suite_calls import Job, body_of, shortened
from contracts.suite_outputs import OutputChecks


class JobChecks(OutputChecks):
    """The checks of a paid job, submitted and polled to its end."""

    def _submit(self, rule: str, model: str, payload: dict[str, Any], paid: bool = True) -> Job | None:
        response, sent = self._call("POST", self.base + SUBMIT_PATH.format(model=model), payload)
        if paid:  # the fake's extra jobs (FAILED, retention) are free
            self.report.jobs += 1
        self._expect(
            response.status_code == 200, rule, f"valid {model} payload answered {response.status_code}", sent, response
        )
        if response.status_code != 200:
            self._envelope(response, sent)
            self._unmet(AFTER_SUBMIT, f"a {model} submission was refused with {response.status_code}")
            return None
        body = body_of(response)
        found = problems(responses.SUBMIT, body)
        self._expect(not found, "submit-shape", "; ".join(found), sent, response)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            self._unmet(AFTER_SUBMIT, f"a {model} submit answer carried no request_id to poll")
            return None
        request_id = body["request_id"]
        poll_url = body.get("poll_url")
        return Job(
            request_id,
            model,
            payload,
            self._url(body.get("status_url"), STATUS_PATH.format(request_id=request_id)),
            self._url(body.get("response_url"), RESULT_PATH.format(request_id=request_id)),
            poll_url if isinstance(poll_url, str) and responses.is_absolute_url(poll_url) else None,
            sent,
        )

    def _poll(self, jobs: list[Job]) -> None:
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
                    self._unmet(AFTER_ENDED, f"{message} (--poll-timeout)")
                return
            self._wait(interval)
            waited += interval

    def _poll_once(self, job: Job) -> None:
        response, sent = self._call("GET", job.status_url)
        body = body_of(response)
        state = body.get("status") if isinstance(body, dict) else None
        if response.status_code not in (200, FAILED_STATUS):
            self._expect(
                False, "poll-answers", f"status of an accepted job answered {response.status_code}", sent, response
            )
            self._envelope(response, sent)
            job.done = True
            self._unmet(AFTER_SUBMIT, f"the status of job {job.request_id} answered {response.status_code}")
            return
        if state not in STATES:
            self._expect(False, "status-shape", f"status {state!r} is not a documented state", sent, response)
            job.done = True
            shown = shortened(repr(state))
            cause = f"job {job.request_id} answered status {shown}, not a documented state, and was left there"
            self._unmet(AFTER_SUBMIT, cause)
            return
        self._check_state(job, state, response, sent)
        if state in FINAL_STATES:
            self._finish(job, state)

    def _check_state(self, job: Job, state: str, response: httpx.Response, sent: str) -> None:
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
        body = body_of(response)
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

    def _finish(self, job: Job, state: str) -> None:
        job.done = True
        self._expect(True, "job-finishes", "", job.sent, "")
        self.progress(f"      {job.model} job {job.request_id}: {' -> '.join(_runs(job.states))}")
        response, sent = self._call("GET", job.response_url)
        body = body_of(response)
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
                self._unmet(VIDEO_RULES, f"the result of COMPLETED job {job.request_id} carried no usable output")
        else:
            self._unmet(AFTER_COMPLETED, f"job {job.request_id} ended {state}")
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
        body = body_of(again)
        later = body.get("status") if isinstance(body, dict) else None
        self._expect(later == state, "states-forward", f"job {job.request_id} went {state} -> {later}", sent, again)

    def _check_poll_url(self, poll_url: str, result: httpx.Response, result_body: Any) -> None:
        response, sent = self._call("GET", poll_url)
        body = body_of(response)
        same = response.status_code == result.status_code and _status_and_output(body) == _status_and_output(
            result_body
        )
        message = f"poll_url answered {response.status_code} {_status_and_output(body)}, response_url "
        message += f"{result.status_code} {_status_and_output(result_body)}"
        self._expect(same, "poll-url", message, sent, response)


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


def _status_and_output(body: Any) -> tuple[Any, Any]:
    return (body.get("status"), body.get("output")) if isinstance(body, dict) else (None, None)

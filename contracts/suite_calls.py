"""The contract suite's calls and verdicts: one call (waiting out a rate limit), a check graded, a rule left
unchecked with its cause; the job a run follows.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from contracts import media, responses
from contracts.fake_admin import FakeAdmin
from contracts.openapi import API_KEY_HEADER
from contracts.options import Options
from contracts.report import Report, Violation
from contracts.responses import RATE_LIMIT_RESET_FORMAT, RATE_LIMIT_RESET_HEADER, RATE_LIMIT_WINDOW_SECONDS, problems
from contracts.rules import counts
from contracts.spec import ModelSpec

# Waiting for a rate limit to lift: at most this many waits per call, each at most this long (in
# real time; against the fake the suite moves its clock instead, as far as the reset needs).
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_CAP_SECONDS = 90.0
_TEXT_LIMIT = 300


@dataclass(frozen=True)
class Planned:
    kind: str  # "example-accepted", "valid-accepted" (v2 jobs), "sync-video" or "sync-base64" (v1 calls)
    model: str
    payload: dict[str, Any]


@dataclass
class Job:
    request_id: str
    model: str
    payload: dict[str, Any]
    status_url: str
    response_url: str
    poll_url: str | None
    sent: str
    states: list[str] = field(default_factory=list)
    done: bool = False


class Calls:
    """A run's plumbing: its client and report, the calls it sends and the checks it grades."""

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

    def _spec(self, model: str) -> ModelSpec:
        """The spec of a checked model, among those loaded (`Options.registry`)."""
        return self.options.registry[model]

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
        sent += f" {shortened(body)}" if body is not None else ""
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
            self._expect(False, "rate-limit-reset", message, sent, headers_text(response))
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
            got = response if isinstance(response, str) else f"{response.status_code} {shortened(response.text)}"
            self.report.violations.append(Violation(rule, message, sent, got))

    def _envelope(self, response: httpx.Response, sent: str) -> None:
        if response.status_code < 400:
            return
        content_type = response.headers.get("content-type", "")
        message = f"{response.status_code} error served as {content_type or 'no content type'}"
        self._expect(content_type.startswith("application/json"), "error-content-type", message, sent, response)
        body = body_of(response)
        found = problems(responses.ERROR, body) if body is not None else ["the body is not JSON"]
        self._expect(
            not found, "error-envelope", f"{response.status_code} error body: " + "; ".join(found), sent, response
        )


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def shortened(value: Any) -> str:
    if isinstance(value, dict):
        value = {key: shortened(item) if isinstance(item, str) else item for key, item in value.items()}
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _until_reset(response: httpx.Response, now: datetime) -> float:
    at = _reset_time(response.headers.get(RATE_LIMIT_RESET_HEADER))
    if at is None:
        return RATE_LIMIT_WINDOW_SECONDS  # nothing readable about the reset: wait one documented window
    return max((at - now).total_seconds(), 1.0)


def base64_bytes(value: Any) -> bytes | None:
    """The bytes a base64 string carries, or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def headers_text(response: httpx.Response) -> str:
    return f"{response.status_code} headers " + shortened(dict(response.headers))


def _reset_time(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", RATE_LIMIT_RESET_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None

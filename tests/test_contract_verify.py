"""Client verification: the official SDK handles every scenario of the fake; each kind of careless client is caught."""

from __future__ import annotations

import itertools
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from segmind import SegmindClient

from contracts.openapi import API_KEY_VARIABLE
from contracts.responses import ERROR_CODES, FINAL_CODES
from contracts.verify import KeyRateLimited, scenarios, verify_client
from mock_server import SegmindMock
from mock_server.accounts import parse_config
from mock_server.cli import main
from mock_server.journal import mask_key
from tests.support_accounts import CONFIG, FREE, POOR, RICH, SVD_ONLY
from tests.support_contracts import sdk_client
from tests.support_fakes import FakeFactory

NAMES = [scenario.name for scenario in scenarios()]
REFUSALS = [f"http_{code}" for code in sorted(FINAL_CODES)]
# A command client in Python, speaking the protocol of `segmind-mock verify --command`.
COMMAND_CLIENT = Path(__file__).with_name("support_command_client.py")
ONE_A_MINUTE = "SG_0000000000000ee1"  # a key allowed one submission a minute


@pytest.fixture
def fake_url(make_fake: FakeFactory) -> tuple[str, SegmindMock]:
    """A frozen-clock fake of its own on a real server: its URL, and the fake."""
    mock = make_fake(speed=0)
    return make_fake.serve(mock), mock


# The careless client's polls of one job: each is a real HTTP round trip, far more than the
# harness needs to see the job and move the fake's clock past its end.
CARELESS_POLLS = 5000


def careless_client(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
    """Treats any answer as a result, and polls back to back without a pause."""
    with httpx.Client(headers={"x-api-key": api_key}) as http:
        submitted = http.post(f"{base_url}/v2/{model}", json=payload).json()
        if "status_url" not in submitted:
            return submitted
        for _ in range(CARELESS_POLLS):
            status = http.get(submitted["status_url"]).json()
            if status.get("status") not in ("QUEUED", "PROCESSING"):
                return http.get(submitted["response_url"]).json()
        return status


# Real seconds a careful client sleeps between polls: below the harness's limit of 4 polls a second.
POLL_INTERVAL = 0.3


class Polling:
    """A client polling with pauses, raising on any error answer; each flag breaks one behaviour."""

    def __init__(
        self, *, own_urls: bool = False, retries: int = 0, invents: bool = False, patience: int | None = None
    ) -> None:
        self.own_urls = own_urls  # builds /v2/requests/{id}/status itself instead of following status_url
        self.retries = retries  # sends a refused submission again, whatever the refusal
        self.invents = invents  # on a failed poll, reports the job COMPLETED without fetching the result
        self.patience = patience  # gives up after this many QUEUED answers

    def __call__(self, base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
        with httpx.Client(headers={"x-api-key": api_key}, timeout=10) as http:
            for attempt in range(self.retries + 1):
                answer = http.post(f"{base_url}/v2/{model}", json=payload)
                if answer.status_code == 200 or attempt == self.retries:
                    break
            answer.raise_for_status()
            submitted = answer.json()
            request_id = submitted["request_id"]
            status_url, result_url = submitted["status_url"], submitted["response_url"]
            if self.own_urls:
                status_url = f"{base_url}/v2/requests/{request_id}/status"
                result_url = f"{base_url}/v2/requests/{request_id}"
            queued = 0
            while True:
                try:
                    status = http.get(status_url)
                    status.raise_for_status()
                except httpx.HTTPError:
                    if self.invents:
                        return {"status": "COMPLETED", "output": f"{base_url}/outputs/{request_id}.mp4"}
                    raise
                state = status.json()["status"]
                if state == "COMPLETED":
                    return http.get(result_url).raise_for_status().json()
                queued += state == "QUEUED"
                if self.patience is not None and queued > self.patience:
                    raise TimeoutError(f"still QUEUED after {queued} polls")
                time.sleep(POLL_INTERVAL)


def test_scenarios_start_with_the_plain_job_and_cover_polls_queues_and_each_error_code() -> None:
    assert [
        "completed",
        "long_queue",
        "failed",
        "rai_blocked",
        "expired",
        "poll_502",
        "poll_dropped",
        *(f"http_{code}" for code in ERROR_CODES),
    ] == NAMES


@pytest.mark.slow  # the SDK polls at its default interval, 1 s: about 20 s
def test_the_sdk_handles_every_scenario(fake_url: tuple[str, SegmindMock]) -> None:
    url, mock = fake_url
    report = verify_client(sdk_client, url)
    assert report.ok, report.render()
    assert report.render().startswith(f"Client verification: {len(NAMES)}/{len(NAMES)} scenarios")
    assert mock.scenarios.rules() == []  # every scenario the harness added is gone
    assert mock.clock.speed == 0  # and the clock runs as it did before


@pytest.mark.slow  # as above
def test_a_segmind_client_built_for_the_fake_is_verified_as_it_is(fake_url: tuple[str, SegmindMock]) -> None:
    url, mock = fake_url
    client = SegmindClient(api_key="SG_0123456789abcdef", base_url=f"{url}/v1")
    try:
        report = verify_client(client, url)
    finally:
        client._client.close()
    assert report.ok, report.render()
    # It followed the mirror URLs it was given, under its own key.
    paths = [entry["path"] for entry in mock.requests if entry["api_key"] == "SG_…cdef" and entry["method"] == "GET"]
    assert paths and all(path.startswith("/mirror/") for path in paths[:3])


def test_what_cannot_be_driven_is_refused_at_once(fake_url: tuple[str, SegmindMock]) -> None:
    url, mock = fake_url
    elsewhere = SegmindClient(api_key="SG_0123456789abcdef")  # api.segmind.com
    try:
        with pytest.raises(TypeError, match=rf"base_url='{url}/v1'"):
            verify_client(elsewhere, url)
    finally:
        elsewhere._client.close()
    with pytest.raises(TypeError, match="pass a function"):
        verify_client("svd", url)
    with pytest.raises(TypeError, match="four arguments"):
        verify_client(lambda base_url: None, url)
    assert mock.jobs == [] and mock.requests == []  # refused before anything was sent


def test_a_client_polling_without_pause_is_flagged_and_judged_no_further(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    report = verify_client(careless_client, url, model="motionctrl-svd")
    assert report.failed == ["completed"] and [scenario.name for scenario in report.not_judged] == NAMES[1:]
    text = report.render()
    assert "polled too often" in text and "of real time" in text and "a second (at most 4)" in text
    assert "not judged, since the client did not handle the plain completed job: long_queue" in text


def test_a_client_that_always_raises_handles_nothing(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url

    def always_raises(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
        raise RuntimeError("not implemented")

    report = verify_client(always_raises, url)
    assert not report.ok and report.failed == ["completed"] and len(report.not_judged) == len(NAMES) - 1
    assert report.render().startswith(f"Client verification: 0/{len(NAMES)} scenarios")


def test_a_client_building_its_own_urls_is_flagged(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    report = verify_client(Polling(own_urls=True), url)
    assert report.failed == ["completed"]
    outcome = report.outcomes[0]
    assert any("built its own poll URLs" in problem for problem in outcome.problems)
    # The journal shows which URLs it called: the usual paths, not the mirror it was given.
    assert any(call.startswith("GET /v2/requests/") for call in outcome.calls)


def test_a_well_behaved_polling_client_passes(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    report = verify_client(Polling(), url)
    assert report.ok, report.render()


@pytest.mark.slow  # a whole verify run with real-time polling: the full suite runs it, the inner loop not
def test_a_client_retrying_refusals_that_will_not_change_is_flagged(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    report = verify_client(Polling(retries=2), url)
    # It retries at once: a 429 too, which it may retry, but not without a pause.
    assert report.failed == [*REFUSALS, "http_429"], report.render()
    assert "retried a refusal that will not change (400): 2 submissions" in report.render()


@pytest.mark.slow  # a whole verify run with real-time polling: the full suite runs it, the inner loop not
def test_a_client_inventing_a_result_after_a_failed_poll_is_flagged(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    report = verify_client(Polling(invents=True), url)
    # Every failed poll, transient or not, became a result it never fetched.
    assert report.failed == ["failed", "rai_blocked", "expired", "poll_502", "poll_dropped"], report.render()
    assert all("returned a result it never fetched" in outcome.problems[0] for outcome in report.outcomes[2:7])


@pytest.mark.slow  # a whole verify run with real-time polling: the full suite runs it, the inner loop not
def test_a_client_giving_up_in_a_long_queue_is_flagged(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    # Other jobs stay QUEUED until the harness moves the clock, which it does at once; the long queue
    # lasts 1.8 s of real time, 6 polls.
    report = verify_client(Polling(patience=3), url)
    assert report.failed == ["long_queue"], report.render()


@pytest.mark.slow  # a whole verify run with real-time polling: the full suite runs it, the inner loop not
def test_the_run_stops_after_a_client_hangs(fake_url: tuple[str, SegmindMock]) -> None:
    url, mock = fake_url
    release = threading.Event()
    calls = itertools.count()

    def hangs_in_its_third_call(base_url: str, api_key: str, model: str, payload: dict[str, Any]) -> Any:
        if next(calls) == 2:
            release.wait(10)  # bounded: the test releases it once the harness has given up on it
        return Polling()(base_url, api_key, model, payload)

    try:
        report = verify_client(hangs_in_its_third_call, url, timeout=5.0)
    finally:
        release.set()
    assert [outcome.scenario.name for outcome in report.outcomes] == NAMES[:3]
    assert [scenario.name for scenario in report.not_run] == NAMES[3:]
    assert not report.ok and report.failed == ["failed"]
    text = report.render()
    assert "FAIL failed: " in text and "no answer within 5s" in text
    assert "not run, since the client hung and may still be calling the fake: rai_blocked, expired" in text
    assert mock.scenarios.rules() == []  # the hung scenario's rule is removed too


@pytest.mark.parametrize(("behaviour", "code"), [pytest.param("sdk", 0, marks=pytest.mark.slow), ("careless", 1)])
def test_verify_runs_a_command_client_once_per_scenario(
    behaviour: str, code: int, fake_url: tuple[str, SegmindMock], capsys: pytest.CaptureFixture[str]
) -> None:
    url, mock = fake_url
    command = f"{sys.executable} {COMMAND_CLIENT} {behaviour}"
    assert main(["verify", "--base-url", url, "--command", command, "--timeout", "30"]) == code
    out = capsys.readouterr().out
    if code == 0:
        assert f"{len(NAMES)}/{len(NAMES)} scenarios handled" in out
        assert "raised CommandFailed: exit status 1: " in out  # a failure is a non-zero exit
    else:
        # It exits 0 printing the last status it polled: a result it never fetched.
        assert "FAIL completed: " in out and "returned a result it never fetched" in out
    assert mock.scenarios.rules() == []


def test_the_mirror_urls_field_is_a_boolean_of_submit_rules(fake_url: tuple[str, SegmindMock]) -> None:
    url, _ = fake_url
    with httpx.Client(base_url=url) as admin:
        wrong = admin.post("/_mock/scenarios", json={"outcome": "completed", "mirror_urls": "yes"})
        on_a_poll = admin.post(
            "/_mock/scenarios", json={"outcome": "disconnect", "target": "status", "mirror_urls": True}
        )
    assert wrong.status_code == 400 and "mirror_urls must be true or false" in wrong.json()["error"]
    assert on_a_poll.status_code == 400 and "unknown field(s) mirror_urls" in on_a_poll.json()["error"]


# A command client polling at a chosen real-time pace (support_paced_client.py says how).
PACED_CLIENT = Path(__file__).with_name("support_paced_client.py")
PACE_PROBLEM = re.compile(
    r"polled too often: (\d+) polls of the waiting job in ([\d.]+) s of real time, ([\d.]+) a second \(at most 4\)"
)


def paced(interval: float, retry_429_after: float | None = None) -> str:
    """The command of a client sleeping `interval` real seconds between polls, retrying a 429 after a pause if given."""
    retry = "" if retry_429_after is None else f" {retry_429_after}"
    return f"{sys.executable} {PACED_CLIENT} {interval}{retry}"


@pytest.fixture
def fake_with_keys(make_fake: FakeFactory) -> tuple[str, SegmindMock]:
    """A frozen-clock fake declaring the test keys on a real server: its URL, and the fake."""
    mock = make_fake(speed=0, accounts=CONFIG)
    return make_fake.serve(mock), mock


@pytest.mark.parametrize("interval", [0, 0.01])
def test_verify_flags_a_command_polling_faster_than_four_times_a_second_by_its_real_rate(
    interval: float, fake_url: tuple[str, SegmindMock], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = fake_url
    assert main(["verify", "--base-url", url, "--command", paced(interval)]) == 1
    out = capsys.readouterr().out
    assert "FAIL completed: " in out, out
    found = PACE_PROBLEM.search(out)
    assert found, out
    polls, span, rate = int(found[1]), float(found[2]), float(found[3])
    # The rate shown is the real one over the span shown (both rounded), and above the limit it names.
    assert (polls - 1) / (span + 0.0005) - 0.05 <= rate <= (polls - 1) / max(span - 0.0005, 1e-9) + 0.05
    assert rate > 4


@pytest.mark.slow  # every scenario, each run of the client polling every 0.5 s: about 30 s
def test_verify_passes_a_command_polling_every_half_second_with_a_declared_key(
    fake_with_keys: tuple[str, SegmindMock], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, mock = fake_with_keys
    monkeypatch.setenv(API_KEY_VARIABLE, POOR)  # --api-key wins over the variable
    # It retries the 429 after 1.2 s: a pause, so not at once.
    assert main(["verify", "--base-url", url, "--command", paced(0.5, 1.2), "--api-key", RICH]) == 0
    out = capsys.readouterr().out
    assert f"{len(NAMES)}/{len(NAMES)} scenarios handled" in out, out
    assert re.search(r"ok   http_429: .*; returned \{'status': 'COMPLETED'", out), out
    assert {job["api_key"] for job in mock.jobs} == {mask_key(RICH)}  # every job under the key given


@pytest.mark.slow  # every scenario: about 30 s
def test_verify_flags_a_429_retried_at_once(
    fake_url: tuple[str, SegmindMock], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = fake_url
    assert main(["verify", "--base-url", url, "--command", paced(0.5, 0)]) == 1
    out = capsys.readouterr().out
    assert f"{len(NAMES) - 1}/{len(NAMES)} scenarios handled" in out and "FAIL http_429: " in out, out
    assert re.search(r"retried a 429 at once: 0\.\d{3} s of real time after it \(at least 1 s;", out), out


@pytest.mark.parametrize(
    ("variable", "flags", "said"),
    [
        (None, [], "…ee00 for svd: 401 Unauthorized"),  # the default key, which only an open fake accepts
        (SVD_ONLY, ["--model", "motionctrl-svd"], "…00dd for motionctrl-svd: 403 "),
        (SVD_ONLY, ["--model", "motionctrl-svd", "--api-key", "SG_0000000000000bad"], "…0bad for motionctrl-svd: 401 "),
    ],
)
def test_verify_cannot_run_with_a_key_the_fake_refuses(
    variable: str | None,
    flags: list[str],
    said: str,
    fake_with_keys: tuple[str, SegmindMock],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, mock = fake_with_keys
    if variable is None:
        monkeypatch.delenv(API_KEY_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(API_KEY_VARIABLE, variable)
    assert main(["verify", "--base-url", url, "--command", paced(0.5), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no report: the client is not judged
    [line] = captured.err.splitlines()
    assert line.startswith("segmind-mock verify: cannot run: the fake refuses the API key ") and said in line, line
    assert line.endswith(f"; give one it accepts with --api-key or ${API_KEY_VARIABLE}")
    assert mock.jobs == [] and mock.scenarios.rules() == []  # the client never ran


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            "nodee-is-not-installed good.js",
            "cannot start the command 'nodee-is-not-installed': No such file or directory",
        ),
        (str(PACED_CLIENT), f"cannot start the command '{PACED_CLIENT}': Permission denied"),  # not executable
        ("node 'good.js", 'cannot read the command "node \'good.js": No closing quotation'),
    ],
)
def test_verify_cannot_run_a_command_that_cannot_start(
    command: str, said: str, fake_url: tuple[str, SegmindMock], capsys: pytest.CaptureFixture[str]
) -> None:
    url, mock = fake_url
    assert main(["verify", "--base-url", url, "--command", command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"segmind-mock verify: cannot run: {said}"]
    assert mock.scenarios.rules() == [] and mock.clock.speed == 0


@pytest.fixture
def fake_with_plans(make_fake: FakeFactory) -> str:
    """A fake whose keys include the free plan's (5 submissions a minute) and one of 1 a minute."""
    config = parse_config({"keys": {FREE: {"plan": "free"}, ONE_A_MINUTE: {"rpm": 1}}})
    return make_fake.serve(make_fake(speed=0, accounts=config))


def test_a_correct_client_on_the_free_plan_meets_every_scenarios_own_answer(fake_with_plans: str) -> None:
    report = verify_client(Polling(), fake_with_plans, api_key=FREE)
    assert report.ok, report.render()
    for outcome in report.outcomes:
        name = outcome.scenario.name
        if name.startswith("http_"):  # before, the key's own 429s answered most of these
            assert f"POST /v2/svd -> {name[5:]}" in outcome.calls, (name, outcome.calls)


def test_verify_gives_no_verdict_when_the_keys_rate_limit_answers_a_scenario(fake_with_plans: str) -> None:
    # A client sending a refused submission again: the second is the key's second in a minute.
    with pytest.raises(KeyRateLimited, match=r"…0ee1 has a rate limit, which answered 429 .* scenario http_400"):
        verify_client(Polling(retries=1), fake_with_plans, api_key=ONE_A_MINUTE)

"""The contract suite against the fake (it conforms) and against broken variants of it (each is caught)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from contracts import MODELS
from contracts.rules import RULES
from contracts.suite import Options, assert_conforms, run_suite
from contracts.suite_calls import RATE_LIMIT_RETRIES
from mock_server import SegmindMock
from mock_server.cli import main
from mock_server.jobs import State
from mock_server.server import ServerThread
from tests.support_contracts import API_KEY, broken_variants, product_variants, shared_fake
from tests.support_fakes import FakeFactory

FAKE_URL = "http://fake.test"
# More jobs than the live default, since the fake's are free: examples plus generated payloads.
FAKE_OPTIONS = Options(max_jobs=6, invalid_examples=20)
BROKEN = broken_variants()
PRODUCT = product_variants()


def test_the_fake_conforms_in_process(mock: SegmindMock, make_fake: FakeFactory) -> None:
    lines: list[str] = []
    transport = make_fake.transport(mock)
    report = run_suite(FAKE_URL, API_KEY, FAKE_OPTIONS, progress=lines.append, transport=transport)
    assert report.ok, report.render()
    assert report.fake and report.jobs == FAKE_OPTIONS.max_jobs
    # Every job was polled to its end, the forced FAILED one included, by moving the fake's clock.
    # Two of the paid calls are v1 calls (plain and base64), answered once the clock reached their end.
    finished = [line for line in lines if " job " in line]
    assert len(finished) == FAKE_OPTIONS.max_jobs - 2 + 1
    assert "      2 v1 calls (POST /v1/{model}, paid)" in lines
    assert report.checked["video-frames"] >= 3 and report.checked["video-16-9"] == 1
    assert report.checked["retention-1h"] == 6 and report.skipped() == {}
    assert sum(line.endswith("-> FAILED") for line in finished) == 1
    # The retention check moved the clock one hour past its own job, the latest: every job expired.
    assert mock.jobs == []


def test_the_fake_conforms_on_a_real_server(mock: SegmindMock, make_fake: FakeFactory) -> None:
    report = assert_conforms(make_fake.serve(mock), API_KEY, Options(max_jobs=2, invalid_examples=5))
    assert report.checks > 50 and report.jobs == 2


@pytest.mark.parametrize("times", [1, RATE_LIMIT_RETRIES + 1])
def test_a_429_moves_the_fakes_clock_past_the_reset_and_never_sleeps(
    times: int, monkeypatch: pytest.MonkeyPatch, mock: SegmindMock, make_fake: FakeFactory
) -> None:
    def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"the suite slept {seconds}s in real time against the fake")

    monkeypatch.setattr(time, "sleep", no_sleeping)
    mock.scenarios.add({"outcome": "http_error", "status": 429, "times": times, "match": {"api_key": API_KEY}})
    start = mock.clock.now()
    lines: list[str] = []
    transport = make_fake.transport(mock)
    report = run_suite(
        FAKE_URL, API_KEY, Options(jobs=False, invalid_examples=0), progress=lines.append, transport=transport
    )
    # The first keyed call (an invalid payload) met the 429s; each retry came after the reset (60 s on).
    waits = [line for line in lines if "rate limited: moving the fake's clock" in line]
    assert len(waits) == min(times, RATE_LIMIT_RETRIES)
    assert 60 * len(waits) <= mock.clock.now() - start < 61 * len(waits)
    if times <= RATE_LIMIT_RETRIES:
        assert report.ok, report.render()
    else:  # still limited after the last retry: reported at once, with no wait after it
        assert report.rules == {"invalid-refused"} and "not 400" in report.render()


@pytest.mark.parametrize("refused", [False, True], ids=["another-client-submits-meanwhile", "the-submit-is-refused"])
def test_the_suites_failed_scenario_meets_only_its_own_job_and_is_removed(
    refused: bool, mock: SegmindMock, make_fake: FakeFactory
) -> None:
    app, others = shared_fake(mock, other_client=not refused, refuse_next_submit=refused)
    lines: list[str] = []
    transport = make_fake.transport(app)
    report = run_suite(
        FAKE_URL, API_KEY, Options(max_jobs=1, invalid_examples=0), progress=lines.append, transport=transport
    )
    assert mock.scenarios.rules() == []  # used or not, the suite's scenario is gone
    # Another client's job, submitted while the scenario was in place, or the suite key's next one, completes.
    # (Expired by now, since the suite's retention check moved the clock an hour: its fate was set at submission.)
    assert [job.error for job in others] == ([] if refused else [None])
    later, _ = mock.submit("svd", MODELS["svd"].example, API_KEY)
    mock.advance(1000)
    assert mock.lookup(later.request_id)[1] is State.COMPLETED
    if refused:
        assert report.rules == {"example-accepted"} and "answered 502" in report.render()
    else:
        assert report.ok, report.render()
        assert sum(line.endswith("-> FAILED") for line in lines) == 1  # the suite's own forced job


def test_no_jobs_runs_only_the_free_checks(mock: SegmindMock, make_fake: FakeFactory) -> None:
    transport = make_fake.transport(mock)
    report = run_suite(FAKE_URL, API_KEY, Options(jobs=False, invalid_examples=3), transport=transport)
    assert report.ok, report.render()
    assert report.jobs == 0 and mock.jobs == []


@pytest.mark.parametrize("variant", list(BROKEN))
def test_each_broken_variant_fails_naming_the_broken_rule(variant: str, make_fake: FakeFactory) -> None:
    build, rule = BROKEN[variant]
    transport = make_fake.transport(build())
    report = run_suite(FAKE_URL, API_KEY, Options(max_jobs=2, invalid_examples=3), transport=transport)
    assert rule in report.rules, report.render()
    text = report.render()
    assert f"FAIL {rule} " in text and RULES[rule].description in text
    violation = next(violation for violation in report.violations if violation.rule == rule)
    assert violation.request.startswith(("GET ", "POST ")) and violation.response


def test_cli_exits_0_on_the_fake_and_shows_progress(
    capsys: pytest.CaptureFixture[str], mock: SegmindMock, make_fake: FakeFactory
) -> None:
    url = make_fake.serve(mock)
    code = main(["contract", "--base-url", url, "--api-key", API_KEY, "--max-jobs", "2", "--invalid-examples", "3"])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert "no violations: the target conforms" in out
    assert "segmind-mock fake" in err and "[4/5] polling 3 jobs" in err


def test_cli_exits_1_with_a_readable_report_on_drift(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMIND_API_KEY", API_KEY)  # the key may come from the environment
    build, _ = BROKEN["returns a relative status_url"]
    with ServerThread(build()) as url:
        code = main(["contract", "--base-url", url, "--no-jobs", "--invalid-examples", "0"])
        assert code == 0  # the free checks never see a status_url
        code = main(["contract", "--base-url", url, "--max-jobs", "1", "--invalid-examples", "0"])
    out, _ = capsys.readouterr()
    assert code == 1
    # The one paid job, the fake's forced FAILED job and its retention job all came back with a relative URL.
    assert "FAIL submit-shape (3x) [DOCS]" in out
    assert "status_url: " in out and "is not an absolute URL" in out
    assert "sent: POST " in out and "got:  200 " in out


def test_cli_needs_a_key_and_a_reachable_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    assert main(["contract", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "SEGMIND_API_KEY" in capsys.readouterr().err
    assert main(["contract", "--base-url", "http://127.0.0.1:9", "--api-key", API_KEY]) == 2
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "outcome"), [(None, "1 passed"), ("uses a non-envelope error body", "1 failed")])
def test_the_pytest_entry_point(variant: str | None, outcome: str, mock: SegmindMock, make_fake: FakeFactory) -> None:
    url = make_fake.serve(mock if variant is None else BROKEN[variant][0]())
    env = {
        **os.environ,
        "SEGMIND_CONTRACT_BASE_URL": url,
        "SEGMIND_API_KEY": API_KEY,
        "SEGMIND_CONTRACT_MAX_JOBS": "1",
        "SEGMIND_CONTRACT_INVALID_EXAMPLES": "2",
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "contracts.pytest_suite"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in done.stdout, done.stdout + done.stderr
    if variant is not None:
        assert "FAIL error-envelope" in done.stdout


@pytest.mark.slow  # a contract run on a real server per variant; the inner loop has the in-process variants
@pytest.mark.parametrize("variant", list(PRODUCT))
def test_each_product_or_lifecycle_drift_on_a_real_server_fails_naming_the_rule(variant: str) -> None:
    build, rule = PRODUCT[variant]
    with ServerThread(build()) as url:
        report = run_suite(url, API_KEY, Options(max_jobs=4, invalid_examples=0))
    assert rule in report.rules, report.render()
    text = report.render()
    assert f"FAIL {rule} " in text and f"[{RULES[rule].grade}]" in text
    violation = next(violation for violation in report.violations if violation.rule == rule)
    assert violation.request.startswith(("GET ", "POST ")) and violation.response

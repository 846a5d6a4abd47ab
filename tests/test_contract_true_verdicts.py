"""The contract suite's verdicts are true on any machine, at any clock speed, on any plan, behind an admin token.

Each test runs the suite against the project's own fake on a real uvicorn server (issue 21): a
correct fake passes, and a report names the real cause of every rule it did not check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from starlette.types import Receive, Scope, Send

import contracts.pytest_suite
from contracts import MODELS
from contracts.model_file import load_models
from contracts.openapi import API_KEY_SHAPE
from contracts.options import ADMIN_TOKEN_VARIABLE
from contracts.report import PYAV_MISSING
from contracts.responses import ERROR_CODES
from contracts.rules import RULES
from contracts.suite import Options, run_suite
from mock_server.accounts import parse_config
from mock_server.cli import main
from tests.support import API_KEY
from tests.support_contracts import rewrite, rewrite_raw, substitute_video
from tests.support_fakes import FakeFactory

ROOT = Path(__file__).resolve().parent.parent
# Small runs: every paid call, the fake's lifecycle, a few invalid payloads.
ARGS = ("--max-jobs", "6", "--invalid-examples", "3")
# Segmind's documented plans, and the tightest limit a config may set.
PLANS = {"free": {"plan": "free"}, "pro": {"plan": "pro"}, "rpm 1": {"rpm": 1}}
VIDEO_RULES = ("video-playable", "video-frames", "video-fps", "video-16-9")


def _contract(url: str, *args: str) -> int:
    return main(["contract", "--base-url", url, "--api-key", API_KEY, *args])


def _speed(url: str, token: str | None = None) -> float:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    speed: float = httpx.get(f"{url}/_mock/clock", headers=headers).raise_for_status().json()["speed"]
    return speed


# 1. Any clock speed.


@pytest.mark.parametrize("speed", [1000, 1_000_000], ids=["speed-1000", "an-hour-in-4ms"])
def test_the_fake_passes_at_any_clock_speed_and_gets_its_speed_back(
    speed: float, capsys: pytest.CaptureFixture[str], make_fake: FakeFactory
) -> None:
    url = make_fake.serve(make_fake(speed=speed))
    code = _contract(url, *ARGS)
    after = _speed(url)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no violations: the target conforms" in out
    assert after == speed


def test_the_clock_speed_is_restored_when_the_run_breaks_off(
    capsys: pytest.CaptureFixture[str], make_fake: FakeFactory
) -> None:
    mock = make_fake(speed=1000)

    async def jobs_list_broken(scope: Scope, receive: Receive, send: Send) -> None:
        # The admin API's job reads, which the suite makes in its retention step, fail: the run stops there.
        if scope["type"] == "http" and scope["path"].startswith("/_mock/jobs"):
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await mock.app(scope, receive, send)

    url = make_fake.serve(jobs_list_broken)
    code = _contract(url, *ARGS)
    after = _speed(url)
    assert code == 2 and "500 Internal Server Error" in capsys.readouterr().err
    assert after == 1000


# 2. Any plan.


@pytest.mark.parametrize("plan", list(PLANS))
def test_the_fake_passes_on_any_plan(plan: str, capsys: pytest.CaptureFixture[str], make_fake: FakeFactory) -> None:
    accounts = parse_config({"keys": {API_KEY: PLANS[plan]}})
    url = make_fake.serve(make_fake(speed=1, accounts=accounts))
    report = run_suite(url, API_KEY, Options(max_jobs=6, invalid_examples=3))
    assert report.ok, report.render()
    # Every forced error code was met as itself, whatever the key's rate limit answered first.
    assert report.checked["error-codes"] == len(ERROR_CODES) and report.checked["rate-limit-reset"] >= 1
    assert report.skipped() == {}


# 3. Behind an admin token.


@pytest.mark.parametrize("how", ["--admin-token", ADMIN_TOKEN_VARIABLE])
@pytest.mark.parametrize("bind", ["given-token", "beyond-loopback"])
def test_contract_runs_against_a_fake_requiring_its_admin_token(
    bind: str, how: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, make_fake: FakeFactory
) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_VARIABLE, raising=False)
    if bind == "given-token":
        mock = make_fake(speed=1000, admin_token="team-secret-1")
        url = make_fake.serve(mock, host="127.0.0.1")
    else:  # a fresh token, generated for a bind beyond loopback
        mock = make_fake(speed=1000)
        url = make_fake.serve(mock, host="0.0.0.0")
    token = mock.settings.admin_token
    assert token
    assert _contract(url, *ARGS) == 2
    err = capsys.readouterr().err
    assert "401 Unauthorized" in err and f"give --admin-token or set ${ADMIN_TOKEN_VARIABLE}" in err
    if how == "--admin-token":
        code = _contract(url, *ARGS, "--admin-token", token)
    else:
        monkeypatch.setenv(ADMIN_TOKEN_VARIABLE, token)
        code = _contract(url, *ARGS)
    assert _speed(url, token) == 1000
    out = capsys.readouterr().out
    assert code == 0, out


def test_the_pytest_form_reads_the_admin_token(monkeypatch: pytest.MonkeyPatch, make_fake: FakeFactory) -> None:
    url = make_fake.serve(make_fake(speed=0, admin_token="team-secret-2"))
    monkeypatch.setenv("SEGMIND_CONTRACT_BASE_URL", url)
    monkeypatch.setenv("SEGMIND_API_KEY", API_KEY)
    monkeypatch.setenv("SEGMIND_CONTRACT_MAX_JOBS", "1")
    monkeypatch.setenv("SEGMIND_CONTRACT_INVALID_EXAMPLES", "0")
    monkeypatch.setenv(ADMIN_TOKEN_VARIABLE, "team-secret-2")
    contracts.pytest_suite.test_target_conforms_to_the_documented_contract()
    monkeypatch.delenv(ADMIN_TOKEN_VARIABLE)
    with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
        contracts.pytest_suite.test_target_conforms_to_the_documented_contract()


@pytest.mark.slow  # the official SDK as the command, polling once a real second: about 40 s a run
@pytest.mark.parametrize("how", ["--admin-token", ADMIN_TOKEN_VARIABLE])
def test_verify_runs_against_a_fake_requiring_its_admin_token(
    how: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, make_fake: FakeFactory
) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_VARIABLE, raising=False)
    mock = make_fake(speed=0, admin_token="team-secret-3")
    command = f"{sys.executable} {ROOT / 'tests' / 'support_command_client.py'} sdk"
    verify = ["verify", "--command", command, "--timeout", "30"]
    url = make_fake.serve(mock)
    assert main([*verify, "--base-url", url]) == 2
    assert "give --admin-token" in capsys.readouterr().err
    if how == "--admin-token":
        code = main([*verify, "--base-url", url, "--admin-token", "team-secret-3"])
    else:
        monkeypatch.setenv(ADMIN_TOKEN_VARIABLE, "team-secret-3")
        code = main([*verify, "--base-url", url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "scenarios handled" in out and mock.scenarios.rules() == []


# 4. Every skipped rule says its real cause; JUnit counts what it holds.


def _reports(tmp_path: Path, url: str, *args: str) -> tuple[int, dict[str, Any], ElementTree.Element]:
    junit, report = tmp_path / "contract.xml", tmp_path / "contract.json"
    code = _contract(url, *args, "--junit", str(junit), "--json", str(report))
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    return code, json.loads(report.read_text()), suite


def _skipped(data: dict[str, Any], suite: ElementTree.Element) -> tuple[dict[str, str], dict[str, str]]:
    in_json = {rule["rule"]: rule["skipped"] for rule in data["rules"] if rule["outcome"] == "skipped"}
    in_junit = {
        case.get("name", ""): skipped.get("message", "")
        for case in suite.iter("testcase")
        if (skipped := case.find("skipped")) is not None
    }
    return in_json, in_junit


def test_rules_the_budget_leaves_out_name_max_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_fake: FakeFactory
) -> None:
    url = make_fake.serve(make_fake(speed=0))
    code, data, suite = _reports(tmp_path, url, "--max-jobs", "3", "--invalid-examples", "0")
    out = capsys.readouterr().out
    assert code == 0, out
    in_json, in_junit = _skipped(data, suite)
    assert in_json == in_junit
    # Two examples and the plain v1 call: no base64 call, no generated payload.
    assert set(in_json) == {"valid-accepted", "sync-base64"}
    assert in_json["valid-accepted"] == (
        "--max-jobs 3 leaves no paid call for a generated payload: it goes to 2 model examples (v2) "
        "and the plain v1 call, planned first"
    )
    assert "Not checked (2 rules):" in out
    assert f"  - valid-accepted: {in_json['valid-accepted']}" in out and "  - sync-base64: " in out
    url = make_fake.serve(make_fake(speed=0))
    code, data, suite = _reports(tmp_path, url, "--max-jobs", "2", "--invalid-examples", "0")
    in_json, _ = _skipped(data, suite)
    assert "video-16-9" in in_json and "--max-jobs 2" in in_json["video-16-9"]


def test_a_model_with_no_base64_or_fps_parameter_gets_the_reasons_that_happened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_fake: FakeFactory
) -> None:
    pytest.importorskip("av")  # without PyAV every video rule is left out for that
    # The tests' clip-maker without its base64 parameter: one v1 call, and a frame rate no parameter asks for.
    text = (ROOT / "tests" / "model_files" / "clip-maker.toml").read_text()
    path = tmp_path / "clip-maker.toml"
    path.write_text(text.partition('[[params]]\nname = "base64"')[0])
    registry = load_models([path], MODELS)
    url = make_fake.serve(make_fake(speed=0, models=registry))
    only = ["--model-file", str(path), "--model", "clip-maker", "--invalid-examples", "0"]
    code, data, suite = _reports(tmp_path, url, *only, "--max-jobs", "2")
    assert code == 0, capsys.readouterr().out
    in_json, in_junit = _skipped(data, suite)
    assert in_json == in_junit
    assert in_json["valid-accepted"] == (
        "--max-jobs 2 leaves no paid call for a generated payload: it goes to 1 model example (v2) "
        "and the plain v1 call, planned first"
    )
    assert in_json["video-fps"] == (
        "no model checked (--model) has a parameter asking for a frame rate: clip-maker's is fixed "
        "(8 fps, its model file's choice)"
    )
    assert f"  - video-fps: {in_json['video-fps']}" in capsys.readouterr().out


def test_a_job_stuck_in_an_undocumented_state_is_named_as_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_fake: FakeFactory
) -> None:
    def starting(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
        stuck = path.endswith("/status") and isinstance(body, dict) and body.get("status") in ("QUEUED", "PROCESSING")
        return status, {**body, "status": "STARTING"} if stuck else body

    url = make_fake.serve(rewrite(make_fake(speed=0).app, starting))
    # Only v2 jobs: the v1 calls would meet the video rules.
    code, data, suite = _reports(tmp_path, url, "--max-jobs", "2", "--invalid-examples", "0")
    assert code == 1
    in_json, in_junit = _skipped(data, suite)
    assert in_json == in_junit
    for rule in ("completed-metrics", "result-shape", "output-video", "video-playable", "video-fps"):
        assert "answered status 'STARTING', not a documented state" in in_json[rule], rule
    assert all("no case for it arose" not in cause for cause in in_json.values()), in_json


@pytest.mark.slow  # a whole contract run in a subprocess without PyAV
def test_without_pyav_every_video_rule_says_so(tmp_path: Path, make_fake: FakeFactory) -> None:
    script = f"""
import sys
sys.modules["av"] = None
from mock_server.cli import main
sys.exit(main(["contract", "--base-url", sys.argv[1], "--api-key", "{API_KEY}", "--max-jobs", "6",
               "--invalid-examples", "0", "--json", sys.argv[2]]))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    path = tmp_path / "contract.json"
    url = make_fake.serve(make_fake(speed=0))
    done = subprocess.run(
        [sys.executable, "-c", script, url, str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    skipped = {rule["rule"]: rule.get("skipped") for rule in json.loads(path.read_text())["rules"]}
    assert {rule: skipped[rule] for rule in VIDEO_RULES} == dict.fromkeys(VIDEO_RULES, PYAV_MISSING)
    assert f"  - video-frames: {PYAV_MISSING}" in done.stdout


def test_junit_counts_failed_test_cases_each_holding_one_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_fake: FakeFactory
) -> None:
    # 14 frames at 24 fps whatever was asked: every video breaks video-fps, the 25-frame one video-frames.
    build = substitute_video(14, 24, (512, 288))
    app = make_fake(speed=0).app
    url = make_fake.serve(rewrite_raw(app, build))
    code, data, suite = _reports(tmp_path, url, "--max-jobs", "6", "--invalid-examples", "0")
    assert code == 1
    cases = list(suite.iter("testcase"))
    failed = [case for case in cases if case.find("failure") is not None]
    assert {case.get("name") for case in failed} == {"video-fps", "video-frames"}
    assert suite.get("failures") == str(len(failed)) == "2"
    assert suite.get("tests") == str(len(cases)) == str(len(RULES))
    by_rule = {rule["rule"]: rule for rule in data["rules"]}
    assert len(by_rule["video-fps"]["violations"]) >= 2  # one per video: the case that made the counts disagree
    for case in failed:
        assert len(case.findall("failure")) == 1
        violations = by_rule[case.get("name", "")]["violations"]
        failure = case.find("failure")
        first = violations[0]["message"]
        expected = f"{len(violations)} violations, the first: {first}" if len(violations) > 1 else first
        assert failure is not None and failure.get("message") == expected
        text = failure.text or ""
        assert all(violation["request"] in text and violation["message"] in text for violation in violations)


def test_max_jobs_help_says_the_v1_calls_use_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["contract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a plain and a base64 v1 call" in text and "--admin-token" in text


# 5. The docs say which API keys the fake accepts.


def test_the_docs_state_the_key_shape_the_fake_accepts(make_fake: FakeFactory) -> None:
    docs = " ".join((ROOT / "docs" / "contracts.md").read_text().split())
    assert "any non-empty API key" not in docs
    assert f"accepts any key shaped like Segmind's ({API_KEY_SHAPE}" in docs
    url = make_fake.serve(make_fake(speed=0))
    example = {"image": "https://example.com/cat.png"}
    for key, status in (("your-api-key", 401), ("SG_0123", 401), (API_KEY, 200)):
        answer = httpx.post(f"{url}/v2/svd", json=example, headers={"x-api-key": key})
        assert answer.status_code == status, key

"""The contract suite's reports for CI (JUnit XML, JSON), its evidence grades, and runs without PyAV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from contracts.rules import GRADES, RULES
from contracts.suite import Options, run_suite
from mock_server.cli import main
from mock_server.server import ServerThread
from tests.support import API_KEY
from tests.support_contracts import product_variants

PRODUCT = product_variants()


def test_every_rule_names_its_evidence_grade() -> None:
    assert {rule.grade for rule in RULES.values()} <= set(GRADES)
    assert {rule.grade for rule in RULES.values()} >= {"DOCS", "SDK", "2ND", "GUESS"}


def test_cli_writes_junit_and_json_reports_of_a_drifting_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit, report = tmp_path / "contract.xml", tmp_path / "contract.json"
    build, rule = PRODUCT["14 frames when 25 were asked"]
    with ServerThread(build()) as url:
        code = main(
            [
                *("contract", "--base-url", url, "--api-key", API_KEY, "--max-jobs", "3", "--invalid-examples", "0"),
                *("--junit", str(junit), "--json", str(report)),
            ]
        )
    assert code == 1 and f"FAIL {rule} " in capsys.readouterr().out
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == set(RULES)  # each rule a test case
    failures = cases[rule].findall("failure")
    assert len(failures) == 1 and suite.get("failures") == "1"
    assert failures[0].get("type") == "DOCS" and "frames" in (failures[0].get("message") or "")
    text = failures[0].text or ""
    assert "\nsent: POST " in text and "/v1/svd" in text and "\ngot:  200 " in text
    assert cases["video-fps"].find("failure") is None and cases["video-fps"].find("skipped") is None
    # With --max-jobs 3 there is no base64 v1 call: that rule is skipped, saying why.
    skipped = cases["sync-base64"].find("skipped")
    assert skipped is not None and "--max-jobs 3" in (skipped.get("message") or "")
    data = json.loads(report.read_text())
    assert data["ok"] is False and data["paid_jobs"] == 3 and data["media_checked"] is True
    by_rule = {entry["rule"]: entry for entry in data["rules"]}
    assert by_rule[rule]["outcome"] == "failed" and by_rule[rule]["grade"] == "DOCS"
    assert by_rule[rule]["violations"][0]["request"].startswith("POST ")
    assert by_rule["submit-shape"]["outcome"] == "passed" and by_rule["submit-shape"]["checks"] > 0


def test_documented_only_leaves_out_rules_resting_on_lesser_evidence() -> None:
    build, rule = PRODUCT["errors served as text/plain"]
    assert RULES[rule].grade != "DOCS"
    with ServerThread(build()) as url:
        full = run_suite(url, API_KEY, Options(max_jobs=4, invalid_examples=0))
        documented = run_suite(url, API_KEY, Options(max_jobs=4, invalid_examples=0, documented_only=True))
    assert rule in full.rules
    assert documented.ok, documented.render()
    assert "graded SDK" in documented.skipped()[rule]
    assert all(RULES[name].grade == "DOCS" for name, count in documented.checked.items() if count)


def test_without_pyav_the_suite_says_the_media_checks_were_skipped() -> None:
    # A fresh interpreter where `import av` fails: the fake serves its prepared videos, the suite
    # still checks that outputs are served as video and says plainly what it could not check.
    script = """
import sys
sys.modules["av"] = None
from contracts.suite import Options, run_suite
from mock_server import SegmindMock, Settings
from mock_server.transport import PortalTransport
with PortalTransport(SegmindMock(Settings(speed=0)).app) as transport:
    report = run_suite("http://fake.test", sys.argv[1], Options(max_jobs=4, invalid_examples=0), transport=transport)
print(report.render())
print("media", report.to_dict()["media_checked"], sorted(report.checked))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, API_KEY], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no violations" in done.stdout and "Media checks skipped: PyAV is not installed" in done.stdout
    checked = done.stdout.splitlines()[-1]
    assert checked.startswith("media False") and "'output-video'" in checked and "video-frames" not in checked

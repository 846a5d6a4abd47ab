"""`segmind-mock drift`: recordings of a faithful and of a moved "live" API graded (docs/recording.md)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from segmind import SegmindClient, SegmindError

from contracts import MODELS
from contracts.rules import RULES
from mock_server.cli import main
from mock_server.drift_facts import FACTS, OBSERVED_BY
from mock_server.offline import segmind_offline
from tests.support import API_KEY
from tests.support_replay import UNKNOWN_HEADER, Moves, recorded


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the faithful recording and one of each moved API, their upstreams stopped."""
    directory = tmp_path_factory.mktemp("drift")
    recorded(directory, "faithful.har")
    for move in ("v1_json", "no_inference_time", "unknown_header", "poll_shape"):
        recorded(directory, f"{move}.har", Moves(**{move: True}))
    return directory


def drift(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """Run `segmind-mock drift ARGS` and return its exit code, standard output and standard error."""
    code = main(["drift", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_fact_says_what_recording_observes_it() -> None:
    assert set(OBSERVED_BY) == set(FACTS) and set(RULES) <= set(FACTS)


def test_a_faithful_recording_confirms_the_contract_and_the_fake(
    recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "drift.json"
    code, out, _ = drift(capsys, recordings / "faithful.har", "--strict", "--json", report)
    assert code == 0, out
    facts = {fact["fact"]: fact for fact in json.loads(report.read_text())["facts"]}
    assert {name for name, fact in facts.items() if fact["verdict"] == "contradicted"} == set()
    for name in ("submit-shape", "states-forward", "completed-metrics", "sync-video", "sync-base64", "fake-agrees"):
        assert facts[name]["verdict"] == "confirmed", name
    assert facts["retention-1h"]["verdict"] == "unobserved"
    assert facts["retention-1h"]["observe_with"] == OBSERVED_BY["retention-1h"]


@pytest.mark.parametrize(
    ("move", "fact", "grade"),
    [
        ("v1_json", "sync-video", "SDK"),
        ("no_inference_time", "completed-metrics", "DOCS"),
        ("poll_shape", "status-shape", "DOCS"),
    ],
)
def test_a_moved_documented_fact_fails_naming_the_fact_and_its_grade(
    recordings: Path, capsys: pytest.CaptureFixture[str], move: str, fact: str, grade: str
) -> None:
    code, out, _ = drift(capsys, recordings / f"{move}.har")
    assert code == 1
    assert f"CONTRADICTED {fact} [{grade}]" in out
    assert f"live contradicts a documented fact ({grade})" in out
    assert f"{move}.har entry " in out


def test_the_fake_differing_where_live_broke_the_contract_is_explained(
    recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "drift.json"
    drift(capsys, recordings / "no_inference_time.har", "--json", report)
    facts = {fact["fact"]: fact for fact in json.loads(report.read_text())["facts"]}
    (differs,) = facts["fake-agrees"]["contradictions"]
    assert "metrics.inference_time sent (live does not)" in differs["seen"]
    assert "(completed-metrics)" in differs["diagnosis"]


def test_new_surface_is_reported_and_fails_only_with_strict(
    recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = drift(capsys, recordings / "unknown_header.har")
    assert code == 0
    assert "CONTRADICTED known-surface [GUESS]" in out and UNKNOWN_HEADER in out and "new surface" in out
    junit, markdown = tmp_path / "drift.xml", tmp_path / "drift.md"
    code, _, _ = drift(capsys, recordings / "unknown_header.har", "--strict", "--junit", junit, "--markdown", markdown)
    assert code == 1
    cases = {case.get("name"): case for case in ElementTree.parse(junit).getroot().iter("testcase")}
    assert set(cases) == set(FACTS)
    failure = cases["known-surface"].find("failure")
    assert failure is not None and UNKNOWN_HEADER in (failure.text or "")
    assert cases["known-surface"].get("classname") == "segmind-drift.GUESS"
    assert cases["retention-1h"].find("skipped") is not None
    assert "| known-surface | GUESS | contradicted | unknown_header.har entry 0 |" in markdown.read_text()


def test_recordings_older_than_max_age_are_stale_not_judged(
    recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.har"
    data = json.loads((recordings / "v1_json.har").read_text())
    data["log"]["_segmind"]["recorded_at"] = "2020-01-01T00:00:00.000Z"
    old.write_text(json.dumps(data))
    code, out, _ = drift(capsys, old, "--max-age", "30d")
    assert code == 0
    assert "Stale (seen only in recordings older than --max-age): " in out and "sync-video" in out
    assert drift(capsys, old)[0] == 1  # without --max-age, judged


def test_a_file_holding_a_secret_exits_3_saying_where(
    recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaked = tmp_path / "leaked.har"
    data = json.loads((recordings / "faithful.har").read_text())
    data["log"]["entries"][0]["request"]["headers"][0]["value"] = "SG_0123456789abcdef"
    leaked.write_text(json.dumps(data))
    code, _, err = drift(capsys, recordings / "faithful.har", leaked)
    assert code == 3
    assert "leaked.har holds a secret" in err and "entries[0]" in err


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"not json", "is not a HAR file"),
        (b'{"log": {"version": "1.2", "entries": []}}', "not a segmind-mock recording"),
    ],
)
def test_a_file_that_is_not_a_recording_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, said: str
) -> None:
    path = tmp_path / "other.har"
    path.write_bytes(content)
    code, _, err = drift(capsys, path)
    assert code == 2 and said in err
    assert drift(capsys, tmp_path / "absent.har")[0] == 2
    assert drift(capsys, path, "--max-age", "soon")[0] == 2


def test_the_fakes_own_journal_agrees_with_the_fake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "journal.har"
    with segmind_offline() as mock:
        sdk = SegmindClient(api_key=API_KEY)
        sdk.submit_async("svd", **MODELS["svd"].example).wait(timeout=600, interval=2.0)
        sdk.run_sync("svd", **MODELS["svd"].example)
        with pytest.raises(SegmindError):
            sdk.submit_async("svd", **{**MODELS["svd"].example, "frames": 30})
        sdk._client.close()
        journal.write_bytes(mock.journal_har())
    code, out, _ = drift(capsys, journal, "--strict")
    assert code == 0, out
    assert "0 contradicted" in out

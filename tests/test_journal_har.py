"""The fake's journal as HAR (`GET /_mock/journal.har`, `segmind-mock journal`), and `segmind-mock scan`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock, Settings, har
from mock_server.cli import main
from mock_server.server import ServerThread
from tests.support import API_KEY
from tests.support_har import schema_errors

SVD = MODELS["svd"].example


def a_session(mock: SegmindMock, http: httpx.Client) -> str:
    """Submit, poll across the job's life on the simulated clock, fetch the result, a v1 call and a 400."""
    submitted = http.post("/v2/svd", json=SVD).json()
    http.get(submitted["status_url"])
    mock.advance(2.5)
    http.get(submitted["status_url"])
    mock.advance(1000)
    http.get(submitted["status_url"])
    http.get(submitted["response_url"])
    http.post("/v1/svd", json=SVD)
    http.post("/v2/svd", json={**SVD, "fps": 600})
    request_id: str = submitted["request_id"]
    return request_id


def test_the_journal_downloads_as_a_recording_with_simulated_times(
    server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    mock, url = server
    request_id = a_session(mock, live_http)
    answer = live_http.get("/_mock/journal.har")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="segmind-mock-journal.har"'
    assert schema_errors(answer.json()) == []
    assert API_KEY not in answer.text
    recording = har.loads(answer.content)
    assert recording.log.segmind.upstream == url
    facts = [entry.segmind for entry in recording.log.entries]
    assert [(fact.role, fact.state) for fact in facts] == [
        ("submit", "QUEUED"),
        ("status", "QUEUED"),
        ("status", "PROCESSING"),
        ("status", "COMPLETED"),
        ("result", "COMPLETED"),
        ("sync", "COMPLETED"),
        ("submit", None),
    ]
    assert [fact.since_submit_seconds for fact in facts[:5]] == [0.0, 0.0, 2.5, 1002.5, 1002.5]
    assert {fact.request_id for fact in facts[:5]} == {request_id}
    assert facts[0].model == facts[4].model == "svd"
    first = recording.log.entries[0]
    assert first.request.header("x-api-key") == har.REDACTED
    assert first.startedDateTime == har.iso_time(mock.jobs[0]["submitted_at"])
    v1 = recording.log.entries[5].response
    assert v1.content.mimeType == "video/mp4" and v1.content.sha256 is None and v1.content.size > 4096


def test_the_journal_command_saves_the_same_file(
    server: tuple[SegmindMock, str], live_http: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_session(server[0], live_http)
    out = tmp_path / "journal.har"
    assert main(["journal", "--url", server[1], "--out", str(out)]) == 0
    assert "7 exchanges in" in capsys.readouterr().out
    assert out.read_bytes() == live_http.get("/_mock/journal.har").content


def test_the_journal_command_sends_the_admin_token_a_fake_needs(tmp_path: Path) -> None:
    guarded = SegmindMock(Settings(speed=0, admin_token="given-token"))
    with ServerThread(guarded.app) as url:
        assert main(["journal", "--url", url, "--out", str(tmp_path / "a.har")]) == 2
        assert main(["journal", "--url", url, "--out", str(tmp_path / "a.har"), "--admin-token", "given-token"]) == 0
    assert har.load(tmp_path / "a.har").log.entries == []


def test_keys_in_the_journal_become_the_placeholder_and_cut_bodies_say_so(
    mock: SegmindMock, http: httpx.Client
) -> None:
    http.post("/v2/svd", json={"prompt": API_KEY, **SVD, "image": "x" * 5000})
    recording = har.loads(mock.journal_har())
    request = recording.log.entries[0].request
    assert API_KEY not in (request.body_text() or "") and har.REDACTED in (request.body_text() or "")
    assert request.postData.comment.startswith("cut by the journal to its first 4096 of")  # type: ignore[union-attr]


def test_a_journal_holding_a_token_is_not_exported(mock: SegmindMock, http: httpx.Client) -> None:
    http.get("/v2/requests/abc/status", params={"X-Amz-Signature": "f00d"})
    answer = http.get("/_mock/journal.har")
    assert answer.status_code == 422
    assert "presigned-URL or token parameter (X-Amz-Signature) at log.entries[0].request.url" in answer.json()["error"]


# `segmind-mock scan`: the same scan as a CI or pre-commit gate.


def test_scan_passes_a_clean_recording(mock: SegmindMock, http: httpx.Client, tmp_path: Path) -> None:
    a_session(mock, http)
    clean = tmp_path / "clean.har"
    clean.write_bytes(mock.journal_har())
    assert main(["scan", str(clean)]) == 0


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            json.dumps({"log": {"entries": [{"request": {"url": "https://x/y?Signature=1"}}]}}),
            "log.entries[0].request.url",
        ),
        (
            json.dumps({"headers": [{"name": "Authorization", "value": "x"}]}),
            "an Authorization header at headers[0].name",
        ),
        (json.dumps({"note": "Bearer abcdefghijkl"}), "an Authorization credential (Bearer or Basic) at note"),
        ("first line\nkey: SG_0123456789abcdef\n", "a Segmind API key (SG_ and 16 hex digits) at line 2"),
    ],
    ids=["signature", "authorization", "bearer", "text"],
)
def test_scan_exits_3_saying_where_a_secret_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    leaky = tmp_path / "leaky.har"
    leaky.write_text(text)
    assert main(["scan", str(leaky)]) == 3
    assert f"{leaky}: " in (out := capsys.readouterr().out) and said in out


def test_scan_looks_for_the_key_in_use_whatever_its_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    leaky = tmp_path / "leaky.json"
    leaky.write_text(json.dumps({"prompt": "my-own-private-key"}))
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    assert main(["scan", str(leaky)]) == 0
    assert main(["scan", "--key", "my-own-private-key", str(leaky)]) == 3
    assert "the API key in use at prompt" in capsys.readouterr().out


def test_scan_exits_2_for_what_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "missing.har")]) == 2
    assert main(["scan", str(tmp_path)]) == 2
    assert "cannot be read" in capsys.readouterr().err

"""The HAR model, writer and reader (`har.py`): valid HAR after every write, secrets refused, strangers refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from contracts.responses import STATES
from mock_server import har
from tests.support import API_KEY
from tests.support_har import schema_errors

SUBMITTED = {"role": "submit", "model": "svd", "request_id": None, "since_submit_seconds": 0.0, "state": "QUEUED"}


def exchange(started: float, path: str = "/v2/svd", **facts: object) -> har.Entry:
    """An entry as the recorder builds one: a submission answered in JSON."""
    body = '{"request_id": "1f0e4c1a-0000-4000-8000-000000000001", "status": "QUEUED"}'
    return har.Entry(
        startedDateTime=har.iso_time(started),
        time=12.5,
        request=har.Request(
            method="POST",
            url=f"https://api.segmind.com{path}",
            httpVersion="HTTP/1.1",
            headers=[har.Header("x-api-key", har.REDACTED), har.Header("content-type", "application/json")],
            queryString=[],
            bodySize=2,
            postData=har.PostData("application/json", "{}"),
        ),
        response=har.Response(
            status=200,
            statusText="OK",
            httpVersion="HTTP/1.1",
            headers=[har.Header("content-type", "application/json")],
            content=har.Content(size=len(body), mimeType="application/json", text=body),
            bodySize=len(body),
        ),
        timings=har.Timings(send=0.0, wait=12.0, receive=0.5),
        segmind=har.EntryFacts(
            **{
                "role": "submit",
                "model": "svd",
                "request_id": None,
                "since_submit_seconds": 0.0,
                "state": "QUEUED",
                **facts,
            }  # type: ignore[arg-type]
        ),
    )


def writer(path: Path) -> har.HarWriter:
    return har.HarWriter(path, har.log_facts("0.1.0", "https://api.segmind.com", time.time()), "0.1.0", [API_KEY])


def test_the_file_is_valid_har_from_the_start_and_after_every_entry(tmp_path: Path) -> None:
    out = tmp_path / "session.har"
    recording = writer(out)
    assert schema_errors(json.loads(out.read_bytes())) == []
    assert har.load(out).log.entries == []
    for second in range(3):
        recording.add(exchange(1_800_000_000 + second))
        written = json.loads(out.read_bytes())
        assert schema_errors(written) == []
        assert len(written["log"]["entries"]) == second + 1
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it


def test_entries_are_in_the_order_they_started_whatever_order_they_ended(tmp_path: Path) -> None:
    recording = writer(tmp_path / "session.har")
    for started in (30.0, 10.0, 20.0):
        recording.add(exchange(1_800_000_000 + started))
    starts = [entry.startedDateTime for entry in har.load(tmp_path / "session.har").log.entries]
    assert starts == sorted(starts)


def test_the_extension_fields_are_written_as_agreed(tmp_path: Path) -> None:
    out = tmp_path / "session.har"
    recording = writer(out)
    media = har.Content(
        size=1234,
        mimeType="video/mp4",
        sha256="ab" * 32,
        media=har.MediaFacts(25, 8.0, 512, 288, 3.125),
        file="m/x.mp4",
    )
    entry = exchange(1_800_000_000)
    recording.add(msgspec.structs.replace(entry, response=msgspec.structs.replace(entry.response, content=media)))
    written = json.loads(out.read_bytes())
    log = written["log"]
    assert list(log) == ["version", "creator", "entries", "_segmind"]
    assert log["_segmind"]["format"] == har.FORMAT
    assert log["_segmind"]["tool"] == "segmind-mock 0.1.0"
    assert log["_segmind"]["recorded_at"].endswith("Z")
    assert log["entries"][0]["_segmind"] == {
        "role": "submit",
        "model": "svd",
        "request_id": None,
        "since_submit_seconds": 0.0,
        "state": "QUEUED",
    }
    assert log["entries"][0]["response"]["content"] == {
        "size": 1234,
        "mimeType": "video/mp4",
        "_sha256": "ab" * 32,
        "_media": {"frames": 25, "fps": 8.0, "width": 512, "height": 288, "duration": 3.125},
        "_file": "m/x.mp4",
    }
    loaded = har.load(out).log.entries[0]
    assert loaded.response.is_media and loaded.response.content.media == har.MediaFacts(25, 8.0, 512, 288, 3.125)
    assert loaded.request.header("X-API-KEY") == har.REDACTED
    assert loaded.request.json() == {}


@pytest.mark.parametrize(
    ("planted", "said"),
    [
        ({"request_id": API_KEY}, "the API key in use at log.entries[0]._segmind.request_id"),
        (
            {"model": "SG_00000000deadbeef"},
            "a Segmind API key (SG_ and 16 hex digits) at log.entries[0]._segmind.model",
        ),
    ],
)
def test_a_write_holding_a_secret_is_refused_and_the_file_left_as_it_was(
    tmp_path: Path, planted: dict[str, str], said: str
) -> None:
    out = tmp_path / "session.har"
    recording = writer(out)
    before = out.read_bytes()
    with pytest.raises(har.SecretFound) as refused:
        recording.add(exchange(1_800_000_000, **planted))
    assert said in str(refused.value)
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not json", "is not a HAR file"),
        (b'{"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": []}}', "not a segmind-mock"),
        (b'{"log": {"_segmind": {"format": 99}}}', "format 99"),
        (b'{"log": {"_segmind": {"format": 1}}}', "not a valid recording"),
    ],
)
def test_the_reader_refuses_what_is_not_a_recording_saying_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "other.har"
    path.write_bytes(content)
    with pytest.raises(har.NotARecording, match=reason):
        har.load(path)


def test_routes_are_told_apart_by_the_contract_paths() -> None:
    assert har.route_of("POST", "/v2/svd") == ("submit", "svd", None)
    assert har.route_of("POST", "/v1/motionctrl-svd") == ("sync", "motionctrl-svd", None)
    assert har.route_of("GET", "/v2/requests/abc/status") == ("status", None, "abc")
    assert har.route_of("GET", "/v2/requests/abc") == ("result", None, "abc")
    assert har.route_of("GET", "/v1/requests/abc") == ("result", None, "abc")
    assert har.route_of("GET", "/v2/svd") is None
    assert har.route_of("POST", "/v3/svd") is None


def test_the_states_and_roles_written_are_the_contracts_and_the_agreed_ones() -> None:
    assert get_args(har.JobState) == STATES
    assert get_args(har.Role) == har.ROLES == ("submit", "status", "result", "output", "sync", "error")


def test_the_writer_writes_what_encoding_the_whole_recording_writes(tmp_path: Path) -> None:
    out = tmp_path / "session.har"
    recording = writer(out)
    for started in (2.0, 1.0, 3.0):
        recording.add(exchange(1_800_000_000 + started))
        assert out.read_bytes() == har.encode(har.load(out)) == har.encode(recording.har())

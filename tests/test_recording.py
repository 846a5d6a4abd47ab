"""`segmind-mock record`: the official SDK through the recording proxy, to a fake "live" upstream on its own port.

The upstream is a segmind-mock fake on a real uvicorn server (its clock frozen: the tests move it),
or a small app of the test's own; never the internet. Each recording is checked with har-schema in
Python and, where node and npm are, with npm's har-validator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
import httpx
import pytest
from segmind import SegmindClient, SegmindError
from starlette.types import Receive, Scope, Send

from contracts import MODELS
from contracts.responses import BASE64_VIDEO_KEY
from mock_server import SegmindMock, har
from mock_server.recorder import Recorder
from mock_server.server import ServerThread
from mock_server.video import video_available
from tests.support import API_KEY
from tests.support_fakes import FakeFactory
from tests.support_har import har_validator_errors, install_har_validator, schema_errors
from tests.support_video import decode

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SVD = MODELS["svd"].example
# A key of Segmind's shape that is not the one in use: found by its shape alone.
OTHER_KEY = "SG_00000000deadbeef"
# Generous: the recorder answers at once; this only tells a hang from an answer.
WAIT_SECONDS = 30.0


@pytest.fixture
def start_recorder(tmp_path: Path, make_fake: FakeFactory) -> Callable[..., tuple[Recorder, str]]:
    """Start a recorder on a real uvicorn server in front of an upstream URL; stopped after the test."""

    def start(upstream: str, **options: object) -> tuple[Recorder, str]:
        said: list[str] = []
        recorder = Recorder(upstream, tmp_path / "session.har", version="test", say=said.append, **options)  # type: ignore[arg-type]
        return recorder, make_fake.serve(recorder)

    return start


@pytest.fixture
def proxied(
    server: tuple[SegmindMock, str], start_recorder: Callable[..., tuple[Recorder, str]]
) -> tuple[Recorder, str]:
    """A recorder in front of the session's fake (reset, its clock frozen), with a budget for `record_a_session`."""
    return start_recorder(server[1], max_jobs=10)


@pytest.fixture(scope="session")
def har_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """npm's har-validator, installed once for the session; skips without node or npm."""
    return install_har_validator(tmp_path_factory.mktemp("har-validator"))


def entries(recorder: Recorder) -> list[har.Entry]:
    """The entries of the file on disk, read back by the reader."""
    return har.load(recorder.out).log.entries


def record_a_session(sdk: SegmindClient, mock: SegmindMock) -> dict[str, object]:
    """The issue's session with the SDK: v2 submit, polls, wait, result, output, v1 bytes and base64, a 400, a 404."""
    seen: dict[str, object] = {}
    job = sdk.submit_async("svd", **SVD)
    seen["request_id"] = job.request_id
    seen["states"] = [job.status()["status"]]
    mock.advance(2.5)
    seen["states"].append(job.status()["status"])  # type: ignore[attr-defined]
    mock.advance(1000)
    result = job.wait(timeout=WAIT_SECONDS, interval=0.001)
    seen["output"] = sdk._client.get(result["output"]).content
    seen["v1"] = sdk.run_sync("svd", **SVD).content
    seen["v1_base64"] = sdk.run_sync("svd", **{**SVD, "base64": True}).json()
    with pytest.raises(SegmindError) as bad:
        sdk.submit_async("svd", **{**SVD, "fps": 600})
    seen["400"] = bad.value.status
    with pytest.raises(SegmindError) as gone:
        sdk.submit_async("no-such-model", **SVD)
    seen["404"] = gone.value.status
    return seen


def test_an_sdk_session_through_the_proxy_is_answered_as_direct_and_recorded_as_valid_har(
    server: tuple[SegmindMock, str], proxied: tuple[Recorder, str], make_fake: FakeFactory
) -> None:
    recorder, url = proxied
    seen = record_a_session(make_fake.sdk(url), server[0])
    assert seen["states"] == ["QUEUED", "PROCESSING"]
    assert seen["output"][4:8] == b"ftyp" and seen["v1"][4:8] == b"ftyp"  # type: ignore[index]
    assert seen["v1_base64"][BASE64_VIDEO_KEY]  # type: ignore[index]
    assert (seen["400"], seen["404"]) == (400, 404)

    written = recorder.out.read_bytes()
    assert schema_errors(json.loads(written)) == []
    assert API_KEY.encode() not in written
    recorded = entries(recorder)
    roles = [(entry.segmind.role, entry.segmind.state, entry.response.status) for entry in recorded]
    assert roles == [
        ("submit", "QUEUED", 200),
        ("status", "QUEUED", 200),
        ("status", "PROCESSING", 200),
        ("status", "COMPLETED", 200),
        ("result", "COMPLETED", 200),
        ("output", None, 200),
        ("sync", "COMPLETED", 200),
        ("sync", "COMPLETED", 200),
        ("submit", None, 400),
        ("submit", None, 404),
    ]
    job = [entry for entry in recorded if entry.segmind.request_id == seen["request_id"]]
    assert [entry.segmind.role for entry in job] == ["submit", "status", "status", "status", "result", "output"]
    assert all(entry.segmind.model == "svd" for entry in job)
    since = [entry.segmind.since_submit_seconds for entry in job]
    assert since[0] == 0.0 and since == sorted(since)  # type: ignore[type-var]
    # Requests as the upstream got them, the key replaced; answers as it sent them (its own URLs).
    submit = recorded[0]
    assert submit.request.url == f"{server[1]}/v2/svd"
    assert submit.request.header("x-api-key") == har.REDACTED
    assert submit.request.json() == SVD
    assert submit.response.json()["status_url"].startswith(server[1])
    # Videos are described, not inlined: their size, sha256 and (with PyAV) decoded facts.
    output, v1 = recorded[5].response, recorded[6].response
    assert output.is_media and output.body_text() is None
    assert output.content.size == len(seen["output"])  # type: ignore[arg-type]
    assert output.content.sha256 == hashlib.sha256(seen["output"]).hexdigest()  # type: ignore[arg-type]
    assert v1.content.sha256 == hashlib.sha256(seen["v1"]).hexdigest()  # type: ignore[arg-type]
    assert recorded[6].segmind.request_id == v1.header("x-request-id")
    if video_available():
        assert output.content.media is not None
        assert (output.content.media.width, output.content.media.height) == (512, 288)
        frames, fps = decode(seen["output"])  # type: ignore[arg-type]
        assert (output.content.media.frames, output.content.media.fps) == (len(frames), fps)
        assert output.content.media.duration == pytest.approx(len(frames) / fps)
    base64_video = recorded[7].response.json()[BASE64_VIDEO_KEY]
    assert base64.b64decode(base64_video)[4:8] == b"ftyp"  # JSON bodies inline, whatever they hold
    assert recorder.refusals == []


def test_the_recording_passes_npms_har_validator(
    server: tuple[SegmindMock, str],
    proxied: tuple[Recorder, str],
    make_fake: FakeFactory,
    har_validator: Path,
) -> None:
    record_a_session(make_fake.sdk(proxied[1]), server[0])
    assert har_validator_errors(har_validator, proxied[0].out) == ""


def test_npms_har_validator_does_refuse_a_broken_file(har_validator: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.har"
    broken.write_text(json.dumps({"log": {"version": "1.2", "entries": [{"time": 1}]}}))
    assert "creator" in har_validator_errors(har_validator, broken)


def test_kept_media_is_named_by_its_sha256_beside_the_file(
    server: tuple[SegmindMock, str],
    start_recorder: Callable[..., tuple[Recorder, str]],
    make_fake: FakeFactory,
    tmp_path: Path,
) -> None:
    recorder, url = start_recorder(server[1], keep_media=tmp_path / "media")
    video = make_fake.sdk(url).run_sync("svd", **SVD).content
    content = entries(recorder)[0].response.content
    digest = hashlib.sha256(video).hexdigest()
    assert content.file == f"media/{digest}.mp4"
    assert (tmp_path / str(content.file)).read_bytes() == video


@pytest.mark.parametrize(
    ("plant", "found"),
    [
        ({"headers": {"user-agent": f"my-app {API_KEY}"}}, "the API key in use at log.entries[0].request.headers"),
        ({"headers": {"user-agent": f"my-app {OTHER_KEY}"}}, "a Segmind API key (SG_ and 16 hex digits)"),
        ({"json": {**SVD, "prompt": OTHER_KEY}}, "at log.entries[0].request.postData.text"),
        ({"path": f"/v2/requests/{API_KEY}/status"}, "the API key in use at log.entries[0].request.url"),
        ({"params": {"X-Amz-Signature": "abc123"}}, "a presigned-URL or token parameter (X-Amz-Signature)"),
        ({"params": {"token": "s3cr3t"}}, "a presigned-URL or token parameter (token)"),
        ({"params": {"api_key": API_KEY}}, "the API key in use at log.entries[0].request.url"),
        (
            {"headers": {"authorization": "Bearer my-own-token-1"}, "json": {**SVD, "prompt": "my-own-token-1"}},
            "the API key in use at log.entries[0].request.postData.text",
        ),
    ],
    ids=["key-in-header", "other-key", "key-in-body", "key-in-path", "signature", "token", "query-key", "bearer"],
)
def test_every_write_holding_a_secret_is_refused_saying_what_and_where(
    proxied: tuple[Recorder, str], plant: dict[str, object], found: str
) -> None:
    recorder, url = proxied
    before = recorder.out.read_bytes()
    request = {"method": "POST", "url": f"{url}/v2/svd", "json": SVD, "headers": {"x-api-key": API_KEY}}
    if "path" in plant:
        request = {**request, "method": "GET", "url": f"{url}{plant['path']}", "json": None}
    headers = {**request["headers"], **plant.get("headers", {})}  # type: ignore[dict-item]
    response = httpx.request(
        **{**request, **{k: v for k, v in plant.items() if k in ("json", "params")}, "headers": headers}  # type: ignore[arg-type]
    )
    assert response.status_code in (200, 404)  # the client has its answer all the same
    assert len(recorder.refusals) == 1
    assert found in recorder.refusals[0]
    assert recorder.out.read_bytes() == before  # nothing written, the file as it was


def presigning_upstream(scope_log: list[str]) -> Callable[[Scope, Receive, Send], object]:
    """A live API whose output URLs are presigned (S3-style), and which sets a cookie."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        scope_log.append(scope["path"])
        host = dict(scope["headers"])[b"host"].decode()
        output = "https://cdn.example/out.mp4?X-Amz-Credential=AKIA&X-Amz-Signature=f00d&size=small"
        body = json.dumps(
            {"status": "COMPLETED", "output": output, "status_url": f"http://{host}/v2/requests/1/status"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"set-cookie", b"session=abc; HttpOnly"),
            (b"x-new-header", b"something"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def test_output_urls_keep_no_signature_and_unknown_headers_keep_their_name_only(
    start_recorder: Callable[..., tuple[Recorder, str]],
) -> None:
    paths: list[str] = []
    with ServerThread(presigning_upstream(paths)) as upstream:  # type: ignore[arg-type]
        recorder, url = start_recorder(upstream)
        answer = httpx.get(f"{url}/v2/requests/1", headers={"x-api-key": API_KEY}).json()
    assert "X-Amz-Signature=f00d" in answer["output"]  # the client gets the URL it needs
    assert answer["status_url"] == f"{url}/v2/requests/1/status"  # polls come back through the recorder
    assert recorder.refusals == []
    response = entries(recorder)[0].response
    assert response.json()["output"] == "https://cdn.example/out.mp4?size=small"
    assert response.header("x-new-header") == har.REDACTED
    assert response.header("set-cookie") is None
    assert b"AKIA" not in recorder.out.read_bytes()


def test_past_max_jobs_a_paid_call_is_refused_in_the_envelope_and_never_forwarded(
    server: tuple[SegmindMock, str],
    start_recorder: Callable[..., tuple[Recorder, str]],
    make_fake: FakeFactory,
) -> None:
    recorder, url = start_recorder(server[1], max_jobs=1)
    sdk = make_fake.sdk(url)
    sdk.submit_async("svd", **SVD)
    with pytest.raises(SegmindError) as refused:
        sdk.run_sync("svd", **SVD)
    assert refused.value.status == 406
    assert "--max-jobs 1" in str(refused.value.detail)
    assert len(server[0].jobs) == 1  # the upstream saw one job
    assert [entry.segmind.role for entry in entries(recorder)] == ["submit"]


def test_an_upstream_that_cannot_be_reached_gets_502_once_never_retried_nor_recorded(
    start_recorder: Callable[..., tuple[Recorder, str]],
) -> None:
    with ServerThread(presigning_upstream([])) as gone:  # type: ignore[arg-type]
        pass  # a port nothing listens on any more
    recorder, url = start_recorder(gone)
    answer = httpx.post(f"{url}/v2/svd", json=SVD, headers={"x-api-key": API_KEY})
    assert answer.status_code == 502
    assert "not retried" in answer.json()["error"]
    assert recorder.paid_calls == 1 and entries(recorder) == []


def test_a_video_streams_through_before_the_upstream_has_sent_all_of_it(
    start_recorder: Callable[..., tuple[Recorder, str]],
) -> None:
    first_read = threading.Event()

    async def slow_video(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"video/mp4")]})
        await send({"type": "http.response.body", "body": b"first piece ", "more_body": True})
        # The rest comes only once the client has read the first piece through the recorder.
        await anyio.to_thread.run_sync(first_read.wait, WAIT_SECONDS)
        await send({"type": "http.response.body", "body": b"last piece"})

    with ServerThread(slow_video) as upstream:  # type: ignore[arg-type]
        recorder, url = start_recorder(upstream)
        with httpx.stream("GET", f"{url}/clip.mp4", timeout=WAIT_SECONDS) as response:
            pieces = response.iter_raw()
            assert next(pieces) == b"first piece "
            first_read.set()
            assert b"".join(pieces) == b"last piece"
    content = entries(recorder)[0].response.content
    assert content.size == len(b"first piece last piece")
    assert content.sha256 == hashlib.sha256(b"first piece last piece").hexdigest()


# The command: a real process, its signals and a kill.

RECORD = [sys.executable, "-m", "mock_server", "record", "--port", "0"]


@pytest.fixture
def command(server: tuple[SegmindMock, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`segmind-mock record` in front of the session's fake, in a process of its own: (process, URL, file)."""
    out = tmp_path / "session.har"
    process = subprocess.Popen(
        [*RECORD, "--upstream", server[1], "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert " forwarding " in first, first + process.stderr.read()  # type: ignore[union-attr]
    url = first.split(" forwarding ", 1)[1].split(" ", 1)[0]
    yield process, url, out
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_and_sigterm_end_the_recording_with_exit_0_and_the_file_whole(
    command: tuple[subprocess.Popen[str], str, Path], make_fake: FakeFactory, sent: signal.Signals
) -> None:
    process, url, out = command
    make_fake.sdk(url).submit_async("svd", **SVD)
    os.kill(process.pid, sent)
    stdout, _ = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0
    assert "1 exchange in" in stdout and "1 paid call forwarded" in stdout
    assert [entry.segmind.role for entry in har.load(out).log.entries] == ["submit"]


def test_a_killed_recorder_leaves_a_valid_file_holding_every_exchange_answered(
    command: tuple[subprocess.Popen[str], str, Path],
    server: tuple[SegmindMock, str],
    make_fake: FakeFactory,
) -> None:
    process, url, out = command
    sdk = make_fake.sdk(url)
    job = sdk.submit_async("svd", **SVD)
    job.status()
    server[0].advance(1000)
    job.wait(timeout=WAIT_SECONDS, interval=0.001)
    process.kill()  # SIGKILL: nothing of the recorder runs after it
    process.wait()
    written = json.loads(out.read_bytes())
    assert schema_errors(written) == []
    assert [entry.segmind.role for entry in har.load(out).log.entries] == ["submit", "status", "status", "result"]


@pytest.mark.parametrize(
    ("upstream", "said"),
    [
        ("api.segmind.com", "--upstream must be an http(s) URL"),
        ("https://api.segmind.com/?token=abc", "--upstream must be an http(s) URL"),
        ("https://me:secret@api.segmind.com", "--upstream must not carry credentials"),
    ],
)
def test_record_refuses_an_upstream_it_cannot_use(tmp_path: Path, upstream: str, said: str) -> None:
    done = subprocess.run(
        [*RECORD, "--upstream", upstream, "--out", str(tmp_path / "x.har")],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert done.returncode == 2
    assert said in done.stderr
    assert not (tmp_path / "x.har").exists()


@pytest.mark.browser
def test_an_outside_reader_plays_the_recording_back_playwrights_route_from_har(
    server: tuple[SegmindMock, str],
    proxied: tuple[Recorder, str],
    make_fake: FakeFactory,
    browser: Browser,
) -> None:
    recorder, url = proxied
    job = make_fake.sdk(url).submit_async("svd", **SVD)
    assert job.status()["status"] == "QUEUED"
    server[0].advance(1000)  # live, the job has ended now; the recording saw it queued
    status_url = entries(recorder)[1].request.url
    context = browser.new_context()
    try:
        context.route_from_har(recorder.out, not_found="abort")
        page = context.new_page()
        page.goto(status_url)
        assert json.loads(page.locator("body").inner_text())["status"] == "QUEUED"
    finally:
        context.close()


def test_paid_calls_sent_at_once_cannot_pass_the_budget_together(
    server: tuple[SegmindMock, str], start_recorder: Callable[..., tuple[Recorder, str]]
) -> None:
    recorder, url = start_recorder(server[1], max_jobs=2)
    statuses: list[int] = []

    def submit() -> None:
        with httpx.Client(headers={"x-api-key": API_KEY}, timeout=WAIT_SECONDS) as client:
            statuses.append(client.post(f"{url}/v2/svd", json=SVD).status_code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert sorted(statuses) == [200, 200, 406, 406, 406, 406]
    assert len(server[0].jobs) == 2
    starts = [entry.startedDateTime for entry in entries(recorder)]
    assert len(starts) == 2 and starts == sorted(starts)

"""Replay: recordings made through the proxy, served again with the upstream stopped (docs/recording.md)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from segmind import InferenceFailed, SegmindClient, SegmindError

from contracts import MODELS
from contracts.responses import BASE64_VIDEO_KEY, VIDEO_CONTENT_TYPE
from mock_server import har
from mock_server.cli import main
from mock_server.offline import default_settings, segmind_offline
from mock_server.replay import Replay
from mock_server.virtual_time import SDK_MODULES, virtual_time
from tests.support import API_KEY, SEGMIND
from tests.support_fakes import FakeFactory
from tests.support_pytest import GUARD_CONFTEST, PLUGIN_ARGS
from tests.support_replay import UNKNOWN_ID, recorded, recording, same_result, states_seen
from tests.support_video import decode

EXAMPLE = MODELS["svd"].example


@pytest.fixture(scope="module")
def live_har(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One recording of the usual probe session, its upstream stopped."""
    return recorded(tmp_path_factory.mktemp("replay"))


@pytest.fixture(scope="module")
def live_result(live_har: Path) -> dict[str, object]:
    """The SDK's result as recorded: the completed job's result body."""
    entries = har.load(live_har).log.entries
    body = next(entry.response.json() for entry in entries if entry.segmind.role == "result")
    assert isinstance(body, dict)
    return body


def _replayed(path: Path, **options: object) -> Replay:
    return Replay.from_files([path], **options)  # type: ignore[arg-type]


def test_two_poll_cadences_get_the_recorded_result_and_the_same_state_at_the_same_time(
    live_har: Path, live_result: dict[str, object]
) -> None:
    # 3 s, not the recorded 2 s: a client polling exactly at a recorded transition would compare
    # states at the instant they change, where a sum of 300 10 ms steps lands a hair either side.
    runs = {}
    for interval in (0.01, 3.0):
        with segmind_offline(replay=_replayed(live_har)) as mock:
            sdk = SegmindClient(api_key=API_KEY)
            result, seen = states_seen(sdk, mock.clock.now, interval)
            sdk._client.close()
        runs[interval] = (result, dict(seen))
        assert same_result(result) == same_result(live_result)
        assert result["request_id"] != live_result["request_id"]  # a fresh id
    (_, fast_seen), (_, slow_seen) = runs[0.01], runs[3.0]
    # The slow client's every poll saw what the fast one saw at that simulated time.
    shared = [time for time in slow_seen if time in fast_seen]
    assert len(shared) >= 3
    assert {time: slow_seen[time] for time in shared} == {time: fast_seen[time] for time in shared}
    # Both saw each recorded state, the job ending where the recording saw it end.
    assert set(fast_seen.values()) == set(slow_seen.values()) == {"QUEUED", "PROCESSING", "COMPLETED"}
    assert max(slow_seen) - max(fast_seen) < 3.0


def test_the_output_and_v1_calls_replay_with_the_upstream_stopped(live_har: Path) -> None:
    with segmind_offline(replay=_replayed(live_har)) as mock:
        sdk = SegmindClient(api_key=API_KEY)
        result = sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=1.0)
        video = sdk._client.get(result["output"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        plain = sdk.run_sync("svd", **EXAMPLE)
        assert plain.headers["content-type"] == VIDEO_CONTENT_TYPE and plain.content[4:8] == b"ftyp"
        encoded = sdk._client.post(
            f"{SEGMIND}/v1/svd", json={**EXAMPLE, "base64": True}, headers={"x-api-key": API_KEY}
        )
        assert base64.b64decode(encoded.json()[BASE64_VIDEO_KEY])[4:8] == b"ftyp"
        for answer in (video, plain, encoded):  # rewritten bodies: each head states its new length, once
            assert answer.headers.get_list("content-length") == [str(len(answer.content))]
        assert plain.headers["x-request-id"] != encoded.headers["x-request-id"]
        sdk._client.close()
        assert len(mock.jobs) == 3  # each replayed call is a job of the fake's, with its fresh id


def test_kept_media_bytes_are_served_as_recorded(tmp_path: Path) -> None:
    out, media = tmp_path / "kept.har", tmp_path / "media"
    with recording(out, keep_media=media) as session:
        job = session.sdk.submit_async("svd", **EXAMPLE)
        kept = session.http.get(job.wait(timeout=600, interval=2.0)["output"]).content
    with segmind_offline(replay=_replayed(out)):
        sdk = SegmindClient(api_key=API_KEY)
        replayed = sdk._client.get(sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=5)["output"])
        sdk._client.close()
    assert replayed.content == kept


def test_errors_replay_as_recorded(live_har: Path) -> None:
    with segmind_offline(replay=_replayed(live_har)):
        sdk = SegmindClient(api_key=API_KEY)
        with pytest.raises(SegmindError) as refused:
            sdk.submit_async("svd", **{**EXAMPLE, "frames": 30})
        unknown = sdk._client.get(f"{SEGMIND}/v2/requests/{UNKNOWN_ID[:-1]}1/status", headers={"x-api-key": API_KEY})
        sdk._client.close()
    assert refused.value.status == 400 and "frames" in str(refused.value.detail)
    assert unknown.status_code == 404 and unknown.json() == {"error": f"Request {UNKNOWN_ID[:-1]}1 not found"}


def test_unmatched_submissions_get_the_fakes_answer_or_in_strict_mode_an_error_naming_the_nearest(
    live_har: Path,
) -> None:
    other = {**EXAMPLE, "fps": 9}
    with segmind_offline(replay=_replayed(live_har)) as mock:
        sdk = SegmindClient(api_key=API_KEY)
        job = sdk.submit_async("svd", **other)
        mock.advance(1000)
        assert job.wait(timeout=5, interval=0.01)["metrics"]["inference_time"] == MODELS["svd"].latency_seconds
        sdk._client.close()
    with segmind_offline(replay=_replayed(live_har, strict=True)):
        sdk = SegmindClient(api_key=API_KEY)
        with pytest.raises(SegmindError) as refused:
            sdk.submit_async("svd", **other)
        sdk._client.close()
    assert refused.value.status == 404
    assert "--replay-strict: no recorded request matches POST /v2/svd" in refused.value.detail
    assert "live.har entry 0" in refused.value.detail and "fps (7 recorded, 9 sent)" in refused.value.detail


def test_matching_by_model_replays_any_parameters(live_har: Path, live_result: dict[str, object]) -> None:
    with segmind_offline(replay=_replayed(live_har, match="model", strict=True)):
        sdk = SegmindClient(api_key=API_KEY)
        result = sdk.submit_async("svd", **{**EXAMPLE, "fps": 9}).wait(timeout=600, interval=2.0)
        sdk._client.close()
    assert same_result(result) == same_result(live_result)


def test_the_pytest_mark_replays_a_recording(pytester: pytest.Pytester, live_har: Path) -> None:
    (pytester.path / "recordings").mkdir()
    (pytester.path / "recordings" / "svd.har").write_bytes(live_har.read_bytes())
    pytester.makeconftest(GUARD_CONFTEST)
    pytester.makepyfile(
        """
        import pytest
        from segmind import InferenceFailed, SegmindClient, SegmindError

        EXAMPLE = {"image": "https://segmind-sd-models.s3.amazonaws.com/outputs/svd_input.png"}

        @pytest.mark.segmind_replay("recordings/svd.har", strict=True)
        def test_replayed(segmind_mock):
            client = SegmindClient()
            with pytest.raises(SegmindError) as refused:
                client.submit_async("svd", **EXAMPLE)
            assert "svd.har entry 0" in refused.value.detail
            client._client.close()

        @pytest.mark.segmind_replay("recordings/missing.har")
        def test_missing(segmind_mock):
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN_ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*segmind_replay: *missing.har cannot be read*"])


def test_serve_refuses_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    not_har = tmp_path / "notes.har"
    not_har.write_text('{"log": {"entries": []}}')
    done = subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--replay", str(not_har)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--replay: " in done.stderr and "not a segmind-mock recording" in done.stderr


def test_replay_keeps_the_fakes_retention(live_har: Path) -> None:
    with segmind_offline(replay=_replayed(live_har)) as mock:
        client = httpx.Client(base_url=SEGMIND, headers={"x-api-key": API_KEY})
        submitted = client.post("/v2/svd", json=EXAMPLE).json()
        mock.advance(3600)
        assert client.get(submitted["status_url"]).status_code == 404
        client.close()
    assert default_settings().virtual


def test_a_recorded_failure_and_a_keyless_call_replay_as_recorded(tmp_path: Path) -> None:
    out = tmp_path / "failed.har"
    with recording(out) as session:
        session.upstream.add_scenario(outcome="failed", error="worker lost", times=1)
        with pytest.raises(InferenceFailed):
            session.sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=2.0)
        keyless = httpx.post(f"{session.http.base_url}/v2/svd", json=EXAMPLE)
    assert keyless.status_code == 401
    with segmind_offline(replay=_replayed(out, strict=True)):
        sdk = SegmindClient(api_key=API_KEY)
        with pytest.raises(InferenceFailed) as failed:
            sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=0.5)
        sdk._client.close()
        replayed = httpx.post(f"{SEGMIND}/v2/svd", json=EXAMPLE)
    assert failed.value.detail == "worker lost"
    assert (replayed.status_code, replayed.json()) == (401, keyless.json())


def test_the_fakes_own_journal_replays(tmp_path: Path) -> None:
    journal = tmp_path / "journal.har"
    with segmind_offline() as mock:
        sdk = SegmindClient(api_key=API_KEY)
        recorded_result = sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=5.0)
        sdk._client.post(f"{SEGMIND}/v1/svd", json={**EXAMPLE, "base64": True}, headers={"x-api-key": API_KEY})
        sdk._client.close()
        journal.write_bytes(mock.journal_har())
    with segmind_offline(replay=_replayed(journal, strict=True)):
        sdk = SegmindClient(api_key=API_KEY)
        result, seen = states_seen(sdk, lambda: 0.0, 0.5)
        # The journal cut this answer at 4 KiB: the replay serves the whole video in the same body.
        encoded = sdk._client.post(
            f"{SEGMIND}/v1/svd", json={**EXAMPLE, "base64": True}, headers={"x-api-key": API_KEY}
        )
        sdk._client.close()
    assert same_result(result) == same_result(recorded_result)
    assert [state for _, state in seen][-1] == "COMPLETED"
    assert base64.b64decode(encoded.json()[BASE64_VIDEO_KEY])[4:8] == b"ftyp"


def test_a_real_server_replays_to_the_sdk(
    live_har: Path, live_result: dict[str, object], make_fake: FakeFactory
) -> None:
    mock = make_fake(_replayed(live_har, strict=True), speed=0)
    url = make_fake.serve(mock)
    sdk = make_fake.sdk(url)
    with virtual_time(mock.clock, SDK_MODULES):
        result = sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=2.0)
        video = sdk._client.get(result["output"])
        head = sdk._client.head(result["output"])
    assert same_result(result) == same_result(live_result)
    assert result["output"].startswith(url) and video.content[4:8] == b"ftyp"
    assert head.status_code == 200 and head.headers["content-type"] == VIDEO_CONTENT_TYPE


def test_serve_replays_in_one_worker_only(live_har: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--replay", str(live_har), "--workers", "2", "--store", "redis://127.0.0.1:1/0"]
    assert main(argv) == 2
    assert "--replay keeps its replayed jobs in one process; drop --workers 2" in capsys.readouterr().err


def test_an_output_not_kept_is_rendered_with_the_recorded_media_facts(live_har: Path, tmp_path: Path) -> None:
    pytest.importorskip("av")
    moved = tmp_path / "moved.har"
    data = json.loads(live_har.read_text())
    (output,) = [entry for entry in data["log"]["entries"] if entry["_segmind"]["role"] == "output"]
    assert output["response"]["content"]["_media"]["frames"] == 14  # as the example asked
    output["response"]["content"]["_media"].update(frames=25, fps=10.0)  # what a moved live sent
    moved.write_text(json.dumps(data))
    with segmind_offline(replay=_replayed(moved)):
        sdk = SegmindClient(api_key=API_KEY)
        video = sdk._client.get(sdk.submit_async("svd", **EXAMPLE).wait(timeout=600, interval=5.0)["output"]).content
        sdk._client.close()
    frames, fps = decode(video)
    assert (len(frames), fps) == (25, 10.0)

"""Attacks on the fake's resources: file swaps under --allow-dir, slow image servers, a crowd asking for
one video, huge keys. Real uvicorn servers and real clients; loopback only, every wait bounded."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.images import ImageSource
from mock_server.journal import TEXT_CAPTURE_CHARS
from mock_server.server import ServerThread
from tests.support import API_KEY, bytes_kept
from tests.support_load import raw_exchange
from tests.support_video import data_uri, png, serve_image

pytest.importorskip("av")

SVD = MODELS["svd"]
INSIDE = png(np.full((16, 16, 3), 40, np.uint8))
SECRET = png(np.full((16, 16, 3), 200, np.uint8))
TIMEOUT = 30.0


def serve(settings: Settings) -> tuple[SegmindMock, ServerThread]:
    mock = SegmindMock(settings)
    return mock, ServerThread(mock.app)


@pytest.mark.slow
def test_swapping_a_file_for_a_symlink_never_reads_outside_the_allowed_directory(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret.png").write_bytes(SECRET)
    target = allowed / "input.png"
    target.write_bytes(INSIDE)
    stop = threading.Event()

    def swap() -> None:
        # Atomic renames: input.png is always either the inside file or a link to the secret one.
        while not stop.is_set():
            (allowed / "link.tmp").symlink_to(tmp_path / "secret.png")
            os.replace(allowed / "link.tmp", target)
            (allowed / "file.tmp").write_bytes(INSIDE)
            os.replace(allowed / "file.tmp", target)

    mock, thread = serve(Settings(speed=0, images=ImageSource(allowed_dirs=(allowed,))))
    swapper = threading.Thread(target=swap, daemon=True)
    statuses: dict[int, int] = {}
    with thread as url, httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=TIMEOUT) as http:
        swapper.start()
        try:
            for _ in range(1500):
                response = http.post("/v2/svd", json={**SVD.example, "image": str(target)})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 400:
                    assert "image cannot be used" in response.json()["error"]
        finally:
            stop.set()
            swapper.join(TIMEOUT)
    assert set(statuses) <= {200, 400}, statuses
    digests = {job["image_digest"] for job in mock.jobs}
    assert hashlib.sha256(SECRET).hexdigest() not in digests
    assert digests <= {hashlib.sha256(INSIDE).hexdigest()}
    assert statuses.get(200, 0) > 0  # the swaps did leave the inside file in place often enough to be read


def test_slow_image_servers_fill_the_fetch_pool_only(tmp_path: Path) -> None:
    # 45 fetches held by a server that never finishes answering: more than anyio's 40 default threads.
    with serve_image(INSIDE) as image_server:
        image_server.stall = True
        images = ImageSource(fetch_remote=True, allow_private=True, timeout_seconds=TIMEOUT)
        mock, thread = serve(Settings(speed=0, images=images, fetch_threads=4))
        with thread as url, httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=TIMEOUT) as http:
            done = http.post("/v2/svd", json={**SVD.example, "image": data_uri(INSIDE)}).json()
            mock.advance(1000)
            output = http.get(done["response_url"]).json()["output"]
            with ThreadPoolExecutor(45) as crowd:
                stalled = [
                    crowd.submit(http.post, "/v2/svd", json={**SVD.example, "image": image_server.url})
                    for _ in range(45)
                ]
                assert image_server.arrivals.acquire(timeout=TIMEOUT)  # the fetches are under way
                # Meanwhile inline images are decoded and output files rendered and served at once.
                quick = httpx.Timeout(5.0)
                inline = http.post("/v2/svd", json={**SVD.example, "image": data_uri(SECRET)}, timeout=quick)
                assert inline.status_code == 200
                video = http.get(output, timeout=quick)
                assert video.status_code == 200 and video.content[4:8] == b"ftyp"
                assert len(image_server.paths) <= 4  # no more fetches at once than the pool holds
                image_server.release.set()
                answers = [future.result(TIMEOUT) for future in stalled]
    assert {answer.status_code for answer in answers} == {400}


def test_a_crowd_asking_for_one_video_renders_it_once() -> None:
    mock, thread = serve(Settings(speed=0))
    with thread as url, httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=TIMEOUT) as http:
        job = http.post("/v2/svd", json={**SVD.example, "image": data_uri(INSIDE)}).json()
        mock.advance(1000)
        output = http.get(job["response_url"]).json()["output"]
        start = threading.Barrier(40)

        def fetch(_: int) -> bytes:
            start.wait(TIMEOUT)
            return httpx.get(output, timeout=TIMEOUT).content

        with ThreadPoolExecutor(40) as crowd:
            videos = set(crowd.map(fetch, range(40)))
    assert len(videos) == 1
    assert mock.service.videos.renders == 1  # the result call above rendered it; the crowd waited for or reused it


def test_journal_entries_are_bounded_whatever_clients_send(http: httpx.Client, mock: SegmindMock) -> None:
    key = "SG_" + "k" * 30_000 + "tail"

    def exchanges() -> None:
        for _ in range(200):
            http.get("/v2/requests/x/status?" + "q" * 20_000, headers={"x-api-key": key})

    kept = bytes_kept(exchanges)
    # 200 exchanges of 50 kB of key and query: about 10 MB if kept whole, a fraction of that bounded.
    assert kept < 3_000_000, kept
    entry = mock.requests[-1]
    assert entry["api_key"] == "SG_…tail"
    assert len(entry["query"]) == TEXT_CAPTURE_CHARS


def test_a_job_made_to_run_for_years_does_not_keep_every_later_job_in_memory(
    http: httpx.Client, mock: SegmindMock
) -> None:
    # A scenario may make a job run for 10^8 s. Its output could never be handed out (its result
    # expires first), and keeping it put every later job's output behind it in the eviction order.
    rule = {"outcome": "completed", "processing_seconds": 100_000_000, "times": 1}
    assert http.post("/_mock/scenarios", json=rule).status_code == 201
    endless = http.post("/v2/svd", json=MODELS["svd"].example)
    assert endless.status_code == 200

    def later_jobs() -> None:
        for _ in range(3000):
            mock.submit("svd", MODELS["svd"].example, API_KEY)
        mock.advance(8 * 24 * 3600)  # past every output's retention
        mock.submit("svd", MODELS["svd"].example, API_KEY)  # an add evicts what has passed its deadline

    kept = bytes_kept(later_jobs)
    # 3,000 jobs are about 2.5 MB: gone, but for the last one.
    assert kept < 500_000, kept


def test_a_request_with_two_host_headers_never_changes_the_urls_another_client_gets(
    server: tuple[SegmindMock, str],
) -> None:
    # The URLs follow the first Host header (an empty one: the server's address). A request
    # sending an empty one, then another, must not leave its URLs cached for that other host.
    body = json.dumps(MODELS["svd"].example).encode()

    def submit(*hosts: bytes) -> dict[str, Any]:
        head = b"".join(b"Host: " + host + b"\r\n" for host in hosts)
        request = b"POST /v2/svd HTTP/1.1\r\n" + head + b"x-api-key: " + API_KEY.encode()
        request += b"\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
        answer = raw_exchange(server[1], request)
        assert answer.status == 200, answer.body
        parsed: dict[str, Any] = answer.json()
        return parsed

    assert submit(b"", b"poisoned.example")["status_url"].startswith(server[1] + "/v2/")
    assert submit(b"poisoned.example")["status_url"].startswith("http://poisoned.example/v2/")


def test_long_paths_and_hosts_are_not_kept_by_the_fakes_caches(http: httpx.Client, mock: SegmindMock) -> None:
    # Route matches, base URLs and answer templates are cached for the paths and hosts clients
    # call; ones made long and unique must not fill those caches.
    job = http.post("/v2/svd", json=MODELS["svd"].example).json()

    def long_calls() -> None:
        for number in range(200):
            assert http.get(f"/v2/requests/{number:020d}{'x' * 20_000}/status").status_code == 404
            host = f"h{number}{'x' * 20_000}.example"
            assert http.get(f"/v2/requests/{job['request_id']}/status", headers={"host": host}).status_code == 200

    kept = bytes_kept(long_calls)
    # 200 paths and 200 hosts of 20 kB: 52 MB measured with every cache keeping them; 9 MB without,
    # the journal's cut copies and bounded caches of the in-process client and of urllib.
    assert kept < 15_000_000, kept


def test_a_long_key_repeated_under_any_query_name_is_masked_in_the_journal(
    http: httpx.Client, mock: SegmindMock
) -> None:
    # The journal keeps only the ends of a key over 32 bytes: the query must not show it whole.
    key = "SG_0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
    http.get(f"/v2/requests/x/status?ref={key}&page=2", headers={"x-api-key": key})
    entry = mock.requests[-1]
    assert key not in entry["query"], entry["query"]
    assert entry["query"] == f"ref={key[:3]}…{key[-4:]}&page=2"


def test_keys_are_masked_in_journal_queries_and_scenario_matches(http: httpx.Client, mock: SegmindMock) -> None:
    http.get(f"/v2/requests/x/status?api_key={API_KEY}&token=secret-token-value&page=2")
    query = mock.requests[-1]["query"]
    assert API_KEY not in query and "secret-token-value" not in query
    assert query.endswith("&page=2")
    rule = http.post("/_mock/scenarios", json={"match": {"api_key": API_KEY}, "outcome": "failed"}).json()
    shown = http.get("/_mock/scenarios").json()
    assert API_KEY not in str(rule) and API_KEY not in str(shown)
    assert rule["match"]["api_key"] == API_KEY[:3] + "…" + API_KEY[-4:]
    # The rule itself still matches the key in full.
    job = mock.job(http.post("/v2/svd", json=SVD.example).json()["request_id"])
    assert job is not None and job["error"] == "Inference failed"


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding", "Connection"])
def test_scenario_headers_may_not_frame_the_answer(http: httpx.Client, name: str) -> None:
    response = http.post("/_mock/scenarios", json={"outcome": "http_error", "status": 429, "headers": {name: "5"}})
    assert response.status_code == 400
    assert "frames the answer" in response.json()["error"]


def test_an_inline_image_of_too_many_pixels_is_refused_at_submission(http: httpx.Client, mock: SegmindMock) -> None:
    huge = base64.b64encode(png(np.zeros((4096, 4096, 3), np.uint8))).decode()
    response = http.post("/v2/svd", json={**SVD.example, "image": huge})
    assert response.status_code == 400
    assert "4096x4096; send at most 4194304 pixels" in response.json()["error"]
    assert mock.jobs == []


@pytest.mark.parametrize("frames", ["0" * 5000 + "25", "0" * 19 + "25", "9" * 5000, "-" + "9" * 5000])
def test_integers_as_text_past_twenty_characters_are_refused(http: httpx.Client, frames: str) -> None:
    # Leading zeros count: the limit is on the text (INTEGER_TEXT_DIGITS), whichever path decodes it.
    response = http.post("/v2/svd", json={**SVD.example, "frames": frames})
    assert response.status_code == 400
    assert response.json()["error"].startswith("frames must be an integer, one of 14, 25")

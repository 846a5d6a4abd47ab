"""`segmind-mock serve` as a user runs it: a real process, its start-up line, its flags."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from segmind import SegmindClient

from contracts import MODELS
from mock_server.cli import build_parser
from mock_server.server import bind, url_of
from tests.conftest import API_KEY
from tests.support_stores import live_mock, live_url, redis_url, store  # noqa: F401  (runs on both stores)

COMMAND = [sys.executable, "-m", "mock_server", "serve"]
STARTUP = re.compile(r'base_url="(http://[^"]+)/v1"')


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[subprocess.Popen, str, str]]]:
    """Start `segmind-mock serve` with extra flags; return the process, its base URL and start-up text."""
    processes: list[subprocess.Popen] = []

    def start(*flags: str) -> tuple[subprocess.Popen, str, str]:
        process = subprocess.Popen([*COMMAND, "--port", "0", *flags], stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        banner = process.stdout.readline() + process.stdout.readline()
        match = STARTUP.search(banner)
        assert match, banner
        return process, match.group(1), banner

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def test_serve_prints_where_it_listens_and_how_to_point_the_sdk(serve) -> None:
    _, url, banner = serve("--speed", "0")
    assert f"on {url}" in banner
    assert "svd, motionctrl-svd" in banner
    assert httpx.get(f"{url}/_mock/health").json()["speed"] == 0


def test_sdk_pointed_at_the_served_fake_completes_a_job_on_the_advanced_clock(serve) -> None:
    _, url, _ = serve("--speed", "0", "--queue-seconds", "0")
    client = SegmindClient(api_key=API_KEY, base_url=f"{url}/v1")
    try:
        job = client.submit_async("svd", **MODELS["svd"].example)
        assert job.status()["status"] == "PROCESSING"  # no queue wait, as the flag asked
        advanced = httpx.post(f"{url}/_mock/clock/advance", json={"seconds": MODELS["svd"].latency_seconds})
        assert advanced.status_code == 200
        assert job.wait(timeout=5, interval=0.001)["status"] == "COMPLETED"
    finally:
        client._client.close()


@pytest.mark.parametrize("command", ["serve", "contract"])
def test_help_explains_every_flag(command: str) -> None:
    shown = " ".join(subprocess.run([*COMMAND[:-1], command, "--help"], capture_output=True, text=True).stdout.split())
    subcommands = next(action for action in build_parser()._actions if action.dest == "command")
    flags = [action for action in subcommands.choices[command]._actions if action.dest != "help"]
    assert flags
    for action in flags:
        assert action.option_strings[0] in shown
        assert action.help and " ".join(action.help.split("%(")[0].split()) in shown, action.option_strings


def test_a_busy_port_is_reported_plainly() -> None:
    taken = bind("127.0.0.1", 0)
    taken.listen()
    port = url_of(taken).rsplit(":", 1)[1]
    run = subprocess.run([*COMMAND, "--port", port], capture_output=True, text=True, timeout=30)
    taken.close()
    assert run.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr


def test_journal_size_0_records_nothing_and_the_fake_serves_as_ever(serve) -> None:
    _, url, _ = serve("--speed", "0", "--journal-size", "0")
    svd = MODELS["svd"].example
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as http:
        job = http.post("/v2/svd", json=svd).json()
        assert http.get(job["status_url"]).json()["status"] == "QUEUED"
        assert http.post("/_mock/scenarios", json={"outcome": "disconnect", "times": 1}).status_code == 201
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v2/svd", json=svd)  # network faults still reach the client without a journal
        assert http.post("/v2/svd", json=svd).status_code == 200
        assert http.get("/_mock/health").json()["jobs"] == 3  # the dropped submission's job runs too
        assert http.get("/_mock/requests").json() == []


def test_bad_speed_is_refused_by_the_parser() -> None:
    run = subprocess.run([*COMMAND, "--speed", "-1"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "must be a finite number, 0 or more" in run.stderr


def test_the_limit_flags_reach_the_server(serve) -> None:
    _, url, _ = serve("--max-header-bytes", "2048", "--request-timeout", "0.5", "--max-concurrent-requests", "5")
    too_big = httpx.get(f"{url}/_mock/health", headers={"x-note": "n" * 4096}, timeout=10)
    assert too_big.status_code == 431
    assert "2048 bytes (--max-header-bytes)" in too_big.json()["error"]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 408 ")

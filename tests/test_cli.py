"""`segmind-mock serve` as a user runs it: a real process, its start-up line, its flags."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata

import httpx
import pytest
from segmind import SegmindClient

from contracts import MODELS
from mock_server.cli import build_parser
from mock_server.defaults import MEMORY
from mock_server.server import bind, url_of
from tests.support import API_KEY

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

COMMAND = [sys.executable, "-m", "mock_server", "serve"]
STARTUP = re.compile(r'base_url="(http://[^"]+)/v1"')
# The `serve` fixture: start `segmind-mock serve` with flags; get the process, its base URL, its start-up text.
Serve = Callable[..., tuple[subprocess.Popen[str], str, str]]


@pytest.fixture
def serve(store: str) -> Iterator[Serve]:
    """Start `segmind-mock serve` with extra flags; return the process, its base URL and start-up text."""
    processes: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> tuple[subprocess.Popen[str], str, str]:
        process = subprocess.Popen(
            [*COMMAND, "--port", "0", "--store", store, *flags], stdout=subprocess.PIPE, text=True
        )
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


def test_serve_prints_where_it_listens_and_how_to_point_the_sdk(serve: Serve) -> None:
    _, url, banner = serve("--speed", "0")
    assert f"on {url}" in banner
    assert "svd, motionctrl-svd" in banner
    assert httpx.get(f"{url}/_mock/health").json()["speed"] == 0


def test_sdk_pointed_at_the_served_fake_completes_a_job_on_the_advanced_clock(serve: Serve) -> None:
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


def test_journal_size_0_records_nothing_and_the_fake_serves_as_ever(serve: Serve) -> None:
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


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (
            ["serve", "--port", "99999"],
            "segmind-mock serve: --port: expected a port number from 0 to 65535, got '99999'",
        ),
        (["serve", "--speed", "abc"], "segmind-mock serve: --speed: expected a number >= 0, got 'abc'"),
        (["serve", "--speed", "-1"], "segmind-mock serve: --speed: expected a number >= 0, got '-1'"),
        (["serve", "--speed", "nan"], "segmind-mock serve: --speed: expected a number >= 0, got 'nan'"),
        (["serve", "--workers", "0"], "segmind-mock serve: --workers: expected a whole number >= 1, got '0'"),
        (["serve", "--journal-size", "1.5"], "segmind-mock serve: --journal-size: expected a whole number >= 0"),
        (
            ["serve", "--spede", "100"],
            "segmind-mock serve: unrecognized arguments: --spede 100 (see segmind-mock serve --help)",
        ),
        (["contract", "--base-url", "x", "--bogus"], "(see segmind-mock contract --help)"),
        (["--bogus", "serve"], "segmind-mock: unrecognized arguments: --bogus (see segmind-mock --help)"),
        (["contract", "--base-url", "x", "--max-jobs", "-1"], "--max-jobs: expected a whole number >= 0, got '-1'"),
        (["contract", "--base-url", "x", "--poll-interval", "soon"], "--poll-interval: expected a number >= 0"),
        (["contract"], "segmind-mock contract: the following arguments are required: --base-url"),
    ],
)
def test_a_bad_flag_value_is_one_line_saying_what_is_wrong_and_exit_2(flags: list[str], complaint: str) -> None:
    run = subprocess.run([*COMMAND[:-1], *flags], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert complaint in run.stderr


def test_version_is_the_installed_package_version() -> None:
    run = subprocess.run([*COMMAND[:-1], "--version"], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (0, f"segmind-mock {metadata.version('segmind-mock')}\n")


def test_ctrl_c_ends_serve_with_exit_0_and_no_traceback(store: str) -> None:
    # On the Redis store with two workers: Ctrl-C reaches the supervisor and every worker at once.
    workers = 1 if store == MEMORY else 2
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", "--store", store, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    log: list[str] = []
    while sum("Started server process" in line for line in log) < workers:  # each worker handles signals now
        log.append(process.stderr.readline())
        assert log[-1], "".join(log)
    match = STARTUP.search(process.stdout.readline() + process.stdout.readline())
    assert match
    assert httpx.get(f"{match.group(1)}/_mock/health").status_code == 200
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole process group
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in "".join(log) + errors
    assert "KeyboardInterrupt" not in errors


def test_the_access_log_is_off_by_default(serve: Serve) -> None:
    process, url, _ = serve("--speed", "0")
    assert httpx.get(f"{url}/_mock/health").status_code == 200
    process.terminate()
    out, _ = process.communicate(timeout=30)
    assert "/_mock/health" not in out


ACCESS_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>/\S*) (?P<status>\d{3}|-) \d+\.\d ms$")


def test_access_log_prints_method_path_status_and_time_of_each_request(serve: Serve) -> None:
    process, url, _ = serve("--speed", "0", "--access-log")
    assert process.stdout is not None
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as http:
        assert http.post("/v2/svd", json=MODELS["svd"].example).status_code == 200
        assert http.post("/v2/svd", json={"fps": 0}).status_code == 400
        assert http.post("/_mock/scenarios", json={"outcome": "disconnect", "times": 1}).status_code == 201
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v2/svd", json=MODELS["svd"].example)
        assert http.get("/v3/nothing").status_code == 404
    logged: list[tuple[str, str, str]] = []
    while len(logged) < 5:
        line = process.stdout.readline()
        assert line, logged
        if match := ACCESS_LINE.match(line.rstrip("\n")):
            logged.append((match["method"], match["path"], match["status"]))
    assert logged == [
        ("POST", "/v2/svd", "200"),
        ("POST", "/v2/svd", "400"),
        ("POST", "/_mock/scenarios", "201"),
        ("POST", "/v2/svd", "-"),  # the connection was dropped without an answer
        ("GET", "/v3/nothing", "404"),
    ]


def test_bound_to_every_interface_the_start_up_line_names_loopback_and_says_so(serve: Serve) -> None:
    process, url, banner = serve("--host", "0.0.0.0")
    assert process.stdout is not None
    banner += process.stdout.readline() + process.stdout.readline() + process.stdout.readline()
    assert url.startswith("http://127.0.0.1:")
    assert "0.0.0.0:" not in banner and "//0.0.0.0" not in banner
    assert (
        f"listening on every interface (0.0.0.0): reachable from other machines on port {url.rsplit(':', 1)[1]}"
        in banner
    )
    assert "WARNING: bound beyond loopback (0.0.0.0)" in banner
    # A fresh token, printed in the dashboard's URL: the admin API needs it, health does not.
    token = re.search(rf"open {re.escape(url)}/_mock/\?token=(\S+) for the dashboard", banner)
    assert token, banner
    assert httpx.get(f"{url}/_mock/health").status_code == 200
    refused = httpx.post(f"{url}/_mock/reset")
    assert refused.status_code == 401 and "Authorization: Bearer <token>" in refused.json()["error"]
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    assert httpx.post(f"{url}/_mock/reset", headers=bearer).status_code == 200


def test_an_admin_token_given_is_required_even_on_loopback(serve: Serve) -> None:
    _, url, _ = serve("--admin-token", "team-secret-1")
    assert httpx.get(f"{url}/_mock/jobs").status_code == 401
    assert httpx.get(f"{url}/_mock/jobs", headers={"Authorization": "Bearer team-secret-1"}).status_code == 200


def test_the_admin_token_may_come_from_the_environment() -> None:
    environment = {**os.environ, "SEGMIND_MOCK_ADMIN_TOKEN": "from-the-environment"}
    process = subprocess.Popen([*COMMAND, "--port", "0"], stdout=subprocess.PIPE, text=True, env=environment)
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(3))
        match = STARTUP.search(banner)
        assert match, banner
        assert "Bearer from-the-environment" in banner
        assert httpx.get(f"{match.group(1)}/_mock/jobs").status_code == 401
        allowed = httpx.get(f"{match.group(1)}/_mock/jobs", headers={"Authorization": "Bearer from-the-environment"})
        assert allowed.status_code == 200
    finally:
        process.terminate()
        process.wait(10)


def test_on_loopback_without_a_token_the_admin_api_stays_open(serve: Serve) -> None:
    _, url, banner = serve()
    assert "token" not in banner
    assert httpx.get(f"{url}/_mock/jobs").status_code == 200


@pytest.mark.parametrize("pyav", [True, False], ids=["with-pyav", "without-pyav"])
def test_the_start_up_line_says_how_videos_are_made_as_installed(pyav: bool) -> None:
    hide_pyav = "" if pyav else "sys.modules['av'] = None; "  # an import of av then fails, as when absent
    code = f"import sys; {hide_pyav}from mock_server.cli import main; sys.exit(main())"
    process = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    banner = "".join(process.stdout.readline() for _ in range(3))
    process.terminate()
    process.wait(10)
    assert ("rendering videos with PyAV" in banner) is pyav
    assert ("video extra (PyAV, numpy) is not installed: serving prepared videos" in banner) is not pyav


def test_the_limit_flags_reach_the_server(serve) -> None:
    _, url, _ = serve("--max-header-bytes", "2048", "--request-timeout", "0.5", "--max-concurrent-requests", "5")
    too_big = httpx.get(f"{url}/_mock/health", headers={"x-note": "n" * 4096}, timeout=10)
    assert too_big.status_code == 431
    assert "2048 bytes (--max-header-bytes)" in too_big.json()["error"]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 408 ")


def test_one_declared_key_is_one_api_key_in_the_start_up_lines(serve: Serve, tmp_path) -> None:
    config = tmp_path / "keys.toml"
    config.write_text("[keys.SG_team-key-0001]\ncredits = 10\n")
    process, _, _ = serve("--config", str(config))
    assert process.stdout is not None
    assert process.stdout.readline() == f"  accepting only the 1 API key declared in {config}\n"

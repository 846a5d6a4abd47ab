"""Ctrl-C (and SIGTERM) with a v1 call in flight: `segmind-mock serve` ends at once, cleanly, however many presses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from contracts import MODELS
from mock_server import api_errors
from tests.support import API_KEY

COMMAND = [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--speed", "1"]
# Generous: a shutdown takes about a second; this only tells a hang (the job's half minute) from it.
EXIT_TIMEOUT_SECONDS = 10.0
SVD = dict(MODELS["svd"].example)  # about 33 s on the fake's clock at --speed 1


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`segmind-mock serve` at real time, in a session of its own (as a terminal's foreground job)."""
    process = subprocess.Popen(
        COMMAND, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None and process.stderr is not None
    log = [process.stderr.readline()]
    while "Started server process" not in log[-1]:  # signals are handled from now on
        log.append(process.stderr.readline())
        assert log[-1], "".join(log)
    url = process.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()


def in_flight(url: str, path: str = "/v1/svd") -> tuple[threading.Thread, dict[str, object]]:
    """Start a submission in a thread; return once the fake has accepted its job (a v1 call then waits for its end)."""
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["response"] = httpx.post(f"{url}{path}", json=SVD, headers={"x-api-key": API_KEY}, timeout=60)
        except httpx.HTTPError as error:
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    with httpx.Client(base_url=url) as admin:
        while not admin.get("/_mock/jobs").json():
            assert thread.is_alive(), outcome
            time.sleep(0.01)
    return thread, outcome


@pytest.mark.parametrize(
    "presses",
    [["SIGINT"], ["SIGINT", "SIGINT"], ["SIGINT", "SIGINT", "SIGINT"], ["SIGTERM"]],
    ids=["ctrl-c", "ctrl-c-twice", "ctrl-c-thrice", "sigterm"],
)
def test_a_v1_call_in_flight_gets_503_and_serve_exits_0_without_a_traceback(
    served: tuple[subprocess.Popen[str], str], presses: list[str]
) -> None:
    process, url = served
    thread, outcome = in_flight(url)
    stop(process, presses)
    thread.join(EXIT_TIMEOUT_SECONDS)
    if "error" in outcome:  # the connection closed: allowed, never a 500
        assert isinstance(outcome["error"], httpx.TransportError)
    else:
        response = outcome["response"]
        assert isinstance(response, httpx.Response)
        assert response.status_code == 503, response.text
        assert response.json() == {"error": api_errors.SHUTTING_DOWN}


def test_an_answer_a_scenario_delays_is_cut_off_by_the_shutdown_with_no_500(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = served
    delay = {"outcome": "latency", "delay_seconds": 60, "times": 1}
    assert httpx.post(f"{url}/_mock/scenarios", json=delay).status_code == 201
    thread, outcome = in_flight(url, "/v2/svd")
    stop(process, ["SIGINT"])
    thread.join(EXIT_TIMEOUT_SECONDS)
    assert isinstance(outcome.get("error"), httpx.TransportError), outcome  # closed: the answer was not due yet


def stop(process: subprocess.Popen[str], presses: list[str]) -> None:
    """Send the signals as a terminal does (to the process group); check `serve` exits 0 without a traceback."""
    for press in presses:
        os.killpg(process.pid, getattr(signal, press))
    try:
        _, errors = process.communicate(timeout=EXIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running {EXIT_TIMEOUT_SECONDS:g} s after {'+'.join(presses)}")
    assert "Traceback" not in errors and "Exception in ASGI application" not in errors, errors
    assert process.returncode == 0, errors

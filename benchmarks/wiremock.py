"""WireMock (stateless stubs, journal off) as an outside reference, fetched at benchmark time.

The npm package `wiremock` bundles WireMock's standalone jar; it is installed with npm into a cache
outside the repository (`$XDG_CACHE_HOME/segmind-mock-bench`, else `~/.cache/...`) on first use
and run with java directly, so the CPU time read from /proc is the server's own. Where npm or java
is missing, or the registry unreachable, `available` says why and the benchmark skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.bare import STATUS_BODY, SUBMIT_BODY
from benchmarks.process import Server

PACKAGE = "wiremock@3"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segmind-mock-bench" / "wiremock"
INSTALL_SECONDS = 180
START_SECONDS = 60


def jar() -> Path:
    """The standalone jar, installed with npm into the cache if it is not there yet; RuntimeError says why not."""
    if shutil.which("java") is None:
        raise RuntimeError("java is not on PATH")
    found = sorted(CACHE.glob("node_modules/wiremock/**/wiremock-standalone-*.jar"))
    if found:
        return found[-1]
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH")
    CACHE.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--prefix", str(CACHE), PACKAGE, "--no-audit", "--no-fund", "--no-save"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_SECONDS)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"npm install {PACKAGE} took over {INSTALL_SECONDS} s") from None
    found = sorted(CACHE.glob("node_modules/wiremock/**/wiremock-standalone-*.jar"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no jar in the package"])[-1]
        raise RuntimeError(f"npm install {PACKAGE} failed: {last}")
    return found[-1]


def _stub(method: str, pattern: str, body: Mapping[str, object]) -> dict[str, object]:
    # A pre-encoded body: WireMock sends it as it is, as the raw baseline does.
    return {
        "request": {"method": method, "urlPathPattern": pattern},
        "response": {"status": 200, "body": json.dumps(body), "headers": {"Content-Type": "application/json"}},
    }


@contextmanager
def serving(path: Path, cpu: int | None = None) -> Iterator[Server]:
    """Run the jar on a free loopback port, journal off, stubs answering submit and status (on `cpu` alone if given)."""
    with socket.socket() as probe:  # a free port: WireMock's own choice would have to be read from its output
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flags = ["--port", str(port), "--bind-address", "127.0.0.1", "--no-request-journal", "--disable-request-logging"]
    # Content-Length framing, as the fake answers: WireMock 3.13 chunks every response by default,
    # which costs it a frame per answer and which the load generator does not parse.
    flags += ["--use-chunked-encoding", "never"]
    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []  # taskset execs java: the pid stays the server's
    command = [*pinned, "java", "-jar", str(path), *flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url) as admin:
            _wait_until_up(admin, process)
            admin.post("/__admin/mappings", json=_stub("POST", "/v2/[^/]+", SUBMIT_BODY)).raise_for_status()
            status = _stub("GET", "/v2/requests/[^/]+/status", STATUS_BODY)
            admin.post("/__admin/mappings", json=status).raise_for_status()
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_up(admin: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"WireMock exited with status {process.returncode} before it listened")
        try:
            admin.get("/__admin/health").raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)  # the JVM is starting: nothing to wait on but the port
    raise RuntimeError(f"WireMock did not answer within {START_SECONDS} s")

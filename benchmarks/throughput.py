"""Submit and status throughput of `segmind-mock serve` against bare Starlette, side by side."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import API_KEY
from benchmarks.loadgen import build_request, load
from contracts import MODELS

ROOT = Path(__file__).resolve().parent.parent
# The console script `segmind-mock` is exactly this call; running it through this interpreter with
# the checkout first on the path measures this checkout, installed or not.
FAKE_COMMAND = [sys.executable, "-c", "import sys; from mock_server.cli import main; sys.exit(main())", "serve"]
BARE_COMMAND = [sys.executable, "-m", "benchmarks.bare"]
URL_PATTERN = re.compile(r"http://127\.0\.0\.1:\d+")
STATUS_IDS = 1000
WARMUP_SECONDS = 0.3


@dataclass(frozen=True)
class Throughput:
    """One route on each server: medians over paired rounds, and the spread of the CPU ratio."""

    route: str
    fake: float  # requests per second
    bare: float
    fake_cpu_us: float  # server CPU time per request
    bare_cpu_us: float
    ratio: float  # median over rounds of fake / bare requests per second
    cpu_ratio: float  # median over rounds of bare / fake CPU per request: the ratio with less noise
    cpu_ratio_range: tuple[float, float]
    journal_off: float  # the fake served with `--journal-size 0`, CPU ratio to bare
    floor: float | None  # bare reading and parsing the body, CPU ratio to bare (submit only)


@dataclass
class Server:
    """A server process under test."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(command: list[str]) -> Iterator[Server]:
    """Start a server process on a free loopback port; yield it once it accepts connections."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert process.stdout is not None
        match = URL_PATTERN.search(process.stdout.readline())
        if match is None:
            raise RuntimeError(f"{command} printed no URL")
        # The command binds and listens before it prints its URL: it is ready.
        yield Server(match.group(0), process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _requests(url: str, ids: list[str]) -> dict[str, list[bytes]]:
    headers = {"x-api-key": API_KEY}
    body = json.dumps(MODELS["svd"].example).encode()
    submit = build_request("POST", f"{url}/v2/svd", {**headers, "Content-Type": "application/json"}, body)
    status = [build_request("GET", f"{url}/v2/requests/{request_id}/status", headers) for request_id in ids]
    return {"submit": [submit], "status": status}


def _run(server: Server, requests: list[bytes], seconds: float, connections: int) -> tuple[float, float]:
    """Requests per second and server CPU microseconds per request, after a short warm-up."""
    load(server.url, requests, connections, WARMUP_SECONDS, warmup=0)
    before = server.cpu_seconds()
    result = load(server.url, requests, connections, seconds, warmup=0)
    used = server.cpu_seconds() - before
    if result.errors:
        raise RuntimeError(f"{server.url} answered {result.errors} errors")
    return result.per_second, used / result.requests * 1e6


def measure(seconds: float = 1.0, rounds: int = 7, connections: int = 16) -> list[Throughput]:
    """Measure both routes on each server in paired rounds and keep the medians.

    Each round runs the servers back to back, in alternating order, and takes their ratio then:
    other processes on a shared machine slow everything for seconds at a time, which moves the
    absolute figures by a factor of two but a paired ratio much less. Besides requests per second,
    each server process's own CPU time per request is recorded, which noise moves least of all.
    """
    fake_command = [*FAKE_COMMAND, "--port", "0", "--speed", "0"]
    commands = {
        "fake": fake_command,
        "bare": BARE_COMMAND,
        "journal off": [*fake_command, "--journal-size", "0"],
        "floor": [*BARE_COMMAND, "--read-body"],
    }
    with ExitStack() as stack:
        servers = {name: stack.enter_context(serving(command)) for name, command in commands.items()}
        ids = {name: _submit_jobs(servers[name].url) for name in ("fake", "journal off")}
        ids["bare"] = ids["floor"] = ids["fake"]  # they answer any id alike
        plans = {name: _requests(server.url, ids[name]) for name, server in servers.items()}
        rows = []
        for route in ("submit", "status"):
            names = [name for name in commands if route == "submit" or name != "floor"]
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
            for round_number in range(rounds):
                for name in names if round_number % 2 == 0 else names[::-1]:
                    runs[name].append(_run(servers[name], plans[name][route], seconds, connections))
            rows.append(_row(route, runs))
    return rows


def _submit_jobs(url: str) -> list[str]:
    """Submit the jobs the status route polls; return their ids."""
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as client:
        return [client.post("/v2/svd", json=MODELS["svd"].example).json()["request_id"] for _ in range(STATUS_IDS)]


def _row(route: str, runs: dict[str, list[tuple[float, float]]]) -> Throughput:
    median = statistics.median
    fake, bare = runs["fake"], runs["bare"]

    def cpu_ratios(name: str) -> list[float]:
        """Per round, bare's CPU per request over `name`'s."""
        return [bare_cpu / cpu for (_, cpu), (_, bare_cpu) in zip(runs[name], bare, strict=True)]

    fake_cpu_ratios = cpu_ratios("fake")

    return Throughput(
        route,
        fake=median(rate for rate, _ in fake),
        bare=median(rate for rate, _ in bare),
        fake_cpu_us=median(cpu for _, cpu in fake),
        bare_cpu_us=median(cpu for _, cpu in bare),
        ratio=median(fake_rate / bare_rate for (fake_rate, _), (bare_rate, _) in zip(fake, bare, strict=True)),
        cpu_ratio=median(fake_cpu_ratios),
        cpu_ratio_range=(min(fake_cpu_ratios), max(fake_cpu_ratios)),
        journal_off=median(cpu_ratios("journal off")),
        floor=median(cpu_ratios("floor")) if "floor" in runs else None,
    )


if __name__ == "__main__":
    for row in measure():
        low, high = row.cpu_ratio_range
        floor = f"; bare reading the body: {row.floor:.2f}" if row.floor is not None else ""
        print(
            f"{row.route}: fake {row.fake:.0f}/s, bare {row.bare:.0f}/s, ratio {row.ratio:.2f}; "
            f"CPU/request fake {row.fake_cpu_us:.1f} us, bare {row.bare_cpu_us:.1f} us, "
            f"ratio {row.cpu_ratio:.2f} ({low:.2f}-{high:.2f}); journal off: {row.journal_off:.2f}{floor}"
        )

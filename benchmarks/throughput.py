"""Submit and status throughput of `segmind-mock serve` against bare Starlette, side by side."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.loadgen import build_request, load
from contracts import MODELS

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "SG_0123456789abcdef"
# The console script `segmind-mock` is exactly this call; running it through this interpreter with
# the checkout first on the path measures this checkout, installed or not.
FAKE_COMMAND = [sys.executable, "-c", "import sys; from mock_server.cli import main; sys.exit(main())", "serve"]
BARE_COMMAND = [sys.executable, "-m", "benchmarks.bare"]
URL_PATTERN = re.compile(r"http://127\.0\.0\.1:\d+")
STATUS_IDS = 1000
WARMUP_SECONDS = 0.3


@dataclass(frozen=True)
class Throughput:
    """Requests per second and server CPU per request of one route on both servers."""

    route: str
    fake: float
    bare: float
    fake_cpu_us: float
    bare_cpu_us: float

    @property
    def ratio(self) -> float:
        """The fake's throughput as a share of bare Starlette's."""
        return self.fake / self.bare

    @property
    def cpu_ratio(self) -> float:
        """Bare Starlette's CPU per request as a share of the fake's: the throughput ratio without noise."""
        return self.bare_cpu_us / self.fake_cpu_us


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


def measure(seconds: float = 2.0, rounds: int = 3, connections: int = 16) -> list[Throughput]:
    """Measure both routes on both servers, alternating, and keep each one's median.

    Besides requests per second, the server process's own CPU time per request is recorded: on a
    shared machine other processes steal time from the server and the generator alike, which moves
    throughput from run to run but leaves CPU per request nearly unchanged.
    """
    fake_command = [*FAKE_COMMAND, "--port", "0", "--speed", "0"]
    with serving(fake_command) as fake, serving(BARE_COMMAND) as bare:
        with httpx.Client(base_url=fake.url, headers={"x-api-key": API_KEY}) as client:
            ids = [client.post("/v2/svd", json=MODELS["svd"].example).json()["request_id"] for _ in range(STATUS_IDS)]
        servers = {"fake": fake, "bare": bare}
        plans = {name: _requests(server.url, ids) for name, server in servers.items()}
        rates: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for route in ("submit", "status"):
                for name, server in servers.items():
                    load(server.url, plans[name][route], connections, WARMUP_SECONDS, warmup=0)
                    before = server.cpu_seconds()
                    result = load(server.url, plans[name][route], connections, seconds, warmup=0)
                    used = server.cpu_seconds() - before
                    if result.errors:
                        raise RuntimeError(f"{name} answered {result.errors} errors on {route}")
                    rates.setdefault((route, name), []).append(result.per_second)
                    cpu.setdefault((route, name), []).append(used / result.requests * 1e6)
    median = statistics.median
    return [
        Throughput(
            route,
            median(rates[route, "fake"]),
            median(rates[route, "bare"]),
            median(cpu[route, "fake"]),
            median(cpu[route, "bare"]),
        )
        for route in ("submit", "status")
    ]


if __name__ == "__main__":
    for row in measure():
        print(
            f"{row.route}: fake {row.fake:.0f}/s, bare {row.bare:.0f}/s, ratio {row.ratio:.2f}; "
            f"CPU/request fake {row.fake_cpu_us:.1f} us, bare {row.bare_cpu_us:.1f} us, ratio {row.cpu_ratio:.2f}"
        )

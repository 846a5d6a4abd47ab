"""Requests per second on Segmind's submit and status routes: the fake against the raw ASGI limit, same rounds.

Servers, each its own process on the same uvicorn stack (`mock_server.server.config`):
raw ASGI (`benchmarks/raw.py`, the limit), bare Starlette (`benchmarks/bare.py`), the floor
(`benchmarks/floor.py`: the fake's essential parts alone), `segmind-mock serve` (journal on,
memory store, one process) and the same with `--journal-size 0`, and WireMock where java and npm
are there (`benchmarks/wiremock.py`). With `--before CHECKOUT` (another tree, a `git archive` of
main), that tree's `serve` too; with `--wiremock-cpu N`, a second WireMock pinned to CPU N
(`taskset`), one core like the fake's one process.
The driver is wrk (1 thread) where it is on PATH, else `benchmarks/loadgen.py`.

    python -m benchmarks.throughput [--seconds 1] [--rounds 7] [--before CHECKOUT] [--wiremock-cpu N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import wiremock
from benchmarks.common import API_KEY
from benchmarks.loadgen import build_request, load
from benchmarks.process import FAKE_COMMAND, Server, serving, tree_command
from contracts import MODELS

RAW = "raw ASGI"
BARE = "bare Starlette"
FLOOR = "floor: decode, keep, template, journal"
FAKE = "segmind-mock serve"
JOURNAL_OFF = "segmind-mock, --journal-size 0"
WIREMOCK = "WireMock 3 (stateless stubs, journal off)"
BEFORE = "segmind-mock serve, --before tree"  # only with `--before CHECKOUT`
WIREMOCK_ONE_CPU = "WireMock 3, pinned to one CPU (taskset)"  # only with `--wiremock-cpu N`
SERVE_FLAGS = ["--port", "0", "--speed", "0"]
COMMANDS = {
    RAW: [sys.executable, "-m", "benchmarks.raw"],
    BARE: [sys.executable, "-m", "benchmarks.bare"],
    FLOOR: [sys.executable, "-m", "benchmarks.floor"],
    FAKE: [*FAKE_COMMAND, *SERVE_FLAGS],
    JOURNAL_OFF: [*FAKE_COMMAND, *SERVE_FLAGS, "--journal-size", "0"],
}
STATEFUL = (FLOOR, FAKE, JOURNAL_OFF, BEFORE)  # they answer only the ids they handed out
ROUTES = ("submit", "status")  # as the table lists them
CONNECTIONS = 32
STATUS_IDS = 1000
WARMUP_SECONDS = 1
# The JIT compiles WireMock's hot path only after some load: from cold, a status poll cost 160 to
# 260 µs of CPU for 14 s on a 2-CPU Xeon, then 35 to 40. Pinned to one CPU the compiler shares the
# server's core: it settled after about a minute (1,000 µs at first, 60 after 40 s, still falling).
JVM_WARMUP_SECONDS = {WIREMOCK: 20, WIREMOCK_ONE_CPU: 60}
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
HEADERS = {"x-api-key": API_KEY, "Content-Type": "application/json"}
SUBMIT_BODY = json.dumps(MODELS["svd"].example).encode()


@dataclass(frozen=True)
class Plan:
    """What one route sends to one server: the method, the paths to cycle through, the body."""

    method: str
    paths: list[str]
    body: bytes


@dataclass(frozen=True)
class Counted:
    """One driver run: requests completed, over how long, and how many failed."""

    requests: int
    seconds: float
    errors: int


class Wrk:
    """wrk, 1 thread, with `wrk.lua` cycling through the plan's requests."""

    name = "wrk (1 thread)"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[bytes, Path] = {}

    def _file(self, content: bytes) -> Path:
        """A file holding `content`, written once per distinct content."""
        if content not in self._files:
            self._files[content] = self.folder / f"{len(self._files)}.txt"
            self._files[content].write_bytes(content)
        return self._files[content]

    def run(self, url: str, plan: Plan, seconds: int) -> Counted:
        """Drive `url` with `plan` for `seconds` (whole seconds: wrk's unit)."""
        paths = self._file("".join(f"{path}\n" for path in plan.paths).encode())
        extra = [str(self._file(plan.body))] if plan.body else []
        headers = [flag for name, value in HEADERS.items() for flag in ("-H", f"{name}: {value}")]
        command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", *headers, "-s", str(WRK_SCRIPT), url]
        done = subprocess.run(
            [*command, "--", plan.method, str(paths), *extra], capture_output=True, text=True, timeout=seconds + 30
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed: {done.stderr.strip()}")
        counts = json.loads(done.stdout.strip().splitlines()[-1])
        errors = counts["non_2xx"] + counts["socket_errors"]
        return Counted(counts["requests"], counts["microseconds"] / 1e6, errors)


class LoadGen:
    """The project's own load generator, where wrk is missing."""

    name = "benchmarks/loadgen.py (wrk not on PATH)"

    def run(self, url: str, plan: Plan, seconds: int) -> Counted:
        """Drive `url` with `plan` for `seconds`."""
        requests = [build_request(plan.method, f"{url}{path}", HEADERS, plan.body) for path in plan.paths]
        result = load(url, requests, CONNECTIONS, seconds, warmup=0)
        return Counted(result.requests, result.seconds, result.errors)


Driver = Wrk | LoadGen


@dataclass(frozen=True)
class Row:
    """One server on one route: medians over the rounds, and the spread of its ratio to raw ASGI."""

    route: str
    server: str
    per_second: float
    ratio: float  # median over rounds of this server's requests per second / raw ASGI's, same round
    ratio_range: tuple[float, float]
    cpu_us: float  # the server process's own CPU time per request
    cpu_ratio: float  # median over rounds of raw ASGI's CPU per request / this server's


@dataclass(frozen=True)
class Report:
    """The rows, which driver produced them, and why a server was left out, if one was."""

    driver: str
    rows: list[Row]
    skipped: list[str]


@contextmanager
def _driver() -> Iterator[Driver]:
    if shutil.which("wrk") is None:
        yield LoadGen()
        return
    with tempfile.TemporaryDirectory(prefix="segmind-bench-") as folder:
        yield Wrk(Path(folder))


def _plans(server: Server, stateful: bool) -> dict[str, Plan]:
    if stateful:
        with httpx.Client(base_url=server.url, headers=HEADERS) as client:
            ids = [client.post("/v2/svd", content=SUBMIT_BODY).json()["request_id"] for _ in range(STATUS_IDS)]
    else:
        ids = [f"00000000-0000-4000-8000-{index:012d}" for index in range(STATUS_IDS)]
    return {
        "submit": Plan("POST", ["/v2/svd"], SUBMIT_BODY),
        "status": Plan("GET", [f"/v2/requests/{request_id}/status" for request_id in ids], b""),
    }


def _measure_once(driver: Driver, server: Server, plan: Plan, seconds: int) -> tuple[float, float]:
    """Requests per second and server CPU microseconds per request."""
    before = server.cpu_seconds()
    counted = driver.run(server.url, plan, seconds)
    used = server.cpu_seconds() - before
    if counted.errors:
        raise RuntimeError(f"{server.url} answered {counted.errors} errors")
    return counted.requests / counted.seconds, used / counted.requests * 1e6


def measure(
    seconds: int = 1,
    rounds: int = 7,
    with_wiremock: bool = True,
    before: Path | None = None,
    wiremock_cpu: int | None = None,
) -> Report:
    """Measure every server on both routes in interleaved rounds; ratios are taken within each round.

    On a shared machine other processes slow everything for seconds at a time, which moves the
    absolute figures by up to a factor of two; a ratio taken within a round moves much less, and
    the ratio of CPU per request least of all. The order of the servers alternates every round.
    `before` adds that tree's fake; `wiremock_cpu` a second WireMock pinned to that CPU.
    """
    skipped = []
    commands = dict(COMMANDS)
    if before is not None:
        commands[BEFORE] = [*tree_command(before), "serve", *SERVE_FLAGS]
    with ExitStack() as stack:
        driver = stack.enter_context(_driver())
        servers = {name: stack.enter_context(serving(command)) for name, command in commands.items()}
        wiremocks = {WIREMOCK: None, WIREMOCK_ONE_CPU: wiremock_cpu} if wiremock_cpu is not None else {WIREMOCK: None}
        try:
            for name, cpu in wiremocks.items() if with_wiremock else ():
                servers[name] = stack.enter_context(wiremock.serving(wiremock.jar(), cpu))
        except RuntimeError as error:
            skipped.append(f"WireMock skipped: {error}")
        plans = {name: _plans(server, name in STATEFUL) for name, server in servers.items()}
        for name, server in servers.items():
            for route in ROUTES:
                driver.run(server.url, plans[name][route], JVM_WARMUP_SECONDS.get(name, WARMUP_SECONDS))
        rows: dict[str, list[Row]] = {}
        # Status first: each submit round adds jobs, and past the cap on jobs kept (`--max-jobs-kept`)
        # the oldest go, the status plan's among them.
        for route in reversed(ROUTES):
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            order = list(servers)
            for round_number in range(rounds):
                for name in order if round_number % 2 == 0 else order[::-1]:
                    runs[name].append(_measure_once(driver, servers[name], plans[name][route], seconds))
            rows[route] = [_row(route, name, runs[name], runs[RAW]) for name in servers]
        return Report(driver.name, [row for route in ROUTES for row in rows[route]], skipped)


def _row(route: str, server: str, runs: list[tuple[float, float]], raw: list[tuple[float, float]]) -> Row:
    median = statistics.median
    ratios = [rate / raw_rate for (rate, _), (raw_rate, _) in zip(runs, raw, strict=True)]
    cpu_ratios = [raw_cpu / cpu for (_, cpu), (_, raw_cpu) in zip(runs, raw, strict=True)]
    return Row(
        route,
        server,
        per_second=median(rate for rate, _ in runs),
        ratio=median(ratios),
        ratio_range=(min(ratios), max(ratios)),
        cpu_us=median(cpu for _, cpu in runs),
        cpu_ratio=median(cpu_ratios),
    )


def main() -> None:
    """Measure and print one line per server and route."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=1, help="seconds per measured run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--no-wiremock", action="store_true", help="leave WireMock out")
    parser.add_argument("--before", type=Path, help="another tree (`git archive` of main) whose fake to serve beside")
    parser.add_argument("--wiremock-cpu", type=int, help="also serve a WireMock pinned to this CPU (taskset)")
    args = parser.parse_args()
    report = measure(args.seconds, args.rounds, not args.no_wiremock, args.before, args.wiremock_cpu)
    print(f"driver: {report.driver}, {CONNECTIONS} connections", *report.skipped, sep="\n")
    for row in report.rows:
        low, high = row.ratio_range
        print(
            f"{row.route:<7} {row.server:<44} {row.per_second:8.0f}/s  ratio to raw {row.ratio:.2f} "
            f"({low:.2f}-{high:.2f})  CPU {row.cpu_us:5.1f} us/req, raw/this {row.cpu_ratio:.2f}"
        )


if __name__ == "__main__":
    main()

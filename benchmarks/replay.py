"""The status route under `serve --replay` against the fake itself, same rounds (issue 23: at least half as fast).

A recording is made first, as a user makes one: `segmind-mock record`'s proxy in front of a fake,
one job submitted and polled until it ends. Then two `segmind-mock serve --speed 0` processes, one
replaying that recording, get a thousand submissions each (on the replaying one, every one matches
the recorded job) and are driven on those ids' status route in interleaved rounds; the ratio is
taken within each round.

    python -m benchmarks.replay [--seconds 1] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.process import FAKE_COMMAND, serving
from benchmarks.throughput import HEADERS, SUBMIT_BODY, WARMUP_SECONDS, _driver, _measure_once, _plans
from mock_server import SegmindMock, Settings
from mock_server.recorder import Recorder
from mock_server.server import ServerThread

# The job's end, past which the upstream's clock is moved to record its last polls.
PAST_THE_END_SECONDS = 1000.0
TARGET_RATIO = 0.5
FAKE = "segmind-mock serve"
REPLAY = "segmind-mock serve --replay"


@dataclass(frozen=True)
class ReplayRow:
    """Status polls per second, replaying and not, and their ratio (median over rounds, with its spread)."""

    fake_per_second: float
    replay_per_second: float
    ratio: float
    ratio_range: tuple[float, float]
    cpu_ratio: float  # median over rounds of the fake's CPU per request / the replaying server's
    driver: str


def record(out: Path) -> None:
    """Record one svd job through the proxy: submitted, polled while queued and once ended, its result fetched."""
    upstream = SegmindMock(Settings(speed=0))
    with ExitStack() as stack:
        proxy = Recorder(stack.enter_context(ServerThread(upstream.app)), out, version="benchmark", say=print)
        client = stack.enter_context(httpx.Client(base_url=stack.enter_context(ServerThread(proxy)), headers=HEADERS))
        job = client.post("/v2/svd", content=SUBMIT_BODY).json()
        client.get(job["status_url"])
        upstream.advance(PAST_THE_END_SECONDS)
        client.get(job["status_url"])
        client.get(job["response_url"])


def measure(seconds: int = 1, rounds: int = 7) -> ReplayRow:
    """Drive both servers' status route in interleaved rounds; the ratio of each round, replay to fake."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="segmind-replay-")))
        recording = folder / "svd.har"
        record(recording)
        driver = stack.enter_context(_driver())
        command = [*FAKE_COMMAND, "--port", "0", "--speed", "0"]
        servers = {
            FAKE: stack.enter_context(serving(command)),
            REPLAY: stack.enter_context(serving([*command, "--replay", str(recording)])),
        }
        plans = {name: _plans(server, stateful=True)["status"] for name, server in servers.items()}
        for name, server in servers.items():
            driver.run(server.url, plans[name], WARMUP_SECONDS)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for round_number in range(rounds):
            for name in list(servers) if round_number % 2 == 0 else list(servers)[::-1]:
                runs[name].append(_measure_once(driver, servers[name], plans[name], seconds))
    pairs = list(zip(runs[REPLAY], runs[FAKE], strict=True))
    ratios = [replayed / fake for (replayed, _), (fake, _) in pairs]
    cpu_ratios = [fake_cpu / replayed_cpu for (_, replayed_cpu), (_, fake_cpu) in pairs]
    median = statistics.median
    rates = {name: median(rate for rate, _ in runs[name]) for name in runs}
    spread = (min(ratios), max(ratios))
    return ReplayRow(rates[FAKE], rates[REPLAY], median(ratios), spread, median(cpu_ratios), driver.name)


def main() -> None:
    """Measure and print the two rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=1, help="seconds per measured run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default: %(default)s)")
    args = parser.parse_args()
    row = measure(args.seconds, args.rounds)
    low, high = row.ratio_range
    print(
        f"status route, {row.driver}: fake {row.fake_per_second:,.0f}/s, replay {row.replay_per_second:,.0f}/s, "
        f"ratio {row.ratio:.2f} ({low:.2f}-{high:.2f}; target {TARGET_RATIO} or more), "
        f"CPU per request, fake/replay {row.cpu_ratio:.2f}"
    )


if __name__ == "__main__":
    main()

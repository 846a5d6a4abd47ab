"""What recording costs per exchange: status polls through `segmind-mock record` against the same polls sent direct.

    python -m benchmarks.recording [--exchanges 600] [--batch 50]

Starts `segmind-mock serve` (the "live" upstream, its clock frozen) and `segmind-mock record` in
front of it, each a process of its own on loopback; one client then sends status polls of one job
in interleaved batches, direct and through the recorder, until the recording holds `--exchanges`
entries. The added cost is the difference of the two medians in each pair of batches, reported
at the start of the session and at its end (the recorder rewrites the whole file after every
exchange, so a longer session costs a little more per exchange). Target: at most 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import API_KEY
from benchmarks.process import FAKE_COMMAND, serving
from contracts import MODELS

TARGET_MS = 5.0
EXCHANGES = 600
BATCH = 50


@dataclass(frozen=True)
class Pair:
    """One pair of batches: median ms per poll direct and through the recorder, with the recording's size then."""

    entries: int
    direct_ms: float
    recorded_ms: float

    @property
    def added_ms(self) -> float:
        """What recording added to each exchange."""
        return self.recorded_ms - self.direct_ms


def _median_ms(client: httpx.Client, url: str, count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(exchanges: int = EXCHANGES, batch: int = BATCH) -> list[Pair]:
    """Interleaved batches of polls, direct and recorded, until the recording holds `exchanges` entries."""
    with tempfile.TemporaryDirectory() as scratch, serving([*FAKE_COMMAND, "--port", "0", "--speed", "0"]) as fake:
        out = Path(scratch) / "bench.har"
        record = [*FAKE_COMMAND[:-1], "record", "--port", "0", "--upstream", fake.url, "--out", str(out)]
        with serving(record) as recorder, httpx.Client(headers={"x-api-key": API_KEY}) as client:
            submitted = client.post(f"{recorder.url}/v2/svd", json=MODELS["svd"].example).json()
            path = f"/v2/requests/{submitted['request_id']}/status"
            _median_ms(client, fake.url + path, batch)  # warm both up: connections, caches
            _median_ms(client, recorder.url + path, batch)
            pairs = []
            entries = 1 + batch
            while entries < exchanges:
                direct = _median_ms(client, fake.url + path, batch)
                recorded = _median_ms(client, recorder.url + path, batch)
                entries += batch
                pairs.append(Pair(entries, direct, recorded))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Print the added cost per exchange, batch by batch."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recording", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=EXCHANGES, help="entries the recording ends with")
    parser.add_argument("--batch", type=int, default=BATCH, help="polls per batch")
    args = parser.parse_args(argv)
    pairs = measure(args.exchanges, args.batch)
    print("| entries recorded | direct ms | through record ms | added ms |")
    print("|---:|---:|---:|---:|")
    for pair in pairs:
        print(f"| {pair.entries} | {pair.direct_ms:.2f} | {pair.recorded_ms:.2f} | {pair.added_ms:.2f} |")
    worst = max(pair.added_ms for pair in pairs)
    print(
        f"\nadded per exchange: median {statistics.median(p.added_ms for p in pairs):.2f} ms, worst {worst:.2f} ms "
        f"(target: at most {TARGET_MS:g} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

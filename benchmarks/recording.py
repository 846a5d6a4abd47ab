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
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import API_KEY, median_get_ms
from benchmarks.process import FAKE_COMMAND, serving
from contracts import MODELS

TARGET_MS = 5.0
EXCHANGES = 600
BATCH = 50


@dataclass(frozen=True)
class Pair:
    """One pair of batches: median ms per poll direct and through the recorder, with the recording's size then.

    `recorder_cpu_ms` is the recorder process's own CPU time per exchange (from /proc), which load
    from other processes moves least: on an idle machine the added wall time is about this.
    """

    entries: int
    direct_ms: float
    recorded_ms: float
    recorder_cpu_ms: float

    @property
    def added_ms(self) -> float:
        """What recording added to each exchange."""
        return self.recorded_ms - self.direct_ms

    def cells(self) -> list[str]:
        """The pair as a row of the table under `HEADER`."""
        figures = (self.direct_ms, self.recorded_ms, self.added_ms, self.recorder_cpu_ms)
        return [f"{self.entries}", *(f"{figure:.2f}" for figure in figures)]


HEADER = ["entries recorded", "direct ms", "through record ms", "added ms", "recorder CPU ms"]


def measure(exchanges: int = EXCHANGES, batch: int = BATCH) -> list[Pair]:
    """Interleaved batches of polls, direct and recorded, until the recording holds `exchanges` entries."""
    with tempfile.TemporaryDirectory() as scratch, serving([*FAKE_COMMAND, "--port", "0", "--speed", "0"]) as fake:
        out = Path(scratch) / "bench.har"
        record = [*FAKE_COMMAND[:-1], "record", "--port", "0", "--upstream", fake.url, "--out", str(out)]
        with serving(record) as recorder, httpx.Client(headers={"x-api-key": API_KEY}) as client:
            submitted = client.post(f"{recorder.url}/v2/svd", json=MODELS["svd"].example).json()
            path = f"/v2/requests/{submitted['request_id']}/status"
            median_get_ms(client, fake.url + path, batch)  # warm both up: connections, caches
            median_get_ms(client, recorder.url + path, batch)
            pairs = []
            entries = 1 + batch
            while entries < exchanges:
                direct = median_get_ms(client, fake.url + path, batch)
                cpu = recorder.cpu_seconds()
                recorded = median_get_ms(client, recorder.url + path, batch)
                cpu_ms = (recorder.cpu_seconds() - cpu) * 1000 / batch
                entries += batch
                pairs.append(Pair(entries, direct, recorded, cpu_ms))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Print the added cost per exchange, batch by batch."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recording", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=EXCHANGES, help="entries the recording ends with")
    parser.add_argument("--batch", type=int, default=BATCH, help="polls per batch")
    args = parser.parse_args(argv)
    pairs = measure(args.exchanges, args.batch)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---:|" * len(HEADER))
    for pair in pairs:
        print("| " + " | ".join(pair.cells()) + " |")
    worst = max(pair.added_ms for pair in pairs)
    median = statistics.median(pair.added_ms for pair in pairs)
    cpu = statistics.median(pair.recorder_cpu_ms for pair in pairs)
    print(
        f"\nadded per exchange: median {median:.2f} ms, worst {worst:.2f} ms; the recorder's own CPU per exchange: "
        f"median {cpu:.2f} ms (target: at most {TARGET_MS:g} ms added)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

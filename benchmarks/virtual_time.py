"""How long `run("svd")` takes under `segmind_offline`: wall time as ratios against one poll, measured here.

    python benchmarks/virtual_time.py [--rounds 20]

The baseline is one in-process status poll through the official SDK's own httpx client; `run()`
makes about 33 of them (one a simulated second), so its wall time should stay near 33 baselines,
while the simulated clock shows the documented 31.63 s of queue and inference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from segmind import SegmindClient

from contracts import MODELS
from mock_server.offline import segmind_offline

SVD = MODELS["svd"]


def main() -> None:
    """Measure, then print wall times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="runs of each measurement (default 20)")
    rounds = parser.parse_args().rounds
    with segmind_offline() as mock:
        client = SegmindClient(api_key="SG_0123456789abcdef")
        try:
            job = client.submit_async("svd", **SVD.example)
            poll = _median(rounds * 10, job.status)
            simulated: list[float] = []
            requests: list[int] = []

            def run() -> None:
                start = mock.clock.now()
                mock.journal.clear()
                result = client.run("svd", **SVD.example)
                assert result["metrics"]["inference_time"] == SVD.latency_seconds
                simulated.append(mock.clock.now() - start)
                requests.append(len(mock.requests))

            run_wall = _median(rounds, run)
        finally:
            client._client.close()
    print(f"one status poll (baseline): {poll * 1e3:.3f} ms wall")
    print(f"run('svd'):                 {run_wall * 1e3:.1f} ms wall, {statistics.median(simulated):.2f} s simulated")
    made = statistics.median(requests)
    print(f"run / poll:                 {run_wall / poll:.1f} polls' worth ({made:.0f} requests made)")
    print(f"simulated / wall:           {statistics.median(simulated) / run_wall:.0f}x faster than real time")


def _median(rounds: int, call: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()

"""How long `run("svd")` takes under `segmind_offline`: wall time as ratios against one poll, measured here.

    python benchmarks/virtual_time.py [--rounds 20]

The baseline is one in-process status poll through the official SDK's own httpx client; `run()`
makes about 33 of them (one a simulated second), so its wall time should stay near 33 baselines,
while the simulated clock shows the documented 31.63 s of queue and inference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from segmind import SegmindClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not an installed copy

from benchmarks.common import API_KEY, median_seconds
from contracts import MODELS
from mock_server.offline import segmind_offline

SVD = MODELS["svd"]


def main() -> None:
    """Measure, then print wall times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="runs of each measurement (default 20)")
    rounds = parser.parse_args().rounds
    with segmind_offline() as mock:
        client = SegmindClient(api_key=API_KEY)
        try:
            job = client.submit_async("svd", **SVD.example)
            poll = median_seconds(job.status, rounds * 10, warmup=False)
            simulated: list[float] = []
            requests: list[int] = []

            def run() -> None:
                start = mock.clock.now()
                mock.service.journal.clear()
                result = client.run("svd", **SVD.example)
                assert result["metrics"]["inference_time"] == SVD.latency_seconds
                simulated.append(mock.clock.now() - start)
                requests.append(len(mock.requests))

            run_wall = median_seconds(run, rounds, warmup=False)
        finally:
            client._client.close()
    simulated_median = statistics.median(simulated)
    print(f"one status poll (baseline): {poll * 1e3:.3f} ms wall")
    print(f"run('svd'):                 {run_wall * 1e3:.1f} ms wall, {simulated_median:.2f} s simulated")
    made = statistics.median(requests)
    print(f"run / poll:                 {run_wall / poll:.1f} polls' worth ({made:.0f} requests made)")
    print(f"simulated / wall:           {simulated_median / run_wall:.0f}x faster than real time")


if __name__ == "__main__":
    main()

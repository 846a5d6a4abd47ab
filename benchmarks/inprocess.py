"""The in-process fake's cost per official-SDK `run()`, against the same run through a real loopback server."""

from __future__ import annotations

import time
from dataclasses import dataclass

from segmind import SegmindClient

from benchmarks.common import API_KEY, answer_help
from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.server import ServerThread
from mock_server.transport import PortalTransport
from mock_server.virtual_time import virtual_time


@dataclass(frozen=True)
class RunCost:
    """Wall time per SDK `run()` and the HTTP requests it made."""

    where: str
    ms_per_run: float
    requests_per_run: float

    @property
    def us_per_request(self) -> float:
        """Wall time per HTTP request of a run."""
        return self.ms_per_run * 1000 / self.requests_per_run


def _cost(where: str, mock: SegmindMock, client: SegmindClient, runs: int) -> RunCost:
    params = MODELS["svd"].example
    with virtual_time(mock.clock):  # what the pytest fixtures use: the SDK's poll sleeps move the clock
        client.run("svd", **params)  # warm-up
        mock.service.journal.clear()
        started = time.perf_counter()
        for _ in range(runs):
            client.run("svd", **params)
        elapsed = time.perf_counter() - started
    return RunCost(where, elapsed / runs * 1000, len(mock.requests) / runs)


def measure(runs: int = 30) -> list[RunCost]:
    """Time `client.run("svd", ...)` in-process (PortalTransport) and through a loopback ServerThread."""
    settings = Settings(speed=0, virtual=True, journal_size=100_000)
    in_process = SegmindMock(settings)
    client = SegmindClient(api_key=API_KEY, base_url="https://api.segmind.com/v1")
    client._client._transport = PortalTransport(in_process.app)
    try:
        rows = [_cost("in-process (PortalTransport)", in_process, client, runs)]
    finally:
        client._client.close()
    served = SegmindMock(settings)
    with ServerThread(served.app) as url:
        client = SegmindClient(api_key=API_KEY, base_url=f"{url}/v1")
        try:
            rows.append(_cost("real server (ServerThread, loopback)", served, client, runs))
        finally:
            client._client.close()
    return rows


if __name__ == "__main__":
    answer_help(__doc__)
    for row in measure():
        print(
            f"{row.where}: {row.ms_per_run:.1f} ms per run, {row.requests_per_run:.0f} requests, "
            f"{row.us_per_request:.0f} us per request"
        )

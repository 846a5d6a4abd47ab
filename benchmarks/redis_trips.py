"""Redis round trips and commands per submit and per status poll, counted by the Redis server itself.

A throwaway redis-server serves one in-process fake on the Redis store; the server's own
`INFO` counters are read around a batch of submissions, then around a batch of polls:
`total_reads_processed` counts the reads of client requests (one per round trip, however many
commands it pipelines), `commandstats` the commands, including those run inside Lua scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import redis

from benchmarks.common import API_KEY, answer_help, throwaway_redis
from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.transport import PortalTransport

BATCH = 200


@dataclass(frozen=True)
class Trips:
    """Per request of one route: round trips, and commands by name (Lua scripts' inner commands included)."""

    route: str
    round_trips: float
    commands: dict[str, float]


def _counters(server: redis.Redis) -> tuple[int, dict[str, int]]:
    info: dict[str, Any] = server.info("everything")
    calls = {key.removeprefix("cmdstat_"): value["calls"] for key, value in info.items() if key.startswith("cmdstat_")}
    return info["total_reads_processed"], calls


def _per_request(server: redis.Redis, route: str, send: Any) -> Trips:
    reads, calls = _counters(server)
    for _ in range(BATCH):
        send()
    reads_after, calls_after = _counters(server)
    # Less the counting itself: the second INFO's read, and the first INFO's call.
    calls_after["info"] -= 1
    commands = {name: (count - calls.get(name, 0)) / BATCH for name, count in calls_after.items()}
    return Trips(route, (reads_after - reads - 1) / BATCH, {name: n for name, n in commands.items() if n})


def measure() -> list[Trips]:
    """Count Redis round trips and commands per submit and per status poll."""
    with throwaway_redis() as url:
        counter = redis.Redis.from_url(url)
        mock = SegmindMock(Settings(store=url, speed=0))
        with (
            PortalTransport(mock.app) as transport,
            httpx.Client(transport=transport, base_url="http://fake", headers={"x-api-key": API_KEY}) as client,
        ):
            payload = MODELS["svd"].example
            request_id = client.post("/v2/svd", json=payload).json()["request_id"]  # first use sets state up
            return [
                _per_request(counter, "submit", lambda: client.post("/v2/svd", json=payload).raise_for_status()),
                _per_request(
                    counter,
                    "status",
                    lambda: client.get(f"/v2/requests/{request_id}/status").raise_for_status(),
                ),
            ]


if __name__ == "__main__":
    answer_help(__doc__)
    for row in measure():
        commands = ", ".join(f"{name} {count:g}" for name, count in sorted(row.commands.items()))
        print(f"{row.route}: {row.round_trips:.2f} round trips; commands: {commands}")

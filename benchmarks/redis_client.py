"""What a worker's CPU pays per submit + status cycle on the Redis store, by client setup, side by side.

    python -m benchmarks.redis_client [--cycles 2000] [--rounds 3] [--before CHECKOUT]

On a throwaway redis-server, each candidate runs in a fresh process (so redis-py picks its parser
anew), in interleaved rounds: the fake in-process (`SegmindMock`, its app called straight through
ASGI as `profile_routes` does, one request at a time), its store calls run as served (steps on the
event loop; store threads in a tree older than those), or in place (blocking the loop: no step);
redis-py's parser in Python or hiredis's; with `--before CHECKOUT` (a `git archive` of another
tree), that tree's fake too. Then the client alone: one submission's round trip (the `ADD_JOB`
script and a journal entry) through redis-py's sync pipeline, through the store's own round trip
(`Namespace.run`, as a request sends its batch: its RESP packer, the guard, the answers sorted;
in a step on the event loop, as served, and off it, on a connection of its own read by redis-py's
parser), and through `redis.asyncio`'s pipeline.
Figures are CPU microseconds of the measuring process (`time.process_time`), which a shared
machine moves far less than wall time; the memory store's cycle is the baseline of the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import throwaway_redis  # noqa: E402

# Candidates: (what, parser, how the store calls run or the client sends, which tree). "before" is
# `--before CHECKOUT`'s tree; "client" ones time the client alone, per submission's round trip.
CANDIDATES = {
    "memory store": ("memory", "", "", "now"),
    "redis, before: Python parser, as served": ("redis", "python", "served", "before"),
    "redis, before, with hiredis": ("redis", "hiredis", "served", "before"),
    "redis, now: Python parser, as served (steps on the loop)": ("redis", "python", "served", "now"),
    "redis, now: hiredis, as served (steps on the loop)": ("redis", "hiredis", "served", "now"),
    "redis, now: hiredis, in place (blocking, no step)": ("redis", "hiredis", "inline", "now"),
    "client alone: redis-py pipeline, Python parser": ("client", "python", "pipeline", "now"),
    "client alone: redis-py pipeline, hiredis": ("client", "hiredis", "pipeline", "now"),
    "client alone: the store's round trip, in a step on the loop (served)": ("client", "", "store-step", "now"),
    "client alone: the store's round trip off the loop, Python parser": ("client", "python", "store", "now"),
    "client alone: the store's round trip off the loop, hiredis": ("client", "hiredis", "store", "now"),
    "client alone: redis.asyncio pipeline, hiredis": ("client", "hiredis", "asyncio", "now"),
}


def _fake_cycle_us(store: str, run: str, cycles: int) -> float:
    from benchmarks.profile_routes import _calls, _routes
    from mock_server import SegmindMock, Settings

    mock = SegmindMock(Settings(speed=0, store=store))
    if run == "inline":
        mock.service.store_calls.inline = True
    (submit, status) = _routes(mock).values()

    async def cycles_of(count: int) -> None:
        for _ in range(count):
            await _calls(mock.app, *submit, 1)
            await _calls(mock.app, *status, 1)

    asyncio.run(cycles_of(200))  # warm: scripts loaded, caches filled
    started = time.process_time()
    asyncio.run(cycles_of(cycles))
    return (time.process_time() - started) / cycles * 1e6


def _client_call_us(url: str, run: str, calls: int) -> float:
    import redis
    import redis.asyncio

    from mock_server.store_redis import RedisBackend
    from mock_server.store_redis.scripts import ADD_JOB, JOURNAL_RECORD
    from mock_server.store_redis.session import Call

    keys = [f"bench:{name}" for name in ("job", "out", "jobs", "seq", "starts", "ends", "failures", "outputs", "ev")]
    job = json.dumps({"request_id": "x" * 36, "params": {"image": "https://example.com/cat.png"}})
    entry = json.dumps({"path": "/v2/svd", "request_body": job, "response_body": "{}" * 50})

    def args(index: int) -> list[object]:
        """`ADD_JOB`'s arguments but the last, the deadline every timely write ends with."""
        times = [1e9 + index, str(index), 1.0, 1.0, 2.0, "0", ""]
        return [job, 60000, "", *times, 1000, "bench:job:", "bench:out:"]

    def deadline() -> int:
        return int((time.time() + 60) * 1e6)

    if run in ("store", "store-step"):
        # What a request's batch goes through: the namespace's round trip, deadline added by it.
        backend = RedisBackend.from_url(url)
        add, record = backend.redis.register_script(ADD_JOB), backend.redis.register_script(JOURNAL_RECORD)

        def batch(index: int) -> list[Call]:
            return [
                Call(add, keys, args(index), timely=True),
                Call(record, ["bench:journal"], [entry, 100], droppable=True),
            ]

        backend.run(None, *batch(0))  # loads the scripts
        if run == "store":
            started = time.process_time()
            for index in range(calls):
                backend.run(None, *batch(index))
            return (time.process_time() - started) / calls * 1e6

        async def in_steps() -> float:
            await backend.run_step(backend.run, None, *batch(0))  # opens the loop's connection
            started = time.process_time()
            for index in range(calls):
                await backend.run_step(backend.run, None, *batch(index))
            return (time.process_time() - started) / calls * 1e6

        return asyncio.run(in_steps())

    if run == "pipeline":
        client = redis.Redis.from_url(url, decode_responses=True)
        add, record = client.register_script(ADD_JOB), client.register_script(JOURNAL_RECORD)
        add(keys=keys, args=[*args(0), deadline()]), record(keys=["bench:journal"], args=[entry, 100])
        started = time.process_time()
        for index in range(calls):
            with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(add.sha, len(keys), *keys, *args(index), deadline())
                pipe.evalsha(record.sha, 1, "bench:journal", entry, 100)
                pipe.execute()
        return (time.process_time() - started) / calls * 1e6

    async def run_async() -> float:
        client = redis.asyncio.Redis.from_url(url, decode_responses=True)
        add, record = client.register_script(ADD_JOB), client.register_script(JOURNAL_RECORD)
        await add(keys=keys, args=[*args(0), deadline()]), await record(keys=["bench:journal"], args=[entry, 100])
        started = time.process_time()
        for index in range(calls):
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(add.sha, len(keys), *keys, *args(index), deadline())
                pipe.evalsha(record.sha, 1, "bench:journal", entry, 100)
                await pipe.execute()
        spent = time.process_time() - started
        await client.aclose()
        return spent / calls * 1e6

    return asyncio.run(run_async())


def _one(name: str, url: str, cycles: int, tree: Path) -> float:
    """Run one candidate in a fresh process on `tree`'s fake; its CPU microseconds per cycle (or per call)."""
    argv = [__file__, "--one", name, url, str(cycles), str(tree)]
    code = f"import sys; sys.argv = {argv!r}; import runpy; runpy.run_path(sys.argv[0], run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tree)
    return float(done.stdout.split()[-1])


def measure(cycles: int = 2000, rounds: int = 3, before: Path | None = None) -> dict[str, list[float]]:
    """CPU µs per cycle (per call for the client alone), candidate by candidate, round by round."""
    with throwaway_redis() as url:
        trees = {"now": ROOT, "before": before}
        hiredis = importlib.util.find_spec("hiredis") is not None  # hiredis candidates need it installed
        names = [
            name
            for name, (_, parser, _, tree) in CANDIDATES.items()
            if trees[tree] is not None and (hiredis or parser != "hiredis")
        ]
        runs: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(rounds):
            for name in names if round_number % 2 == 0 else names[::-1]:
                runs[name].append(_one(name, url, cycles, trees[CANDIDATES[name][3]] or ROOT))
        return runs


def main() -> None:
    """Measure and print the table, or (with --one) run one candidate and print its figure."""
    if sys.argv[1:2] == ["--one"]:
        name, url, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        sys.path.insert(0, sys.argv[5])  # the tree whose fake is measured
        kind, parser, run, _ = CANDIDATES[name]
        if parser == "python":
            sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py then uses its own parser
        if kind == "client":
            print(_client_call_us(url, run, count))
        else:
            print(_fake_cycle_us("memory" if kind == "memory" else url, run, count))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2000, help="cycles (or calls) per run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--before", type=Path, help="another tree (`git archive` of main) to measure beside")
    args = parser.parse_args()
    if importlib.util.find_spec("hiredis") is None:
        print("hiredis is not installed: its candidates are left out (pip install hiredis)")
    runs = measure(args.cycles, args.rounds, args.before)
    memory = statistics.median(runs["memory store"])
    print("| candidate | CPU µs per cycle (median) | memory store / this |")
    print("|---|---:|---:|")
    for name, figures in runs.items():
        median = statistics.median(figures)
        versus = f"{memory / median:.2f}" if not name.startswith("client") else ""
        print(f"| {name} | {median:.0f} | {versus} |")


if __name__ == "__main__":
    main()

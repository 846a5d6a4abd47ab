"""`python -m benchmarks [--write]`: print every benchmark as a table; `--write` also updates docs/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import starlette
import uvicorn

from benchmarks import decoding, footprint, inprocess, recording, redis_trips, replay, throughput, workers
from benchmarks.common import cpu_model
from contracts import MODELS

RESULTS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TARGET_RATIO = 0.7  # of the raw ASGI limit, journal on (issue 16)
JOB_BYTES_TARGET = 1024
RUN_MS_TARGET = 10


def machine() -> str:
    """Describe the machine the figures come from."""
    return (
        f"{os.cpu_count()} CPUs ({cpu_model('unknown CPU')}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, uvicorn {uvicorn.__version__}, starlette {starlette.__version__}"
    )


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    align = "|".join("---" if index < text_columns else "---:" for index in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _throughput(lines: list[str]) -> None:
    print(
        "throughput: raw ASGI, bare Starlette, the fake, WireMock, interleaved rounds ...", file=sys.stderr, flush=True
    )
    report = throughput.measure()
    lines += [f"### Throughput (target: the fake at {TARGET_RATIO:.1f} of raw ASGI or more)", ""]
    lines += [f"Driver: {report.driver}, {throughput.CONNECTIONS} connections, one server process each.", ""]
    lines += [f"{reason}." for reason in report.skipped] + ([""] if report.skipped else [])
    rows = []
    for row in report.rows:
        low, high = row.ratio_range
        rows.append(
            [
                row.route,
                row.server,
                f"{row.per_second:,.0f}",
                f"**{row.ratio:.2f}** ({low:.2f} to {high:.2f})",
                f"{row.cpu_us:.1f}",
                f"{row.cpu_ratio:.2f}",
            ]
        )
    header = ["route", "server", "req/s", "ratio to raw ASGI (spread over rounds)", "CPU µs/req", "CPU, raw/this"]
    lines += _table(header, rows, text_columns=2)


def _decoding(lines: list[str]) -> None:
    print("decoding a submission in-process ...", file=sys.stderr, flush=True)
    lines += ["", "### Decoding and validating a submission body (in-process, the docs' example)", ""]
    lines += _table(
        ["model", "json + ModelSpec.validate µs", "one-pass msgspec µs", "speed-up"],
        [
            [
                row.model,
                f"{row.reference_us:.2f}",
                f"{row.one_pass_us:.2f}",
                f"{row.speed_up:.1f}x",
            ]
            for row in decoding.measure()
        ],
    )


def _redis(lines: list[str]) -> None:
    print("Redis round trips, then workers (starts throwaway redis-servers) ...", file=sys.stderr, flush=True)
    lines += ["", "### Redis round trips per request (counted by the Redis server)", ""]
    lines += _table(
        ["route", "round trips", "commands (in Lua scripts too)"],
        [
            [
                row.route,
                f"{row.round_trips:.2f}",
                ", ".join(f"{name} {count:g}" for name, count in sorted(row.commands.items())),
            ]
            for row in redis_trips.measure()
        ],
    )
    runs = workers.measure_all()
    memory, redis_one = "memory, 1 worker", "redis, 1 worker"
    lines += ["", "### Workers and stores (`segmind-mock serve`, submit + status cycles per second)", ""]
    lines += _table(
        [
            "served by",
            "cycles/s (median)",
            "per worker",
            "per worker, ratio to memory",
            "ratio to redis, 1 worker",
            "CPU µs per cycle",
        ],
        [
            [
                name,
                f"{statistics.median(rates):,.0f}",
                f"{statistics.median(rates) / workers.WORKERS[name]:,.0f}",
                f"{workers.per_worker_ratio(runs.rates, name, memory):.2f}",
                f"{workers.ratio(runs.rates, name, redis_one):.2f}" if "redis" in name else "",
                f"{statistics.median(runs.cpu_us[name]):,.0f}",
            ]
            for name, rates in runs.rates.items()
        ],
    )


def _memory_and_scaling(lines: list[str]) -> None:
    print("memory per stored job ...", file=sys.stderr, flush=True)
    lines += ["", f"### Memory per stored job (target: at most {JOB_BYTES_TARGET} bytes)", ""]
    lines += _table(
        ["model", "bytes per job", "share of target"],
        [
            [slug, f"{size:.0f}", f"{size / JOB_BYTES_TARGET:.2f}"]
            for slug in MODELS
            for size in [footprint.memory_per_job(slug)]
        ],
    )
    print("scaling with stored jobs (builds a store of a million jobs) ...", file=sys.stderr, flush=True)
    scaling = footprint.scaling()
    base = scaling[0]
    lines += ["", "### Cost with many stored jobs (in-process `SegmindMock.submit` / `lookup`)", ""]
    lines += _table(
        ["stored jobs", "submit µs", "submit ratio", "status lookup µs", "lookup ratio"],
        [
            [
                f"{row.jobs:,}",
                f"{row.submit_us:.2f}",
                f"{row.submit_us / base.submit_us:.2f}",
                f"{row.lookup_us:.2f}",
                f"{row.lookup_us / base.lookup_us:.2f}",
            ]
            for row in scaling
        ],
    )


def _sdk_run(lines: list[str]) -> None:
    print("in-process cost per SDK run() ...", file=sys.stderr, flush=True)
    costs = inprocess.measure()
    loopback = costs[-1]
    title = f'### Cost per official-SDK `client.run("svd", ...)` (virtual polling; aim: under {RUN_MS_TARGET} ms)'
    lines += ["", title, ""]
    lines += _table(
        ["served by", "ms per run", "HTTP requests per run", "µs per request", "ratio to loopback"],
        [
            [
                row.where,
                f"{row.ms_per_run:.1f}",
                f"{row.requests_per_run:.0f}",
                f"{row.us_per_request:.0f}",
                f"{row.ms_per_run / loopback.ms_per_run:.2f}",
            ]
            for row in costs
        ],
    )


def _recording(lines: list[str]) -> None:
    print(
        "recording: status polls through `segmind-mock record` and direct, interleaved ...", file=sys.stderr, flush=True
    )
    pairs = recording.measure()
    added = statistics.median(pair.added_ms for pair in pairs)
    lines += [
        "",
        f"### Recording (`segmind-mock record`; target: at most {recording.TARGET_MS:g} ms added per exchange)",
        "",
    ]
    cpu = statistics.median(pair.recorder_cpu_ms for pair in pairs)
    lines += [f"Median added per exchange: **{added:.2f} ms**; the recorder's own CPU: {cpu:.2f} ms.", ""]
    lines += _table(recording.HEADER, [pair.cells() for pair in pairs])


def _replay(lines: list[str]) -> None:
    print("status route under serve --replay against the fake, interleaved rounds ...", file=sys.stderr, flush=True)
    row = replay.measure()
    low, high = row.ratio_range
    lines += [
        "",
        f"### Replay: the status route under `serve --replay` (target: {replay.TARGET_RATIO} of the fake or more)",
    ]
    lines += ["", f"Driver: {row.driver}; a thousand replayed jobs against a thousand of the fake's own.", ""]
    lines += _table(
        ["fake req/s", "replay req/s", "ratio (spread over rounds)", "CPU per request, fake/replay"],
        [
            [
                f"{row.fake_per_second:,.0f}",
                f"{row.replay_per_second:,.0f}",
                f"**{row.ratio:.2f}** ({low:.2f} to {high:.2f})",
                f"{row.cpu_ratio:.2f}",
            ]
        ],
        text_columns=0,
    )


def report() -> str:
    """Run every benchmark and return the results as Markdown."""
    lines = [f"Machine: {machine()}; load average before the run: {os.getloadavg()[0]:.2f}.", ""]
    for part in (_throughput, _decoding, _redis, _memory_and_scaling, _sdk_run, _recording, _replay):
        part(lines)
    return "\n".join(lines) + "\n"


def write(results: str) -> None:
    """Replace the results section of docs/benchmarks.md, keeping the text around it."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    text = RESULTS_PAGE.read_text()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    RESULTS_PAGE.write_text(f"{head}{start}\n{results}{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the table, and optionally write it into the docs."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--write", action="store_true", help="also update docs/benchmarks.md")
    args = parser.parse_args(argv)
    results = report()
    print(results)
    if args.write:
        write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

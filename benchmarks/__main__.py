"""`python -m benchmarks [--write]`: print every benchmark as a table; `--write` also updates docs/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import starlette
import uvicorn

from benchmarks import footprint, inprocess, throughput, workers
from benchmarks.common import cpu_model
from contracts import MODELS

RESULTS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TARGET_RATIO = 0.85
JOB_BYTES_TARGET = 2048


def machine() -> str:
    """Describe the machine the figures come from."""
    return (
        f"{os.cpu_count()} CPUs ({cpu_model('unknown CPU')}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, uvicorn {uvicorn.__version__}, starlette {starlette.__version__}"
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def report() -> str:
    """Run every benchmark and return the results as Markdown."""
    lines = [f"Machine: {machine()}.", ""]

    print("throughput: segmind-mock serve against bare Starlette ...", file=sys.stderr, flush=True)
    rows = []
    for row in throughput.measure():
        low, high = row.cpu_ratio_range
        rows.append(
            [
                row.route,
                f"{row.fake:,.0f}",
                f"{row.bare:,.0f}",
                f"**{row.ratio:.2f}**",
                f"{row.fake_cpu_us:.1f}",
                f"{row.bare_cpu_us:.1f}",
                f"**{row.cpu_ratio:.2f}** ({low:.2f} to {high:.2f})",
                f"{row.journal_off:.2f}",
                f"{row.floor:.2f}" if row.floor is not None else "",
            ]
        )
    lines += [f"### Throughput (target: ratio of at least {TARGET_RATIO:.2f})", ""]
    lines += _table(
        [
            "route",
            "fake req/s",
            "bare req/s",
            "ratio",
            "fake CPU µs/req",
            "bare CPU µs/req",
            "CPU ratio, bare/fake (spread over rounds)",
            "fake with --journal-size 0",
            "floor: bare reading the body",
        ],
        rows,
    )

    print("memory per stored job ...", file=sys.stderr, flush=True)
    lines += ["", f"### Memory per stored job (target: under {JOB_BYTES_TARGET} bytes)", ""]
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

    print("in-process cost per SDK run() ...", file=sys.stderr, flush=True)
    costs = inprocess.measure()
    loopback = costs[-1]
    lines += ["", '### Cost per official-SDK `client.run("svd", ...)` (virtual polling)', ""]
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

    print("workers and stores (starts a throwaway redis-server) ...", file=sys.stderr, flush=True)
    runs = workers.measure_all()
    memory, redis_one = runs["memory, 1 worker"], runs["redis, 1 worker"]
    lines += ["", "### Workers and stores (`segmind-mock serve`, submit + status cycles per second)", ""]
    lines += _table(
        ["served by", "cycles/s", "ratio to memory, 1 worker", "ratio to redis, 1 worker"],
        [
            [name, f"{rate:,.0f}", f"{rate / memory:.2f}", f"{rate / redis_one:.2f}" if "redis" in name else ""]
            for name, rate in runs.items()
        ],
    )
    return "\n".join(lines) + "\n"


def write(results: str) -> None:
    """Replace the results section of the results page, keeping the text around it."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    text = RESULTS_PAGE.read_text()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    RESULTS_PAGE.write_text(f"{head}{start}\n{results}{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the table, and optionally write it into the docs."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--write", action="store_true", help="also update the results in docs/benchmarks.md")
    args = parser.parse_args(argv)
    results = report()
    print(results)
    if args.write:
        write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

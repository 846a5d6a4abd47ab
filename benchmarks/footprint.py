"""Memory per stored job, and how submit and status lookup costs grow with the number of stored jobs."""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from benchmarks.common import API_KEY, answer_help
from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, Settings
from mock_server.defaults import MAX_JOBS_KEPT
from mock_server.jobs import new_request_id

SIZES = (10_000, 100_000, 1_000_000)


def memory_per_job(model: str, count: int = 10_000) -> float:
    """Bytes held per job submitted through `SegmindMock.submit`, each with a freshly decoded body."""
    mock = SegmindMock(Settings(speed=0))
    body = json.dumps(MODELS[model].example)
    mock.submit(model, json.loads(body), API_KEY)  # first-use allocations are not per job
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # Like the server: every body decoded anew, so no job shares strings with another.
        for _ in range(count):
            mock.submit(model, json.loads(body), API_KEY)
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()


@dataclass(frozen=True)
class Scaling:
    """Submit and status lookup cost with `jobs` already stored."""

    jobs: int
    submit_us: float
    lookup_us: float


def _per_call_us(call: Callable[[int], object], count: int, rounds: int = 3) -> float:
    # The best of a few rounds: the least disturbed by the rest of the machine.
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for index in range(count):
            call(index)
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def _filled(size: int) -> tuple[SegmindMock, list[str]]:
    # Inserted straight into the store, all sharing one parameter dict: building a million jobs
    # through HTTP would take minutes, and lookups never read the parameters.
    # Room for every job and the submissions measured: at the cap (`--max-jobs-kept`) each submit would evict.
    mock = SegmindMock(Settings(speed=0, max_jobs_kept=size + MAX_JOBS_KEPT))
    template, _ = mock.submit("svd", MODELS["svd"].example, API_KEY)
    now = mock.clock.now()
    ids = [template.request_id]
    for _ in range(size - 1):
        job = msgspec.structs.replace(template, request_id=new_request_id(), submitted_at=now)
        mock.service.jobs.add(job, now + RESULT_RETENTION_SECONDS, None, now)
        ids.append(job.request_id)
    return mock, ids


def scaling(sizes: tuple[int, ...] = SIZES, calls: int = 10_000) -> list[Scaling]:
    """Measure submit and lookup with 1 job stored (the baseline), then with each of `sizes`."""
    return [_scaling_at(size, calls) for size in (1, *sizes)]


def _scaling_at(size: int, calls: int) -> Scaling:
    mock, ids = _filled(size)
    probe = [random.choice(ids) for _ in range(calls)]
    payload = MODELS["svd"].example
    lookup = _per_call_us(lambda index: mock.lookup(probe[index]), calls)
    submit = _per_call_us(lambda index: mock.submit("svd", payload, API_KEY), calls)
    return Scaling(size, submit, lookup)


if __name__ == "__main__":
    answer_help(__doc__)
    for slug in MODELS:
        print(f"{slug}: {memory_per_job(slug):.0f} bytes per job")
    for row in scaling():
        print(f"{row.jobs:>9} jobs: submit {row.submit_us:.2f} us, lookup {row.lookup_us:.2f} us")

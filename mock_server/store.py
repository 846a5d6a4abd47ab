"""Where jobs live: kept for the result retention, their outputs for the output retention."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from mock_server.jobs import Job
from mock_server.wire import OUTPUT_RETENTION_SECONDS, RESULT_RETENTION_SECONDS


class JobStore(Protocol):
    """What the fake needs of a job store."""

    def add(self, job: Job, now: float) -> None:
        """Keep an accepted job."""

    def get(self, request_id: str, now: float) -> Job | None:
        """Return the job while its result is retained, else None."""

    def output(self, request_id: str, now: float) -> Job | None:
        """Return the completed job whose output file is still served, else None."""

    def jobs(self, now: float) -> list[Job]:
        """Return every retained job, oldest first."""

    def clear(self) -> None:
        """Forget every job."""


def result_kept(job: Job, now: float) -> bool:
    """Tell whether a job's result is still retained at `now`: for the result retention after submission."""
    return now < job.submitted_at + RESULT_RETENTION_SECONDS


def output_served(job: Job, now: float) -> bool:
    """Tell whether a completed job's output file is served at `now`: from its end, for the output retention."""
    return job.finished_at <= now < job.finished_at + OUTPUT_RETENTION_SECONDS


class MemoryJobStore:
    """Jobs in two insertion-ordered dicts, evicted from the oldest end as they expire.

    Jobs are added in submission order on a clock that only moves forward, so the oldest job is
    always first: eviction costs O(1) per expired job and memory stays bounded however long the
    fake runs.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._outputs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def add(self, job: Job, now: float) -> None:
        """Keep an accepted job (and its future output, when it will complete)."""
        with self._lock:
            self._evict(now)
            self._jobs[job.request_id] = job
            if job.error is None:
                self._outputs[job.request_id] = job

    def get(self, request_id: str, now: float) -> Job | None:
        """Return the job while its result is retained, else None."""
        job = self._jobs.get(request_id)
        return job if job is not None and result_kept(job, now) else None

    def output(self, request_id: str, now: float) -> Job | None:
        """Return the completed job whose output file is still served, else None."""
        job = self._outputs.get(request_id)
        return job if job is not None and output_served(job, now) else None

    def jobs(self, now: float) -> list[Job]:
        """Return every retained job, oldest first."""
        with self._lock:
            self._evict(now)
            return list(self._jobs.values())

    def clear(self) -> None:
        """Forget every job and output."""
        with self._lock:
            self._jobs.clear()
            self._outputs.clear()

    def __len__(self) -> int:
        return len(self._jobs)

    def _evict(self, now: float) -> None:
        _evict_oldest(self._jobs, lambda job: not result_kept(job, now))
        _evict_oldest(self._outputs, lambda job: job.finished_at + OUTPUT_RETENTION_SECONDS <= now)


def _evict_oldest(jobs: dict[str, Job], expired: Callable[[Job], bool]) -> None:
    # Outputs finish in nearly submission order; one that lingers behind a longer job is
    # evicted on a later pass, and is never served past its time since reads check it.
    while jobs:
        oldest = next(iter(jobs.values()))
        if not expired(oldest):
            return
        del jobs[oldest.request_id]

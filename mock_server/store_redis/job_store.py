"""Jobs in Redis: two keys a job, each expiring through its TTL, and polls answered from the job cache."""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import msgspec

from mock_server.defaults import MAX_JOBS_KEPT
from mock_server.jobs import TIME_SLACK_SECONDS, Job
from mock_server.storage import ClockStore, JobsSummary
from mock_server.store_redis.scripts import ADD_JOB, FORGET_JOB, JOB_READ, JOBS_SUMMARY
from mock_server.store_redis.session import Call, Namespace, strings
from mock_server.store_redis.watch import EVICTED_KEY, JobCache

# How many jobs, and how many bytes of them as stored, a process keeps to answer polls without a
# round trip (`JobCache`): a few MiB per process, whatever clients send.
JOB_CACHE_JOBS = 4096
JOB_CACHE_BYTES = 8 * 1024 * 1024
# The longest a job's key lives, in real seconds, however slow the clock (`ttl_ms`): 30 days.
TTL_CAP_SECONDS = 30 * 24 * 3600.0


def ttl_ms(simulated_seconds: float, speed: float) -> int:
    """How long Redis keeps a key that the fake needs for `simulated_seconds` more, in real milliseconds.

    Reads check the fake's own clock, so a key kept too long is never served; this only frees the
    memory. The simulated seconds take `simulated_seconds / speed` real ones at the speed of the
    submission (a later slowdown can see a key go before its simulated deadline: set the speed
    first). Frozen (speed 0), the key is kept for the simulated seconds in real ones. Never past
    TTL_CAP_SECONDS, which bounds memory however slow the clock, and keeps the milliseconds within
    what Redis takes (a speed of 1e-300 would make them infinite).
    """
    real = simulated_seconds / speed if speed > 0 else simulated_seconds
    return max(1, math.ceil(min(real, TTL_CAP_SECONDS) * 1000))


class RedisJobStore:
    """Jobs as JSON under two keys, each expiring through its Redis TTL: the result and the output.

    With a change watch (RESP3), polls are answered from a `JobCache` while it is current. A job
    read also reads the request session's snapshot in the same round trip, when the session has
    none yet (`Namespace.read_along`).
    """

    def __init__(self, backend: Namespace, clock: ClockStore, max_kept: int = MAX_JOBS_KEPT) -> None:
        self.max_kept = max_kept
        self._backend = backend
        self._redis = backend.redis
        self._clock = clock  # its speed sets the keys' TTLs; any `ClockStore`
        self._watch = backend.watch
        self._index = backend.key("jobs")
        self._sequence = backend.key("jobs", "seq")
        # The keys of a job's result and of a completed job's output: the prefix, then the request id.
        self._job_prefix, self._output_prefix = backend.key("job", ""), backend.key("out", "")
        # The same jobs by start and by end (completed, failed), the outputs by deadline, and the cap's evictions.
        self._by_time = [backend.key("jobs-starts"), backend.key("jobs-ends"), backend.key("jobs-failures")]
        self._outputs = backend.key("outputs")
        self._evicted = backend.key(EVICTED_KEY)
        self._add = self._redis.register_script(ADD_JOB)
        self._summary = self._redis.register_script(JOBS_SUMMARY)
        self._forget = self._redis.register_script(FORGET_JOB)
        self._read = self._redis.register_script(JOB_READ)
        self.cache = JobCache(JOB_CACHE_JOBS, JOB_CACHE_BYTES)
        backend.lost_data.append(self.cache.clear)

    def add(self, job: Job, result_until: float, output_until: float | None, now: float) -> None:
        """Keep a job (and its future output, if any), their keys expiring after their deadlines."""
        speed = self._clock.read().speed
        result_ms = ttl_ms(result_until - now, speed)
        output_ms = ttl_ms(output_until - now, speed) if output_until is not None else ""
        keys = [
            self._job_prefix + job.request_id,
            self._output_prefix + job.request_id,
            self._index,
            self._sequence,
            *self._by_time,
            self._outputs,
            self._evicted,
        ]
        data = _encode_job(job)
        started, ended = job.started_at, job.finished_at
        args = [
            data,
            result_ms,
            output_ms,
            repr(result_until),
            job.request_id,
            repr(now),
            repr(started),
            repr(ended),
            "1" if job.error is not None else "0",
            repr(output_until),
            self.max_kept,
            self._job_prefix,
            self._output_prefix,
        ]
        # Cached once Redis has it, at the generation seen before the write (the request's clock read).
        session = self._backend.current.get()
        generation = session.generation if session is not None else None
        if generation is None:
            generation = self._watch.generation()
        stored = None
        if generation is not None:
            stored = functools.partial(self.cache.put, job, len(data), time.monotonic() + result_ms / 1000, generation)
        # Sent before the answer that names the job; refused if it reaches Redis after the answer's
        # deadline, and forgotten again if the request fails anyway (Redis stalled before answering).
        forget_keys = [*keys[:3], *self._by_time, self._outputs]
        forget_args = [job.request_id, repr(result_until), repr(started), repr(ended), args[9] if output_ms else ""]
        self._backend.undo_if_refused(session, Call(self._forget, forget_keys, forget_args))
        self._backend.defer(session, Call(self._add, keys, args, stored=stored, timely=True, accepts=True))

    def get(self, request_id: str) -> Job | None:
        """The job, if its key is still there: from the cache while current, else read (with the clock if it moved)."""
        session = self._backend.current.get()
        generation = self._watch.generation() if self._backend.guard.down is None else None
        if generation is None:  # nothing watched, or Redis down: no cache, so a plain GET (no TTL needed)
            return _job(self._backend.read_along(session, Call(None, [self._job_prefix + request_id], [])))
        cached = self.cache.get(request_id, generation)
        if cached is not None and self._backend.pin_current(session, generation):
            return cached
        sent = time.monotonic()
        raw, ttl = self._backend.read_along(session, Call(self._read, [self._job_prefix + request_id], []), generation)
        job = _job(raw)
        if job is not None:
            self.cache.put(job, len(raw), sent + ttl / 1000 if ttl >= 0 else math.inf, generation)
        return job

    def output(self, request_id: str) -> Job | None:
        """The job whose output key is still there."""
        session = self._backend.current.get()
        return _job(self._backend.read_along(session, Call(None, [self._output_prefix + request_id], [])))

    def jobs(self, now: float) -> list[Job]:
        """Every job whose result deadline is after `now`, oldest first."""
        members = strings(self._redis.zrangebyscore(self._index, f"({now!r}", "+inf"))
        if not members:
            return []
        found = self._redis.mget([self._job_prefix + member.split(":", 1)[1] for member in members])
        return [job for job in map(_job, found) if job is not None]

    def count(self) -> int:
        """Jobs in the index: expired ones leave it at the next submission, as in memory."""
        return int(self._redis.zcard(self._index))

    def summary(self, now: float) -> JobsSummary:
        """The jobs retained at `now` by state: counted by time in Redis, in one script, O(log n)."""
        keys = [self._index, *self._by_time, self._evicted]
        call = Call(self._summary, keys, [repr(now), repr(now + TIME_SLACK_SECONDS)])
        raw = self._backend.run(self._backend.current.get(), call)[0]
        jobs, started, completed, failed, next_completed, next_failed, jobs_evicted, outputs_evicted = raw
        ends = [float(end) for end in (next_completed, next_failed) if end is not None]
        next_end = min(ends, default=None)
        return JobsSummary.of_counts(
            jobs, started, completed, failed, next_end, int(jobs_evicted), int(outputs_evicted)
        )

    def clear(self) -> None:
        """Forget every job and output."""
        self._backend.delete_matching("job:*", "out:*")
        self._redis.delete(self._index, *self._by_time, self._outputs, self._evicted)
        # What was cached is stale, and so is what a poll running meanwhile is caching: a new generation.
        self._watch.local_change()
        self.cache.clear()


# A job is stored as a JSON object of its fields by name (readable in redis-cli), encoded and
# decoded in C.
_encode_job = msgspec.json.Encoder().encode
_decode_job = msgspec.json.Decoder(Job).decode


def _job(raw: Any) -> Job | None:
    return _decode_job(raw) if raw is not None else None

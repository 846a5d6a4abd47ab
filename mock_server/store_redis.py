"""The Redis store: the fake's whole state in Redis, so several workers (and machines) serve one fake.

Every key lives under a namespace (`?prefix=NAME` in the store URL; a fresh one per `SegmindMock`
otherwise), so fakes can share one Redis. Changes that must not race between workers are one
Lua script each (clock, rules, journal, jobs, account ledgers). The protocols are `storage.py`'s,
met in the same order as `store_memory.py` meets them. See docs/scaling.md for the key layout.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server.defaults import MAX_JOBS_KEPT
from mock_server.jobs import TIME_SLACK_SECONDS, Job
from mock_server.journal import Entry, Record
from mock_server.scenarios import Rule
from mock_server.storage import (
    Charge,
    ClockState,
    ClockStore,
    JobsSummary,
    StoreError,
    StoreUnavailable,
    Usage,
    round_credits,
)
from mock_server.wire import RATE_LIMIT_RESET_SECONDS

PREFIX_PARAM = "prefix"
PREFIX_ROOT = "segmind-mock"
SCAN_COUNT = 1000
# How long one Redis call may take, connecting or answering, before the request gets a 503: a
# stalled Redis holds a request (on a store thread, never the event loop) this long at most, once
# (then `Guard` fails fast).
# `?socket_timeout=S&socket_connect_timeout=S` in the store URL overrides it (docs/scaling.md).
TIMEOUT_SECONDS = 1.0
# While Redis is down, a background thread pings it this often; the first answer ends the outage.
PROBE_SECONDS = 0.2
# How long a process trusts its change watch's connection without an answer on it (`ChangeWatch`).
WATCH_CONFIRM_SECONDS = 1.0
# The keys the change watch follows, named once for the stores that write them and the watch.
CLOCK_KEY = "clock"
RULES_VERSION_KEY = "rules-version"
# Counts the jobs and outputs the cap evicted: watched too, since an eviction deletes jobs that
# processes may hold in their `JobCache`.
EVICTED_KEY = "evicted"
# How many jobs, and how many bytes of them as stored, a process keeps to answer polls without a
# round trip (`JobCache`): a few MiB per process, whatever clients send.
JOB_CACHE_JOBS = 4096
JOB_CACHE_BYTES = 8 * 1024 * 1024
# The longest a job's key lives, in real seconds, however slow the clock (`ttl_ms`): 30 days.
TTL_CAP_SECONDS = 30 * 24 * 3600.0
# Refusals Redis answers while it cannot change anything: out of memory, a read-only replica,
# failing to save, no master. Each is answered with a 503, and nothing was changed.
# LATE is the fake's own (`_TIMELY`): a write that reached Redis after its request was answered.
_REFUSALS = ("OOM", "READONLY", "MISCONF", "MASTERDOWN", "NOREPLICAS", "LATE")
LOG = logging.getLogger("segmind_mock.store")

# Begins every write a submission makes (a job, a rule used up, a charge held, a request counted):
# its last argument is a deadline in Redis's own time (microseconds, `RedisBackend.deadline`), half
# the store's timeout after it was sent. A write Redis runs past it (Redis stalled, then continued)
# belongs to a request the fake has answered 503, or soon will: it is refused, changing nothing, so
# no submission answered 503 leaves anything behind.
_TIMELY = """
local clock = redis.call('TIME')
if tonumber(clock[1]) * 1000000 + tonumber(clock[2]) > tonumber(ARGV[#ARGV]) then
  return redis.error_reply('LATE this write reached Redis after its request had been answered')
end
"""
# Every clock script returns the state; the first process to read a namespace's clock sets it up,
# with a random epoch (ARGV[3]) that a Redis losing its data (a restart, a flush) loses with it.
# A read also returns the rule book's version (KEYS[2]) prefixed by that epoch, so a request learns
# both in one round trip, and a version counting again from 0 after a loss never repeats one seen.
_CLOCK_READ = """
local created = '0'
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'speed', ARGV[1], 'sim', ARGV[2], 'real', ARGV[2], 'jumped', '0', 'epoch', ARGV[3])
  created = '1'
end
local state = redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped', 'epoch')
state[5] = (state[5] or '') .. ':' .. (redis.call('GET', KEYS[2]) or '0')
state[6] = created
return state
"""
_CLOCK_ADVANCE = """
local sim = tonumber(redis.call('HGET', KEYS[1], 'sim')) + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'sim', string.format('%.17g', sim))
redis.call('HINCRBYFLOAT', KEYS[1], 'jumped', ARGV[1])
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
_CLOCK_SET_SPEED = """
local s = redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real')
local now = tonumber(s[2]) + (tonumber(ARGV[2]) - tonumber(s[3])) * tonumber(s[1])
redis.call('HSET', KEYS[1], 'speed', ARGV[1], 'sim', string.format('%.17g', now), 'real', ARGV[2])
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
_CLOCK_RESET = """
redis.call('HSET', KEYS[1], 'speed', ARGV[2], 'sim', ARGV[1], 'real', ARGV[1], 'jumped', '0')
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
# KEYS: job, output, index, sequence, starts, completed ends, failed ends, outputs, evictions.
# ARGV: data, result ms, output ms ('' for none), result deadline, id, now, start, end, failed
# ('1'/'0'), output deadline, the cap, the job key prefix, the output key prefix.
# The index is scored by the result's deadline (simulated), so expired members are pruned by score;
# members start with a sequence number, so jobs kept until the same instant keep their order. The
# same members sit in the starts and ends by time, which count the jobs by state (`_JOBS_SUMMARY`);
# the outputs are indexed by their deadline (the same members). Past the cap, the oldest jobs and
# outputs go first.
_ADD_JOB = (
    _TIMELY
    + """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local seq = redis.call('INCR', KEYS[4])
local member = string.format('%020d', seq) .. ':' .. ARGV[5]
redis.call('ZADD', KEYS[3], ARGV[4], member)
redis.call('ZADD', KEYS[5], ARGV[7], member)
redis.call('ZADD', ARGV[9] == '1' and KEYS[7] or KEYS[6], ARGV[8], member)
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
  redis.call('ZADD', KEYS[8], ARGV[10], member)
end
local function forget(members)
  for _, gone in ipairs(members) do
    redis.call('ZREM', KEYS[5], gone)
    redis.call('ZREM', KEYS[6], gone)
    redis.call('ZREM', KEYS[7], gone)
  end
end
forget(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[6]))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[6])
local cap = tonumber(ARGV[11])
local over = redis.call('ZCARD', KEYS[3]) - cap
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, over - 1)
  forget(oldest)
  for _, gone in ipairs(oldest) do
    redis.call('ZREM', KEYS[3], gone)
    redis.call('DEL', ARGV[12] .. string.sub(gone, 22))
  end
  redis.call('HINCRBY', KEYS[9], 'jobs', over)
end
over = redis.call('ZCARD', KEYS[8]) - cap
if over > 0 then
  for _, gone in ipairs(redis.call('ZRANGE', KEYS[8], 0, over - 1)) do
    redis.call('DEL', ARGV[13] .. string.sub(gone, 22))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[8], 0, over - 1)
  redis.call('HINCRBY', KEYS[9], 'outputs', over)
end
"""
)
# Undoes `_ADD_JOB` for a submission that failed after all (`RedisBackend.run`): KEYS: job, output,
# index, starts, completed ends, failed ends, outputs; ARGV: id, its scores in the index, starts,
# ends and outputs ('' without output). Its members are found among those of the same score.
_FORGET_JOB = """
redis.call('DEL', KEYS[1], KEYS[2])
local function drop(key, score)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if string.sub(member, 22) == ARGV[1] then redis.call('ZREM', key, member) end
  end
end
drop(KEYS[3], ARGV[2])
drop(KEYS[4], ARGV[3])
drop(KEYS[5], ARGV[4])
drop(KEYS[6], ARGV[4])
if ARGV[5] ~= '' then drop(KEYS[7], ARGV[5]) end
"""
# KEYS: index, starts, completed ends, failed ends, evictions; ARGV: now, now with the clock's slack.
# The jobs by state at `now`, each count O(log n): started and ended are counted by time.
_JOBS_SUMMARY = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local function next_end(key)
  local found = redis.call('ZRANGEBYSCORE', key, '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return found[2] or false
end
local evicted = redis.call('HMGET', KEYS[5], 'jobs', 'outputs')
return {
  redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[2]),
  redis.call('ZCOUNT', KEYS[3], '-inf', ARGV[2]), redis.call('ZCOUNT', KEYS[4], '-inf', ARGV[2]),
  next_end(KEYS[3]), next_end(KEYS[4]), evicted[1] or '0', evicted[2] or '0'
}
"""
# KEYS: the current clock, then its floor as this worker last saw it projected to now: (speed, sim, real, jumped).
# Raises a clock that is behind the floor (a Redis that restarted and lost it) to the floor; never lowers it.
_CLOCK_RESTORE = """
local s = redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real')
local now = tonumber(s[2]) + (tonumber(ARGV[3]) - tonumber(s[3])) * tonumber(s[1])
if now < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'speed', ARGV[1], 'sim', ARGV[2], 'real', ARGV[3], 'jumped', ARGV[4])
end
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
# A job and how long its key has to live (ms; -2 when there is no key), so a cached copy never outlives it.
_JOB_READ = """
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""
_JOURNAL_RECORD = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
"""
# KEYS: the rule index, then each rule's hash; ARGV: the rule ids.
_RULES_ALL = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local state = redis.call('HMGET', KEYS[2] .. id, 'data', 'times', 'seen', 'hits')
  if state[1] then
    table.insert(out, id)
    for _, value in ipairs(state) do table.insert(out, value) end
  end
end
return out
"""
# `RuleStore.take`, atomic across workers: KEYS are the index, the version and the candidate rules
# in order; ARGV[1] is count_undecided ('1'/'0'), then each candidate's id and whether it may decide.
# Counters change through HINCRBY only: Redis keeps them as exact 64-bit integers.
_RULES_TAKE = (
    _TIMELY
    + """
local chosen = nil
for i = 3, #KEYS do
  local state = redis.call('HMGET', KEYS[i], 'seen', 'nth')
  if state[1] and tonumber(state[1]) + 1 >= tonumber(state[2]) then chosen = i break end
end
local may = chosen ~= nil and ARGV[2 * chosen - 3] == '1'
if may or (chosen == nil and ARGV[1] == '1') then
  for i = 3, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 'seen', 1) end
  end
end
if not may then return false end
local key, id = KEYS[chosen], ARGV[2 * chosen - 4]
redis.call('HINCRBY', key, 'hits', 1)
local times = tonumber(redis.call('HGET', key, 'times'))
if times > 0 then times = redis.call('HINCRBY', key, 'times', -1) end
local state = redis.call('HMGET', key, 'data', 'times', 'seen', 'hits')
if times == 0 then
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
  redis.call('INCR', KEYS[2])
end
return {id, state[1], state[2], state[3], state[4]}
"""
)
# KEYS: the rule's hash, the index, the version; ARGV: id, data, nth, times.
_RULES_ADD = """
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'nth', ARGV[3], 'times', ARGV[4], 'seen', 0, 'hits', 0)
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]), ARGV[1])
redis.call('INCR', KEYS[3])
"""
_RULES_REMOVE = """
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


def split_url(url: str) -> tuple[str, str | None]:
    """Split a store URL into redis-py's URL and the namespace (`?prefix=`), if any."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == PREFIX_PARAM), None)
    rest = urlencode([(name, value) for name, value in query if name != PREFIX_PARAM])
    return urlunsplit(parts._replace(query=rest)), prefix or None


def with_prefix(url: str) -> str:
    """The store URL with a namespace: its own `?prefix=`, else a fresh one."""
    _, prefix = split_url(url)
    if prefix:
        return url
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), (PREFIX_PARAM, _fresh_prefix())])
    return urlunsplit(parts._replace(query=query))


def _fresh_prefix() -> str:
    return f"{PREFIX_ROOT}:{uuid.uuid4().hex[:12]}"


class Guard:
    """Turns Redis failures into `StoreUnavailable` (a 503), and fails fast while Redis is down.

    A call that cannot reach Redis, or times out, marks it down: calls then raise at once, with
    no round trip, so a stalled Redis holds a request for one timeout per outage, not every request.
    A background thread pings Redis meanwhile, and the first answer brings it back by itself.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._down: str | None = None  # why Redis is down, None while it answers
        self._lock = threading.Lock()
        self.outages = 0  # how many times Redis went down while this process used it

    @property
    def down(self) -> str | None:
        """Why Redis is out of reach now, or None while it answers."""
        return self._down

    def call(self, command: Callable[..., Any], *args: Any, **options: Any) -> Any:
        """Run one Redis call, raising StoreUnavailable for a Redis that is down or refuses a change."""
        down = self._down
        if down is not None:
            raise StoreUnavailable(down)
        try:
            return command(*args, **options)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._mark_down(f"Redis did not answer: {error}")
            raise StoreUnavailable(f"Redis did not answer: {error}") from None
        except redis.ResponseError as error:
            if isinstance(error, (redis.exceptions.OutOfMemoryError, redis.ReadOnlyError)) or str(error).startswith(
                _REFUSALS
            ):
                raise StoreUnavailable(f"Redis refused the change: {error}") from None
            raise  # a missing script (reloaded by redis-py) or a bug: not an outage

    def ping(self) -> None:
        """Ping Redis past the guard (raising redis-py's own errors)."""
        redis.Redis.execute_command(self._client, "PING")  # type: ignore[no-untyped-call]

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            if self._down is not None:
                return
            self._down = reason
            self.outages += 1
        LOG.warning("segmind-mock: the Redis store is unavailable (%s); answering 503 until it returns", reason)
        # The probe holds the guard weakly: a fake dropped while Redis is down takes its probe with it.
        threading.Thread(target=_probe, args=(weakref.ref(self),), name="segmind-mock-redis-probe", daemon=True).start()

    def answers(self) -> bool:
        """Tell whether Redis answers a ping now (past the guard)."""
        try:
            self.ping()
        except redis.RedisError:
            return False
        return True

    def back(self) -> None:
        """Mark Redis as answering again."""
        self._down = None
        LOG.warning("segmind-mock: the Redis store answers again")


def _probe(guard_ref: weakref.ref[Guard]) -> None:
    """Ping Redis every PROBE_SECONDS until it answers (then the guard serves again) or the guard is gone."""
    while True:
        time.sleep(PROBE_SECONDS)
        guard = guard_ref()
        if guard is None:
            return
        if guard.answers():
            guard.back()
            return
        del guard  # no reference held between pings


class GuardedRedis(redis.Redis):
    """redis-py's client with every command passed through a `Guard`."""

    guard: Guard

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a command; StoreUnavailable when Redis is down or refuses it."""
        return self.guard.call(super().execute_command, *args, **options)


class Call(NamedTuple):
    """One command for a pipeline: a Lua script with its keys and arguments, or (no script) a GET of its one key."""

    script: Script | None
    keys: Sequence[str]
    args: Sequence[Any]
    droppable: bool = False  # a journal entry: lost alone when Redis cannot take it, never failing the answer
    stored: Callable[[], None] | None = None  # called once Redis has taken the call (a queued write)
    timely: bool = False  # a `_TIMELY` script: sent with its deadline as the last argument
    accepts: bool = False  # a new job: once Redis took it, the request's writes are never undone


class RequestState:
    """What one request has read from Redis and queued for it, shared by every step of the request."""

    __slots__ = ("accepted", "clock", "generation", "lost", "queued", "rules_version", "undo")

    def __init__(self) -> None:
        self.clock: ClockState | None = None  # the clock as the request's first read saw it
        self.rules_version: str | None = None  # the rule book's version, read along with the clock
        # The change watch's generation when the clock was read (None: not watched): what the
        # request reads or writes after it is known current while the generation is.
        self.generation: int | None = None
        self.queued: list[Call] = []  # writes to send with the request's next round trip
        self.lost = 0  # journal entries of this request Redis could not take, until `flush` reports them
        # What undoes the writes Redis took (a charge held) should the request fail before its job
        # is stored (`accepted`): sent first with the next round trip of any request.
        self.undo: list[Call] = []
        self.accepted = False


class RedisBackend:
    """The fake's state in one Redis namespace.

    Inside a request (`RedisClock.pinned`), writes whose answers the request does not need (a new
    job, an unlimited key's charge, the journal entry) are queued and sent along with the
    request's next round trip, or by `flush` before the answer goes out: a submission costs one
    round trip (its writes; the clock is read only when `ChangeWatch` saw it change), and so does a
    poll of a job this process stored or read lately (`JobCache`: its journal entry), else two
    (the job, with the clock if it changed, then the journal entry). docs/scaling.md counts them.
    """

    shared = True

    def __init__(self, client: GuardedRedis, prefix: str, where: str) -> None:
        self.redis = client
        self.guard = client.guard
        self.prefix = prefix
        self.name = f"{where} (prefix {prefix})"
        # What the current request has read and queued (None outside a request: writes are sent at once).
        self.request: ContextVar[RequestState | None] = ContextVar(f"segmind-mock-request-{id(self)}", default=None)
        # How many times this process found Redis had lost the namespace's data (a restart, a flush):
        # the clock's epoch changed. Every process meets it at its next clock read, whoever restored
        # the clock, and drops what it cached (`lost_data`); the rules it cached are keyed by epoch.
        self.restarts = 0
        self.lost_data: list[Callable[[], None]] = []
        # Tells the clock whether what it read last is still current (the clock and the rule book's
        # version), and the job cache whether the cap evicted jobs.
        self.watch = ChangeWatch(self, [self.key(name) for name in (CLOCK_KEY, RULES_VERSION_KEY, EVICTED_KEY)])
        # Writes to undo, of requests that failed before their job was stored (`run`).
        self._undo: list[Call] = []
        self._undo_lock = threading.Lock()
        # Timely writes' deadlines (`deadline`): in Redis's own time, measured once against this
        # machine's (they may differ), half the store's timeout after sending.
        self._timeout: float = client.connection_pool.connection_kwargs.get("socket_timeout") or TIMEOUT_SECONDS
        self._time_offset = _time_offset(client)

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        """Connect to the Redis a store URL names, or raise StoreError saying why it cannot be used."""
        redis_url, prefix = split_url(url)
        try:
            pool = redis.ConnectionPool.from_url(
                redis_url,
                decode_responses=True,
                socket_timeout=TIMEOUT_SECONDS,
                socket_connect_timeout=TIMEOUT_SECONDS,
                # No retries: one timeout is all a request waits; the guard's probe reconnects.
                retry=Retry(NoBackoff(), 0),
            )
            client = GuardedRedis(connection_pool=pool)
            client.guard = Guard(client)
            client.guard.ping()  # unguarded: a failure here is a StoreError, no outage
        except (ValueError, redis.RedisError, StoreUnavailable) as error:
            raise StoreError(f"cannot use the Redis store {_safe(redis_url)}: {error}") from None
        return cls(client, prefix or _fresh_prefix(), _safe(redis_url))

    def key(self, *parts: str) -> str:
        """A key of this namespace."""
        return ":".join((self.prefix, *parts))

    def run(self, *calls: Call) -> list[Any]:
        """The answers to `calls`, sent in one round trip after the writes this request queued.

        StoreUnavailable (a 503) if Redis cannot take any of them but journal entries, which are
        then lost alone (counted for `flush` to report). A request failing so before its job is
        stored has what it changed undone (`RequestState.undo`), with the next round trip.
        """
        request = self.request.get()
        try:
            return self._run(request, calls)
        except StoreUnavailable:
            if request is not None and request.undo and not request.accepted:
                with self._undo_lock:
                    self._undo.extend(request.undo)
                request.undo.clear()
            raise

    def _run(self, request: RequestState | None, calls: Sequence[Call]) -> list[Any]:
        queued = request.queued if request is not None else []
        undo: list[Call] = []
        if self._undo:  # rarely: only after a failure
            with self._undo_lock:
                undo, self._undo = self._undo, []
        batch = [*undo, *queued, *calls] if queued or undo else list(calls)
        queued.clear()
        try:
            answers = self._execute(batch)
        except StoreUnavailable:
            self._undo_later(undo)
            if not all(call.droppable for call in batch[len(undo) :]):
                raise
            _lose(request, len(batch) - len(undo))
            return [None] * len(calls)
        for index, answer in enumerate(answers):
            call = batch[index]
            if isinstance(answer, redis.exceptions.NoScriptError):
                answer = answers[index] = self._run_one(call)  # a script's first use: loaded, then run
            if index < len(undo):
                if isinstance(answer, Exception):
                    self._undo_later([call])  # tried again with the next round trip
            elif isinstance(answer, Exception):
                if not call.droppable:
                    self.guard.call(_raise, answer)  # an outage or a refusal is a 503, as for one command
                _lose(request, 1)
            else:
                if call.stored is not None:
                    call.stored()
                if call.accepts and request is not None:
                    request.accepted = True
        return answers[len(batch) - len(calls) :]

    def undo_if_refused(self, call: Call) -> None:
        """Have `call` undo a write Redis took, should the current request fail before its job is stored."""
        request = self.request.get()
        if request is not None and not request.accepted:
            request.undo.append(call)

    def _undo_later(self, calls: Sequence[Call]) -> None:
        if calls:
            with self._undo_lock:
                self._undo.extend(calls)

    def deadline(self) -> int:
        """The deadline of a timely write sent now, in Redis's time (microseconds): half the store's timeout on."""
        return int((time.time() + self._time_offset + self._timeout / 2) * 1_000_000)

    def _execute(self, batch: list[Call]) -> list[Any]:
        if len(batch) == 1:
            return [self._run_one(batch[0])]
        deadline = self.deadline()
        with self.redis.pipeline(transaction=False) as pipe:
            for call in batch:
                if call.script is None:
                    pipe.get(call.keys[0])
                else:
                    args = [*call.args, deadline] if call.timely else call.args
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *args)
            answers: list[Any] = self.guard.call(pipe.execute, raise_on_error=False)
        return answers

    def defer(self, call: Call) -> None:
        """Queue a write for the current request's next round trip; outside a request, send it now."""
        request = self.request.get()
        if request is None:
            self.run(call)
        else:
            request.queued.append(call)

    def flush(self) -> int:
        """Send the writes the current request queued, in one round trip; how many of its journal entries were lost."""
        request = self.request.get()
        if request is None:
            return 0
        if request.queued:
            self.run()
        lost, request.lost = request.lost, 0
        return lost

    def _run_one(self, call: Call) -> Any:
        if call.script is None:
            return self.redis.get(call.keys[0])
        args = [*call.args, self.deadline()] if call.timely else call.args
        return call.script(keys=call.keys, args=args)  # redis-py loads the script if Redis lacks it

    def delete_matching(self, *patterns: str) -> None:
        """Delete every key of this namespace matching the glob patterns (given after the prefix)."""
        escaped = "".join("\\" + char if char in "*?[]\\" else char for char in self.prefix)
        for pattern in patterns:
            batch: list[str] = []
            for key in self.redis.scan_iter(match=f"{escaped}:{pattern}", count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= SCAN_COUNT:
                    self.redis.unlink(*batch)
                    batch.clear()
            if batch:
                self.redis.unlink(*batch)

    def clock(self, speed: float) -> RedisClock:
        """The namespace's clock, set up at `speed` unless another process did first."""
        return RedisClock(self, speed)

    def jobs(self, clock: ClockStore, max_kept: int = MAX_JOBS_KEPT) -> RedisJobStore:
        """Jobs with Redis TTLs, at most `max_kept` and as many outputs."""
        return RedisJobStore(self, clock, max_kept)

    def rules(self) -> RedisRuleStore:
        """Rules with atomic counters."""
        return RedisRuleStore(self)

    def journal(self, size: int) -> RedisJournal:
        """A capped list."""
        return RedisJournal(self, size)

    def ledger(self) -> RedisLedger:
        """Account ledgers changed by Lua scripts."""
        return RedisLedger(self)


def _raise(error: Exception) -> None:
    raise error


def _time_offset(client: GuardedRedis) -> float:
    """How far Redis's clock (TIME) is ahead of this machine's, in seconds, read at the middle of one round trip."""
    sent = time.time()
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000 - (sent + time.time()) / 2


def _lose(request: RequestState | None, count: int) -> None:
    # Counted per request (its steps run one at a time), so concurrent requests never count each other's.
    if request is not None:
        request.lost += count


def _safe(url: str) -> str:
    # Never print a password.
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host))


def _strings(raw: Any) -> list[str]:
    # What redis-py returns for a script or command answering an array (decode_responses: str items).
    return cast(list[str], raw)


class ChangeWatch:
    """Tells a process whether the shared clock and the rule book's version changed since it last read them.

    Redis's server-assisted tracking in broadcast mode (`CLIENT TRACKING ON BCAST PREFIX`, RESP3,
    Redis 6 or newer): Redis pushes an invalidation message for every change to those keys,
    whoever made it, to a connection this process keeps for it, before it answers the change's
    author. So a request that finds no message waiting may use the state it read last without a
    round trip, and a client that saw an `advance` answered, through any worker, sees it in its
    next request. Any doubt (no watch yet, a lost connection, a Redis or a protocol that cannot
    track) means "changed": the state is read again, as without the watch.
    """

    def __init__(self, backend: RedisBackend, keys: Sequence[str]) -> None:
        self._backend = backend
        self._keys = keys
        self._lock = threading.Lock()
        self._connection: Any = None  # tracking in broadcast mode: it receives the invalidations
        # Counts the changes seen (and lost watches): a state read at one generation is current while it lasts.
        self._generation = 0
        self._confirmed = 0.0  # when the connection last proved alive (monotonic seconds)
        self.usable = True  # False once Redis could not track (too old, RESP2, or tracking refused)

    def generation(self) -> int | None:
        """The current generation, after the changes waiting (a non-blocking look); None while nothing is watched."""
        with self._lock:
            generation = self._drained()
            if generation is not None and time.monotonic() - self._confirmed > WATCH_CONFIRM_SECONDS:
                generation = self._confirm()
            return generation

    def local_change(self) -> None:
        """Count a change this process made: what it read before is not current, however late Redis's message."""
        with self._lock:
            self._generation += 1

    def before_read(self) -> int | None:
        """The generation a read of the watched keys starting now belongs to; starts watching if it can."""
        with self._lock:
            if self._connection is None and self.usable and self._backend.guard.down is None:
                self._open()
            return self._drained()

    def _drained(self) -> int | None:
        if self._connection is None:
            return None
        try:
            while self._connection.can_read(timeout=0):
                self._connection.read_response(push_request=True)
                self._generation += 1
        except (redis.RedisError, OSError):
            self._close()
            return None
        return self._generation

    def _confirm(self) -> int | None:
        # A connection can die without a word (a NAT or a proxy forgetting it): only an answer proves
        # it alive, and Redis sends the PONG after every message queued before it.
        try:
            self._connection.send_command("PING")
            while self._connection.read_response(push_request=True) != "PONG":
                self._generation += 1
        except (redis.RedisError, OSError):
            self._close()
            return None
        self._confirmed = time.monotonic()
        return self._generation

    def _open(self) -> None:
        pool = self._backend.redis.connection_pool  # its class and settings: TCP, TLS or a Unix socket alike
        connection = pool.connection_class(**pool.connection_kwargs)
        try:
            self._backend.guard.call(self._track, connection)  # an outage is the guard's: a 503, then fail fast
        except redis.ResponseError as error:
            LOG.warning("segmind-mock: Redis cannot track changes (%s); the clock is read on every request", error)
            self.usable = False
            connection.disconnect()
        except StoreUnavailable:
            connection.disconnect()
            raise
        else:
            self._connection = connection
            self._confirmed = time.monotonic()

    def _track(self, connection: Any) -> None:
        connection.connect()
        if str(connection.protocol) != "3":  # RESP2 delivers invalidations only through a second connection
            raise redis.ResponseError("the connection speaks RESP2 (protocol=2 in the store URL?)")
        connection.send_command(
            "CLIENT", "TRACKING", "ON", "BCAST", *(part for key in self._keys for part in ("PREFIX", key))
        )
        connection.read_response()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = None
        self._generation += 1  # what was read while watched is no longer known to be current


# A clock read: the state, and the rule book's version read along with it.
Reading = tuple[ClockState, str]


class RedisClock:
    """The clock shared by every process of a namespace.

    Real time is each machine's `time.time()` (keep machines' clocks in sync). Inside a request,
    the state read at its start is used (see `pinned`), so reading it costs no round trip there;
    nor does that first read while the process's last reading is current (`ChangeWatch`).
    """

    def __init__(self, backend: RedisBackend, speed: float) -> None:
        self._initial_speed = speed
        self._key = backend.key(CLOCK_KEY)
        self._rules_version_key = backend.key(RULES_VERSION_KEY)
        self._read_script = backend.redis.register_script(_CLOCK_READ)
        self._advance_script = backend.redis.register_script(_CLOCK_ADVANCE)
        self._speed_script = backend.redis.register_script(_CLOCK_SET_SPEED)
        self._reset_script = backend.redis.register_script(_CLOCK_RESET)
        self._restore_script = backend.redis.register_script(_CLOCK_RESTORE)
        self._backend = backend
        self._seen: ClockState | None = None  # the latest state this process read: the floor after a restart
        # The state and the rule book's version as this process last read them, with the watch's
        # generation of that read: current while the generation is.
        self._watch = backend.watch
        self._last: tuple[ClockState, str, int] | None = None
        self._epoch: str | None = None  # the namespace's epoch as this process last read it
        self._read()  # the first process to open the namespace sets its clock up

    def real_time(self) -> float:
        """The time of day: what every process of the namespace shares."""
        return time.time()

    def read(self) -> ClockState:
        """The state pinned for this request (read at its first use), else read from Redis."""
        request = self._backend.request.get()
        if request is not None:
            if request.clock is None:
                self.pin_current(self._watch.generation())  # no round trip while nothing changed
            if request.clock is not None:
                return request.clock
        generation = self._watch.before_read()
        return self._pin(self._read_at(generation), generation)

    def pin_current(self, generation: int | None) -> bool:
        """Tell whether the request needs no clock read, pinning the last reading if it is current at `generation`.

        True outside a request (nothing to pin) and once its clock is pinned; no round trip.
        """
        request = self._backend.request.get()
        if request is None or request.clock is not None:
            return True
        last = self._last
        if generation is None or last is None or last[2] != generation:
            return False
        request.clock, request.rules_version, request.generation = last
        return True

    def read_along(self, call: Call, generation: int | None = None) -> Any:
        """The answer to `call`, with this request's clock read in the same round trip unless pinned.

        `generation` is the change watch's as the caller just saw it: a reading current at it pins
        the clock with no read (None: read it along, if the request has not yet).
        """
        if self.pin_current(generation):
            return self._backend.run(call)[0]
        generation = self._watch.before_read()
        raw, answer = self._backend.run(self._read_call(), call)
        self._pin(self._arrived(_strings(raw), generation), generation)
        return answer

    def refresh(self) -> ClockState:
        """The state read from Redis anew."""
        return self._adopt(self._read()[0])

    def advance(self, seconds: float) -> ClockState:
        """Add `seconds` to simulated time, for every process."""
        return self._keep(self._run(self._advance_script, [self._key], [repr(seconds)]))

    def set_speed(self, speed: float) -> ClockState:
        """Change the speed from now on, for every process."""
        return self._keep(self._run(self._speed_script, [self._key], [repr(speed), repr(time.time())]))

    def reset(self, speed: float) -> ClockState:
        """Bring simulated time back to the real time of day at `speed`, for every process, in one script."""
        return self._keep(self._run(self._reset_script, [self._key], [repr(time.time()), repr(speed)]))

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within the block (one request), read the shared clock once (at its first use) and queue writes.

        The request's state is one object that every step of the request shares, worker threads
        included (each gets a copy of the context, and the copy refers to the same object). The
        request sends what it queued with `RedisBackend.flush` before it answers.
        """
        token = self._backend.request.set(RequestState())
        try:
            yield
        finally:
            self._backend.request.reset(token)

    def _pin(self, reading: Reading, generation: int | None) -> ClockState:
        state, rules_version = reading
        request = self._backend.request.get()
        if request is not None:  # inside a request: what the rest of it sees
            request.clock, request.rules_version, request.generation = state, rules_version, generation
        return state

    def _run(self, script: Script, keys: list[str], args: list[str]) -> Any:
        return self._backend.run(Call(script, keys, args))[0]

    def _read_call(self) -> Call:
        args = [repr(self._initial_speed), repr(time.time()), uuid.uuid4().hex]
        return Call(self._read_script, [self._key, self._rules_version_key], args)

    def _read(self) -> Reading:
        return self._read_at(self._watch.before_read())

    def _read_at(self, generation: int | None) -> Reading:
        return self._arrived(_strings(self._backend.run(self._read_call())[0]), generation)

    def _arrived(self, raw: list[str], generation: int | None) -> Reading:
        """The clock and the rule book's version as a read found them, parsed once and kept as the last reading."""
        # A clock Redis had lost (it restarted) is raised back to this process's last reading.
        if raw[5] == "1" and self._seen is not None:
            raw = self._restore(self._seen) + raw[4:5]
        epoch = raw[4].partition(":")[0]
        if epoch != self._epoch:
            if self._epoch is not None:  # Redis lost the namespace since this process last read it
                self._backend.restarts += 1
                for drop in self._backend.lost_data:
                    drop()
            self._epoch = epoch
        self._seen = state = self._parse(raw)
        self._last = (state, raw[4], generation) if generation is not None else None
        return state, raw[4]

    def _restore(self, seen: ClockState) -> list[str]:
        """Raise a clock Redis lost (it restarted) back to where this process last saw it: it never goes back."""
        real = time.time()
        floor = seen.sim + (real - seen.real) * seen.speed
        LOG.warning(
            "segmind-mock: the Redis store lost the clock (a restart?); simulated time continues from this "
            "worker's last reading, %.3f. Jobs, scenarios, the journal and account usage were lost with it",
            floor,
        )
        args = [repr(seen.speed), repr(floor), repr(real), repr(seen.jumped)]
        return _strings(self._restore_script(keys=[self._key], args=args))

    def _keep(self, raw: Any) -> ClockState:
        self._watch.local_change()  # a change of this process's own: its last reading is not current
        return self._adopt(self._parse(_strings(raw)))

    def _adopt(self, state: ClockState) -> ClockState:
        # A change made, or a state read anew, inside a request is what the rest of the request sees.
        self._seen = state
        request = self._backend.request.get()
        if request is not None and request.clock is not None:
            request.clock = state
        return state

    @staticmethod
    def _parse(raw: list[str]) -> ClockState:
        return ClockState(float(raw[0]), float(raw[1]), float(raw[2]), float(raw[3] or 0.0))


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


class JobCache:
    """Jobs this process stored or read lately, to answer polls with no round trip; bounded, and dropped at any doubt.

    A job never changes once stored; it only disappears: a reset (which then resets the clock),
    a Redis restart, the cap (which counts it under a watched key), its key's TTL. So a copy is
    current while the change watch's generation is the one before the write or read that found the
    job (a watched key moves, or the watch is lost, after any deletion but the TTL's), and while its
    key has time to live. Least recently used
    jobs go first past JOB_CACHE_JOBS jobs or JOB_CACHE_BYTES bytes (as stored); one larger than
    that is not kept.
    """

    def __init__(self, jobs: int, size: int) -> None:
        self.jobs = jobs
        self.size = size
        self._lock = threading.Lock()  # store threads share it
        self._kept: OrderedDict[str, tuple[Job, int, float]] = OrderedDict()  # job, bytes, its key's end (monotonic)
        self._bytes = 0
        self._generation = -1  # of every job kept

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, request_id: str, generation: int) -> Job | None:
        """The job, if kept and current at `generation` (the watch's now); a newer generation drops every job."""
        with self._lock:
            if generation != self._generation:
                if generation > self._generation:
                    self._drop(generation)
                return None
            kept = self._kept.get(request_id)
            if kept is None:
                return None
            if kept[2] <= time.monotonic():  # its key is gone from Redis
                self._remove(request_id)
                return None
            self._kept.move_to_end(request_id)
            return kept[0]

    def put(self, job: Job, size: int, until: float, generation: int) -> None:
        """Keep a job found in Redis (or written there) at `generation`, its key living until `until` (monotonic)."""
        if size > self.size:
            return
        with self._lock:
            if generation < self._generation:  # found before a change since seen: maybe stale
                return
            if generation > self._generation:
                self._drop(generation)
            if job.request_id in self._kept:
                self._remove(job.request_id)
            self._kept[job.request_id] = (job, size, until)
            self._bytes += size
            while len(self._kept) > self.jobs or self._bytes > self.size:
                self._remove(next(iter(self._kept)))

    def clear(self) -> None:
        """Forget every job."""
        with self._lock:
            self._drop(self._generation)

    def _drop(self, generation: int) -> None:
        self._kept.clear()
        self._bytes = 0
        self._generation = generation

    def _remove(self, request_id: str) -> None:
        self._bytes -= self._kept.pop(request_id)[1]


class RedisJobStore:
    """Jobs as JSON under two keys, each expiring through its Redis TTL: the result and the output.

    With a change watch (RESP3), polls are answered from a `JobCache` while it is current.
    """

    def __init__(self, backend: RedisBackend, clock: ClockStore, max_kept: int = MAX_JOBS_KEPT) -> None:
        self.max_kept = max_kept
        self._backend = backend
        self._redis = backend.redis
        if not isinstance(clock, RedisClock):
            raise TypeError("a Redis job store reads the clock of its own Redis namespace")
        self._clock = clock
        self._watch = backend.watch
        self._index = backend.key("jobs")
        # The same jobs by start and by end (completed, failed), the outputs by deadline, and the cap's evictions.
        self._by_time = [backend.key("jobs-starts"), backend.key("jobs-ends"), backend.key("jobs-failures")]
        self._outputs = backend.key("outputs")
        self._evicted = backend.key(EVICTED_KEY)
        self._add = self._redis.register_script(_ADD_JOB)
        self._summary = self._redis.register_script(_JOBS_SUMMARY)
        self._forget = self._redis.register_script(_FORGET_JOB)
        self._read = self._redis.register_script(_JOB_READ)
        self.cache = JobCache(JOB_CACHE_JOBS, JOB_CACHE_BYTES)
        backend.lost_data.append(self.cache.clear)

    def job_key(self, request_id: str) -> str:
        """The key of a job's result."""
        return self._backend.key("job", request_id)

    def output_key(self, request_id: str) -> str:
        """The key of a completed job's output."""
        return self._backend.key("out", request_id)

    def add(self, job: Job, result_until: float, output_until: float | None, now: float) -> None:
        """Keep a job (and its future output, if any), their keys expiring after their deadlines."""
        speed = self._clock.read().speed
        result_ms = ttl_ms(result_until - now, speed)
        output_ms = ttl_ms(output_until - now, speed) if output_until is not None else ""
        keys = [
            self.job_key(job.request_id),
            self.output_key(job.request_id),
            self._index,
            self._index + ":seq",
            *self._by_time,
            self._outputs,
            self._evicted,
        ]
        data = _encode_job(job)
        started = job.submitted_at + job.queue_seconds
        ended = started + job.processing_seconds  # as `Job.ended_by` adds them
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
            self.job_key(""),
            self.output_key(""),
        ]
        # Cached once Redis has it, at the generation seen before the write (the request's clock read).
        request = self._backend.request.get()
        generation = request.generation if request is not None else self._watch.generation()
        stored = None
        if generation is not None:
            stored = functools.partial(self.cache.put, job, len(data), time.monotonic() + result_ms / 1000, generation)
        # Sent before the answer that names the job; refused if it reaches Redis after the answer's
        # deadline, and forgotten again if the request fails anyway (Redis stalled before answering).
        forget_keys = [*keys[:3], *self._by_time, self._outputs]
        forget_args = [job.request_id, repr(result_until), repr(started), repr(ended), args[9] if output_ms else ""]
        self._backend.undo_if_refused(Call(self._forget, forget_keys, forget_args))
        self._backend.defer(Call(self._add, keys, args, stored=stored, timely=True, accepts=True))

    def get(self, request_id: str) -> Job | None:
        """The job, if its key is still there: from the cache while current, else read (with the clock if it moved)."""
        generation = self._watch.generation() if self._backend.guard.down is None else None
        if generation is None:  # nothing watched, or Redis down: no cache, so a plain GET (no TTL needed)
            return _job(self._clock.read_along(Call(None, [self.job_key(request_id)], [])))
        cached = self.cache.get(request_id, generation)
        if cached is not None and self._clock.pin_current(generation):
            return cached
        sent = time.monotonic()
        raw, ttl = self._clock.read_along(Call(self._read, [self.job_key(request_id)], []), generation)
        job = _job(raw)
        if job is not None:
            self.cache.put(job, len(raw), sent + ttl / 1000 if ttl >= 0 else math.inf, generation)
        return job

    def output(self, request_id: str) -> Job | None:
        """The job whose output key is still there."""
        return _job(self._clock.read_along(Call(None, [self.output_key(request_id)], [])))

    def jobs(self, now: float) -> list[Job]:
        """Every job whose result deadline is after `now`, oldest first."""
        members = _strings(self._redis.zrangebyscore(self._index, f"({now!r}", "+inf"))
        if not members:
            return []
        found = self._redis.mget([self.job_key(member.split(":", 1)[1]) for member in members])
        return [job for job in map(_job, found) if job is not None]

    def count(self) -> int:
        """Jobs in the index: expired ones leave it at the next submission, as in memory."""
        return int(self._redis.zcard(self._index))

    def summary(self, now: float) -> JobsSummary:
        """The jobs retained at `now` by state: counted by time in Redis, in one script, O(log n)."""
        keys = [self._index, *self._by_time, self._evicted]
        raw = self._backend.run(Call(self._summary, keys, [repr(now), repr(now + TIME_SLACK_SECONDS)]))[0]
        jobs, started, completed, failed, next_completed, next_failed, jobs_evicted, outputs_evicted = raw
        ends = [float(end) for end in (next_completed, next_failed) if end is not None]
        return JobsSummary(
            jobs,
            jobs - started,
            started - completed - failed,
            completed,
            failed,
            min(ends, default=None),
            int(jobs_evicted),
            int(outputs_evicted),
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


class RedisJournal:
    """The journal as a capped Redis list of JSON entries."""

    def __init__(self, backend: RedisBackend, size: int) -> None:
        self.size = size
        self._backend = backend
        self._redis = backend.redis
        self._key = backend.key("journal")
        self._record = self._redis.register_script(_JOURNAL_RECORD)

    def record(self, record: Record) -> None:
        """Add an exchange, dropping the oldest past the journal's size."""
        entry = Entry(*record)
        fields = asdict(entry)
        # Bodies, query and headers are raw bytes; latin-1 maps each byte to one character and back.
        for name in _ENTRY_BYTES:
            fields[name] = getattr(entry, name).decode("latin-1")
        self._backend.defer(Call(self._record, [self._key], [json.dumps(fields), self.size], droppable=True))

    def entries(self) -> list[Entry]:
        """Every kept exchange."""
        return [_entry(raw) for raw in _strings(self._redis.lrange(self._key, 0, -1))]

    def clear(self) -> None:
        """Forget every exchange."""
        self._redis.delete(self._key)


_ENTRY_BYTES = ("query", "api_key", "request_body", "response_type", "response_body")


def _entry(raw: str) -> Entry:
    fields = json.loads(raw)
    for name in _ENTRY_BYTES:
        fields[name] = fields[name].encode("latin-1")
    return Entry(**fields)


_COUNTERS = ("times", "seen", "hits")


class RedisRuleStore:
    """Rules as Redis hashes, ordered by id; `take` counts and uses them up in one Lua script."""

    def __init__(self, backend: RedisBackend) -> None:
        self._redis = backend.redis
        self._index = backend.key("rules")
        self._rule_prefix = backend.key("rule", "")
        self._ids = backend.key("rule-ids")
        # Bumped when a rule is added or removed (counting does not bump it): rules read at a
        # version can be matched again while requests still see that version.
        self._version = backend.key(RULES_VERSION_KEY)
        # The rules read at a version (prefixed by the namespace's epoch, so never one seen before a data loss).
        self._cached: tuple[str, list[Rule]] | None = None
        self._backend = backend
        self._all = self._redis.register_script(_RULES_ALL)
        self._take = self._redis.register_script(_RULES_TAKE)
        self._add = self._redis.register_script(_RULES_ADD)
        self._remove = self._redis.register_script(_RULES_REMOVE)

    def next_id(self) -> str:
        """The next number of the namespace's counter."""
        return str(self._redis.incr(self._ids))

    def add(self, rule: Rule) -> None:
        """Keep a new rule, tried last."""
        static = {name: value for name, value in asdict(rule).items() if name not in _COUNTERS}
        self._add(
            keys=[self._rule_prefix + rule.id, self._index, self._version],
            args=[rule.id, json.dumps(static), rule.nth, rule.times],
        )
        self._backend.watch.local_change()

    def rules(self) -> Sequence[Rule]:
        """The rules in order, read from Redis."""
        flat = _strings(self._backend.run(Call(self._all, [self._index, self._rule_prefix], []))[0])
        return [_rule(flat[at : at + 5]) for at in range(0, len(flat), 5)]

    def matching(self) -> Sequence[Rule]:
        """The rules in order: inside a request, those read at the version its clock read saw.

        No round trip while no rule is added or removed (without rules, none at all). Their
        counters may be stale; matching does not use them, and `take` counts in Redis.
        """
        request = self._backend.request.get()
        version = request.rules_version if request is not None else None
        cached = self._cached
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        rules = self.rules()
        if version is not None:
            self._cached = (version, list(rules))
        return rules

    def count(self) -> int:
        """How many rules the index holds: one round trip, no rule read."""
        return int(self._redis.zcard(self._index))

    def remove(self, rule_id: str) -> bool:
        """Remove one rule; tell whether it existed."""
        removed = bool(self._remove(keys=[self._index, self._rule_prefix + rule_id, self._version], args=[rule_id]))
        self._backend.watch.local_change()
        return removed

    def clear(self) -> None:
        """Remove every rule (ids keep counting, as in memory)."""
        self._backend.delete_matching("rule:*")
        self._redis.delete(self._index)
        self._redis.incr(self._version)
        self._backend.watch.local_change()

    def take(self, candidates: Sequence[tuple[str, bool]], count_undecided: bool) -> Rule | None:
        """Count the request and use the deciding rule up, in one script."""
        keys = [self._index, self._version, *(self._rule_prefix + rule_id for rule_id, _ in candidates)]
        args = ["1" if count_undecided else "0"]
        for rule_id, may in candidates:
            args += [rule_id, "1" if may else "0"]
        taken = self._backend.run(Call(self._take, keys, args, timely=True))[0]
        if not taken:
            return None
        rule = _rule(_strings(taken))
        if rule.times == 0:  # used up: the script removed it and moved the version on
            self._backend.watch.local_change()
        return rule


def _rule(state: list[str]) -> Rule:
    rule_id, data, times, seen, hits = state
    fields = json.loads(data)
    fields.update(id=rule_id, times=int(times), seen=int(seen), hits=int(hits))
    return Rule(**fields)


# The account ledger: one script per operation, each settling the key's due charges first. KEYS:
# the account hash (topped_up, spent, held, seq), pending (charge ids by due time), charges (id ->
# billed flag and price), after (id -> balance right after its charge), after-due (those ids by
# due time), window (submission times, on the rate-limit clock), the index of keys. ARGV: key, now,
# starting credits ('': unlimited), then the operation's own. Floats travel as strings ('%.17g' keeps them exact) and
# are kept to a millionth of a credit, as accounts.py rounds them.
_LEDGER = """
local acct, pending, charges, after, after_due, window = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, credits = tonumber(ARGV[2]), tonumber(ARGV[3])
local function round6(x) return math.floor(x * 1e6 + 0.5) / 1e6 end
local function num(x) return string.format('%.17g', x) end
if redis.call('HSETNX', acct, 'seq', '0') == 1 then redis.call('RPUSH', KEYS[7], ARGV[1]) end
local function settle()
  local state = redis.call('HMGET', acct, 'topped_up', 'spent', 'held')
  local topped_up, spent, held = tonumber(state[1]) or 0, tonumber(state[2]) or 0, tonumber(state[3]) or 0
  local due = redis.call('ZRANGEBYSCORE', pending, '-inf', ARGV[2], 'WITHSCORES')
  if #due > 0 then
    for i = 1, #due, 2 do
      local id = due[i]
      local charge = redis.call('HGET', charges, id)
      local price = tonumber(string.sub(charge, 2))
      held = round6(held - price)
      if string.sub(charge, 1, 1) == '1' then
        spent = round6(spent + price)
        if credits then
          redis.call('HSET', after, id, num(round6(credits + topped_up - spent)))
          redis.call('ZADD', after_due, due[i + 1], id)
        end
      end
      redis.call('HDEL', charges, id)
    end
    redis.call('ZREMRANGEBYSCORE', pending, '-inf', ARGV[2])
    redis.call('HSET', acct, 'spent', num(spent), 'held', num(held))
  end
  while true do
    local oldest = redis.call('ZRANGE', after_due, 0, 0, 'WITHSCORES')
    if #oldest == 0 or tonumber(oldest[2]) + RETENTION > now then break end
    redis.call('ZREM', after_due, oldest[1])
    redis.call('HDEL', after, oldest[1])
  end
  return topped_up, spent, held
end
local function recent(window_now)
  while true do
    local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
    if #oldest == 0 or tonumber(oldest[2]) + WINDOW > window_now then return oldest[2] end
    redis.call('ZREM', window, oldest[1])
  end
end
local function usage(topped_up, spent, held, window_now)
  local oldest = recent(window_now)
  return {num(topped_up), num(spent), num(held), redis.call('ZCARD', window), oldest or false}
end
""".replace("RETENTION", repr(float(RESULT_RETENTION_SECONDS))).replace("WINDOW", repr(float(RATE_LIMIT_RESET_SECONDS)))
_LEDGER_TOUCH = _LEDGER
# ARGV[2] is the rate-limit clock's time here; ARGV[4]: the rate limit. Returns the oldest counted
# time when the window is full, else counts now.
_LEDGER_COUNT = (
    _TIMELY
    + _LEDGER
    + """
local oldest = recent(now)
if redis.call('ZCARD', window) >= tonumber(ARGV[4]) then return oldest end
redis.call('ZADD', window, ARGV[2], redis.call('HINCRBY', acct, 'seq', 1))
return false
"""
)
# ARGV[4..7]: due, request id, price, billed ('1' or '0'). Returns {balance, held} when refused.
_LEDGER_HOLD = (
    _TIMELY
    + _LEDGER
    + """
local topped_up, spent, held = settle()
local price = tonumber(ARGV[6])
if credits then
  local balance = round6(credits + topped_up - spent)
  if round6(balance - held) < price then return {num(balance), num(held)} end
end
redis.call('ZADD', pending, ARGV[4], ARGV[5])
redis.call('HSET', charges, ARGV[5], ARGV[7] .. ARGV[6])
redis.call('HSET', acct, 'held', num(round6(held + price)))
return false
"""
)
# ARGV[4]: the request id. Releases its held charge, if still held (a submission that failed).
_LEDGER_RELEASE = (
    _LEDGER
    + """
local charge = redis.call('HGET', charges, ARGV[4])
if not charge then return 0 end
local held = tonumber(redis.call('HGET', acct, 'held')) or 0
redis.call('ZREM', pending, ARGV[4])
redis.call('HDEL', charges, ARGV[4])
redis.call('HSET', acct, 'held', num(round6(held - tonumber(string.sub(charge, 2)))))
return 1
"""
)
# ARGV[4]: the request id.
_LEDGER_REMAINING = (
    _LEDGER
    + """
settle()
return redis.call('HGET', after, ARGV[4])
"""
)
# ARGV[4]: credits to add; ARGV[5]: the rate-limit clock's time, for the window. (`_LEDGER_USAGE`: ARGV[4].)
_LEDGER_TOP_UP = (
    _LEDGER
    + """
local topped_up, spent, held = settle()
topped_up = round6(topped_up + tonumber(ARGV[4]))
redis.call('HSET', acct, 'topped_up', num(topped_up))
return usage(topped_up, spent, held, tonumber(ARGV[5]))
"""
)
_LEDGER_USAGE = (
    _LEDGER
    + """
local topped_up, spent, held = settle()
return usage(topped_up, spent, held, tonumber(ARGV[4]))
"""
)
_ACCOUNT_KEYS = (
    "account",
    "account-pending",
    "account-charges",
    "account-after",
    "account-after-due",
    "account-window",
)


class RedisLedger:
    """Each account as a few Redis structures, each operation one Lua script: O(log n) and atomic across workers."""

    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._redis = backend.redis
        self._index = backend.key("accounts")
        self._touch = self._redis.register_script(_LEDGER_TOUCH)
        self._count = self._redis.register_script(_LEDGER_COUNT)
        self._hold = self._redis.register_script(_LEDGER_HOLD)
        self._release = self._redis.register_script(_LEDGER_RELEASE)
        self._remaining = self._redis.register_script(_LEDGER_REMAINING)
        self._top_up = self._redis.register_script(_LEDGER_TOP_UP)
        self._usage = self._redis.register_script(_LEDGER_USAGE)

    def _keys(self, key: str) -> list[str]:
        return [*(self._backend.key(name, key) for name in _ACCOUNT_KEYS), self._index]

    def _args(self, key: str, now: float, credits: float | None, *more: str) -> list[str]:
        return [key, repr(now), "" if credits is None else repr(credits), *more]

    def touch(self, key: str) -> None:
        """Make sure the key has an account."""
        self._touch(keys=self._keys(key), args=self._args(key, 0.0, None))

    def count(self, key: str, rpm: int, window_now: float) -> float | None:
        """Count a submission in the window, or return when the window frees up."""
        call = Call(self._count, self._keys(key), self._args(key, window_now, None, str(rpm)), timely=True)
        oldest = self._backend.run(call)[0]
        return float(oldest) + RATE_LIMIT_RESET_SECONDS if oldest is not None else None

    def hold(self, key: str, charge: Charge, credits: float | None, now: float) -> tuple[float, float] | None:
        """Hold the charge unless the key cannot pay it."""
        billed = "1" if charge.billed else "0"
        more = (repr(charge.due), charge.request_id, repr(charge.price), billed)
        # Released again if the submission fails before its job is stored (answered 503: nothing kept),
        # whether Redis took the hold or not: a stall may hide it.
        release = Call(self._release, self._keys(key), self._args(key, now, credits, charge.request_id))
        self._backend.undo_if_refused(release)
        call = Call(self._hold, self._keys(key), self._args(key, now, credits, *more), timely=True)
        if credits is None:  # unlimited: never refused, so the request need not wait for the answer
            self._backend.defer(call)
            return None
        refused = self._backend.run(call)[0]
        if refused is None:
            return None
        balance, held = refused
        return round_credits(float(balance)), round_credits(float(held))

    def remaining(self, key: str, request_id: str, credits: float, now: float) -> float | None:
        """The balance right after the job's charge."""
        after = self._backend.run(Call(self._remaining, self._keys(key), self._args(key, now, credits, request_id)))[0]
        return round_credits(float(after)) if after is not None else None

    def top_up(self, key: str, add: float, credits: float | None, now: float, window_now: float) -> Usage:
        """Add credits after settling."""
        args = self._args(key, now, credits, repr(add), repr(window_now))
        return _usage(key, self._top_up(keys=self._keys(key), args=args))

    def usage(self, credits: Callable[[str], float | None], now: float, window_now: float) -> list[Usage]:
        """Every account, in the order they were created, settled in one pipeline."""
        keys = _strings(self._redis.lrange(self._index, 0, -1))
        with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                args = self._args(key, now, credits(key), repr(window_now))
                self._usage(keys=self._keys(key), args=args, client=pipe)
            found = self._backend.guard.call(pipe.execute)
        return [_usage(key, raw) for key, raw in zip(keys, found, strict=True)]

    def clear(self) -> None:
        """Forget every account."""
        self._backend.delete_matching("account:*", "account-*")
        self._redis.delete(self._index)


def _usage(key: str, raw: list[Any]) -> Usage:
    topped_up, spent, held, count, oldest = raw
    floats = (round_credits(float(topped_up)), round_credits(float(spent)), round_credits(float(held)))
    return Usage(key, *floats, int(count), float(oldest) if oldest is not None else None)

"""Jobs as state: what was asked, when, and how it ends; the status is derived from the clock."""

from __future__ import annotations

import os
import random
from enum import StrEnum
from typing import Any

import msgspec

from contracts import ModelSpec
from contracts.responses import WAITING_STATES

# Sums of decimal seconds round at Unix-time magnitudes (an ulp is ~2e-7 s); this slack makes
# advancing the clock by exactly a job's remaining duration reach the next state.
TIME_SLACK_SECONDS = 1e-6


class State(StrEnum):
    """The documented states of a v2 request, each named as it is sent (the contract's STATES; a test checks)."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


# The states of a job still waiting for its end, as the contract names them.
WAITING = frozenset(State(name) for name in WAITING_STATES)
# The members as plain names: reading one through the class costs more, on every poll.
_QUEUED, _PROCESSING, _COMPLETED, _FAILED = State.QUEUED, State.PROCESSING, State.COMPLETED, State.FAILED


class Job(msgspec.Struct, gc=False):
    """One accepted request; its timeline and ending are fixed when it is accepted.

    A msgspec struct, built in C and never tracked by the garbage collector (`gc=False`: it holds
    no reference back to itself): every job lives for the result retention, and tracked ones made
    the full collections a growing store sets off walk every job kept (docs/benchmarks.md).
    """

    request_id: str
    model: str
    params: dict[str, Any]
    api_key: str
    submitted_at: float
    queue_seconds: float
    processing_seconds: float
    seed: int
    # None: the job completes; text: the job ends FAILED with this error.
    error: str | None = None
    sync: bool = False
    # SHA-256 of the input image read at submission; None when the test card stands in for it.
    image_digest: str | None = None

    @property
    def started_at(self) -> float:
        """When a worker picks the job up."""
        return self.submitted_at + self.queue_seconds

    @property
    def finished_at(self) -> float:
        """When the job reaches COMPLETED or FAILED."""
        # `started_at` spelled out (the same sum, in the same order): read on every submit, twice.
        return self.submitted_at + self.queue_seconds + self.processing_seconds

    def ended_by(self, now: float) -> bool:
        """Tell whether the job reached COMPLETED or FAILED by simulated time `now` (within the slack)."""
        # `finished_at` spelled out: this runs on every poll, and properties cost a call each.
        return now + TIME_SLACK_SECONDS >= self.submitted_at + self.queue_seconds + self.processing_seconds

    def state_at(self, now: float) -> State:
        """Derive the job's state at simulated time `now`."""
        # Still queued is tested first: most polls find a job waiting, and then need no other test
        # (a job that has not started has not ended: processing takes 0 seconds or more).
        if now + TIME_SLACK_SECONDS < self.submitted_at + self.queue_seconds:
            return _QUEUED
        if self.ended_by(now):
            return _COMPLETED if self.error is None else _FAILED
        return _PROCESSING


# The version (4) and variant (RFC 4122) bits of a uuid4: the others are kept, these set.
_UUID4_KEEP = ~(0xF000 << 64 | 0xC000 << 48)
_UUID4_SET = 0x4000 << 64 | 0x8000 << 48
# A generator of the ids' own: tests seed the global one (Hypothesis does for every example), and
# ids following it would repeat, a second job taking the first one's id. Seeded from the system's
# entropy, again in a forked child.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_random_bits = _ids.getrandbits


def new_request_id() -> str:
    """Return a fresh request id, a uuid4 as the real service uses."""
    # What str(uuid.uuid4()) returns, without a UUID object or a system call (ids need to be unique,
    # not secret): a fifth of uuid4's cost on every submit (bytes.hex writes the digits faster
    # than formatting the integer).
    text = (_random_bits(128) & _UUID4_KEEP | _UUID4_SET).to_bytes(16).hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def resolve_seed(spec: ModelSpec, seed: int) -> int:
    """Return the seed a job runs with: -1 asks for a random one within the documented range."""
    if seed != -1:
        return seed
    param = next((param for param in spec.params if param.name == "seed"), None)
    upper = int(param.maximum) if param is not None and param.maximum is not None else 2**32 - 1
    return random.randint(0, upper)

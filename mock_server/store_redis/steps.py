"""A request's step run on the event loop, its Redis round trips awaited there: no thread hand-off.

A step is the service's synchronous code for one request. `run` starts it in a greenlet of its
own on the event loop's thread. When the step needs Redis, the store writes the request's batch
to the loop's connection (`loop_connection`) and calls `wait` with the answer's future: the
greenlet switches back to the request's task, which awaits the future while the loop serves other
requests, then switches into the step again with the answers. This is how SQLAlchemy's asyncio
extension runs its synchronous core. The store code stays one synchronous path, and a worker
spends no thread hand-off or GIL passing on a request (docs/benchmarks.md, "Redis: where a cycle
goes").

Calls the loop's connection does not carry (redis-py's client: admin listings, a script's first
load, the change watch's checks) block; inside a step they run on a thread (`blocking`), so a
stalled Redis never holds the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple, cast

import greenlet  # type: ignore[import-untyped]  # greenlet ships no types

Result = TypeVar("Result")
Args = TypeVarTuple("Args")


class _Step(greenlet.greenlet):  # type: ignore[misc]  # an untyped base
    """A request's step: a greenlet whose waits its parent (the request's task) awaits."""


async def run(work: Callable[[*Args], Result], *args: *Args) -> Result:
    """The result of `work(*args)`, run on the event loop; each `wait` inside it is awaited here.

    The step runs in a copy of the caller's context, as on a thread: it sees the request's Redis
    session. Cancelled while it waits, the step is still run to its end (its batch was sent; what
    it stores and undoes must stay consistent, as on a thread), and then the cancellation is raised.
    """
    step = _Step(work)
    step.gr_context = contextvars.copy_context()
    waited: Any = step.switch(*args)
    cancelled: asyncio.CancelledError | None = None
    while not step.dead:
        pending = asyncio.ensure_future(waited)
        try:
            # Shielded: cancelling the task leaves the wait (a round trip under way) to end.
            value = await asyncio.shield(pending)
        except asyncio.CancelledError as error:
            if pending.cancelled():  # the wait itself was cancelled: the step meets it
                waited = step.throw(error)
            else:
                cancelled, waited = error, pending  # the task was: the step goes on to its end
            continue
        except BaseException as error:  # an outage or a timeout: raised inside the step, where the store handles it
            waited = step.throw(error)
        else:
            waited = step.switch(value)
    if cancelled is not None:
        raise cancelled
    return cast(Result, waited)


def in_step() -> bool:
    """Tell whether the caller runs inside a step (`run`), where it may `wait`."""
    return isinstance(greenlet.getcurrent(), _Step)


def wait(awaitable: Awaitable[Result]) -> Result:
    """Inside a step, the result of `awaitable`, awaited by the step's task while the loop serves others."""
    step = greenlet.getcurrent()
    if not isinstance(step, _Step):
        raise RuntimeError("wait() is called inside a step only (steps.run)")
    parent = step.parent
    assert parent is not None  # a step's parent is the task that runs it
    return cast(Result, parent.switch(awaitable))


def blocking(function: Callable[..., Result], *args: Any, **options: Any) -> Result:
    """`function(*args, **options)`, which may block on the network: on a thread inside a step, else right here."""
    if not in_step():
        return function(*args, **options)
    call = functools.partial(contextvars.copy_context().run, function, *args, **options)
    return wait(asyncio.get_running_loop().run_in_executor(None, call))

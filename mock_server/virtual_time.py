"""Virtual time for clients: their sleeps advance the fake's clock instead of waiting."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Any
from unittest import mock as patching  # `mock` names the fake in this package

import anyio

from mock_server.clock import Clock

# The official SDK polls with `time.sleep` and checks its deadline with `time.monotonic` in this
# module (segmind 1.3.0 `AsyncJob.wait`, which `run()` calls with a fixed 1 s interval).
SDK_MODULES: tuple[str, ...] = ("segmind.v2",)

_real_asyncio_sleep = asyncio.sleep
_real_anyio_sleep = anyio.sleep


class VirtualTime:
    """A client's view of time: sleeping advances the fake's clock, and `monotonic` counts what was slept."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slept = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        """Advance the fake's clock by `seconds` instead of waiting (stands in for `time.sleep`)."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        with self._lock:
            self.slept += seconds
        self.clock.advance(seconds)

    def monotonic(self) -> float:
        """The real monotonic clock plus every second slept virtually, so deadlines pass (`time.monotonic`)."""
        return time.monotonic() + self.slept

    async def asyncio_sleep(self, delay: float, result: Any = None) -> Any:
        """Advance the fake's clock by `delay`, still yielding to the event loop (`asyncio.sleep`)."""
        self.sleep(delay)
        await _real_asyncio_sleep(0)
        return result

    async def anyio_sleep(self, delay: float) -> None:
        """Advance the fake's clock by `delay`, still yielding to the event loop (`anyio.sleep`)."""
        self.sleep(delay)
        await _real_anyio_sleep(0)

    def stand_ins(self) -> list[tuple[Any, Any]]:
        """Pairs of (real object, stand-in): the functions, and views of the modules that hold them."""
        return [
            (time.sleep, self.sleep),
            (time.monotonic, self.monotonic),
            (asyncio.sleep, self.asyncio_sleep),
            (anyio.sleep, self.anyio_sleep),
            (time, ModuleView(time, sleep=self.sleep, monotonic=self.monotonic)),
            (asyncio, ModuleView(asyncio, sleep=self.asyncio_sleep)),
            (anyio, ModuleView(anyio, sleep=self.anyio_sleep)),
        ]


class ModuleView:
    """A module with a few functions replaced; everything else is read from the real module."""

    def __init__(self, module: ModuleType, **replacements: Any) -> None:
        self._module = module
        self.__dict__.update(replacements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def __repr__(self) -> str:
        return f"<virtual-time view of {self._module.__name__}>"


@contextmanager
def virtual_time(clock: Clock, modules: Iterable[str] = SDK_MODULES) -> Iterator[VirtualTime]:
    """Within the block, sleeps in `modules` advance `clock` instead of waiting.

    Only the named modules' own globals are patched: a `time`, `asyncio` or `anyio` module they
    imported, or `sleep`/`monotonic` imported from them. The rest of the process keeps real time.
    """
    clock_view = VirtualTime(clock)
    stand_ins = clock_view.stand_ins()
    with ExitStack() as patches:
        for module in _modules(modules):
            for name, value in list(vars(module).items()):
                for real, stand_in in stand_ins:
                    if value is real:
                        patches.enter_context(patching.patch.object(module, name, stand_in))
        yield clock_view


def _modules(names: Iterable[str]) -> Iterator[ModuleType]:
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            # The official SDK is optional: without it there is nothing of it to patch.
            if name in SDK_MODULES:
                continue
            raise
        yield module

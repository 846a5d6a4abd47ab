"""What every test module shares: the key the tests' clients send, the host the fake stands in for, memory kept."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from hypothesis import settings

from contracts.openapi import LIVE_URL
from mock_server.defaults import FAKE_API_KEY

API_KEY = FAKE_API_KEY
SEGMIND = LIVE_URL
# Why the browser tests skip: the `browser` fixture skips each of them, so the summary counts them all.
# Hypothesis' own default, the `suite` profile's (tests/conftest.py): `examples(n)` is n under it.
FULL_EXAMPLES = 100
NO_CHROMIUM = "browser tests skipped: Debian's chromium is not on the PATH (apt-get install chromium)"


def examples(count: int) -> int:
    """A property test's example count: `count` in the full suite, a tenth under `--hypothesis-profile inner`."""
    return max(1, count * settings.default.max_examples // FULL_EXAMPLES)


def bytes_kept(work: Callable[[], object]) -> int:
    """The bytes of memory still allocated after `work()` that were not before it (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

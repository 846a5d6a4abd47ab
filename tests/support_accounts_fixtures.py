"""Fixtures of the accounts and network-fault tests: the fake with a config of keys, in-process and live.

Test modules load them with `pytest_plugins = ("tests.support_accounts_fixtures",)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from segmind import SegmindClient

from mock_server import SegmindMock, Settings
from mock_server.transport import PortalTransport
from tests.conftest import SEGMIND
from tests.support_accounts import CONFIG, RICH


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


@pytest.fixture
def live(server: tuple[SegmindMock, str]) -> Iterator[tuple[SegmindMock, httpx.Client]]:
    """The conftest's real server (one per store), reset, and an httpx client on a real socket to it."""
    mock, url = server
    with httpx.Client(base_url=url, headers={"x-api-key": RICH}) as http:
        yield mock, http

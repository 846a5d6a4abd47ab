"""The type behind the `make_fake` fixture (tests/conftest.py): fakes with given settings, their clients and servers."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import httpx
from segmind import SegmindClient
from starlette.types import ASGIApp

from mock_server import SegmindMock, Settings
from mock_server.replay import Replay
from mock_server.server import Limits, ServerThread
from mock_server.transport import PortalTransport
from tests.support import API_KEY, SEGMIND

# What a test serves: a fake, or an ASGI app made from one (a deliberately broken variant, say).
Served = SegmindMock | ASGIApp


class FakeFactory:
    """Build fakes with given settings, and in-process clients, real servers and SDK clients of them.

    Everything it makes is closed when the test ends (the `make_fake` fixture), servers last.
    """

    def __init__(self, exits: ExitStack) -> None:
        self._exits = exits
        self._transports: dict[int, PortalTransport] = {}

    def __call__(self, replay: Replay | None = None, **settings: Any) -> SegmindMock:
        """A fresh fake with these settings (and recordings to replay); the rest are `Settings`' own defaults.

        The clock runs unless speed=0.
        """
        return SegmindMock(Settings(**settings), replay)

    def transport(self, served: Served) -> PortalTransport:
        """The in-process transport serving `served`: one per fake or app, shared by its clients."""
        app = _app(served)
        if id(app) not in self._transports:
            self._transports[id(app)] = self._exits.enter_context(PortalTransport(app))
        return self._transports[id(app)]

    def http(self, served: Served | str, api_key: str | None = API_KEY, **options: Any) -> httpx.Client:
        """An httpx client sending `api_key` (none if None): to a base URL, else in-process as api.segmind.com."""
        headers = {} if api_key is None else {"x-api-key": api_key}
        if isinstance(served, str):
            client = httpx.Client(base_url=served, headers=headers, **options)
        else:
            client = httpx.Client(transport=self.transport(served), base_url=SEGMIND, headers=headers, **options)
        return self._exits.enter_context(client)

    def sdk(self, served: Served | str, api_key: str = API_KEY) -> SegmindClient:
        """The official SDK with `api_key`: of a base URL, else its own httpx client served in-process."""
        base_url = served if isinstance(served, str) else SEGMIND
        client = SegmindClient(api_key=api_key, base_url=f"{base_url}/v1")
        if not isinstance(served, str):
            client._client._transport = self.transport(served)
        self._exits.callback(client._client.close)
        return client

    def serve(self, served: Served, host: str = "127.0.0.1", limits: Limits | None = None) -> str:
        """Serve `served` on a real uvicorn server and return its base URL; stopped after the test."""
        return self._exits.enter_context(ServerThread(_app(served), host=host, limits=limits))


def _app(served: Served) -> ASGIApp:
    return served.app if isinstance(served, SegmindMock) else served

"""Offline mode: httpx requests to Segmind's host are served in-process by the fake; nothing else goes out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpx
import respx
from respx.models import AllMockedAssertionError
from starlette.types import ASGIApp

from contracts.openapi import LIVE_URL
from mock_server.defaults import store_from_environment
from mock_server.mock import SegmindMock
from mock_server.replay import Replay
from mock_server.service import Settings
from mock_server.transport import PortalTransport
from mock_server.virtual_time import SDK_MODULES, virtual_time

# The real service's address, which the fake stands in for.
SEGMIND_URL = LIVE_URL


class FakeHostRouter(respx.MockRouter):
    """A respx router that serves one origin with the fake's app, sync and async, and refuses the rest.

    respx patches httpcore, under every httpx client that would open a connection (including the
    one the official SDK builds itself). Sync requests go to a `PortalTransport`, async ones to
    `httpx.ASGITransport` on the caller's own event loop. Any other request raises respx's
    `AllMockedAssertionError` unless another active respx router takes it.
    """

    def __init__(self, sync: httpx.BaseTransport, asynchronous: httpx.AsyncBaseTransport, url: str) -> None:
        super().__init__(assert_all_called=False, assert_all_mocked=True)
        self.origin = httpx.URL(url)
        self._sync = sync
        self._async = asynchronous

    def serves(self, request: httpx.Request) -> bool:
        """Tell whether `request` is for the faked origin."""
        url = request.url
        return (url.scheme, url.host, url.port) == (self.origin.scheme, self.origin.host, self.origin.port)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Serve a sync client's request."""
        if not self.serves(request):
            raise self._refusal(request)
        return self._sync.handle_request(request)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        """Serve an async client's request on its own event loop."""
        if not self.serves(request):
            raise self._refusal(request)
        response = await self._async.handle_async_request(request)
        # respx hands the body on to httpcore: give it one that reads in any mode.
        return httpx.Response(response.status_code, headers=response.headers, content=await response.aread())

    def _refusal(self, request: httpx.Request) -> AllMockedAssertionError:
        return AllMockedAssertionError(
            f"segmind-mock is offline: {request.method} {request.url} was not sent; "
            f"only {self.origin} is served (by the fake). Mock other hosts with respx."
        )


@contextmanager
def route_to_app(app: ASGIApp, url: str = SEGMIND_URL) -> Iterator[FakeHostRouter]:
    """Within the block, every httpx request to `url` is served by `app`; any other one fails."""
    asynchronous = httpx.ASGITransport(app, raise_app_exceptions=False)
    with PortalTransport(app) as sync:
        router = FakeHostRouter(sync, asynchronous, url)
        with router:
            yield router


def default_settings(virtual: bool = True) -> Settings:
    """Settings under test: frozen and virtual with virtual time, else real time; on `$SEGMIND_MOCK_STORE`."""
    store = store_from_environment()
    return Settings(speed=0, virtual=True, store=store) if virtual else Settings(store=store)


@contextmanager
def segmind_offline(
    settings: Settings | None = None,
    *,
    url: str = SEGMIND_URL,
    virtual: bool = True,
    virtual_time_modules: Iterable[str] = SDK_MODULES,
    replay: Replay | None = None,
) -> Iterator[SegmindMock]:
    """Serve Segmind's API in-process with a fresh fake for the block: `with segmind_offline() as mock:`.

    Every httpx request to `url` reaches the fake, any other request fails. With `virtual` (the
    default) the fake's clock stands still and waits jump, and sleeps in `virtual_time_modules`
    (the official SDK's polling) advance it instead of waiting. `replay` serves recorded flows
    (docs/recording.md).
    """
    mock = SegmindMock(settings or default_settings(virtual), replay)
    with route_to_app(mock.app, url), virtual_time(mock.clock, virtual_time_modules if virtual else ()):
        yield mock

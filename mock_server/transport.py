"""In-process transports: httpx clients, sync or async, served by the fake's ASGI app without a socket."""

from __future__ import annotations

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp

from mock_server.faults import ConnectionDropped


class PortalTransport(httpx.BaseTransport):
    """A sync httpx transport that runs the ASGI app on one background event loop.

    httpx has no sync ASGI transport; this one hands each request to a loop in another thread
    (anyio's blocking portal), so sync clients such as the official SDK's reach the app in-process.
    """

    def __init__(self, app: ASGIApp) -> None:
        # A real server answers 500 rather than raising into the client; so does this transport.
        self._asgi = httpx.ASGITransport(app, raise_app_exceptions=False)
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal | None = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Serve one request through the app and return its response, fully read."""
        if self._portal is None:
            raise RuntimeError("the in-process transport is closed")
        body = request.read()
        status, headers, content = self._portal.call(
            self._serve, request.method, str(request.url), request.headers, body
        )
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _serve(
        self, method: str, url: str, headers: httpx.Headers, body: bytes
    ) -> tuple[int, httpx.Headers, bytes]:
        request = httpx.Request(method, url, headers=headers, content=body)
        try:
            response = await self._asgi.handle_async_request(request)
        except ConnectionDropped as dropped:
            # A network fault: what a client on a real socket would see (caught here, on the loop,
            # since a BaseException escaping into the portal would stop it).
            raise httpx.RemoteProtocolError(str(dropped), request=request) from None
        return response.status_code, response.headers, await response.aread()

    def close(self) -> None:
        """Stop the background event loop."""
        if self._portal is not None:
            self._portal = None
            self._portal_cm.__exit__(None, None, None)

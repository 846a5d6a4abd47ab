"""The app factory: Segmind's routes and the admin API, with every error in the JSON envelope."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_server import admin, routes, wire
from mock_server.faults import DropMiddleware
from mock_server.journal import JournalMiddleware

if TYPE_CHECKING:
    from mock_server.mock import SegmindMock


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, wire.ApiError)
    if exc.delay_seconds:  # a slow gateway: real seconds, like every network delay (see faults.py)
        await anyio.sleep(exc.delay_seconds)
    return JSONResponse(wire.error_body(exc.message), exc.status, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own 404 and 405, in Segmind's envelope instead of plain text.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"No route for {request.method} {request.url.path}: see the README for the fake's routes"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
        allow = (exc.headers or {}).get("Allow")
        message += f"; use {allow}" if allow else ""
    else:
        message = str(exc.detail)
    return JSONResponse(wire.error_body(message), exc.status_code, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Never expected: a 500 without a scenario asking for it is a bug in the fake.
    return JSONResponse(wire.error_body(f"The fake failed unexpectedly: {type(exc).__name__}: {exc}"), 500)


def create_app(mock: SegmindMock) -> Starlette:
    """Build the ASGI app that serves `mock`."""
    app = Starlette(
        routes=[*routes.ROUTES, *admin.ROUTES],
        # DropMiddleware first: it needs the server's own `receive` to close a connection.
        middleware=[
            Middleware(DropMiddleware),
            *mock.backend.middleware(mock.clock),
            Middleware(JournalMiddleware, journal=mock.journal, clock=mock.clock),
        ],
        exception_handlers={wire.ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
    )
    # A trailing slash is a 404 naming the route, not a 307: a redirected POST confuses clients.
    app.router.redirect_slashes = False
    app.state.mock = mock
    return app

"""The app factory: Segmind's routes on a short, journaled path; the fake's own routes through Starlette."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from mock_server import admin, faults, wire
from mock_server.recording import Recording, Unrecorded
from mock_server.responses import JSONResponse
from mock_server.routes import SegmindRoutes
from mock_server.service import Service
from mock_server.storage import StoreUnavailable

Endpoint = Callable[[Request], Awaitable[Response]]

# The fake's own routes (admin API, output files) live here; they are not journaled.
OWN_PREFIX = "/_mock/"


class App:
    """The fake's ASGI app.

    Segmind's routes are what clients poll in loops and load-test, so they skip Starlette's
    middleware stack: one method matches the route (with Starlette's `Route` objects), serves it,
    turns errors into the JSON envelope, applies a scenario's network fault and journals the
    exchange. The routes under `/_mock/` are an ordinary Starlette app.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.routes: list[Route] = SegmindRoutes(service).routes
        self.own = Starlette(
            routes=admin.ROUTES,
            middleware=[Middleware(admin.AdminToken, service=service)],
            exception_handlers={wire.ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        )
        # A trailing slash is a 404 naming the route, not a 307: a redirected POST confuses clients.
        self.own.router.redirect_slashes = False
        self.own.state.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: Segmind's routes here, the fake's own (and lifespan) in Starlette."""
        if scope["type"] != "http":
            await self.own(scope, receive, send)
            return
        with contextlib.ExitStack() as request:
            try:
                request.enter_context(self.service.clock.pinned())
            except StoreUnavailable as error:  # nothing was sent yet: the answer is the 503
                await (await _error_response(error))(scope, receive, send)
                return
            if scope["path"].startswith(OWN_PREFIX):
                await self.own(scope, receive, send)
            else:
                await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        journal = service.journal
        # A journal of size 0 (`--journal-size 0`) keeps nothing, so nothing is recorded.
        exchange = (
            Recording(scope, receive, send, service.record, service.clock.now)
            if journal.size
            else Unrecorded(receive, send)
        )
        try:
            try:
                response = await self._respond(scope, exchange.receive)
            except ClientDisconnect:
                return  # the client left while sending its body: nobody is left to answer
            except Exception as error:
                # Never expected: a 500 without a scenario asking for it is a bug in the fake.
                # Answer it in the envelope, then let the server log it.
                await _server_error_response(error)(scope, exchange.receive, exchange.send)
                raise
            try:
                await response(scope, exchange.receive, exchange.send)
            except faults.ConnectionDropped as dropped:
                exchange.finish()  # before the client can see its connection close
                await faults.drop_connection(receive, dropped)
        finally:
            exchange.finish()

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        try:
            endpoint = self._match(scope)
            return await endpoint(Request(scope, receive))
        except wire.ApiError as error:
            return await _error_response(error)

    def _match(self, scope: Scope) -> Endpoint:
        """Find the endpoint for the request, with its path parameters set, or raise its 404 or 405."""
        allowed: set[str] = set()
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                return route.endpoint
            if match is Match.PARTIAL:
                allowed |= route.methods or set()
        if allowed:
            raise wire.method_not_allowed(scope["method"], scope["path"], sorted(allowed))
        raise wire.no_route(scope["method"], scope["path"])


async def _error_response(error: wire.ApiError) -> Response:
    if error.delay_seconds:  # a slow gateway: real seconds, like every network delay (see faults.py)
        await anyio.sleep(error.delay_seconds)
    return JSONResponse(wire.error_body(error.message), error.status, error.headers)


def _server_error_response(error: Exception) -> Response:
    return JSONResponse(wire.error_body(f"The fake failed unexpectedly: {type(error).__name__}: {error}"), 500)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, wire.ApiError)
    return await _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own 404 and 405, in Segmind's envelope instead of plain text.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = wire.no_route(request.method, request.url.path)
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = wire.method_not_allowed(request.method, request.url.path, allow.split(", ") if allow else [])
    else:
        error = wire.ApiError(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    return await _error_response(error)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _server_error_response(exc)

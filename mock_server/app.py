"""The app: Segmind's routes on a raw ASGI path, journaled; the fake's own routes through Starlette."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mock_server import admin, api_errors, faults
from mock_server.answers import error_answer, send_answer, server_error
from mock_server.journaling import entry
from mock_server.router import Router
from mock_server.routes import Reply, Route, SegmindRequest, SegmindRoutes
from mock_server.service import Service
from mock_server.storage import StoreUnavailable

# The fake's own routes (admin API, output files) live here; they are not journaled.
OWN_PREFIX = "/_mock/"


class App:
    """The fake's ASGI app.

    Segmind's routes are what clients poll in loops and load-test, so no framework serves them.
    A request to one is matched by splitting its path and read (`Route.read`); then one step
    against the service and its store (`_exchange`: the route's answer, an error in the JSON
    envelope instead, journaled, and what it names stored) runs in place for the memory store, as
    a step awaiting its round trip for a shared one (`pools.StoreCalls`), on the worker pools for
    a submission reading an image;
    then the answer is sent, or delayed or broken as a scenario rule asks (`faults`). The routes
    under `/_mock/` are an ordinary Starlette app.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.router: Router[Route] = Router(SegmindRoutes(service).routes)
        self.own = Starlette(
            routes=admin.ROUTES,
            middleware=[Middleware(admin.SameOrigin, service=service), Middleware(admin.AdminToken, service=service)],
            exception_handlers={api_errors.ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        )
        # A trailing slash is a 404 naming the route, not a 307: a redirected POST confuses clients.
        self.own.router.redirect_slashes = False
        self.own.state.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: Segmind's routes here, the fake's own (and lifespan) in Starlette."""
        if scope["type"] != "http":
            await self.own(scope, receive, send)
            return
        own = scope["path"].startswith(OWN_PREFIX)
        if not own and not self.service.shared:
            await self._serve(scope, receive, send)  # a clock in the process has nothing to pin
            return
        with self.service.pinned():
            if own:
                await self.own(scope, receive, send)
            else:
                await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = SegmindRequest(scope, receive)
        service = self.service
        try:
            route, request.param, request.prefix = self.router.match(scope["method"], scope["path"])
            read = None if route.read is None else await route.read(request)
            if service.store_calls.inline and request.image is None:
                answer, shape = self._exchange(request, route.answer, read)
            else:
                answer, shape = await service.run_step(self._exchange, request, route.answer, read, image=request.image)
        except api_errors.ApiError as error:
            # Refused before its step (no route, 401, 404, 413, 400): its envelope is the step's answer.
            answer, shape = await service.store_calls(self._exchange, request, refused, error)
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            await self._journal_delivered(request, None, [], b"")
            return
        except Exception as error:
            # Never expected: a 500 without a scenario asking for it is a bug in the fake.
            # Answer it in the envelope, then let the server log it.
            answer, _ = await service.store_calls(self._exchange, request, refused, server_error(error))
            await send_answer(send, answer)
            raise
        if shape is None:
            await send_answer(send, answer)
            return
        delivery = await faults.delivered(answer, shape)
        await self._journal_delivered(request, delivery.status, delivery.headers, delivery.body)
        await faults.send_delivery(send, receive, delivery)

    def _exchange(self, request: SegmindRequest, step: Step, read: object) -> Reply:
        """A request's one step: the service's answer, journaled, and what it names stored; the 503 if it cannot be.

        Journaled before the answer goes out: a client that has its answer can read the journal at
        once. An answer a scenario delays or breaks is journaled as it is delivered
        (`_journal_delivered`), but the job it names is stored now, however late its answer.
        """
        try:
            answer, shape = step(request, read)
        except api_errors.ApiError as error:
            answer, shape = refused(request, error)
        service = self.service
        shaped = shape is not None and faults.shapes(shape)
        try:
            if shaped or not service.journaling:
                service.finish(None)
            else:
                service.finish(entry(request.scope, request.key, request.body, *answer))
        except StoreUnavailable as error:  # what the answer names (a new job) was not stored: a 503 instead
            return error_answer(error), None
        return answer, (shape if shaped else None)

    async def _journal_delivered(
        self, request: SegmindRequest, status: int | None, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Journal what reached the client (`status` None: nothing); a store that cannot take it loses it alone.

        The answer is on its way by then: it is not turned into a 503.
        """
        service = self.service
        try:
            await service.store_calls(
                service.finish,
                entry(request.scope, request.key, request.body, status, headers, body) if service.journaling else None,
            )
        except StoreUnavailable:
            service.count_dropped(1)


# A route's step (`Route.answer`), or `refused`: the answer to what was read of a request.
Step = Callable[[SegmindRequest, Any], Reply]


def refused(request: SegmindRequest, error: api_errors.ApiError) -> Reply:
    """The envelope of an error, as a step's answer; one standing for a slow gateway is held back its delay."""
    return error_answer(error), (faults.GatewayDelay(error.delay_seconds) if error.delay_seconds else None)


def _error_response(error: api_errors.ApiError) -> Response:
    # The fake's own routes answer errors as Segmind's do (no scenario delays them), as a Starlette Response.
    status, headers, body = error_answer(error)
    response = Response(body, status)
    response.raw_headers = headers
    return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, api_errors.ApiError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own 404 and 405, in Segmind's envelope instead of plain text.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = api_errors.no_route(request.method, request.url.path)
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = api_errors.method_not_allowed(request.method, request.url.path, allow.split(", ") if allow else [])
    else:
        error = api_errors.ApiError(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    return _error_response(error)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error_response(server_error(exc))

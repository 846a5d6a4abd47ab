"""The app: Segmind's routes on a raw ASGI path, journaled; the fake's own routes through Starlette."""

from __future__ import annotations

import functools

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mock_server import admin, faults, wire
from mock_server.recording import entry
from mock_server.responses import Answer, error_answer, header, send_answer, server_error
from mock_server.router import Router
from mock_server.routes import Call, Handler, Reply, SegmindRoutes
from mock_server.scenarios import Rule
from mock_server.service import Service
from mock_server.storage import StoreUnavailable

# The fake's own routes (admin API, output files) live here; they are not journaled.
OWN_PREFIX = "/_mock/"


class App:
    """The fake's ASGI app.

    Segmind's routes are what clients poll in loops and load-test, so no framework serves them:
    one method matches the route by splitting the path, serves it, turns errors into the JSON
    envelope, applies a scenario's network fault, journals the exchange and sends the answer.
    The routes under `/_mock/` are an ordinary Starlette app.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.router: Router[Handler] = Router(SegmindRoutes(service, self._settle).routes)
        self.own = Starlette(
            routes=admin.ROUTES,
            middleware=[Middleware(admin.SameOrigin, service=service), Middleware(admin.AdminToken, service=service)],
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
        own = scope["path"].startswith(OWN_PREFIX)
        if not own and not self.service.backend.shared:
            await self._serve(scope, receive, send)  # a clock in the process has nothing to pin
            return
        with self.service.clock.pinned():
            if own:
                await self.own(scope, receive, send)
            else:
                await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = Call(scope, receive)
        rule = None
        try:
            handler, call.param, call.prefix = self.router.match(scope["method"], scope["path"])
            answer, rule = await handler(call)
        except wire.ApiError as error:
            answer = await _gateway_answer(error)
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            await self._journal_quietly(call, None, b"", b"")
            return
        except Exception as error:
            # Never expected: a 500 without a scenario asking for it is a bug in the fake.
            # Answer it in the envelope, then let the server log it.
            settled, _ = await self.service.store_calls(self._settle, call, error_answer(server_error(error)), None)
            await send_answer(send, settled)
            raise
        if not call.settled:  # a handler settles its answer itself where that saves a trip to the store's threads
            answer, rule = await self.service.store_calls(self._settle, call, answer, rule)
        if rule is not None and faults.shapes(rule):
            try:
                await faults.deliver(answer, rule, send, functools.partial(self._journal_quietly, call))
            except faults.ConnectionDropped as dropped:
                await faults.drop_connection(receive, dropped)
            return
        await send_answer(send, answer)

    def _settle(self, call: Call, answer: Answer, rule: Rule | None) -> Reply:
        """Store what `answer` names and journal it, before it goes; the 503 instead if the store cannot take it.

        Journaled before the answer goes out: a client that has its answer can read the journal at
        once. An answer a scenario delays or breaks is journaled as it is delivered, but the job it
        names is stored now, however late its answer.
        """
        call.settled = True
        try:
            if rule is not None and faults.shapes(rule):
                self.service.flush()
            else:
                self._journal(call, answer[0], header(answer[1], b"content-type"), answer[2])
        except StoreUnavailable as error:  # what the answer names (a new job) was not stored: a 503 instead
            return error_answer(error), None
        return answer, rule

    def _journal(self, call: Call, status: int | None, response_type: bytes, response: bytes) -> None:
        """Journal what reaches the client, just before it does; then send what a shared store queued."""
        service = self.service
        if service.journal.size:  # `--journal-size 0` keeps nothing, so nothing is recorded
            service.record(entry, call.scope, call.key, call.body, (status, response_type, response))
        service.flush()  # the job the answer names, and this entry, are stored before it goes

    async def _journal_quietly(self, call: Call, status: int | None, response_type: bytes, response: bytes) -> None:
        # Once the answer is on its way, a store that cannot take the entry loses the entry only.
        try:
            await self.service.store_calls(self._journal, call, status, response_type, response)
        except StoreUnavailable:
            self.service.count_dropped(1)


async def _gateway_answer(error: wire.ApiError) -> Answer:
    """The envelope of `error`, after its delay if it stands for a slow gateway."""
    if error.delay_seconds:  # real seconds, like every network delay (see faults.py)
        await anyio.sleep(error.delay_seconds)
    return error_answer(error)


async def _error_response(error: wire.ApiError) -> Response:
    # The fake's own routes answer errors as Segmind's do, as a Starlette Response.
    status, headers, body = await _gateway_answer(error)
    response = Response(body, status)
    response.raw_headers = headers
    return response


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
    return await _error_response(server_error(exc))

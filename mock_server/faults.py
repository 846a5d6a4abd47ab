"""Network faults: answers held back, cut short, garbled or never sent, as a scenario rule asks.

Delays are real seconds, not the fake's clock: they stand for the network, and only real time can
trip a client's read timeout. A dropped connection needs a real socket: under uvicorn the
connection is closed with nothing (or half a body) sent; in-process, `PortalTransport` raises the
`httpx.RemoteProtocolError` a client would see.
"""

from __future__ import annotations

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mock_server.scenarios import BROKEN_ANSWERS, Rule

# What httpcore says when a server closes the connection early; in-process clients see the same.
NO_RESPONSE = "Server disconnected without sending a response."
SHORT_BODY = "peer closed connection without sending complete message body (received {sent} bytes, expected {length})"


class ConnectionDropped(BaseException):
    """Raised inside the app to drop the client's connection.

    A BaseException, so that no `except Exception` on the way (Starlette's error handlers,
    httpx's ASGI transport) turns it into a 500.
    """


class FaultyResponse(Response):
    """A response that reaches the client as `rule` says: late, cut short, garbled or not at all."""

    def __init__(self, response: Response, rule: Rule) -> None:
        super().__init__(status_code=response.status_code)  # what it stands for; the answer is sent by __call__
        self.response = response
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the answer as the rule says: late, cut short, garbled or not at all."""
        if self.rule.delay_seconds:
            await anyio.sleep(self.rule.delay_seconds)
        if self.rule.outcome not in BROKEN_ANSWERS:
            await self.response(scope, receive, send)
            return
        if self.rule.outcome == "disconnect":
            raise ConnectionDropped(NO_RESPONSE)
        body = bytes(self.response.body)
        half = body[: len(body) // 2]
        if self.rule.outcome == "truncated":
            await send(
                {
                    "type": "http.response.start",
                    "status": self.response.status_code,
                    "headers": self.response.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": half, "more_body": True})
            raise ConnectionDropped(SHORT_BODY.format(sent=len(half), length=len(body)))
        await Response(half, 200, media_type=self.response.media_type)(scope, receive, send)  # malformed


def respond(response: Response, rule: Rule | None) -> Response:
    """Return `response`, or a faulty version of it when `rule` delays or breaks the answer."""
    if rule is None or (rule.outcome not in BROKEN_ANSWERS and not rule.delay_seconds):
        return response
    return FaultyResponse(response, rule)


async def drop_connection(receive: Receive, dropped: ConnectionDropped) -> None:
    """Close the client's connection when served by uvicorn; elsewhere (in-process) raise `dropped` on.

    Under uvicorn the server's own `receive` is a method of the request's cycle, which holds the
    connection's transport. In-process, the signal carries on for `PortalTransport` to turn into
    httpx's error.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    close = getattr(transport, "close", None)
    if not callable(close):  # uvloop's transports are not asyncio's classes
        raise dropped
    close()  # flushes what was sent (a truncated body), then closes
    # Return once uvicorn has seen the connection go, so it neither logs nor answers a 500.
    while (await receive())["type"] != "http.disconnect":
        pass

"""Network faults: answers held back, cut short, garbled or never sent, as a scenario rule asks.

Delays are real seconds, not the fake's clock: they stand for the network, and only real time can
trip a client's read timeout. A dropped connection needs a real socket: under uvicorn the
connection is closed with nothing (or half a body) sent; in-process, `PortalTransport` raises the
`httpx.RemoteProtocolError` a client would see.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import anyio
from starlette.types import Receive, Send

from mock_server.answers import Answer, asgi_header, send_answer, with_length
from mock_server.scenarios import BROKEN_ANSWERS, Outcome

# What httpcore says when a server closes the connection early; in-process clients see the same.
NO_RESPONSE = "Server disconnected without sending a response."
SHORT_BODY = "peer closed connection without sending complete message body (received {sent} bytes, expected {length})"


class ConnectionDropped(BaseException):
    """Raised inside the app to drop the client's connection.

    A BaseException, so that no `except Exception` on the way (httpx's ASGI transport, the
    in-process PortalTransport) turns it into a 500.
    """


class Shape(Protocol):
    """How an answer goes out: after `delay_seconds` (real), broken as `outcome` says (a scenario `Rule`)."""

    @property
    def outcome(self) -> Outcome:
        """The rule's outcome: one of `BROKEN_ANSWERS` breaks the answer, any other leaves it whole."""

    @property
    def delay_seconds(self) -> float | None:
        """Real seconds to hold the answer back, if any."""


class GatewayDelay(NamedTuple):
    """An error envelope held back like a slow gateway's (an `http_error` rule's delay), then sent whole."""

    delay_seconds: float
    outcome: Outcome = "http_error"


class Delivery(NamedTuple):
    """What reaches the client of a shaped answer: what the journal shows, and what is sent."""

    status: int | None  # None: nothing is sent
    headers: list[tuple[bytes, bytes]]
    body: bytes
    dropped: str | None  # the connection is then dropped, and a client's HTTP library says this


def shapes(shape: Shape | None) -> bool:
    """Tell whether `shape` delays or breaks the answer on its way out."""
    return shape is not None and (shape.outcome in BROKEN_ANSWERS or bool(shape.delay_seconds))


async def delivered(answer: Answer, shape: Shape) -> Delivery:
    """What of `answer` reaches the client as `shape` says, after its delay: late, cut short, garbled or nothing."""
    if shape.delay_seconds:
        await anyio.sleep(shape.delay_seconds)
    status, headers, body = answer
    if shape.outcome == "disconnect":
        return Delivery(None, [], b"", NO_RESPONSE)
    half = body[: len(body) // 2]
    if shape.outcome == "truncated":
        # The head promises the whole body; half of it arrives.
        return Delivery(status, headers, half, SHORT_BODY.format(sent=len(half), length=len(body)))
    if shape.outcome == "malformed":  # half the body, sent whole as a 200
        content_type = asgi_header(headers, b"content-type")
        return Delivery(200, with_length(half, (b"content-type", content_type)), half, None)
    return Delivery(status, headers, body, None)


async def send_delivery(send: Send, receive: Receive, delivery: Delivery) -> None:
    """Send what `delivered` said reaches the client, then drop the connection if it says so."""
    status, headers, body, dropped = delivery
    if dropped is None:
        assert status is not None  # only a dropped connection sends nothing
        await send_answer(send, (status, headers, body))
        return
    if status is not None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await drop_connection(receive, ConnectionDropped(dropped))


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

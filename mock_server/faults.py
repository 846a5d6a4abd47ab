"""Network faults: answers held back, cut short, garbled or never sent, as a scenario rule asks.

Delays are real seconds, not the fake's clock: they stand for the network, and only real time can
trip a client's read timeout. A dropped connection needs a real socket: under uvicorn the
connection is closed with nothing (or half a body) sent; in-process, `PortalTransport` raises the
`httpx.RemoteProtocolError` a client would see.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from starlette.types import Receive, Send

from mock_server.responses import Answer, header, send_answer
from mock_server.scenarios import BROKEN_ANSWERS, Rule

# What httpcore says when a server closes the connection early; in-process clients see the same.
NO_RESPONSE = "Server disconnected without sending a response."
SHORT_BODY = "peer closed connection without sending complete message body (received {sent} bytes, expected {length})"

# Journals what reached the client: its status (None: nothing was sent), content type and body.
Journal = Callable[[int | None, bytes, bytes], Awaitable[None]]


class ConnectionDropped(BaseException):
    """Raised inside the app to drop the client's connection.

    A BaseException, so that no `except Exception` on the way (httpx's ASGI transport, the
    in-process PortalTransport) turns it into a 500.
    """


def shapes(rule: Rule | None) -> bool:
    """Tell whether `rule` delays or breaks the answer on its way out."""
    return rule is not None and (rule.outcome in BROKEN_ANSWERS or bool(rule.delay_seconds))


async def deliver(answer: Answer, rule: Rule, send: Send, journal: Journal) -> None:
    """Send `answer` as `rule` says: late, cut short, garbled or not at all; journal what the client got.

    Raises ConnectionDropped for an answer cut short or never sent.
    """
    if rule.delay_seconds:
        await anyio.sleep(rule.delay_seconds)
    status, headers, body = answer
    content_type = header(headers, b"content-type")
    if rule.outcome == "disconnect":
        await journal(None, b"", b"")
        raise ConnectionDropped(NO_RESPONSE)
    if rule.outcome in BROKEN_ANSWERS:
        half = body[: len(body) // 2]
        if rule.outcome == "truncated":
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": half, "more_body": True})
            await journal(status, content_type, half)
            raise ConnectionDropped(SHORT_BODY.format(sent=len(half), length=len(body)))
        # Malformed: half the body, sent whole as a 200.
        status, headers, body = 200, [(b"content-length", b"%d" % len(half)), (b"content-type", content_type)], half
    await journal(status, content_type, body)
    await send_answer(send, (status, headers, body))


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

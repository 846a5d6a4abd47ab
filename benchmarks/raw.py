"""The limit: a raw ASGI app on the fake's uvicorn stack, no framework at all.

It reads each request's body from `receive` and answers constant JSON bytes shaped and sized like
the fake's own answers (those of `benchmarks/bare.py`), with a pre-built header list. Nothing
that serves Segmind's routes on this server can do less per request, so the fake's throughput is
reported as a share of this one's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.types import Message, Receive, Scope, Send

from benchmarks.bare import STATUS_BODY, SUBMIT_BODY
from benchmarks.common import answer_help
from benchmarks.process import serve_app


def _answer(body: Mapping[str, object]) -> tuple[Message, Message]:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    return {"type": "http.response.start", "status": 200, "headers": headers}, {
        "type": "http.response.body",
        "body": data,
    }


SUBMIT = _answer(SUBMIT_BODY)
STATUS = _answer(STATUS_BODY)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the body of a POST and answer it as a submission; answer anything else as a status poll."""
    if scope["method"] == "POST":
        while (await receive()).get("more_body", False):
            pass
        start, body = SUBMIT
    else:
        start, body = STATUS
    await send(start)
    await send(body)


def main() -> None:
    """Serve the raw app on a free loopback port and print its URL."""
    serve_app("raw-asgi", app)


if __name__ == "__main__":
    answer_help(__doc__)
    main()

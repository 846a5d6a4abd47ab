"""The baseline: a bare Starlette app answering the fake's submit and status routes with constant JSON.

It runs on the same uvicorn stack as `segmind-mock serve` (`mock_server.server.config`), so the
ratio between the two measures only what the fake does per request. With `--read-body`, submit
first reads and parses its JSON body, the least any real submit route does: the floor for the fake.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_server import server, wire

REQUEST_ID = "00000000-0000-4000-8000-000000000000"
BASE = "http://127.0.0.1"
# Bodies shaped and sized like the fake's own answers, so both servers encode and send alike.
SUBMIT_BODY = {"request_id": REQUEST_ID, "status": "QUEUED", **wire.urls(BASE, REQUEST_ID)}
STATUS_BODY = {
    "status": "QUEUED",
    "request_id": REQUEST_ID,
    "status_url": SUBMIT_BODY["status_url"],
    "response_url": SUBMIT_BODY["response_url"],
    "metrics": {},
}


async def submit(request: Request) -> Response:
    """Answer a submission with a constant body."""
    return JSONResponse(SUBMIT_BODY)


async def submit_reading_body(request: Request) -> Response:
    """Read and parse the submission's body (straight from `receive`, as the fake does), then answer constantly."""
    json.loads((await request.receive())["body"])
    return JSONResponse(SUBMIT_BODY)


async def status(request: Request) -> Response:
    """Answer a status poll with a constant body."""
    return JSONResponse(STATUS_BODY)


def create_app(*, read_body: bool = False) -> Starlette:
    """The bare app; with `read_body`, its submit route reads and parses the body first."""
    return Starlette(
        routes=[
            Route("/v2/requests/{request_id}/status", status, methods=["GET"]),
            Route("/v2/{model}", submit_reading_body if read_body else submit, methods=["POST"]),
        ]
    )


def main() -> None:
    """Serve the bare app on a free loopback port and print its URL."""
    app = create_app(read_body="--read-body" in sys.argv[1:])
    sock = server.bind("127.0.0.1", 0)
    print(f"bare-starlette: serving on {server.url_of(sock)}", flush=True)
    uvicorn.Server(server.config(app)).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())

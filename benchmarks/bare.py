"""The baseline: a bare Starlette app answering the fake's submit and status routes with constant JSON.

It runs on the same uvicorn stack as `segmind-mock serve` (`mock_server.server.config`), so the
ratio between the two measures what Starlette's routing, `Request` and `Response` cost over the
raw ASGI limit (`benchmarks/raw.py`).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks.common import answer_help
from benchmarks.process import serve_app
from mock_server import wire

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


async def status(request: Request) -> Response:
    """Answer a status poll with a constant body."""
    return JSONResponse(STATUS_BODY)


def create_app() -> Starlette:
    """The bare app."""
    return Starlette(
        routes=[
            Route("/v2/requests/{request_id}/status", status, methods=["GET"]),
            Route("/v2/{model}", submit, methods=["POST"]),
        ]
    )


def main() -> None:
    """Serve the bare app on a free loopback port and print its URL."""
    serve_app("bare-starlette", create_app())


if __name__ == "__main__":
    answer_help(__doc__)
    main()

"""Clients that hold the server: slow or half-sent requests, huge heads, too many at once, early answers.

A real uvicorn server with short limits (half a second to send a request), raw sockets, and every
read bounded by a timeout: a test that would hang fails instead.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock, Settings, api_errors
from mock_server.server import Limits, ServerThread
from tests.support import API_KEY
from tests.support_framing import trickle
from tests.support_fuzz import assert_envelope
from tests.support_load import RawResponse, raw_exchange, request_bytes

BODY_LIMIT = 4096
LIMITS = Limits(max_header_bytes=8192, request_timeout=0.5, max_concurrent=3)
# Long enough for any deadline above to fire on a loaded machine; a read past it means a hang.
READ_TIMEOUT = 10.0


@pytest.fixture
def limited() -> Iterator[tuple[SegmindMock, str]]:
    """The frozen-clock fake on a real uvicorn server held to LIMITS and a small body limit."""
    mock = SegmindMock(Settings(speed=0, max_body_bytes=BODY_LIMIT))
    with ServerThread(mock.app, limits=LIMITS) as url:
        yield mock, url


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=READ_TIMEOUT)


def read_all(sock: socket.socket) -> bytes:
    """Read until the server closes the connection (or READ_TIMEOUT passes: then the test fails)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return RawResponse(int(status_line.split()[1]), headers, body)


def test_half_sent_headers_get_a_408_at_the_deadline(limited: tuple[SegmindMock, str]) -> None:
    _, url = limited
    with connect(url) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        response = parse(read_all(sock))
    assert response.status == 408
    assert_envelope(response.status, response.headers["content-type"], response.body)
    assert "0.5 s" in response.json()["error"]


def test_a_slowloris_trickling_header_bytes_is_dropped_at_the_deadline(limited: tuple[SegmindMock, str]) -> None:
    # Each byte arrives well within the deadline; the request as a whole does not.
    _, url = limited
    with connect(url) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n")
        answer = trickle(sock, b"X-A: b\r\n", READ_TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


def test_a_body_that_stops_arriving_gets_a_408(limited: tuple[SegmindMock, str]) -> None:
    mock, url = limited
    with connect(url) as sock:
        sock.sendall(
            request_bytes("POST", "/v2/svd", b"", {"x-api-key": API_KEY, "Content-Length": "100"})[: -0 or None]
        )
        sock.sendall(b'{"fps": 7,')
        response = parse(read_all(sock))
    assert response.status == 408
    assert_envelope(response.status, response.headers["content-type"], response.body)
    assert mock.jobs == []


def test_a_connection_that_sends_nothing_is_closed(limited: tuple[SegmindMock, str]) -> None:
    _, url = limited
    with connect(url) as sock:
        assert read_all(sock) == b""


@pytest.mark.parametrize(
    "head",
    [
        {"x-api-key": "k" * 1024 * 1024},  # one huge key
        {f"x-h{number}": "v" * 100 for number in range(200)},  # many small headers
    ],
    ids=["huge key", "many headers"],
)
def test_a_head_over_the_limit_gets_a_431_before_it_is_kept(
    limited: tuple[SegmindMock, str], head: dict[str, str]
) -> None:
    mock, url = limited
    with connect(url) as sock:
        # The server may stop reading before the last of a megabyte is sent: its answer is already there.
        with contextlib.suppress(OSError):
            sock.sendall(request_bytes("GET", "/_mock/health", b"", head))
        response = parse(read_all(sock))
    assert response.status == 431
    assert_envelope(response.status, response.headers["content-type"], response.body)
    assert "8192 bytes" in response.json()["error"]
    assert mock.requests == []


def test_a_long_url_counts_toward_the_head_limit(limited: tuple[SegmindMock, str]) -> None:
    _, url = limited
    response = raw_exchange(url, request_bytes("GET", "/v2/requests/" + "a" * 20_000 + "/status"), READ_TIMEOUT)
    assert response.status == 431


def test_heads_within_the_limit_are_served(limited: tuple[SegmindMock, str]) -> None:
    _, url = limited
    response = httpx.get(f"{url}/_mock/health", headers={"x-note": "n" * 6000}, timeout=READ_TIMEOUT)
    assert response.status_code == 200


def test_past_the_concurrency_limit_requests_get_a_503_envelope(limited: tuple[SegmindMock, str]) -> None:
    mock, url = limited
    mock.add_scenario(queue_seconds=0, processing_seconds=60)
    body = json.dumps(MODELS["svd"].example).encode()
    held = [connect(url) for _ in range(LIMITS.max_concurrent)]
    try:
        for sock in held:  # v1 calls wait for their jobs, which a frozen clock never ends
            sock.sendall(request_bytes("POST", "/v1/svd", body, {"x-api-key": API_KEY}))
        # Each held call has been accepted once its job is stored.
        for _ in range(1000):
            if len(mock.jobs) == LIMITS.max_concurrent:
                break
            httpx.get(f"{url}/_mock/health", timeout=READ_TIMEOUT)
        assert len(mock.jobs) == LIMITS.max_concurrent
        busy = raw_exchange(url, request_bytes("GET", "/_mock/health"), READ_TIMEOUT)
        assert busy.status == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json() == {"error": api_errors.BUSY}
        mock.advance(100)
        for sock in held:
            assert parse(read_all(sock)).status == 200
    finally:
        for sock in held:
            sock.close()
    assert httpx.get(f"{url}/_mock/health", timeout=READ_TIMEOUT).status_code == 200


def test_an_oversized_body_with_connection_close_gets_its_413_not_a_reset(limited: tuple[SegmindMock, str]) -> None:
    _, url = limited
    body = b'{"image": "' + b"A" * (4 * 1024 * 1024) + b'"}'
    with connect(url) as sock:
        sending = threading.Thread(
            target=_send_ignoring_errors, args=(sock, request_bytes("POST", "/v2/svd", body, {"x-api-key": API_KEY}))
        )
        sending.start()
        response = parse(read_all(sock))
        sending.join(READ_TIMEOUT)
    assert response.status == 413
    assert response.json() == {"error": f"Request body is larger than the fake's limit of {BODY_LIMIT} bytes"}


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may close once it has answered
        sock.sendall(data)


def test_a_websocket_upgrade_gets_a_json_answer(limited: tuple[SegmindMock, str]) -> None:
    _, url = limited
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    for path in ("/v2/svd", "/_mock/ws", "/ws"):
        lines = [f"GET {path} HTTP/1.1", "Host: x", *(f"{name}: {value}" for name, value in upgrade.items())]
        response = raw_exchange(url, ("\r\n".join(lines) + "\r\n\r\n").encode(), READ_TIMEOUT)
        assert_envelope(response.status, response.headers.get("content-type", ""), response.body)

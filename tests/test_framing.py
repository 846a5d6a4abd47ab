"""Request framing and deadlines: whole requests in one read, pipelines, blank lines, keep-alive requests.

Real uvicorn servers and raw sockets (nothing normalises the bytes on the way), every read bounded
by a generous timeout: a deadline that never fires fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.server import Limits, ServerThread
from tests.support import API_KEY
from tests.support_framing import Answers, read_answers
from tests.support_fuzz import assert_envelope
from tests.support_load import request_bytes

# Short enough to keep the tests quick, the header limit at its default: the false 431s were of it.
LIMITS = Limits(request_timeout=0.5)
# Long enough for any deadline above to fire on a loaded machine; a read past it means a hang.
READ_TIMEOUT = 10.0
SUBMISSION = json.dumps(MODELS["svd"].example).encode()
KEY = {"x-api-key": API_KEY}
CHUNKED = {"Transfer-Encoding": "chunked"}


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[SegmindMock, str, list[logging.LogRecord]]]:
    """The fake on a real uvicorn server held to LIMITS, and the errors uvicorn logs meanwhile."""
    mock = SegmindMock(settings)
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    thread = ServerThread(mock.app, limits=LIMITS)  # configures uvicorn's logging: add the handler after it
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        with thread as url:
            yield mock, url, errors
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def served() -> Iterator[tuple[SegmindMock, str, list[logging.LogRecord]]]:
    """The frozen-clock fake with its default limits but a short request deadline."""
    with serve(Settings(speed=0)) as served:
        yield served


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=READ_TIMEOUT)


def exchange(url: str, data: bytes) -> Answers:
    """Send `data` in one write and read every answer until the server closes the connection."""
    with connect(url) as sock:
        sock.sendall(data)
        return read_answers(sock)


def padded(body: bytes, spaces: int) -> bytes:
    """A JSON object with `spaces` blanks before its closing brace: the same request, longer."""
    return body[:-1] + b" " * spaces + b"}"


def test_a_submission_padded_to_40_kb_in_one_write_is_answered_once(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    # Head and body in one read, together past --max-header-bytes: only the head counts.
    mock, url, errors = served
    answers = exchange(url, request_bytes("POST", "/v2/svd", padded(SUBMISSION, 40_000), KEY))
    assert [answer.status for answer in answers] == [200]
    assert len(mock.jobs) == 1
    assert [entry["status"] for entry in mock.requests] == [200]
    assert errors == []


def test_inline_png_submissions_of_230_kb_each_in_one_write_are_accepted(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    # As httpx sends data: URI images, on one kept-alive connection: once the socket's receive
    # window has grown, a whole request arrives in one of the server's reads (up to 256 KiB).
    np = pytest.importorskip("numpy")
    from tests.support_video import data_uri, png

    mock, url, errors = served
    image = png(np.random.default_rng(22).integers(0, 256, (240, 240, 3), np.uint8))
    body = json.dumps({**MODELS["svd"].example, "image": data_uri(image)}).encode()
    assert 220_000 < len(body) < 240_000
    request = b"POST /v2/svd HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        API_KEY.encode(),
        len(body),
        body,
    )
    statuses = []
    with connect(url) as sock:
        for _ in range(3):
            sock.sendall(request)
            statuses += [answer.status for answer in read_answers(sock, count=1)]
    assert statuses == [200] * 3
    assert len(mock.jobs) == 3
    assert errors == []


def test_300_pipelined_polls_in_one_write_get_300_answers(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    _, url, errors = served
    job = httpx.post(f"{url}/v2/svd", json=MODELS["svd"].example, headers=KEY, timeout=READ_TIMEOUT).json()
    poll = f"GET /v2/requests/{job['request_id']}/status HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n\r\n"
    stream = poll.encode() * 299 + request_bytes("GET", f"/v2/requests/{job['request_id']}/status", b"", KEY)
    assert len(stream) > 32 * 1024  # the pipeline as a whole passes the header limit; each head is small
    answers = exchange(url, stream)
    assert [answer.status for answer in answers] == [200] * 300
    assert {answer.json()["status"] for answer in answers} == {"QUEUED"}
    assert errors == []


def test_a_chunked_body_over_the_body_limit_gets_a_413_envelope() -> None:
    with serve(Settings(speed=0, max_body_bytes=64 * 1024)) as (mock, url, errors):
        body = padded(SUBMISSION, 100_000)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:50_000], body[50_000:]))
        answers = exchange(url, request_bytes("POST", "/v2/svd", chunks + b"0\r\n\r\n", KEY | CHUNKED))
    assert [answer.status for answer in answers] == [413]
    assert_envelope(413, answers[0].headers["content-type"], answers[0].body)
    assert "65536 bytes" in answers[0].json()["error"]
    assert mock.jobs == []
    assert errors == []


def test_a_blank_line_after_a_request_does_not_hold_the_connection_open(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    # httptools skips blank lines between requests without a callback; uvicorn stops its keep-alive
    # timer on every read: a CRLF used to leave the connection with no timer at all.
    _, url, _ = served
    with connect(url) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answers(sock, count=1)[0].status == 200
        sock.sendall(b"\r\n")
        rest = read_answers(sock)  # until the server closes: READ_TIMEOUT means it never does
    # Bytes of a request arrived, so it is a request that did not come whole in time: a 408.
    assert [answer.status for answer in rest] == [408]


def test_a_second_request_on_a_kept_alive_connection_gets_its_408(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    _, url, _ = served
    with connect(url) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answers(sock, count=1)[0].status == 200
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n")
        # Trickle header lines, each well within the deadline, until the server answers.
        sock.settimeout(0.05)
        answer = b""
        for _ in range(int(READ_TIMEOUT / 0.05)):
            try:
                sock.sendall(b"X-A: b\r\n")
                answer = sock.recv(65536)
                break
            except TimeoutError:
                continue
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


@pytest.mark.parametrize(
    ("second", "status"),
    [
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (request_bytes("GET", "/_mock/health", b"", {"x-big": "b" * 40_000}), 431),
    ],
    ids=["unparsable", "head too large"],
)
def test_a_pipelined_request_is_refused_after_the_answer_before_it(
    served: tuple[SegmindMock, str, list[logging.LogRecord]], second: bytes, status: int
) -> None:
    mock, url, errors = served
    first = b"POST /v2/svd HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        API_KEY.encode(),
        len(SUBMISSION),
        SUBMISSION,
    )
    answers = exchange(url, first + second)
    assert [answer.status for answer in answers] == [200, status]
    assert_envelope(status, answers[1].headers["content-type"], answers[1].body)
    assert len(mock.jobs) == 1
    assert errors == []

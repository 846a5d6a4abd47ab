"""Request framing and deadlines: whole requests in one read, pipelines, blank lines, keep-alive requests.

Real uvicorn servers and raw sockets (nothing normalises the bytes on the way), every read bounded
by a generous timeout: a deadline that never fires fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from contracts import MODELS
from mock_server import SegmindMock, Settings, server
from mock_server.server import EnvelopeHTTPProtocol, Limits, ServerThread
from tests.support import API_KEY, examples
from tests.support_framing import Answers, read_answers, split_answer, trickle
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


@contextmanager
def answered_once(url: str) -> Iterator[socket.socket]:
    """A kept-alive connection whose first request has been answered."""
    with connect(url) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answers(sock, count=1)[0].status == 200
        yield sock


def exchange(url: str, data: bytes) -> Answers:
    """Send `data` in one write and read every answer until the server closes the connection."""
    with connect(url) as sock:
        sock.sendall(data)
        return read_answers(sock)


def kept_alive(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """A request with the API key that keeps its connection open, its body framed by Content-Length unless chunked."""
    lines = [f"{method} {target} HTTP/1.1", "Host: x", f"x-api-key: {API_KEY}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, pieces: int) -> bytes:
    """`body` in chunked transfer coding, in `pieces` chunks."""
    size = -(-len(body) // pieces)
    parts = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


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
    request = kept_alive("POST", "/v2/svd", body)
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
    target = f"/v2/requests/{job['request_id']}/status"
    stream = kept_alive("GET", target) * 299 + request_bytes("GET", target, b"", KEY)
    assert len(stream) > 32 * 1024  # the pipeline as a whole passes the header limit; each head is small
    answers = exchange(url, stream)
    assert [answer.status for answer in answers] == [200] * 300
    assert {answer.json()["status"] for answer in answers} == {"QUEUED"}
    assert errors == []


def test_a_chunked_body_over_the_body_limit_gets_a_413_envelope() -> None:
    with serve(Settings(speed=0, max_body_bytes=64 * 1024)) as (mock, url, errors):
        body = padded(SUBMISSION, 100_000)
        answers = exchange(url, request_bytes("POST", "/v2/svd", chunked(body, 2), KEY | CHUNKED))
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
    with answered_once(url) as sock:
        sock.sendall(b"\r\n")
        rest = read_answers(sock)  # until the server closes: READ_TIMEOUT means it never does
    # Bytes of a request arrived, so it is a request that did not come whole in time: a 408.
    assert [answer.status for answer in rest] == [408]


def test_a_second_request_on_a_kept_alive_connection_gets_its_408(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    _, url, _ = served
    with answered_once(url) as sock:
        sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n")
        answer = trickle(sock, b"X-A: b\r\n", READ_TIMEOUT)
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
    answers = exchange(url, kept_alive("POST", "/v2/svd", SUBMISSION) + second)
    assert [answer.status for answer in answers] == [200, status]
    assert_envelope(status, answers[1].headers["content-type"], answers[1].body)
    assert len(mock.jobs) == 1
    assert errors == []


# The property: however the network cuts a stream of requests into reads, the answers are those of
# one read. The reads are handed to the server's protocol exactly as drawn (a socket would merge
# them), on a real event loop with the real app, the answers read off a real socket.
SPLIT_LIMITS = Limits(max_header_bytes=8192, request_timeout=READ_TIMEOUT)
SPLIT_BODY_LIMIT = 64 * 1024
# Where a stream polls the job made for it: a request id's length, filled in once the job exists.
_POLLED = "<" + "p" * 34 + ">"
_REQUEST_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _head_of(size: int) -> bytes:
    """A poll whose request line and headers are `size` bytes in all (padded with one header)."""
    bare = len(kept_alive("GET", f"/v2/requests/{_POLLED}/status", headers={"x-pad": ""}))
    return kept_alive("GET", f"/v2/requests/{_POLLED}/status", headers={"x-pad": "p" * (size - bare)})


_REQUESTS = st.one_of(
    st.just(kept_alive("GET", f"/v2/requests/{_POLLED}/status")),
    st.just(kept_alive("GET", "/v2/requests/unknown/status")),
    st.just(kept_alive("PUT", "/v2/svd")),
    st.just(kept_alive("POST", "/v2/svd", b"{")),
    st.just(_head_of(SPLIT_LIMITS.max_header_bytes)),  # at the limit exactly: served
    st.integers(0, 50_000).map(lambda spaces: kept_alive("POST", "/v2/svd", padded(SUBMISSION, spaces))),
    st.tuples(st.integers(0, 80_000), st.integers(1, 5)).map(
        lambda drawn: kept_alive("POST", "/v2/svd", chunked(padded(SUBMISSION, drawn[0]), drawn[1]), CHUNKED)
    ),
).flatmap(lambda request: st.sampled_from([request, b"\r\n" + request]))  # a blank line before it, or not
# Ends a stream: refused, the connection closed.
_LAST = st.sampled_from([b"", _head_of(SPLIT_LIMITS.max_header_bytes + 1), b"BREW /pot HTTP/1.1\r\n\r\n"])


async def _answers_to(reads: list[bytes], turns: list[int], count: int) -> list[tuple[int, bytes]]:
    """Hand `reads` to a new connection's protocol, the loop turning `turns` times after each; read `count` answers."""
    config, _ = _split_server()
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    state = ServerState()

    def protocol() -> asyncio.Protocol:
        return config.http_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]

    transport, connection = await loop.connect_accepted_socket(protocol, ours)
    assert isinstance(connection, EnvelopeHTTPProtocol)
    answers: list[tuple[int, bytes]] = []
    try:
        for read, turn in zip(reads, turns, strict=True):
            # No read comes while uvicorn has paused reading (a pipelined request waits its turn).
            for _ in range(10_000):
                if not connection.flow.read_paused or transport.is_closing():
                    break
                await asyncio.sleep(0)
            if transport.is_closing():
                break
            connection.data_received(read)
            for _ in range(turn):
                await asyncio.sleep(0)
        theirs.setblocking(False)
        buffer = b""
        while len(answers) < count:
            answer, buffer = split_answer(buffer)
            if answer is not None:
                answers.append((answer.status, _REQUEST_ID.sub(b"<id>", answer.body)))
                continue
            chunk = await asyncio.wait_for(loop.sock_recv(theirs, 65536), READ_TIMEOUT)
            if not chunk:
                break
            buffer += chunk
    finally:
        transport.close()
        theirs.close()
    return answers


@functools.cache
def _split_server() -> tuple[uvicorn.Config, bytes]:
    """The uvicorn settings of a fake held to SPLIT_LIMITS, loaded, and the id of a job it keeps; made on first use."""
    mock = SegmindMock(Settings(speed=0, max_body_bytes=SPLIT_BODY_LIMIT))
    config = server.config(mock.app, SPLIT_LIMITS)
    config.load()
    polled = mock.submit("svd", MODELS["svd"].example, API_KEY)[0].request_id
    assert len(polled) == len(_POLLED)
    return config, polled.encode()


def _run(reads: list[bytes], turns: list[int], count: int) -> list[tuple[int, bytes]]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # what `loop="auto"` serves with
        return runner.run(_answers_to(reads, turns, count))


@settings(
    max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(requests=st.lists(_REQUESTS, min_size=1, max_size=8), last=_LAST, data=st.data())
def test_any_split_of_a_pipelined_stream_into_reads_gets_the_answers_of_one_read(
    requests: list[bytes], last: bytes, data: st.DataObject
) -> None:
    stream = (b"".join(requests) + last).replace(_POLLED.encode(), _split_server()[1])
    count = len(requests) + bool(last)
    whole = _run([stream], [0], count)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12), label="cuts"))
    reads = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    turns = data.draw(st.lists(st.integers(0, 3), min_size=len(reads), max_size=len(reads)), label="turns")
    assert len(whole) == count, whole
    assert _run(reads, turns, count) == whole


@pytest.mark.parametrize("blank", [b"", b"\r\n", b"\r\n" * 3], ids=["bare", "after a blank line", "after three"])
def test_a_head_at_the_limit_is_served_wherever_it_is_cut(blank: bytes) -> None:
    # Every cut in its last bytes leaves the head incomplete after the first read: what is counted
    # then must never pass what the whole head comes to (blank lines before it are not kept).
    stream = blank + _head_of(SPLIT_LIMITS.max_header_bytes).replace(_POLLED.encode(), _split_server()[1])
    whole = _run([stream], [0], 1)
    assert [status for status, _ in whole] == [200]
    for cut in range(len(stream) - 40, len(stream)):
        assert _run([stream[:cut], stream[cut:]], [0, 0], 1) == whole, cut


def test_a_request_answered_before_its_body_ended_gets_no_second_answer() -> None:
    # A chunked body passes the body limit: the 413 goes out at once, the connection kept alive; then
    # the rest of the body turns out malformed. The request has had its answer: nothing more is said.
    with serve(Settings(speed=0, max_body_bytes=4096)) as (mock, url, errors), connect(url) as sock:
        sock.sendall(kept_alive("POST", "/v2/svd", b"2000\r\n" + b" " * 0x2000 + b"\r\n", CHUNKED))
        assert [answer.status for answer in read_answers(sock, count=1)] == [413]
        sock.sendall(b"zz\r\n")  # no chunk size
        assert read_answers(sock) == []
    assert mock.jobs == []
    assert errors == []


def test_a_client_that_reads_none_of_its_answers_is_dropped_at_the_deadline(
    served: tuple[SegmindMock, str, list[logging.LogRecord]],
) -> None:
    # Requests pipelined without end, no answer read: the answers (the 24 kB OpenAPI document) fill
    # the sockets' buffers and the fake's, and its writes wait. The client is then dropped, as one
    # sending nothing would be, rather than held with the answer's task for as long as it likes.
    _, url, _ = served
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.settimeout(READ_TIMEOUT)
        sock.connect((parts.hostname, parts.port))
        requests = kept_alive("GET", "/openapi.json") * 100
        # The sending blocks once the fake stops reading; it ends when the fake drops the connection.
        with pytest.raises(ConnectionResetError):
            for _ in range(1000):
                sock.sendall(requests)

"""Hostile input: odd bodies, paths, methods and content types never get a 5xx, a hang or a non-JSON error."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.defaults import MAX_HEADER_BYTES
from mock_server.images import ImageSource
from mock_server.server import ServerThread
from tests.support import API_KEY
from tests.support_fakes import FakeFactory
from tests.support_fuzz import BODY_ROUTES, KEY, LIMIT, assert_envelope
from tests.support_load import RawResponse, raw_exchange, request_bytes

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

JSON = {"Content-Type": "application/json", **KEY}

HOSTILE_BODIES: dict[str, bytes] = {
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep inside a parameter": b'{"image": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "invalid utf-8": b'{"image": "\xff\xfe\xc3\x28"}',
    "lone surrogate escape": b'{"image": "\\ud800", "fps": 7}',
    "NaN": b'{"fps": NaN}',
    "Infinity": b'{"cond_aug": Infinity, "fps": -Infinity}',
    "1e400": b'{"cond_aug": 1e400, "fps": 1e400, "seconds": 1e400, "speed": 1e400}',
    "-1e400": b'{"seconds": -1e400, "speed": -1e400, "fps": -1e400}',
    "10**10000": b'{"fps": ' + b"1" + b"0" * 10_000 + b', "seconds": ' + b"9" * 10_000 + b"}",
    "4300 digits": b'{"fps": ' + b"9" * 4300 + b', "seconds": ' + b"9" * 4300 + b', "speed": ' + b"9" * 4300 + b"}",
    "duplicate keys": b'{"fps": 7, "fps": "x", "outcome": "failed", "outcome": "nope", "seconds": 1, "seconds": -1}',
    "empty": b"",
    "whitespace": b" \r\n\t ",
    "null byte": b'{"image": "\x00", "fps": 7}',
    "escaped null": b'{"image": "\\u0000", "match": {"model": "\\u0000"}}',
    "truncated": b'{"image": "http://x',
    "trailing garbage": b'{"fps": 7} {"fps": 8}',
    "bom": b'\xef\xbb\xbf{"fps": 7}',
    "array": b"[1, 2, 3]",
    "string": b'"svd"',
    "huge non-image string": b'{"image": "' + "é".encode() * 1500 + b'"}',
    "1e400 in a match": b'{"match": {"fps": 1e400, "cond_aug": -1e400}, "outcome": "failed"}',
    "unhashable match": b'{"match": {"model": [], "api_key": {}}, "outcome": "failed"}',
    "odd match values": b'{"match": {"frames": {"a": 1}, "fps": [7], "motion": 1e308}, "outcome": "completed"}',
    "non-latin-1 header": b'{"outcome": "http_error", "status": 429, "headers": {"x-note": "\\u20ac"}}',
    "newline in header": b'{"outcome": "http_error", "status": 429, "headers": {"x-note": "a\\r\\nset-cookie: b"}}',
    "odd header name": b'{"outcome": "http_error", "status": 429, "headers": {"bad name:": "x"}}',
    "unhashable outcome and status": b'{"outcome": ["failed"], "status": [429]}',
    "odd types": b'{"times": 1e400, "queue_seconds": "1", "processing_seconds": null, "status": true}',
    "oversized": b'{"image": "' + b"A" * (LIMIT * 2) + b'"}',
    "5000 digits as text": b'{"frames": "'
    + b"9" * 5000
    + b'", "fps": "-'
    + b"9" * 5000
    + b'", "seed": "'
    + b"1" * 5000
    + b'"}',
    "framing headers in a scenario": b'{"outcome": "http_error", "status": 429, "headers": {"Content-Length": "0"}}',
    "chunked header in a scenario": b'{"outcome": "http_error", "status": 502, "headers": {"transfer-encoding": "x"}}',
    "digits in a match": b'{"match": {"frames": "' + b"9" * 5000 + b'"}, "outcome": "failed"}',
}


@pytest.fixture
def fuzzed(server: tuple[SegmindMock, str]) -> Iterator[tuple[SegmindMock, str]]:
    """The frozen-clock fake on a real uvicorn server with a small body limit, with one job already kept.

    It runs on each store in turn (the `store` fixture)."""
    mock, url = server
    mock.configure(Settings(speed=0, max_body_bytes=LIMIT))
    job, _ = mock.submit("svd", MODELS["svd"].example, API_KEY)
    yield mock, url
    # Whatever was thrown at it, the server is healthy and kept the job.
    health = httpx.get(f"{url}/_mock/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # ... and its journal of all that can still be read (it once answered 500 after NaN or 1e400).
    assert httpx.get(f"{url}/_mock/requests", timeout=5).status_code == 200
    assert mock.job(job.request_id) is not None


def _raw(url: str, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> RawResponse:
    return raw_exchange(url, request_bytes(method, target, body, headers))


def test_hostile_bodies_get_a_4xx_envelope_over_a_real_server(fuzzed: tuple[SegmindMock, str]) -> None:
    _, url = fuzzed
    for name, body in HOSTILE_BODIES.items():
        for path in BODY_ROUTES:
            response = _raw(url, "POST", path, body, JSON)
            if response.status in (200, 201):  # an accepted odd body must still have been a sensible one
                assert path.startswith("/_mock/"), (name, path)
                continue
            assert_envelope(response.status, response.headers.get("content-type", ""), response.body)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "k" * 1024 * 1024},
        {"x-mock-status": "9" * 5000},
        {"x-mock-delay-seconds": "9" * 5000, "x-mock-outcome": "latency"},
        {"x-mock-queue-seconds": "-" + "9" * 5000},
        {"Content-Length": "9" * 5000},
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ],
    ids=[
        "1 MiB key",
        "digits in x-mock-status",
        "digits in a delay",
        "digits in a queue",
        "digits in Content-Length",
        "websocket upgrade",
    ],
)
def test_hostile_headers_get_a_4xx_envelope(fuzzed: tuple[SegmindMock, str], headers: dict[str, str]) -> None:
    mock, url = fuzzed
    kept = len(mock.jobs)
    body = json.dumps(MODELS["svd"].example).encode()
    response = _raw(url, "POST", "/v2/svd", body, {**JSON, **headers})
    assert_envelope(response.status, response.headers.get("content-type", ""), response.body)
    assert len(mock.jobs) == kept


@pytest.mark.parametrize(
    "value",
    [
        "bytes=" + "9" * 5000 + "-",
        "bytes=0-" + "9" * 5000,
        "bytes=-" + "9" * 5000,
        "bytes=" + "9" * 5000 + "-" + "9" * 5001,
        "bytes=" + "1" * 19 + "-" + "2" * 19,
        "bytes=5-1",
        "bytes=--1",
        "items=0-1",
    ],
)
def test_hostile_ranges_get_the_video_a_part_or_a_416_envelope(fuzzed: tuple[SegmindMock, str], value: str) -> None:
    mock, url = fuzzed
    request_id = mock.jobs[0]["request_id"]
    mock.advance(1000)
    response = _raw(url, "GET", f"/_mock/outputs/{request_id}.mp4", headers={"Range": value})
    assert response.status in (200, 206, 416), (response.status, response.body[:200])
    if response.status == 416:
        assert_envelope(response.status, response.headers["content-type"], response.body)
        assert response.headers["content-range"].startswith("bytes */")


def test_odd_image_paths_under_an_allowed_directory_get_a_400(tmp_path: Path, make_fake: FakeFactory) -> None:
    mock = make_fake(speed=0, images=ImageSource(allowed_dirs=(tmp_path,)))
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    folder = str(tmp_path)
    paths = [
        folder + "/nul\x00.png",
        folder + "/loop.png",
        folder + "/" + "x" * 300 + ".png",
        folder + "/" + "/".join(["d" * 250] * 20),
        folder + "/folder",
        folder,
        folder + "/fifo",
        folder + "/../../etc/passwd",
        "file://remote-host" + folder + "/folder",
        "file:" + folder + "/%00.png",
        "file:" + folder + "/%2e%2e/%2e%2e/etc/passwd",
    ]
    with ServerThread(mock.app) as url:
        for path in paths:
            body = json.dumps({**MODELS["svd"].example, "image": path}).encode()
            response = _raw(url, "POST", "/v2/svd", body, JSON)
            assert response.status == 400, (path[:80], response.status, response.body[:200])
            assert_envelope(response.status, response.headers["content-type"], response.body)
    assert mock.jobs == []


def test_oversized_bodies_are_413_whether_declared_or_chunked(fuzzed: tuple[SegmindMock, str]) -> None:
    _, url = fuzzed
    big = b'{"image": "' + b"A" * (LIMIT * 4) + b'"}'
    declared = _raw(url, "POST", "/v2/svd", big, JSON)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (big[:1000], big[1000:])) + b"0\r\n\r\n"
    chunked = _raw(url, "POST", "/v2/svd", chunks, {**JSON, "Transfer-Encoding": "chunked"})
    for response in (declared, chunked):
        assert response.status == 413
        assert response.json() == {"error": f"Request body is larger than the fake's limit of {LIMIT} bytes"}


@pytest.mark.parametrize(
    "target",
    [
        "/v2/../_mock/reset",
        "/v2/%2e%2e/_mock/reset",
        "/v2/%2E%2E%2F_mock%2Freset",
        "//_mock/reset",
        "/_mock/reset/",
        "/_mock//reset",
        "/_mock/reset%00",
        "/_mock/reset;x=1",
    ],
)
def test_path_tricks_never_reach_the_admin_api(fuzzed: tuple[SegmindMock, str], target: str) -> None:
    mock, url = fuzzed
    kept = len(mock.jobs)
    response = _raw(url, "POST", target, b"{}", JSON)
    assert_envelope(response.status, response.headers["content-type"], response.body)
    assert len(mock.jobs) == kept


# What the fake answers odd request targets, as its router sees them: the path percent-decoded
# once, split on "/", one `{model}` segment after /v2 (any non-empty one), no path normalised.
NO_ROUTE = "No route for POST {}: see docs/wire-format.md for the routes"
NO_MODEL = "Model {!r} not found: this fake serves svd, motionctrl-svd"
HEAD_TOO_LARGE = (
    f"Request Header Fields Too Large: the request line and headers passed the fake's limit of {MAX_HEADER_BYTES} "
    "bytes (--max-header-bytes)"
)
UNPARSABLE = (
    "Invalid HTTP request received: check the method (upper case), the path (no spaces or control characters) and "
    "the headers"
)
SUBMITTED = None  # the submit route itself: a 200 and a new svd job
ODD_TARGETS: dict[str, tuple[int, str | None]] = {
    "//v2/svd": (404, NO_ROUTE.format("//v2/svd")),  # an empty first segment: no route has one
    "/v2/svd/": (404, NO_ROUTE.format("/v2/svd/")),  # a trailing slash is a fourth, empty, segment
    "/v2/%73vd": (200, SUBMITTED),  # %73 is "s": /v2/svd
    "/v2/sv%64/../svd": (404, NO_ROUTE.format("/v2/svd/../svd")),  # ".." is not resolved
    "/v2/" + "a" * 60_000: (431, HEAD_TOO_LARGE),
    "/v2/requests/" + "x" * 60_000 + "/status": (431, HEAD_TOO_LARGE),
    "/v2/%C3%A9t%C3%A9": (404, NO_MODEL.format("\u00e9t\u00e9")),  # UTF-8, decoded: a model the fake lacks
    "/v2/\u00e9t\u00e9": (400, UNPARSABLE),  # raw non-ASCII bytes in the request line: the parser refuses it
    "/v2/%00": (404, NO_MODEL.format("\x00")),
    "/v2/%ff%fe": (404, NO_MODEL.format("\ufffd\ufffd")),  # not UTF-8: decoded with replacement characters
    "/v2/requests/%2F%2F/status": (404, NO_ROUTE.format("/v2/requests////status")),  # %2F splits segments too
    "*": (404, NO_ROUTE.format("*")),  # the asterisk form, for OPTIONS only
    "http://127.0.0.1/v2/svd": (200, SUBMITTED),  # the absolute form: its path is /v2/svd
}


@pytest.mark.parametrize(
    ("target", "status", "error"),
    [(target, *answer) for target, answer in ODD_TARGETS.items()],
    ids=[target if len(target) < 40 else f"{target[:20]}...({len(target)} chars)" for target in ODD_TARGETS],
)
def test_odd_paths_get_the_answer_their_routing_gives(
    fuzzed: tuple[SegmindMock, str], target: str, status: int, error: str | None
) -> None:
    mock, url = fuzzed
    kept = len(mock.jobs)
    response = _raw(url, "POST", target, json.dumps(MODELS["svd"].example).encode(), JSON)
    assert response.status == status, response.body[:300]
    assert response.headers["content-type"] == "application/json"
    if error is SUBMITTED:
        job = mock.job(response.json()["request_id"])
        assert job is not None and job["model"] == "svd"
        assert len(mock.jobs) == kept + 1
    else:
        assert response.json() == {"error": error}
        assert len(mock.jobs) == kept


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO", "get"])
@pytest.mark.parametrize("path", ["/v2/svd", "/v2/requests/abc/status", "/_mock/reset", "/nowhere"])
def test_odd_methods_get_an_answer_in_the_envelope(fuzzed: tuple[SegmindMock, str], method: str, path: str) -> None:
    _, url = fuzzed
    response = _raw(url, method, path, b"{}", JSON)
    assert_envelope(response.status, response.headers["content-type"], response.body)


def test_head_answers_like_get_without_a_body(fuzzed: tuple[SegmindMock, str]) -> None:
    mock, url = fuzzed
    request_id = mock.jobs[0]["request_id"]
    for path, status in [
        (f"/v2/requests/{request_id}/status", 200),
        ("/_mock/health", 200),
        ("/v2/requests/unknown/status", 404),
        ("/v2/svd", 405),
    ]:
        response = _raw(url, "HEAD", path, headers=KEY)
        assert response.status == status
        assert response.headers["content-type"] == "application/json"
        assert response.body == b""


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=latin-1",
        "application/xml",
        "garbage;;;=",
    ],
)
def test_odd_content_types(fuzzed: tuple[SegmindMock, str], content_type: str | None) -> None:
    # The body is what counts: a JSON object is accepted whatever the label, anything else is a 400.
    _, url = fuzzed
    headers = {**KEY, **({"Content-Type": content_type} if content_type else {})}
    valid = _raw(url, "POST", "/v2/svd", json.dumps(MODELS["svd"].example).encode(), headers)
    assert valid.status == 200
    for body in (
        b"image=http%3A%2F%2Fx&fps=7",
        b"--xyz\r\nContent-Disposition: form-data; name=fps\r\n\r\n7\r\n--xyz--",
    ):
        response = _raw(url, "POST", "/v2/svd", body, headers)
        assert_envelope(response.status, response.headers["content-type"], response.body)


def test_malformed_http_gets_a_json_400(fuzzed: tuple[SegmindMock, str]) -> None:
    _, url = fuzzed
    for data in [
        b"GARBAGE\r\n\r\n",
        b"GET /_mock/health HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v2/svd HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /v2/svd HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /v2/svd HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /_mock/health HTTP/1.1\r\nBad Header\r\n\r\n",
    ]:
        response = raw_exchange(url, data)
        assert_envelope(response.status, response.headers.get("content-type", ""), response.body)


def test_unparsable_http_is_answered_in_the_envelope(fuzzed: tuple[SegmindMock, str]) -> None:
    _, url = fuzzed
    response = raw_exchange(url, b"FOO /v2/svd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 400
    assert response.json() == {"error": UNPARSABLE}

"""Pins the Redis store's implementation on the event loop: steps in greenlets, and the loop's connection.

A request's step runs on the event loop and awaits its round trips there (`store_redis.steps`),
on a connection of the store's own that reads Redis's protocol itself (`loop_connection`,
`resp`). What it reads must be what redis-py reads, and a step must behave as it did on a thread:
its context, its errors, and run to its end when its task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import MODELS
from mock_server import defaults
from mock_server.offline import SEGMIND_URL, default_settings, segmind_offline
from mock_server.server import ServerThread
from mock_server.store_redis import loop_connection, steps, watch
from mock_server.store_redis.resp import RespReader, pack
from tests.support import API_KEY
from tests.support_fakes import FakeFactory
from tests.support_stores import namespaced, redis_server, start_redis, status, submit

DURATION = defaults.QUEUE_SECONDS + MODELS["svd"].latency_seconds

# What a Lua script returns, as its source: every kind of reply Redis converts a Lua value into.
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def _lua_string(text: str) -> str:
    return '"' + "".join(f"\\{byte}" for byte in text.encode()) + '"'


_SCALARS = st.one_of(
    st.integers(-(2**53), 2**53).map(str),
    _TEXT.map(_lua_string),
    st.booleans().map(lambda value: "true" if value else "false"),
    _TEXT.map(lambda text: "{ok=" + _lua_string(text) + "}"),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda number: "{double=" + repr(number) + "}"),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "{" + ", ".join(items) + "}"),
        st.dictionaries(_TEXT, inner, max_size=3).map(
            lambda pairs: "{map={" + ", ".join(f"[{_lua_string(k)}]={v}" for k, v in pairs.items()) + "}}"
        ),
    ),
    max_leaves=8,
)
_REPLIES = st.one_of(_VALUES, _TEXT.map(lambda text: "{err=" + _lua_string("ERR " + text) + "}"))


def _comparable(value: Any) -> Any:
    """A reply with its errors as (type, message), so that two readings compare equal."""
    if isinstance(value, Exception):
        return (type(value).__name__, str(value))
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    return value


def _by_redis_py(connection: redis.Connection, script: str) -> Any:
    connection.send_command("EVAL", script, 0)
    try:
        return connection.read_response()
    except redis.ResponseError as error:
        return error


async def _on_the_loop(settings_of: redis.Connection, scripts: list[str]) -> list[Any]:
    connection = await loop_connection.open_connection(settings_of)
    try:
        return await connection.send([("EVAL", script, 0) for script in scripts])
    finally:
        connection.close()


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Redis server of the module's own, on a free port."""
    binary = redis_server()
    if binary is None:
        pytest.skip("no redis-server")
    process, url = start_redis(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield int(url.rsplit(":", 1)[1].split("/")[0])
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.parametrize("protocol", [2, 3])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scripts=st.lists(_REPLIES, min_size=1, max_size=4), resp3=st.booleans())
def test_the_loop_connection_reads_each_reply_as_redis_py_does(
    redis_port: int, protocol: int, scripts: list[str], resp3: bool
) -> None:
    # `redis.setresp(3)` has Lua's maps, doubles and booleans sent as RESP3's own types.
    scripts = [f"redis.setresp({3 if resp3 and protocol == 3 else 2}) return {script}" for script in scripts]
    settings_of = redis.Connection(port=redis_port, protocol=protocol, decode_responses=True)
    expected = [_by_redis_py(settings_of, script) for script in scripts]
    settings_of.disconnect()
    assert _comparable(asyncio.run(_on_the_loop(settings_of, scripts))) == _comparable(expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=_REPLIES, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_a_reply_read_in_pieces_is_the_reply_read_whole(redis_port: int, script: str, cuts: list[int]) -> None:
    whole = b""
    with socket.create_connection(("127.0.0.1", redis_port)) as sock:
        sock.sendall(pack([("HELLO", 3), ("EVAL", f"redis.setresp(3) return {script}", 0)]))
        while len(_read_whole(whole)) < 2:
            whole += sock.recv(65536)
    expected = RespReader().read(whole)
    pieces, read = RespReader(), []
    start = 0
    for cut in sorted({min(cut, len(whole)) for cut in cuts}):
        read.extend(pieces.read(whole[start:cut]))
        start = cut
    read.extend(pieces.read(whole[start:]))
    assert _comparable(read) == _comparable(expected)


def _read_whole(data: bytes) -> list[Any]:
    return RespReader().read(data)


def test_a_long_reply_in_many_pieces_is_parsed_again_only_once_it_may_be_whole() -> None:
    # A job's reply carries its image (up to the 16 MiB a body may hold), received in pieces of
    # 256 KiB: parsed again at each, the event loop's time grew with the square of its size.
    class Counting(RespReader):
        parses = 0

        def _parse(self, buffer: bytes, position: int) -> tuple[Any, int]:
            self.parses += 1
            return super()._parse(buffer, position)

    image = bytes(range(256)) * 8192  # 2 MiB
    wire = pack([("SET", "job", image)])
    reader, read = Counting(encoding=None), []
    for start in range(0, len(wire), 32768):
        read.extend(reader.read(wire[start : start + 32768]))
    assert read == [[b"SET", b"job", image]]
    assert reader.parses <= 2 * 4  # the array and its 3 strings, parsed short once (its size learnt), then whole


def test_batches_sent_at_once_on_one_connection_each_get_their_own_answers(redis_port: int) -> None:
    # Batches sent while others wait are written together when the loop turns; Redis answers in
    # the order they were written, and each batch takes as many answers as it has commands.
    async def main() -> list[list[Any]]:
        connection = await loop_connection.open_connection(redis.Connection(port=redis_port, decode_responses=True))
        try:
            batches = [
                [("EVAL", "return ARGV[1]", 0, f"{batch}.{command}") for command in range(batch % 3 + 1)]
                for batch in range(40)
            ]
            return list(await asyncio.gather(*(connection.send(batch) for batch in batches)))
        finally:
            connection.close()

    answers = asyncio.run(main())
    assert answers == [[f"{batch}.{command}" for command in range(batch % 3 + 1)] for batch in range(40)]


# Steps: the service's synchronous code on the event loop, its waits awaited by its task.

REQUEST = contextvars.ContextVar[str]("request", default="none")


def test_steps_wait_in_turn_on_one_thread_and_see_their_requests_context() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        released = loop.create_future()
        seen: list[str] = []

        def first() -> str:
            seen.append(f"first starts in {REQUEST.get()}")
            value = steps.wait(released)  # held until the second step releases it
            seen.append(f"first resumes with {value} on the loop's thread: {threading.current_thread() is main_thread}")
            return REQUEST.get()

        def second() -> str:
            seen.append("second runs while the first waits")
            released.set_result("released")
            return REQUEST.get()

        async def request(name: str, work: Any) -> str:
            REQUEST.set(name)
            result: str = await steps.run(work)
            return result

        main_thread = threading.current_thread()
        results = await asyncio.gather(request("a", first), request("b", second))
        seen.extend(results)
        return seen

    assert asyncio.run(main()) == [
        "first starts in a",
        "second runs while the first waits",
        "first resumes with released on the loop's thread: True",
        "a",
        "b",
    ]


def test_an_error_awaited_is_raised_inside_the_step_where_it_waited() -> None:
    async def main() -> str:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(redis.TimeoutError("Timeout reading from Redis"))

        def step() -> str:
            try:
                steps.wait(failed)
            except redis.TimeoutError as error:
                return f"caught in the step: {error}"
            return "not raised"

        return await steps.run(step)

    assert asyncio.run(main()) == "caught in the step: Timeout reading from Redis"


def test_a_step_whose_task_is_cancelled_runs_to_its_end_then_the_cancellation_is_raised() -> None:
    # As on a thread: a batch already sent is settled (its job stored, its charges kept or undone).
    finished: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        def step() -> None:
            finished.append(steps.wait(answer))

        task = loop.create_task(steps.run(step))
        await asyncio.sleep(0)  # the step waits now
        task.cancel()
        await asyncio.sleep(0)
        assert not task.done()  # still waiting for the answer
        answer.set_result("settled")
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert finished == ["settled"]


def test_blocking_calls_go_to_a_thread_inside_a_step_and_stay_in_place_outside() -> None:
    def where() -> tuple[bool, str]:
        return threading.current_thread() is threading.main_thread(), REQUEST.get()

    async def main() -> tuple[bool, str]:
        REQUEST.set("in the request")
        result: tuple[bool, str] = await steps.run(steps.blocking, where)
        return result

    assert asyncio.run(main()) == (False, "in the request")
    assert steps.blocking(where) == (True, "none")
    awaitable = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="inside a step"):
        steps.wait(awaitable)
    awaitable.close()


# The fake on the loop's connection: the URL's settings honoured, the watch never holding the loop.


@pytest.fixture
def secured_redis(tmp_path: Path) -> Iterator[Path]:
    """A Redis of the test's own asking for a password, on a Unix socket as well as its port."""
    binary = redis_server()
    if binary is None:
        pytest.skip("no redis-server")
    path = tmp_path / "redis.sock"
    process, _ = start_redis(binary, tmp_path, extra=["--unixsocket", str(path), "--requirepass", "s3cret"])
    try:
        yield path
    finally:
        process.kill()
        process.wait(10)


def test_the_loop_connection_honours_the_urls_socket_password_and_database(
    secured_redis: Path, make_fake: FakeFactory
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    url = f"unix://:s3cret@{secured_redis}?db=3&prefix={prefix}"
    mock = make_fake(store=url, speed=0)
    with ServerThread(mock.app) as base, httpx.Client(base_url=base, headers={"x-api-key": API_KEY}) as http:
        request_id = submit(http)
        mock.advance(DURATION)
        assert status(http, request_id).json()["status"] == "COMPLETED"
    with redis.Redis(unix_socket_path=str(secured_redis), password="s3cret", db=3) as database:
        assert any(key.startswith(prefix.encode()) for key in database.keys(f"{prefix}:job*"))
    with redis.Redis(unix_socket_path=str(secured_redis), password="s3cret", db=0) as other:
        assert other.keys(f"{prefix}:*") == []


def test_concurrent_polls_confirming_the_watch_at_every_request_never_hold_the_loop(
    redis_url: str, make_fake: FakeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Confirming the change watch is a round trip on its own connection, made on a thread inside a
    # step: a step meeting another's confirmation under way reads the clock along instead of
    # waiting for it (which would hold the loop the confirmation needs to finish).
    monkeypatch.setattr(watch, "WATCH_CONFIRM_SECONDS", 0.0)
    mock = make_fake(store=namespaced(redis_url), speed=0)
    with ServerThread(mock.app) as base, httpx.Client(base_url=base, headers={"x-api-key": API_KEY}) as http:
        request_id = submit(http)

        def poll(_: int) -> int:
            with httpx.Client(base_url=base, headers={"x-api-key": API_KEY}, timeout=10) as client:
                return sum(status(client, request_id).status_code for _ in range(10))

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(poll, range(8))) == [2000] * 8
    assert mock.service.backend.guard.outages == 0


def test_the_loop_connection_is_closed_when_its_event_loop_ends(redis_url: str) -> None:
    # Offline, each `asyncio.run` of an async client is an event loop of its own with a connection
    # of its own: the loop's end closes it (cycles keep it from being freed until a collection).
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = redis.Redis.from_url(redis_url)

    def connections() -> int:
        return sum(client["name"] == name for client in admin.client_list())

    async def submit_once() -> int:
        async with httpx.AsyncClient(headers={"x-api-key": API_KEY}) as client:
            response = await client.post(f"{SEGMIND_URL}/v2/svd", json=MODELS["svd"].example)
            return response.status_code

    store = f"{namespaced(redis_url)}&client_name={name}"
    collecting = gc.isenabled()
    gc.disable()  # what is left open stays open, as it may until a collection
    try:
        with segmind_offline(replace(default_settings(), store=store)):
            before = connections()
            assert [asyncio.run(submit_once()) for _ in range(3)] == [200] * 3
            assert connections() == before
    finally:
        if collecting:
            gc.enable()
        admin.close()

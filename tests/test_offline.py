"""The plain Python API under the plugin: `segmind_offline`, `route_to_app`, `virtual_time`."""

from __future__ import annotations

import asyncio
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import replace

import anyio
import httpcore
import httpx
import pytest
import respx
import segmind.v2
from respx.models import AllMockedAssertionError
from segmind import InferenceTimeout, SegmindClient

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.clock import Clock
from mock_server.offline import SEGMIND_URL, default_settings, route_to_app, segmind_offline
from mock_server.virtual_time import virtual_time
from tests.support import API_KEY
from tests.support_fakes import FakeFactory

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SVD = MODELS["svd"]


@pytest.fixture
def offline(store: str) -> Iterator[SegmindMock]:
    """The fake `segmind_offline` routes httpx to, on `store`."""
    with segmind_offline(replace(default_settings(), store=store)) as mock:
        yield mock


@pytest.fixture
def offline_sdk(offline: SegmindMock) -> Iterator[SegmindClient]:
    """The official SDK at its default base URL, reaching `offline` through `segmind_offline`'s routing."""
    client = SegmindClient(api_key=API_KEY)  # the SDK's own client, default base URL: api.segmind.com
    yield client
    client._client.close()


def test_run_completes_on_the_simulated_clock_with_the_documented_inference_time(
    offline_sdk: SegmindClient, offline: SegmindMock
) -> None:
    start = offline.clock.now()
    result = offline_sdk.run("svd", **SVD.example)
    assert result["metrics"]["inference_time"] == SVD.latency_seconds == 29.63
    # run() polls once a second: QUEUED 2 s, PROCESSING 29.63 s, seen COMPLETED at the 32nd second.
    assert offline.clock.now() - start == pytest.approx(32)
    polls = [entry for entry in offline.requests if entry["path"].endswith("/status")]
    assert len(polls) == 33
    assert offline_sdk._client.get(result["output"]).content[4:8] == b"ftyp"


def test_wait_times_out_at_its_deadline_in_simulated_seconds(offline_sdk: SegmindClient, offline: SegmindMock) -> None:
    offline.add_scenario(processing_seconds=10_000)
    job = offline_sdk.submit_async("svd", **SVD.example)
    start = offline.clock.now()
    with pytest.raises(InferenceTimeout) as raised:
        job.wait(timeout=90, interval=10)
    assert raised.value.elapsed_s == pytest.approx(90, abs=1)
    assert offline.clock.now() - start == pytest.approx(90)
    assert job.status()["status"] == "PROCESSING"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_clients_are_served_on_their_own_event_loop(offline: SegmindMock, backend: str) -> None:
    pytest.importorskip(backend)

    async def submit_and_poll() -> list[str]:
        async with httpx.AsyncClient(headers={"x-api-key": API_KEY}) as http:
            job = (await http.post(f"{SEGMIND_URL}/v2/svd", json=SVD.example)).json()
            first = (await http.get(job["status_url"])).json()["status"]
            offline.advance(40)
            return [first, (await http.get(job["status_url"])).json()["status"]]

    assert anyio.run(submit_and_poll, backend=backend) == ["QUEUED", "COMPLETED"]


def test_other_hosts_are_refused_not_faked_sync_and_async(offline: SegmindMock) -> None:
    with httpx.Client() as http, pytest.raises(AllMockedAssertionError, match="segmind-mock is offline: GET"):
        http.get("https://example.com/")

    async def fetch() -> None:
        async with httpx.AsyncClient() as http:
            await http.get("http://api.segmind.com/v2/requests/x/status")  # plain http: another origin

    with pytest.raises(AllMockedAssertionError, match=r"only https://api.segmind.com is served"):
        asyncio.run(fetch())
    assert offline.requests == []


def test_unknown_paths_on_the_host_get_the_fakes_json_404(offline: SegmindMock) -> None:
    response = httpx.get(f"{SEGMIND_URL}/v3/nothing", headers={"x-api-key": API_KEY})
    assert response.status_code == 404
    assert "No route for GET /v3/nothing" in response.json()["error"]


def test_a_users_own_respx_mock_takes_the_other_hosts(offline: SegmindMock) -> None:
    with respx.mock(assert_all_called=True) as own:
        own.get("https://cdn.example.com/cat.png").respond(200, content=b"PNG")
        with httpx.Client(headers={"x-api-key": API_KEY}) as http:
            assert http.get("https://cdn.example.com/cat.png").content == b"PNG"
            assert http.post(f"{SEGMIND_URL}/v2/svd", json=SVD.example).json()["status"] == "QUEUED"


def test_route_to_app_serves_any_origin_and_only_that(store: str, make_fake: FakeFactory) -> None:
    mock = make_fake(speed=0, store=store)
    with route_to_app(mock.app, "http://segmind.test:8080"), httpx.Client(headers={"x-api-key": API_KEY}) as http:
        submitted = http.post("http://segmind.test:8080/v2/svd", json=SVD.example).json()
        assert submitted["status_url"].startswith("http://segmind.test:8080/v2/requests/")
        with pytest.raises(AllMockedAssertionError):
            http.post(f"{SEGMIND_URL}/v2/svd", json=SVD.example)


def test_everything_is_put_back_when_the_block_ends() -> None:
    pool_handler = httpcore.ConnectionPool.handle_request
    with segmind_offline():
        assert segmind.v2.time is not time
        assert httpcore.ConnectionPool.handle_request is not pool_handler
    assert segmind.v2.time is time
    assert httpcore.ConnectionPool.handle_request is pool_handler


def test_without_virtual_time_the_sdk_sleeps_for_real_on_a_running_clock() -> None:
    with segmind_offline(virtual=False) as mock:
        assert segmind.v2.time is time
        assert (mock.clock.speed, mock.clock.virtual) == (1.0, False)


def test_given_settings_are_used_as_they_are() -> None:
    with segmind_offline(Settings(speed=10, queue_seconds=0)) as mock:
        assert (mock.clock.speed, mock.clock.virtual, mock.settings.queue_seconds) == (10, False, 0)
        assert segmind.v2.time is not time  # virtual time for the SDK is a separate switch


@pytest.fixture
def client_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for a user's client module, importing time both ways."""
    module = types.ModuleType("users_client")
    exec(
        "import time, asyncio, anyio\nfrom time import sleep, monotonic\nfrom asyncio import sleep as asleep",
        vars(module),
    )
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_virtual_time_patches_only_the_named_modules(client_module: types.ModuleType) -> None:
    clock = Clock.in_process(0)
    start = clock.now()
    with virtual_time(clock, [client_module.__name__]) as view:
        client_module.time.sleep(5)
        client_module.sleep(5)
        assert client_module.monotonic() - time.monotonic() == pytest.approx(10, abs=1)
        assert anyio.run(_sleeps, client_module) == "slept"
        assert view.slept == 21
        assert clock.now() - start == 21
        assert (time.sleep, asyncio.sleep, client_module.time.time) == (time.sleep, asyncio.sleep, time.time)
        assert segmind.v2.time is time  # not named, so not patched
    assert (client_module.sleep, client_module.time, client_module.asleep) == (time.sleep, time, asyncio.sleep)


async def _sleeps(module: types.ModuleType) -> str:
    await module.asyncio.sleep(7)
    await module.anyio.sleep(2)
    return await module.asleep(2, "slept")


def test_virtual_sleeps_refuse_negative_lengths_like_time_sleep(client_module: types.ModuleType) -> None:
    with virtual_time(Clock.in_process(0), [client_module.__name__]), pytest.raises(ValueError, match="non-negative"):
        client_module.sleep(-1)


def test_a_missing_module_of_yours_is_an_error_but_a_missing_sdk_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModuleNotFoundError), virtual_time(Clock.in_process(0), ["no_such_client_module"]):
        pass
    monkeypatch.setitem(sys.modules, "segmind.v2", None)  # as if the SDK were not installed
    with segmind_offline() as mock:
        assert httpx.post(f"{SEGMIND_URL}/v2/svd", json=SVD.example, headers={"x-api-key": API_KEY}).is_success
        assert len(mock.jobs) == 1

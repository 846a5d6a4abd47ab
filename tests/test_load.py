"""Load without loss: hundreds of concurrent clients submit and poll a real server; every job is kept and completes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock
from tests.support_fakes import FakeFactory

# Each test using `store` runs on memory and on Redis; every test here is long.
pytestmark = [pytest.mark.stores, pytest.mark.slow]

CLIENTS = 200
JOBS_PER_CLIENT = 2
# Bounds against a hang, not speed targets: the client pool of 200 connections shares the GIL with
# the in-process server, and the Redis store adds round trips, so a busy CI machine needs room.
DEADLINE_SECONDS = 180
REQUEST_TIMEOUT_SECONDS = 90


@pytest.fixture
def loaded_server(store: str, make_fake: FakeFactory) -> tuple[SegmindMock, str]:
    """A frozen-clock fake on a real uvicorn server, on each store in turn (the `store` fixture)."""
    mock = make_fake(speed=0, journal_size=10_000, store=store)
    return mock, make_fake.serve(mock)


async def _client(http: httpx.AsyncClient, index: int) -> list[str]:
    """One client: submit its jobs (alternating models and keys), checking each is queued."""
    ids = []
    for number in range(JOBS_PER_CLIENT):
        model = list(MODELS)[(index + number) % len(MODELS)]
        headers = {"x-api-key": f"SG_10ad{index % 7:012d}"}
        submitted = await http.post(f"/v2/{model}", json=MODELS[model].example, headers=headers)
        assert submitted.status_code == 200, submitted.text
        request_id = submitted.json()["request_id"]
        status = await http.get(f"/v2/requests/{request_id}/status", headers=headers)
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "QUEUED"
        ids.append(request_id)
    return ids


async def _finished(http: httpx.AsyncClient, request_id: str) -> tuple[str, str]:
    headers = {"x-api-key": "SG_a0a0a0a0a0a0a0a0"}
    status = await http.get(f"/v2/requests/{request_id}/status", headers=headers)
    result = await http.get(f"/v2/requests/{request_id}", headers=headers)
    assert status.status_code == result.status_code == 200, (status.text, result.text)
    return status.json()["status"], result.json()["output"]


async def _load(url: str, mock: SegmindMock) -> tuple[list[str], list[tuple[str, str]]]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        batches = await asyncio.gather(*(_client(http, index) for index in range(CLIENTS)))
        ids = [request_id for batch in batches for request_id in batch]
        # The longest job is queue + motionctrl-svd's latency; move the clock past it, without sleeping.
        longest = max(spec.latency_seconds for spec in MODELS.values()) + mock.settings.queue_seconds
        advanced = await http.post("/_mock/clock/advance", json={"seconds": longest + 1})
        assert advanced.status_code == 200
        finished = await asyncio.gather(*(_finished(http, request_id) for request_id in ids))
    return ids, finished


def test_hundreds_of_concurrent_clients_lose_no_job(loaded_server: tuple[SegmindMock, str]) -> None:
    mock, url = loaded_server
    ids, finished = asyncio.run(asyncio.wait_for(_load(url, mock), DEADLINE_SECONDS))

    total = CLIENTS * JOBS_PER_CLIENT
    assert len(ids) == len(set(ids)) == total
    assert {job["request_id"] for job in mock.jobs} == set(ids)
    assert [state for state, _ in finished] == ["COMPLETED"] * total
    assert all(
        output.endswith(f"/_mock/outputs/{request_id}.mp4")
        for request_id, (_, output) in zip(ids, finished, strict=True)
    )
    # Every exchange was answered without error: the journal saw as many 200s as requests were sent.
    statuses = [entry["status"] for entry in mock.requests]
    assert statuses == [200] * len(statuses)

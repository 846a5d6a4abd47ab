"""The stores held under attack (issue 22): data loss seen by every worker, bounded memory, refusals that keep nothing.

Redis tests run on a real Redis-compatible server (tests/support_stores.py); those marked for
both stores run once per store.
"""

from __future__ import annotations

import httpx
import redis

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.store_redis import split_url
from mock_server.transport import PortalTransport
from tests.support import API_KEY
from tests.support_stores import namespaced

SVD = MODELS["svd"]
MOTION = MODELS["motionctrl-svd"]


def _http(mock: SegmindMock) -> httpx.Client:
    return httpx.Client(transport=PortalTransport(mock.app), base_url="http://fake", headers={"x-api-key": API_KEY})


def _submit(client: httpx.Client, model: str = "svd") -> str:
    response = client.post(f"/v2/{model}", json=MODELS[model].example)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def test_every_worker_drops_rules_it_cached_once_redis_loses_its_data(redis_url: str) -> None:
    # Rule ids and the rule book's version count again from 0 after Redis loses its data: a worker
    # that did not restore the clock itself must not match the rules it cached at the same version.
    store = namespaced(redis_url)
    first, second = SegmindMock(Settings(speed=0, store=store)), SegmindMock(Settings(speed=0, store=store))
    with _http(first) as one, _http(second) as two, redis.Redis.from_url(split_url(store)[0]) as admin:
        first.add_scenario(match={"model": "svd"}, outcome="failed")  # version 1
        assert second.job(_submit(two))["error"] is not None  # the second worker caches it at version 1
        admin.flushdb()
        _submit(one)  # the first worker restores the clock
        first.add_scenario(match={"model": "motionctrl-svd"}, outcome="failed")  # version 1 again
        assert second.job(_submit(two, "motionctrl-svd"))["error"] is not None
        assert second.job(_submit(two))["error"] is None  # svd: no rule applies any more
        assert second.service.backend.restarts == 1  # type: ignore[attr-defined]

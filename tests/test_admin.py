"""The admin API under /_mock/: health, clock, reset, journal and job views."""

from __future__ import annotations

import base64
import os

import httpx
import numpy as np
import pytest

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, defaults
from tests.support import API_KEY
from tests.support_video import png

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SVD = MODELS["svd"].example


def test_health_reports_the_clock_and_jobs(http: httpx.Client) -> None:
    http.post("/v2/svd", json=SVD)
    health = http.get("/_mock/health").json()
    assert health["status"] == "ok"
    assert health["jobs"] == 1
    assert health["speed"] == 0


def test_health_names_the_serving_process_of_a_fake_on_the_tests_store(server, store: str) -> None:
    mock, url = server
    health = httpx.get(f"{url}/_mock/health").json()
    assert health["worker"] == os.getpid()  # the test's server runs in a thread of this process
    assert mock.service.backend.shared is (store != "memory")


def test_clock_advance_moves_simulated_time(http: httpx.Client) -> None:
    before = http.get("/_mock/clock").json()["now"]
    after = http.post("/_mock/clock/advance", json={"seconds": 90.5}).json()["now"]
    assert after - before == 90.5
    assert http.get("/_mock/clock").json()["now"] == after  # frozen: nothing moves on its own


def test_clock_speed_can_change_without_a_jump(http: httpx.Client) -> None:
    before = http.post("/_mock/clock/advance", json={"seconds": 5000}).json()["now"]
    # A speed so slow that no real time spent here moves the clock by a microsecond: any jump is
    # the speed change's doing (reset, say, would bring it 5000 s back).
    slow = http.post("/_mock/clock", json={"speed": 1e-9}).json()
    assert slow["speed"] == 1e-9 and slow["now"] == pytest.approx(before, abs=1e-6)
    frozen = http.post("/_mock/clock", json={"speed": 0}).json()
    assert frozen["now"] == pytest.approx(before, abs=1e-6)
    assert http.post("/_mock/clock", json={"speed": 1e13}).status_code == 400


def test_clock_advance_refuses_what_it_cannot_do(http: httpx.Client) -> None:
    for body in ({"seconds": -5}, {"seconds": "ten"}, {}, {"seconds": True}):
        response = http.post("/_mock/clock/advance", json=body)
        assert response.status_code == 400
        assert "seconds must be a number" in response.json()["error"]


def test_reset_forgets_jobs_journal_rules_and_brings_the_clock_back(http: httpx.Client) -> None:
    job = http.post("/v2/svd", json=SVD).json()
    http.post("/_mock/scenarios", json={"outcome": "failed"})
    advanced = http.post("/_mock/clock/advance", json={"seconds": 86400}).json()["now"]
    assert http.post("/_mock/reset").json() == {"status": "reset"}
    assert http.get("/_mock/jobs").json() == []
    assert http.get("/_mock/scenarios").json() == []
    assert http.get("/_mock/requests").json() == []
    assert http.get("/_mock/clock").json()["now"] < advanced - 80000
    assert http.get(job["status_url"]).status_code == 404


def test_journal_records_what_clients_sent_and_got_with_the_key_masked(http: httpx.Client) -> None:
    job = http.post("/v2/svd", json=SVD).json()
    http.get(job["status_url"])
    http.post("/v2/svd", json={"fps": 0})
    first, second, third = http.get("/_mock/requests").json()
    assert (first["method"], first["path"], first["status"]) == ("POST", "/v2/svd", 200)
    assert first["request"] == SVD
    assert first["response"] == job
    assert first["request_id"] == job["request_id"]
    assert first["api_key"] == "SG_…cdef" and API_KEY not in str(first)
    assert (second["method"], second["request_id"]) == ("GET", job["request_id"])
    assert third["status"] == 400 and "fps must be" in third["response"]["error"]


def test_journal_records_unknown_routes(http: httpx.Client) -> None:
    http.post("/v3/whatever", json={})
    entry = http.get("/_mock/requests").json()[-1]
    assert (entry["path"], entry["status"]) == ("/v3/whatever", 404)
    assert "No route" in entry["response"]["error"]


def test_journal_keeps_large_bodies_short(http: httpx.Client) -> None:
    response = http.post("/v2/svd", json={**SVD, "image": "QUJD" * 25_000})
    entry = http.get("/_mock/requests").json()[-1]
    assert entry["request_size"] == len(response.request.content) > 100_000
    assert len(entry["request"]) < 5000
    assert entry["request"].endswith(f"({entry['request_size']} bytes in all)")


def test_journal_can_be_emptied(http: httpx.Client) -> None:
    http.post("/v2/svd", json=SVD)
    assert http.delete("/_mock/requests").json() == []


def test_jobs_show_state_timeline_and_masked_key(http: httpx.Client, mock: SegmindMock) -> None:
    job = http.post("/v2/motionctrl-svd", json=MODELS["motionctrl-svd"].example).json()
    view = http.get(f"/_mock/jobs/{job['request_id']}").json()
    assert view["state"] == "QUEUED"
    assert view["model"] == "motionctrl-svd"
    assert view["api_key"] == "SG_…cdef"
    duration = defaults.QUEUE_SECONDS + MODELS["motionctrl-svd"].latency_seconds
    assert view["finished_at"] - view["submitted_at"] == pytest.approx(duration)
    assert view["expires_at"] - view["submitted_at"] == pytest.approx(RESULT_RETENTION_SECONDS)
    mock.advance(100)
    assert [listed["state"] for listed in http.get("/_mock/jobs").json()] == ["COMPLETED"]


def test_job_view_shortens_base64_images(http: httpx.Client) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image = base64.b64encode(png(noise)).decode()
    job = http.post("/v2/svd", json={**SVD, "image": image}).json()
    shown = http.get(f"/_mock/jobs/{job['request_id']}").json()["params"]["image"]
    assert shown.startswith(image[:100]) and shown.endswith(f"({len(image)} characters)")


def test_unknown_job_is_404(http: httpx.Client) -> None:
    response = http.get("/_mock/jobs/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Request nope not found"}


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/_mock/clock/advance", {"secnds": 40}, 'unknown key "secnds": POST /_mock/clock/advance takes "seconds"'),
        ("/_mock/clock", {"speed": 2, "sped": 3}, 'unknown key "sped": POST /_mock/clock takes "speed"'),
        ("/_mock/accounts/SG_0123456789abcdef/credits", {"ad": 1, "x": 2}, 'unknown keys "ad", "x": POST'),
    ],
)
def test_an_admin_body_with_an_unknown_key_is_refused_naming_it(
    http: httpx.Client, path: str, body: dict[str, int], named: str
) -> None:
    before = http.get("/_mock/clock").json()
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(named)
    assert http.get("/_mock/clock").json()["speed"] == before["speed"]  # nothing done


def test_an_admin_bodys_many_long_unknown_keys_are_named_in_a_short_message(http: httpx.Client) -> None:
    body = {f"key{n}-" + "x" * 10_000: n for n in range(9)}
    message = http.post("/_mock/clock/advance", json=body).json()["error"]
    assert message.startswith('unknown keys "key0-xxx')
    assert message.endswith(' and 4 more: POST /_mock/clock/advance takes "seconds"')
    assert len(message) < 500

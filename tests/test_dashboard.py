"""The dashboard's server side without a browser: the page, its static files, and the JSON it reads.

The page itself is driven in a real browser in test_dashboard_browser.py.
"""

from __future__ import annotations

import re

import httpx
import pytest

from contracts import MODELS
from contracts.responses import VIDEO_CONTENT_TYPE
from mock_server import SegmindMock
from mock_server.admin_token import ADMIN_COOKIE
from tests.support import API_KEY

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SVD = MODELS["svd"].example
HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what Chromium sends


def test_a_browser_gets_the_page_and_api_clients_the_404_they_always_got(http: httpx.Client) -> None:
    page = http.get("/_mock/", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>segmind-mock dashboard</title>" in page.text
    # The page may load nothing from elsewhere: the policy keeps it to the fake's own files.
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for client_accept in ("application/json", "*/*"):
        answer = http.get("/_mock/", headers={"accept": client_accept})
        assert answer.status_code == 404
        assert answer.json() == {"error": "No route for GET /_mock/: see docs/wire-format.md for the routes"}


def test_the_page_loads_only_the_fakes_own_files(http: httpx.Client) -> None:
    page = http.get("/_mock/", headers=HTML).text
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert {"static/dashboard.css", "static/dashboard.js"} <= set(references)
    for reference in references:
        assert "//" not in reference, f"{reference} is not the fake's own file"
    script = http.get("/_mock/static/dashboard.js")
    style = http.get("/_mock/static/dashboard.css")
    assert script.status_code == style.status_code == 200
    assert "javascript" in script.headers["content-type"] and style.headers["content-type"].startswith("text/css")
    for text in (script.text, style.text):
        assert not re.search(r"https?://", text), "the dashboard must work offline"
    missing = http.get("/_mock/static/nope.js")
    assert missing.status_code == 404 and "error" in missing.json()


def test_a_token_in_the_url_becomes_an_http_only_cookie_and_leaves_the_url(http: httpx.Client) -> None:
    answer = http.get("/_mock/?token=s3cret&x=1", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/_mock/?x=1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{ADMIN_COOKIE}=s3cret;")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_mock/" in cookie


def test_jobs_page_newest_first_with_the_total_in_a_header(http: httpx.Client, mock: SegmindMock) -> None:
    ids = [http.post("/v2/svd", json=SVD).json()["request_id"] for _ in range(7)]
    whole = http.get("/_mock/jobs")
    assert [job["request_id"] for job in whole.json()] == ids  # no parameters: as it always was
    assert whole.headers["x-total-count"] == "7"
    page = http.get("/_mock/jobs", params={"order": "newest", "limit": 3, "offset": 2})
    assert [job["request_id"] for job in page.json()] == ids[::-1][2:5]
    assert page.headers["x-total-count"] == "7"
    assert http.get("/_mock/jobs", params={"offset": 7}).json() == []


def test_jobs_filter_by_state(http: httpx.Client, mock: SegmindMock) -> None:
    http.post("/_mock/scenarios", json={"outcome": "failed", "error": "CUDA out of memory", "times": 1})
    failed = http.post("/v2/svd", json=SVD).json()["request_id"]
    http.post("/v2/svd", json=SVD)
    assert http.get("/_mock/jobs", params={"state": "FAILED"}).json() == []
    mock.advance(100)
    http.post("/v2/svd", json=SVD)
    answer = http.get("/_mock/jobs", params={"state": "FAILED"})
    assert [job["request_id"] for job in answer.json()] == [failed]
    assert answer.json()[0]["error"] == "CUDA out of memory"
    assert http.get("/_mock/jobs", params={"state": "QUEUED"}).headers["x-total-count"] == "1"
    assert http.get("/_mock/jobs", params={"state": "COMPLETED"}).headers["x-total-count"] == "1"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "0"}, "limit must be a whole number, 1 or more (got '0')"),
        ({"limit": "ten"}, "limit must be a whole number, 1 or more (got 'ten')"),
        ({"offset": "-1"}, "offset must be a whole number, 0 or more (got '-1')"),
        ({"offset": "²"}, "offset must be a whole number, 0 or more (got '²')"),
        ({"order": "random"}, "order must be one of oldest, newest (got 'random')"),
        ({"state": "DONE"}, "state must be one of QUEUED, PROCESSING, COMPLETED, FAILED (got 'DONE')"),
    ],
)
def test_bad_list_parameters_say_what_to_fix(http: httpx.Client, query: dict[str, str], message: str) -> None:
    answer = http.get("/_mock/jobs", params=query)
    assert answer.status_code == 400
    assert answer.json() == {"error": message}


def test_health_counts_jobs_by_state_and_names_the_next_end(http: httpx.Client, mock: SegmindMock) -> None:
    assert http.get("/_mock/health").json()["next_job_end"] is None
    first = http.post("/v2/svd", json=SVD).json()["request_id"]
    http.post("/_mock/scenarios", json={"outcome": "completed", "processing_seconds": 500})
    http.post("/v2/svd", json=SVD)
    health = http.get("/_mock/health").json()
    assert health["jobs_by_state"] == {"QUEUED": 2, "PROCESSING": 0, "COMPLETED": 0, "FAILED": 0}
    assert health["next_job_end"] == http.get(f"/_mock/jobs/{first}").json()["finished_at"]
    # Advancing by exactly what the page computes reaches that end.
    http.post("/_mock/clock/advance", json={"seconds": health["next_job_end"] - health["now"]})
    after = http.get("/_mock/health").json()
    assert after["jobs_by_state"] == {"QUEUED": 0, "PROCESSING": 1, "COMPLETED": 1, "FAILED": 0}
    assert after["next_job_end"] > after["now"]


def test_journal_filters_by_status_path_and_key_newest_first(http: httpx.Client) -> None:
    job = http.post("/v2/svd", json=SVD).json()
    http.get(job["status_url"])
    http.post("/v2/svd", json={"fps": 0})  # 400
    http.get("/v2/requests/nope/status")  # 404
    http.post("/v2/svd", json=SVD, headers={"x-api-key": "SG_0000000000009999"})

    def paths(**query: str) -> list[tuple[str, int]]:
        answer = http.get("/_mock/requests", params={"order": "newest", **query})
        entries = answer.json()
        assert answer.headers["x-total-count"] == str(len(entries))
        return [(entry["path"], entry["status"]) for entry in entries]

    assert paths(status="4xx") == [("/v2/requests/nope/status", 404), ("/v2/svd", 400)]
    assert paths(status="400") == [("/v2/svd", 400)]
    assert paths(path="/v2/requests/") == [
        ("/v2/requests/nope/status", 404),
        (f"/v2/requests/{job['request_id']}/status", 200),
    ]
    assert paths(key="SG_0000000000009999") == [("/v2/svd", 200)]  # the key as sent
    assert paths(key="SG_…9999") == [("/v2/svd", 200)]  # or as the journal shows it
    assert len(paths(key=API_KEY)) == 4
    newest_success = http.get("/_mock/requests", params={"order": "newest", "status": "2xx", "limit": 1})
    assert [entry["api_key"] for entry in newest_success.json()] == ["SG_…9999"]
    assert newest_success.headers["x-total-count"] == "3"
    bad = http.get("/_mock/requests", params={"status": "teapot"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "status must be a code such as 422, a class such as 4xx, or none (got 'teapot')"}


def test_journal_pages_stay_in_step_with_its_total(http: httpx.Client) -> None:
    for _ in range(5):
        http.get("/v2/requests/nope/status")
    answer = http.get("/_mock/requests", params={"limit": 2, "offset": 4})
    assert len(answer.json()) == 1 and answer.headers["x-total-count"] == "5"


def test_a_rule_added_as_the_form_sends_it_is_refused_with_the_apis_message(http: httpx.Client) -> None:
    # The form sends what was typed: a number as a number, anything else as text.
    answer = http.post("/_mock/scenarios", json={"outcome": "failed", "times": "abc"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("Invalid scenario: times must be a positive integer")
    rule = http.post("/_mock/scenarios", json={"outcome": "failed", "match": {"model": "svd"}, "times": 2}).json()
    assert http.delete(f"/_mock/scenarios/{rule['id']}").status_code == 204
    assert http.get("/_mock/scenarios").json() == []


def test_the_output_the_page_plays_is_a_video(http: httpx.Client, mock: SegmindMock) -> None:
    job = http.post("/v2/svd", json=SVD).json()
    mock.advance(100)
    video = http.get(f"/_mock/outputs/{job['request_id']}.mp4")
    assert video.headers["content-type"] == VIDEO_CONTENT_TYPE
    assert video.content[4:8] == b"ftyp"

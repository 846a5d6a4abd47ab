"""The admin API beyond loopback: a token, generated unless given, that the dashboard keeps in a cookie.

The servers here bind 0.0.0.0 (the rule keys off the bound address, not the caller's) and are
called through 127.0.0.1 only.
"""

from __future__ import annotations

import httpx
import pytest

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.accounts import parse_config
from mock_server.admin_token import ADMIN_COOKIE
from mock_server.server import ServerThread
from tests.support import API_KEY

EVERY_INTERFACE = "0.0.0.0"  # bound, never called: clients use the 127.0.0.1 URL
ADMIN_CALLS = (
    ("GET", "/_mock/jobs"),
    ("GET", "/_mock/requests"),
    ("GET", "/_mock/scenarios"),
    ("POST", "/_mock/reset"),
    ("POST", "/_mock/clock/advance"),
    ("GET", "/_mock/accounts"),
    ("GET", "/_mock/clock"),
)
HTML = {"Accept": "text/html"}


def test_bound_beyond_loopback_every_admin_call_needs_the_generated_token() -> None:
    mock = SegmindMock(Settings(speed=0))
    thread = ServerThread(mock.app, host=EVERY_INTERFACE)
    token = thread.admin_token
    assert token and len(token) >= 32
    with thread as url, httpx.Client(base_url=url) as http:
        for method, path in ADMIN_CALLS:
            refused = http.request(method, path, json={"seconds": 1})
            assert refused.status_code == 401, path
            assert refused.headers["content-type"].startswith("application/json")
            assert "Authorization: Bearer <token>" in refused.json()["error"]
            wrong = http.request(method, path, json={"seconds": 1}, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            allowed = http.request(method, path, json={"seconds": 1}, headers={"Authorization": f"Bearer {token}"})
            assert allowed.status_code == 200, (path, allowed.text)
        assert http.get("/_mock/", headers=HTML).status_code == 401  # the dashboard page too


def test_beyond_loopback_segmind_routes_health_outputs_and_static_files_need_no_token() -> None:
    mock = SegmindMock(Settings(speed=0))
    with ServerThread(mock.app, host=EVERY_INTERFACE) as url, httpx.Client(base_url=url) as http:
        job = http.post("/v2/svd", json=MODELS["svd"].example, headers={"x-api-key": API_KEY})
        assert job.status_code == 200
        mock.advance(1000)
        result = http.get(f"/v2/requests/{job.json()['request_id']}", headers={"x-api-key": API_KEY})
        assert http.get(result.json()["output"]).status_code == 200  # a CDN-like link, public
        assert http.get("/_mock/health").status_code == 200
        assert http.get("/_mock/static/dashboard.js").status_code == 200


def test_the_dashboard_url_with_the_token_sets_the_cookie_that_opens_the_admin_api() -> None:
    mock = SegmindMock(Settings(speed=0))
    thread = ServerThread(mock.app, host=EVERY_INTERFACE)
    with thread as url, httpx.Client(base_url=url) as http:
        assert http.get("/_mock/?token=wrong", headers=HTML).status_code == 401
        opened = http.get(f"/_mock/?token={thread.admin_token}", headers=HTML)
        assert opened.status_code == 303
        assert "HttpOnly" in opened.headers["set-cookie"]
        assert http.cookies[ADMIN_COOKIE] == thread.admin_token
        assert http.get("/_mock/jobs").status_code == 200  # the cookie is accepted like the header


def test_on_loopback_the_admin_api_is_open_unless_a_token_is_given() -> None:
    open_mock = SegmindMock(Settings(speed=0))
    with ServerThread(open_mock.app) as url:
        assert httpx.get(f"{url}/_mock/jobs").status_code == 200
    closed = SegmindMock(Settings(speed=0, admin_token="given-token"))
    with ServerThread(closed.app) as url:
        assert httpx.get(f"{url}/_mock/jobs").status_code == 401
        assert httpx.get(f"{url}/_mock/jobs", headers={"Authorization": "Bearer given-token"}).status_code == 200


@pytest.mark.parametrize("declared", ["SG_declared_team_key_1"])
def test_declared_keys_are_masked_everywhere(declared: str) -> None:
    mock = SegmindMock(Settings(speed=0, accounts=parse_config({"keys": {declared: {"credits": 5}}})))
    with ServerThread(mock.app) as url, httpx.Client(base_url=url) as http:
        http.post("/v2/svd", json=MODELS["svd"].example, headers={"x-api-key": declared})
        http.post("/_mock/scenarios", json={"match": {"api_key": declared}, "outcome": "failed"})
        unknown = http.post("/_mock/accounts/SG_other/credits", json={"add": 1})
        assert unknown.status_code == 404
        views = [unknown.text, *(http.get(path).text for path in ("/_mock/accounts", "/_mock/requests"))]
        views += [http.get("/_mock/scenarios").text, http.get("/_mock/jobs").text]
    for view in views:
        assert declared not in view
    assert "SG_…ey_1" in views[0]

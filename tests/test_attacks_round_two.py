"""Issue 22, round two: what an adversary on loopback broke, through HTTP (in-process or a real uvicorn) and the CLI.

Huge integers in number fields, a client moving the shared clock, unbounded scenario rules, keys
leaking past the journal's masking, cross-site writes and rebound hosts on the admin API, IPv6
image URLs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import pytest

from contracts import MODELS
from contracts.responses import RESULT_RETENTION_SECONDS
from mock_server import SegmindMock, Settings, api_errors
from mock_server.accounts import parse_config
from mock_server.images import ImageSource
from mock_server.transport import PortalTransport
from tests.support import API_KEY, SEGMIND

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

SVD = MODELS["svd"].example
MOTION = MODELS["motionctrl-svd"].example
ROOT = Path(__file__).resolve().parents[1]
SERVE = [sys.executable, "-c", "import sys; from mock_server.cli import main; sys.exit(main())", "serve"]
TOKEN = "admin-token-for-tests"
MAX_RULES = 1000  # the documented default (docs/robustness.md)


@contextmanager
def client_of(settings: Settings) -> Iterator[tuple[SegmindMock, httpx.Client]]:
    """A fake with `settings` and a client of it through the in-process transport."""
    mock = SegmindMock(settings)
    with (
        PortalTransport(mock.app) as transport,
        httpx.Client(transport=transport, base_url=SEGMIND, headers={"x-api-key": API_KEY}) as http,
    ):
        yield mock, http


def with_number(body: dict, name: str, digits: int) -> bytes:
    """A JSON body with `name` set to an integer of `digits` digits (json.dumps refuses past 4,300)."""
    rest = httpx.Request("POST", "/", json={key: value for key, value in body.items() if key != name}).content
    separator = b"" if rest == b"{}" else b", "
    return rest[:-1] + separator + b'"' + name.encode() + b'": ' + b"9" * digits + b"}"


# 310 digits: past float range (math.isfinite raised OverflowError); 4,000: below Python's int
# conversion limit; 5,000: past it.
DIGITS = [310, 4000, 5000]


@pytest.mark.parametrize("digits", DIGITS)
@pytest.mark.parametrize(
    ("path", "body", "name"),
    [
        ("/v2/svd", SVD, "cond_aug"),
        ("/v1/svd", SVD, "cond_aug"),
        ("/v2/motionctrl-svd", MOTION, "motion_speed"),
        ("/v1/motionctrl-svd", MOTION, "motion_speed"),
        ("/v2/motionctrl-svd", MOTION, "cond_aug"),
    ],
)
def test_a_huge_integer_in_a_number_parameter_is_a_400_naming_the_range(
    http: httpx.Client, mock: SegmindMock, path: str, body: dict, name: str, digits: int
) -> None:
    response = http.post(path, content=with_number(body, name, digits), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if digits < 4300:  # read as a number: refused for its range
        assert error.startswith(f"{name} must be a number from 0 to "), error
        assert f"(got an integer of {digits} digits)" in error
    else:  # no JSON reader here takes it: refused as a body Python cannot read
        assert f"has {digits} digits, more than any value the fake takes" in error, error
    assert mock.jobs == []


ADMIN_NUMBERS = [
    ("/_mock/clock/advance", {}, "seconds"),
    ("/_mock/clock", {}, "speed"),
    ("/_mock/scenarios", {"outcome": "completed"}, "queue_seconds"),
    ("/_mock/scenarios", {"outcome": "completed"}, "processing_seconds"),
    ("/_mock/scenarios", {"outcome": "latency"}, "delay_seconds"),
    ("/_mock/scenarios", {"outcome": "completed"}, "times"),
]


@pytest.mark.parametrize("digits", DIGITS)
@pytest.mark.parametrize(("path", "body", "name"), ADMIN_NUMBERS, ids=[name for _, _, name in ADMIN_NUMBERS])
def test_a_huge_integer_in_an_admin_body_is_a_400_envelope(
    http: httpx.Client, path: str, body: dict, name: str, digits: int
) -> None:
    response = http.post(path, content=with_number(body, name, digits), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    error = response.json()["error"]
    assert name in error or f"has {digits} digits, more than any value the fake takes" in error, error
    assert len(error) < 400  # says what is allowed, never quotes the digits
    assert http.get("/_mock/scenarios").json() == []


@pytest.mark.parametrize("digits", DIGITS)
def test_a_huge_integer_in_a_scenario_match_or_a_top_up_is_a_400(digits: int) -> None:
    key = "SG_declared_key_0001"
    config = parse_config({"keys": {key: {"credits": 10}}})
    with client_of(Settings(speed=0, accounts=config)) as (_, http):
        match = b'{"outcome": "failed", "match": {"cond_aug": ' + b"9" * digits + b"}}"
        top_up = b'{"add": -' + b"9" * digits + b"}"
        for path, content in [("/_mock/scenarios", match), (f"/_mock/accounts/{key}/credits", top_up)]:
            response = http.post(path, content=content, headers={"content-type": "application/json"})
            assert response.status_code == 400, response.text
            assert len(response.json()["error"]) < 400


@pytest.mark.parametrize("digits", DIGITS)
def test_a_config_with_a_huge_integer_exits_2_with_one_line(tmp_path: Path, digits: int) -> None:
    config = tmp_path / "accounts.toml"
    config.write_text(f"[keys.SG_a]\ncredits = {'9' * digits}\n")
    ran = subprocess.run([*SERVE, "--port", "0", "--config", str(config)], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 2, ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith(f"segmind-mock: {config}: ")
    assert "credits" in ran.stderr or "digits" in ran.stderr


def test_a_huge_integer_given_to_the_python_api_is_a_value_error(mock: SegmindMock) -> None:
    # The same check as over HTTP: not an OverflowError from converting it to a float.
    with pytest.raises(ValueError, match="an integer of 400 digits"):
        SegmindMock(Settings(speed=10**399))
    with pytest.raises(ValueError, match="the clock cannot advance by an infinite time"):
        mock.advance(10**399)
    with pytest.raises(ValueError, match="speed must be a finite number, 0 or more"):
        mock.clock.set_speed(10**399)


# Any client may send headers: a timeline past the result retention is refused, naming the bound.
@pytest.mark.parametrize("name", ["x-mock-queue-seconds", "x-mock-processing-seconds", "x-mock-delay-seconds"])
def test_timing_headers_are_bounded_by_the_retention(http: httpx.Client, mock: SegmindMock, name: str) -> None:
    outcome = {"x-mock-outcome": "latency"} if name == "x-mock-delay-seconds" else {}
    refused = http.post("/v2/svd", json=SVD, headers={name: "1e9", **outcome})
    assert refused.status_code == 400
    assert f"{name} must be a number of seconds, 0 or more and at most 3600" in refused.json()["error"]
    if name != "x-mock-delay-seconds":  # real seconds: not waited for here
        assert http.post("/v2/svd", json=SVD, headers={name: str(RESULT_RETENTION_SECONDS)}).status_code == 200


def test_a_v1_call_cannot_move_a_stopped_clock_without_the_admin_token(store: str) -> None:
    with client_of(Settings(speed=0, admin_token=TOKEN, store=store)) as (mock, http):
        before = mock.clock.now()
        refused = http.post("/v1/svd", json=SVD)
        assert refused.status_code == 400
        assert refused.json() == {"error": api_errors.STOPPED_CLOCK}
        assert mock.jobs == [] and mock.clock.now() == before  # nothing accepted, the clock where it was
        # Every other client's job is still there.
        job = http.post("/v2/svd", json=SVD).json()["request_id"]
        assert http.get(f"/v2/requests/{job}/status").status_code == 200
        # With the token, the call runs its job to the end, moving the clock as before.
        ran = http.post("/v1/svd", json=SVD, headers={"authorization": f"Bearer {TOKEN}"})
        assert ran.status_code == 200 and ran.headers["content-type"] == "video/mp4"
        assert mock.clock.now() > before


def test_a_v1_call_waiting_when_the_clock_stops_does_not_move_it_without_the_admin_token(store: str) -> None:
    with client_of(Settings(speed=1, admin_token=TOKEN, store=store)) as (mock, http):
        answers: list[httpx.Response] = []
        call = threading.Thread(target=lambda: answers.append(http.post("/v1/svd", json=SVD)))
        call.start()
        while not mock.jobs:  # admitted while the clock runs, then waiting for its job's end
            call.join(0.001)
        mock.clock.set_speed(0)  # the admin stops the clock
        stopped = mock.clock.now()
        # The call's wait reads the clock every 20 ms: before, its first read jumped it to the job's end.
        watched_until = time.monotonic() + 0.3
        while time.monotonic() < watched_until:
            assert mock.clock.now() == stopped
            call.join(0.01)
        assert call.is_alive()  # still waiting, for the clock to run or be moved
        end = mock.clock.advance(RESULT_RETENTION_SECONDS / 2)  # the admin moves it past the job's end
        call.join()
        assert answers[0].status_code == 200 and mock.clock.now() == end


def test_without_an_admin_token_a_v1_call_still_jumps_a_stopped_clock(http: httpx.Client, mock: SegmindMock) -> None:
    before = mock.clock.now()
    assert http.post("/v1/svd", json=SVD).status_code == 200
    assert mock.clock.now() > before


def test_the_number_of_scenario_rules_is_capped(store: str) -> None:
    with client_of(Settings(speed=0, store=store)) as (mock, http):
        for _ in range(MAX_RULES):
            mock.add_scenario({"model": "motionctrl-svd"}, "failed")
        refused = http.post("/_mock/scenarios", json={"outcome": "failed"})
        assert refused.status_code == 400
        assert f"at most {MAX_RULES} scenario rules (--max-scenarios)" in refused.json()["error"]
        assert len(http.get("/_mock/scenarios").json()) == MAX_RULES
        # Rules for another model are not this one's: an svd submission completes.
        job = http.post("/v2/svd", json=SVD).json()["request_id"]
        assert mock.job(job)["error"] is None  # type: ignore[index]
        # Removing one makes room for one.
        assert http.delete("/_mock/scenarios/1").status_code == 204
        assert http.post("/_mock/scenarios", json={"outcome": "failed"}).status_code == 201


def test_a_scenario_rule_over_the_size_cap_is_refused(http: httpx.Client, mock: SegmindMock) -> None:
    refused = http.post("/_mock/scenarios", json={"outcome": "failed", "error": "x" * 1024 * 1024})
    assert refused.status_code == 400
    assert re.search(r"a rule may take at most 16384 \(--max-scenario-bytes\)", refused.json()["error"])
    assert mock.scenarios.rules() == []


def test_rules_for_keys_and_for_everyone_keep_their_order(http: httpx.Client, mock: SegmindMock) -> None:
    # The index splits rules by model and key; the first matching rule still wins, in the order added.
    other = "SG_" + "f" * 16
    http.post("/_mock/scenarios", json={"match": {"api_key": other}, "outcome": "failed", "error": "other key"})
    http.post("/_mock/scenarios", json={"match": {"model": "svd"}, "outcome": "failed", "error": "anyone", "times": 1})
    http.post("/_mock/scenarios", json={"match": {"api_key": API_KEY}, "outcome": "failed", "error": "own key"})
    errors = [mock.job(http.post("/v2/svd", json=SVD).json()["request_id"])["error"] for _ in range(2)]  # type: ignore[index]
    assert errors == ["anyone", "own key"]
    theirs = http.post("/v2/svd", json=SVD, headers={"x-api-key": other}).json()["request_id"]
    assert mock.job(theirs)["error"] == "other key"  # type: ignore[index]


@pytest.mark.parametrize(
    "query",
    [
        "x={encoded}&page=2",  # the request's own key, percent-encoded
        "auth={other}&page=2",
        "Authorization=Bearer%20{other}&page=2",
        "ref=SG%5F{tail}&page=2",  # another Segmind key, encoded
    ],
)
def test_keys_in_the_query_are_masked_however_encoded(http: httpx.Client, mock: SegmindMock, query: str) -> None:
    other = "opaque-session-credential"
    encoded = "".join(f"%{byte:02X}" for byte in API_KEY.encode())
    filled = query.format(encoded=encoded, other=other, tail="0123456789abcdef")
    http.get(f"/v2/requests/x/status?{filled}")
    shown = unquote_plus(mock.requests[-1]["query"])  # a key shown encoded is shown all the same
    assert shown.endswith("&page=2")
    for secret in (API_KEY[3:], other, "0123456789abcdef"):
        assert secret not in shown and secret[:8] not in shown, shown


@pytest.mark.parametrize("key", ["SG_12345678", "abcdefghijk", "SG_" + "0123456789abcdef"])
def test_a_masked_key_shows_at_most_four_characters_and_never_a_third(key: str) -> None:
    with client_of(Settings(speed=0, accounts=parse_config({"keys": {key: {"credits": 1}}}))) as (_, http):
        shown = http.get("/_mock/accounts").json()["accounts"][0]["key"]
        secret = key.removeprefix("SG_")
        visible = shown.removeprefix("SG_").removeprefix("…")
        assert secret.endswith(visible) and len(visible) <= min(4, len(secret) // 3), shown


# The admin API on a real loopback server, as a browser on another site would reach it.
def test_a_cross_site_write_is_refused_and_changes_nothing(server: tuple[SegmindMock, str]) -> None:
    mock, url = server
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as http:
        job = http.post("/v2/svd", json=SVD).json()["request_id"]
        evil = {"origin": "https://evil.example", "content-type": "text/plain"}
        reset = http.post("/_mock/reset", headers=evil)
        assert reset.status_code == 403 and "another site" in reset.json()["error"]
        rule = http.post("/_mock/scenarios", content=b'{"outcome": "failed"}', headers=evil)
        assert rule.status_code == 403
        # No Origin (curl, a script), but a body that is not declared JSON (an HTML form's).
        form = http.post("/_mock/scenarios", content=b'{"outcome": "failed"}', headers={"content-type": "text/plain"})
        assert form.status_code == 415 and "Content-Type: application/json" in form.json()["error"]
        assert http.get("/_mock/scenarios").json() == []
        assert mock.job(job) is not None
        # Its own pages, and clients sending JSON without an Origin, still write.
        own = {"origin": url, "content-type": "application/json"}
        assert http.post("/_mock/scenarios", json={"outcome": "failed"}, headers=own).status_code == 201
        assert http.delete("/_mock/scenarios", headers={"origin": url}).status_code == 200
        assert http.post("/_mock/reset").status_code == 200


def test_a_rebound_host_cannot_read_the_admin_api(server: tuple[SegmindMock, str]) -> None:
    mock, url = server
    port = httpx.URL(url).port
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as http:
        http.get("/v2/requests/x/status")
        rebound = http.get("/_mock/requests", headers={"host": f"evil.example:{port}"})
        assert rebound.status_code == 403 and "web page whose name points here" in rebound.json()["error"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "app.localhost"):
            assert http.get("/_mock/requests", headers={"host": host}).status_code == 200, host
        # Segmind's routes, health and the output files answer any host, as before.
        job = http.post("/v2/svd", json=SVD, headers={"host": "proxied.example"}).json()
        mock.advance(1000)
        output = http.get(f"/v2/requests/{job['request_id']}", headers={"host": "proxied.example"}).json()["output"]
        assert output.startswith("http://proxied.example/_mock/outputs/")
        path = httpx.URL(output).path
        assert http.get(path, headers={"host": "proxied.example"}).status_code == 200
        assert http.get("/_mock/health", headers={"host": "proxied.example"}).status_code == 200


@pytest.mark.parametrize("image", ["http://[::1]/x.png", "https://[2001:db8::1]/cat.png", "http://[::1]:8080/a.png"])
def test_an_ipv6_literal_image_url_is_a_url(http: httpx.Client, image: str) -> None:
    # Not fetched by default: the test card stands in, as for any URL.
    assert http.post("/v2/svd", json={**SVD, "image": image}).status_code == 200


@pytest.mark.parametrize("image", ["http://[::1]/x.png", "https://[2001:db8::1]/cat.png"])
def test_an_ipv6_literal_of_a_private_address_is_never_fetched(image: str) -> None:
    with client_of(Settings(speed=0, images=ImageSource(fetch_remote=True))) as (_, http):
        refused = http.post("/v2/svd", json={**SVD, "image": image})
        assert refused.status_code == 400
        assert "loopback, private or reserved address" in refused.json()["error"]

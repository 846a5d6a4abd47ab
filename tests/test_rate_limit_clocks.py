"""Two clocks, one story for 429s: the reset time agrees with `Date` and with a client waiting on its own clock.

Whatever the fake's speed, and however far its clock jumped, a client told to retry at
`x-rate-limit-reset-at-utc` waits at most one window by its wall clock and is then admitted; on
virtual time, a test that sleeps until then is admitted too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from contracts.responses import RATE_LIMIT_RESET_FORMAT, RATE_LIMIT_RESET_HEADER, RATE_LIMIT_WINDOW_SECONDS
from mock_server import Settings
from mock_server.accounts import parse_config
from mock_server.journal import mask_key
from mock_server.offline import SEGMIND_URL, segmind_offline
from mock_server.store_memory import MemoryClock
from tests.support_accounts import SVD
from tests.support_fakes import FakeFactory

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

KEY = "SG_00000000000000ee"  # one request a minute
UNLIMITED = "SG_00000000000000ff"
ONE_A_MINUTE = parse_config({"keys": {KEY: {"rpm": 1}, UNLIMITED: {}}})
TWO_DAYS = 2 * 24 * 3600.0  # how far a fake at --speed 100 runs ahead of the wall clock in half an hour
# The reset is written to the second and rounded up, `Date` to the second and rounded down.
ROUNDING_SECONDS = 2.0


def limited(http: httpx.Client) -> httpx.Response:
    """Use up the key's one request a minute; return the 429 of the next one."""
    assert http.post("/v2/svd", json=SVD, headers={"x-api-key": KEY}).status_code == 200
    refused = http.post("/v2/svd", json=SVD, headers={"x-api-key": KEY})
    assert refused.status_code == 429, refused.text
    return refused


def reset_of(response: httpx.Response) -> float:
    """The 429's reset time, in Unix seconds."""
    return unix(response.headers[RATE_LIMIT_RESET_HEADER])


def unix(text: str) -> float:
    """A reset time as the fake writes it, in Unix seconds."""
    return datetime.strptime(text, RATE_LIMIT_RESET_FORMAT).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize("speed", [0, 1, 100])
def test_the_reset_time_is_at_most_one_window_after_date_however_far_the_clock_ran(
    speed: float, store: str, make_fake: FakeFactory
) -> None:
    mock = make_fake(speed=speed, store=store, accounts=ONE_A_MINUTE)
    mock.advance(TWO_DAYS)  # the fake's clock far from the wall clock, as after a while at --speed 100
    http = make_fake.http(make_fake.serve(mock), api_key=None)
    refused = limited(http)
    forced = http.post("/v2/svd", json=SVD, headers={"x-api-key": UNLIMITED, "x-mock-status": "429"})
    view = http.get("/_mock/accounts").json()["accounts"][0]
    assert view["key"] == mask_key(KEY)
    for response in (refused, forced):
        date = parsedate_to_datetime(response.headers["date"]).timestamp()
        assert date <= reset_of(response) <= date + RATE_LIMIT_WINDOW_SECONDS + ROUNDING_SECONDS
    assert abs(reset_of(refused) - unix(view["rate_limit_reset_at_utc"])) <= 1


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Let real seconds pass without waiting: the wall clock and the memory store's real time move on together."""
    passed = [0.0]
    real_time, real_monotonic = time.time, time.monotonic
    monkeypatch.setattr(time, "time", lambda: real_time() + passed[0])
    monkeypatch.setattr(MemoryClock, "real_time", staticmethod(lambda: real_monotonic() + passed[0]))

    def let_pass(seconds: float) -> None:
        passed[0] += seconds

    return let_pass


@pytest.mark.parametrize("speed", [0, 0.5, 1, 100])
def test_a_client_waiting_until_the_reset_by_its_own_clock_is_admitted_within_one_window(
    speed: float, store: str, wall_clock: Callable[[float], None], make_fake: FakeFactory
) -> None:
    http = make_fake.http(make_fake(speed=speed, store=store, accounts=ONE_A_MINUTE), api_key=None)
    wait = reset_of(limited(http)) - time.time()
    assert 0 < wait <= RATE_LIMIT_WINDOW_SECONDS + 1
    wall_clock(wait)  # the client waits until the reset by its own clock
    assert http.post("/v2/svd", json=SVD, headers={"x-api-key": KEY}).status_code == 200


def test_a_test_sleeping_until_the_reset_on_virtual_time_is_admitted(store: str) -> None:
    settings = Settings(speed=0, virtual=True, store=store, accounts=ONE_A_MINUTE)
    # This module's sleeps advance the fake's clock, as the official SDK's do under the fixtures.
    with segmind_offline(settings, virtual_time_modules=[__name__]), httpx.Client(base_url=SEGMIND_URL) as http:
        time.sleep(3600)  # an hour of polling, on virtual time
        wait = reset_of(limited(http)) - time.time()
        assert 0 < wait <= RATE_LIMIT_WINDOW_SECONDS + 1  # not the hour the test slept besides
        time.sleep(wait)
        assert http.post("/v2/svd", json=SVD, headers={"x-api-key": KEY}).status_code == 200

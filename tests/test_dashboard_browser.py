"""The dashboard in a real browser: headless Chromium on a real uvicorn server.

Nothing here sleeps: each step waits for what the page shows (playwright's `expect`), and the
fake's clock is frozen, so time moves only when the page or the test moves it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from contracts import MODELS
from mock_server import SegmindMock, Settings, har, pricing
from mock_server.accounts import parse_config
from mock_server.admin_token import ADMIN_COOKIE
from mock_server.server import ServerThread
from tests.support import API_KEY

pytestmark = pytest.mark.browser
# The page polls once a second; a loaded CI machine may take a few polls to show a change.
expect.set_options(timeout=15_000)
SVD = MODELS["svd"].example
TIMES = "\u00d7"  # the multiplication sign of the page's speeds
DASH = "\u2013"  # the en dash of its ranges of rows


def job_row(page: Page, request_id: str) -> Locator:
    """The jobs table's row of one job."""
    return page.locator("#jobs-rows tr.row", has_text=request_id)


def clock_text(at: float) -> str:
    """The simulated time as the clock panel shows it: in whole milliseconds, cut as JavaScript's Date cuts them."""
    milliseconds = math.floor(at * 1000)
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def test_jobs_move_when_the_clock_is_advanced_from_the_page(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    mock: SegmindMock = server[0]
    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    row = job_row(dashboard, request_id)
    expect(row.locator(".state")).to_have_text("QUEUED")
    expect(row).to_contain_text("SG_…cdef")  # the key, masked
    expect(row.locator(".bar-text")).to_contain_text("starts in 2 s")
    start = mock.clock.now()
    dashboard.get_by_role("button", name="+30 s").click()
    expect(row.locator(".state")).to_have_text("PROCESSING")
    expect(dashboard.locator("#clock-now")).to_have_text(clock_text(start + 30))
    dashboard.get_by_role("button", name="To next job end").click()
    expect(row.locator(".state")).to_have_text("COMPLETED")
    expect(row.locator(".bar-text")).to_contain_text("retention left")
    expect(dashboard.locator("#clock-next")).to_have_text("none pending")
    dashboard.get_by_role("button", name="+1 h").click()  # past the result retention: the job is gone
    expect(row).to_have_count(0)
    expect(dashboard.locator("#jobs-empty")).to_be_visible()


def test_the_page_follows_the_fake_when_the_clock_moves_elsewhere(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    row = job_row(dashboard, request_id)
    expect(row.locator(".state")).to_have_text("QUEUED")
    now = live_http.post("/_mock/clock/advance", json={"seconds": 100}).json()["now"]
    expect(row.locator(".state")).to_have_text("COMPLETED")
    expect(dashboard.locator("#clock-now")).to_have_text(clock_text(now))
    live_http.post("/_mock/clock", json={"speed": 60})
    expect(dashboard.locator("#clock-speed")).to_have_text(f"60{TIMES}")


def test_the_speed_is_set_from_the_page_and_a_bad_one_refused_with_the_apis_message(
    dashboard: Page, server: tuple[SegmindMock, str]
) -> None:
    mock: SegmindMock = server[0]
    speed = dashboard.locator("#speed-input")
    speed.fill("-2")
    dashboard.get_by_role("button", name="Set", exact=True).click()
    expect(dashboard.locator("#clock-error")).to_have_text("speed must be a number, 0 or more and below 1e+12 (got -2)")
    speed.fill("0.5")
    dashboard.get_by_role("button", name="Set", exact=True).click()
    expect(dashboard.locator("#clock-speed")).to_have_text(f"0.5{TIMES}")
    assert mock.clock.speed == 0.5
    expect(dashboard.locator("#clock-error")).to_have_text("")


def test_a_failing_rule_added_through_the_form_fails_the_next_job(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    form = dashboard.locator("#scenario-form")
    form.get_by_label("Times", exact=True).fill("abc")
    form.get_by_role("button", name="Add rule").click()
    refused = live_http.post("/_mock/scenarios", json={"outcome": "failed", "times": "abc"}).json()["error"]
    expect(dashboard.locator("#scenario-error")).to_have_text(refused)  # the admin API's own message
    form.get_by_label("Times", exact=True).fill("2")
    form.get_by_label("Model", exact=True).select_option("svd")
    form.get_by_label("Error", exact=True).fill("CUDA out of memory")
    expect(dashboard.locator("#scenario-preview")).to_contain_text('"match":{"model":"svd"}')
    form.get_by_role("button", name="Add rule").click()
    rule = dashboard.locator("#scenarios-rows tr.row")
    expect(rule).to_have_count(1)
    expect(rule).to_contain_text('failed · "CUDA out of memory"')
    expect(rule.locator(".left")).to_have_text("2")

    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    expect(rule.locator(".hits")).to_have_text("1")
    expect(rule.locator(".left")).to_have_text("1")
    dashboard.get_by_role("button", name="To next job end").click()
    row = job_row(dashboard, request_id)
    expect(row.locator(".state")).to_have_text("FAILED")
    row.click()
    expect(dashboard.locator(".detail-row .job-error")).to_have_text("Error: CUDA out of memory")
    assert live_http.get(f"/v2/requests/{request_id}").json()["error"] == "CUDA out of memory"

    rule.get_by_role("button", name="Delete").click()
    expect(rule).to_have_count(0)
    expect(dashboard.locator("#scenarios-empty")).to_be_visible()
    assert live_http.get("/_mock/scenarios").json() == []


def test_a_journal_entry_opens_to_its_bodies_and_the_filters_narrow_the_journal(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    live_http.post("/v2/svd", json={**SVD, "fps": 0})
    live_http.get("/v2/requests/nope/status", headers={"x-api-key": "SG_00000000000000e4"})
    rows = dashboard.locator("#requests-rows tr.row")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("/v2/requests/nope/status")  # newest first
    expect(rows.nth(2)).to_contain_text(request_id)

    filters = dashboard.locator("#requests-filter")
    filters.get_by_label("Status", exact=True).fill("4xx")
    expect(rows).to_have_count(2)
    filters.get_by_label("Key", exact=True).fill("SG_00000000000000e4")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("SG_…00e4")
    filters.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(3)
    filters.get_by_label("Path", exact=True).fill("/v2/svd")
    filters.get_by_label("Status", exact=True).fill("400")
    expect(rows).to_have_count(1)

    rows.first.click()
    detail = dashboard.locator("#requests-rows .detail-row")
    expect(detail.locator(".request-body")).to_contain_text('"fps": 0')
    expect(detail.locator(".response-body")).to_contain_text("fps must be")
    rows.first.click()
    expect(detail).to_have_count(0)


def test_a_completed_jobs_video_plays_inline(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    row = job_row(dashboard, request_id)
    row.click()
    detail = dashboard.locator("#jobs-rows .detail-row")
    expect(detail).to_contain_text("The video plays here once the job completes.")
    dashboard.get_by_role("button", name="To next job end").click()
    video = detail.locator("video")
    expect(video).to_have_attribute("src", f"outputs/{request_id}.mp4")
    video.evaluate("video => video.play()")
    # Frames decoded and time moving: the browser plays what the fake served.
    dashboard.wait_for_function(
        "() => { const v = document.querySelector('#jobs-rows .detail-row video');"
        " return v.readyState >= 2 && v.duration > 1 && v.currentTime > 0 && v.videoWidth > 0; }"
    )
    assert video.evaluate("video => video.error") is None


def test_thousands_of_jobs_are_paged(dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client) -> None:
    ids = [live_http.post("/v2/svd", json=SVD).json()["request_id"] for _ in range(2000)]
    pager = dashboard.locator('.pager[data-for="jobs"]')
    expect(pager.locator("span")).to_have_text(f"1{DASH}25 of 2000, newest first")
    rows = dashboard.locator("#jobs-rows tr.row")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text(ids[-1])
    pager.get_by_role("button", name="Older").click()
    expect(pager.locator("span")).to_have_text(f"26{DASH}50 of 2000, newest first")
    expect(rows.first).to_contain_text(ids[-26])
    live_http.post("/_mock/clock/advance", json={"seconds": 10})
    dashboard.locator("#jobs-states").get_by_role("button", name="Processing").click()
    expect(pager.locator("span")).to_have_text(f"1{DASH}25 of 2000, newest first")
    expect(dashboard.locator("#jobs-states button.active")).to_have_text("Processing 2000")


def test_accounts_show_balances_holds_and_rate_windows(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    mock: SegmindMock = server[0]
    key = "SG_team-key-0001"
    expect(dashboard.locator("#accounts")).to_be_hidden()  # no keys declared: nothing to show
    mock.configure(Settings(speed=0, accounts=parse_config({"keys": {key: {"credits": 10, "rpm": 3}}})))
    account = dashboard.locator("#accounts-rows tr.row", has_text="SG_…0001")  # the key, masked
    expect(account.locator(".balance")).to_have_text("10")
    live_http.post("/v2/svd", json=SVD, headers={"x-api-key": key})
    expect(account.locator(".held")).to_have_text(str(pricing.PRICES["svd"]))
    expect(account.locator(".rate")).to_contain_text("1 / 3")
    for _ in range(2):
        live_http.post("/v2/svd", json=SVD, headers={"x-api-key": key})
    expect(account.locator(".rate")).to_contain_text("limited until")
    dashboard.get_by_role("button", name="To next job end").click()
    expect(account.locator(".spent")).to_have_text(str(round(pricing.PRICES["svd"] * 3, 4)))


def test_a_token_in_the_url_is_kept_in_a_cookie_the_page_sends_but_cannot_read(
    dashboard: Page, server: tuple[SegmindMock, str]
) -> None:
    url: str = server[1]
    dashboard.goto(f"{url}/_mock/?token=s3cret")
    assert dashboard.url == f"{url}/_mock/"
    (cookie,) = dashboard.context.cookies()
    assert (cookie["name"], cookie["value"], cookie["httpOnly"]) == (ADMIN_COOKIE, "s3cret", True)
    assert "s3cret" not in dashboard.evaluate("document.cookie")
    with dashboard.expect_request(lambda request: request.url.endswith("/_mock/health")) as poll:
        pass  # the page's next poll of the admin API
    assert f"{ADMIN_COOKIE}=s3cret" in poll.value.all_headers()["cookie"]


def test_beyond_loopback_the_dashboard_works_once_opened_with_its_token(browser: Browser) -> None:
    mock = SegmindMock(Settings(speed=0))
    thread = ServerThread(mock.app, host="0.0.0.0")  # bound to all, called through 127.0.0.1 only
    with thread as url, browser.new_context() as context:
        page = context.new_page()
        refused = page.goto(f"{url}/_mock/")
        assert refused is not None and refused.status == 401  # without the token, not even the page
        page.goto(f"{url}/_mock/?token={thread.admin_token}")
        assert page.url == f"{url}/_mock/"  # the token left the address bar for an HttpOnly cookie
        request_id = httpx.post(f"{url}/v2/svd", json=SVD, headers={"x-api-key": API_KEY}).json()["request_id"]
        row = job_row(page, request_id)
        expect(row.locator(".state")).to_have_text("QUEUED")
        page.get_by_role("button", name="+30 s").click()  # a POST to the admin API, carrying the cookie
        expect(row.locator(".state")).to_have_text("PROCESSING")
        expect(page.locator("#banner")).to_be_hidden()


def test_an_error_answer_and_a_failed_jobs_error_show_in_their_rows_without_a_click(
    dashboard: Page, live_http: httpx.Client
) -> None:
    live_http.post("/_mock/scenarios", json={"outcome": "failed", "error": "CUDA out of memory", "times": 1})
    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    refused = live_http.post("/v2/svd", json={**SVD, "fps": 0}).json()["error"]
    live_http.post("/_mock/clock/advance", json={"seconds": 100})
    expect(job_row(dashboard, request_id).locator(".row-error")).to_have_text("Error: CUDA out of memory")
    journaled = dashboard.locator("#requests-rows tr.row")
    refusal = journaled.filter(has=dashboard.locator(".status", has_text="400"))
    expect(refusal.locator(".row-error")).to_have_text(f"Error: {refused}")
    accepted = journaled.filter(has=dashboard.locator(".status", has_text="200"))
    expect(accepted.locator(".row-error")).to_be_hidden()  # a success has no message to show
    expect(dashboard.locator(".detail-row")).to_have_count(0)  # nothing was opened


def test_broken_json_in_match_more_is_refused_in_the_page_saying_so(dashboard: Page, live_http: httpx.Client) -> None:
    form = dashboard.locator("#scenario-form")
    form.get_by_label("Match more", exact=True).fill("{frames: 14")
    expect(dashboard.locator("#scenario-preview")).to_contain_text("Match more is not valid JSON")
    form.get_by_role("button", name="Add rule").click()
    expect(dashboard.locator("#scenario-error")).to_contain_text("Match more is not valid JSON (")
    expect(dashboard.locator("#scenario-error")).to_contain_text('write a JSON object, e.g. {"frames": 14}')
    assert live_http.get("/_mock/scenarios").json() == []  # nothing was sent
    form.get_by_label("Match more", exact=True).fill("[14]")  # JSON, but no object: the API says what to fix
    form.get_by_role("button", name="Add rule").click()
    expect(dashboard.locator("#scenario-error")).to_have_text(
        'Invalid scenario: match must be a JSON object of model, api_key and parameter values, e.g. {"frames": 14} '
        "(got an array)"
    )
    form.get_by_label("Match more", exact=True).fill('{"frames": 14}')
    form.get_by_role("button", name="Add rule").click()
    expect(dashboard.locator("#scenarios-rows tr.row")).to_contain_text('{"frames":14}')


def test_the_jobs_table_fits_its_panel_at_1400_pixels(
    dashboard: Page, server: tuple[SegmindMock, str], live_http: httpx.Client
) -> None:
    # The widest rows there are: the longer model called through v1, and a failed job with a long error.
    error = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.69 GiB total capacity; 21.50 GiB reserved)"
    live_http.post("/_mock/scenarios", json={"outcome": "failed", "error": error, "times": 1})
    failed = live_http.post("/v2/motionctrl-svd", json=MODELS["motionctrl-svd"].example).json()["request_id"]
    live_http.post("/v1/motionctrl-svd", json=MODELS["motionctrl-svd"].example)
    queued = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    expect(job_row(dashboard, failed).locator(".row-error")).to_have_text(f"Error: {error}")
    expect(job_row(dashboard, queued).locator(".state")).to_have_text("QUEUED")
    expect(dashboard.locator("#jobs-rows tr.row", has_text="motionctrl-svd (v1)")).to_have_count(1)
    assert dashboard.viewport_size == {"width": 1400, "height": 1000}
    panel = dashboard.locator("#jobs")
    assert panel.evaluate("panel => panel.scrollWidth <= panel.clientWidth"), "the jobs panel scrolls sideways"


def test_the_journal_downloads_as_har_from_the_page(dashboard: Page, live_http: httpx.Client) -> None:
    request_id = live_http.post("/v2/svd", json=SVD).json()["request_id"]
    with dashboard.expect_download() as download:
        dashboard.locator("#journal-har").click()
    assert download.value.suggested_filename == "segmind-mock-journal.har"
    recording = har.load(download.value.path())
    assert [entry.segmind.request_id for entry in recording.log.entries] == [request_id]

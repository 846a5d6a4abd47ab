"""Take the dashboard's screenshots in docs/: `PYTHONPATH=. python3 docs/dashboard_screenshots.py`.

A fake with declared keys, a few jobs in every state, rules and a journal, on a frozen clock, shown
in headless Chromium (the `chromium` on the PATH, driven by playwright) as a developer would see it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.accounts import parse_config
from mock_server.server import ServerThread

DOCS = Path(__file__).resolve().parent
TEAM_KEY = "SG_team-7d2f41c9a0b3"
CI_KEY = "SG_ci-runner-5e61aa"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
CONFIG = {"keys": {TEAM_KEY: {"credits": 5, "rpm": 20}, CI_KEY: {"credits": 2, "rpm": 6, "models": ["svd"]}}}


def populate(url: str) -> str:
    """Play a short session against the fake; return the id of the job whose video the shot shows."""
    team = httpx.Client(base_url=url, headers={"x-api-key": TEAM_KEY})
    ci = httpx.Client(base_url=url, headers={"x-api-key": CI_KEY})
    svd, motion = MODELS["svd"].example, MODELS["motionctrl-svd"].example
    shown: str = team.post("/v2/svd", json={**svd, "frames": 25}).json()["request_id"]
    team.post("/v2/motionctrl-svd", json=motion)
    team.post("/_mock/clock/advance", json={"seconds": 40})
    team.get(f"/v2/requests/{shown}/status")
    team.get(f"/v2/requests/{shown}")
    team.post("/_mock/scenarios", json={"match": {"model": "svd"}, "outcome": "failed", "error": "CUDA out of memory"})
    failed = ci.post("/v2/svd", json=svd).json()["request_id"]
    ci.post("/v2/motionctrl-svd", json=motion)  # 403: this key may call svd only
    ci.post("/v2/svd", json={**svd, "fps": 0})  # 400
    team.post("/_mock/scenarios", json={"target": "status", "outcome": "http_error", "status": 502, "nth": 2})
    team.post("/_mock/scenarios", json={"outcome": "completed", "queue_seconds": 20, "times": 3})
    team.post("/_mock/clock/advance", json={"seconds": 35})
    ci.get(f"/v2/requests/{failed}/status")
    team.post("/v2/motionctrl-svd", json=motion)
    team.post("/_mock/clock/advance", json={"seconds": 12})
    team.post("/v2/motionctrl-svd", json={**motion, "motion": "Zoom In"})
    team.get(f"/v2/requests/{failed}/status")
    return shown


def shoot(page: Page, url: str, shown: str) -> None:
    """Open a job (its video at a frame) and a journal entry, then take the screenshot."""
    page.goto(f"{url}/_mock/")
    page.locator("#jobs-rows tr.row", has_text=shown).click()
    video = page.locator("#jobs-rows .detail-row video")
    video.wait_for()
    page.wait_for_function("() => document.querySelector('#jobs-rows video').readyState >= 2")
    video.evaluate("v => new Promise(done => { v.onseeked = done; v.currentTime = 1.2; })")
    page.locator("#requests-rows tr.row", has_text="400").click()
    page.locator("#requests-rows .detail-row").wait_for()
    page.screenshot(path=DOCS / "dashboard.png", full_page=True)


def main() -> None:
    """Serve a populated fake and photograph its dashboard."""
    mock = SegmindMock(Settings(speed=0, accounts=parse_config(CONFIG)))
    with ServerThread(mock.app) as url, sync_playwright() as playwright:
        shown = populate(url)
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        shoot(page, url, shown)
        browser.close()
    print(f"wrote {DOCS / 'dashboard.png'}")


if __name__ == "__main__":
    main()

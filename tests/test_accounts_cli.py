"""The issue's "done when": `segmind-mock serve --config FILE` as CI runs it, met by the official SDK."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from segmind import SegmindClient, SegmindError

from contracts import MODELS
from mock_server import api_errors, pricing
from mock_server.journal import mask_key
from tests.support_accounts import FREE, POOR, SVD

pytestmark = pytest.mark.stores  # each test using `store` runs on memory and on Redis

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-c", "import sys; from mock_server.cli import main; sys.exit(main())", "serve"]
STARTUP = re.compile(r'base_url="(http://[^"]+)/v1"')
CONFIG = f"""
# One key with a single credit, one on the free plan (5 requests a minute) that may call svd only.
[keys.{POOR}]
credits = 1

[keys.{FREE}]
plan = "free"
models = ["svd"]
"""


@pytest.fixture
def served(tmp_path: Path, store: str) -> Iterator[tuple[str, str]]:
    """Start the fake with the config file on a free port; return its base URL and start-up text."""
    config = tmp_path / "accounts.toml"
    config.write_text(CONFIG)
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", "--speed", "0", "--config", str(config), "--store", store],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = "".join(process.stdout.readline() for _ in range(3))
    match = STARTUP.search(banner)
    assert match, banner
    yield match.group(1), banner
    process.terminate()
    process.wait(10)


def refused(call) -> tuple[int | None, str | None]:
    with pytest.raises(SegmindError) as raised:
        call()
    return raised.value.status, raised.value.detail


def test_ci_meets_406_429_403_and_a_dropped_connection(served: tuple[str, str]) -> None:
    url, banner = served
    assert "accepting only the 2 API keys declared in" in banner
    poor = SegmindClient(api_key=POOR, base_url=f"{url}/v1")
    free = SegmindClient(api_key=FREE, base_url=f"{url}/v1")
    admin = httpx.Client(base_url=f"{url}/_mock")
    try:
        # 406: one credit pays for five svd runs at 0.167; the sixth is refused, naming balance and price.
        for _ in range(5):
            poor.submit_async("svd", **SVD)
        assert refused(lambda: poor.submit_async("svd", **SVD)) == (
            406,
            "Insufficient credits to process this request: it costs 0.167 credits and the balance is 1, "
            "of which 0.835 is held for requests in progress",
        )

        # 429 on the sixth request in a minute, with the reset time; recovered once the clock passes it.
        jobs = [free.submit_async("svd", **SVD) for _ in range(5)]
        assert refused(lambda: free.submit_async("svd", **SVD)) == (
            429,
            "Rate limit exceeded: this API key allows 5 requests a minute",
        )
        limited = httpx.post(f"{url}/v2/svd", json=SVD, headers={"x-api-key": FREE})
        assert limited.status_code == 429
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", limited.headers["x-rate-limit-reset-at-utc"])
        admin.post("/clock/advance", json={"seconds": pricing.RATE_LIMIT_RESET_SECONDS})
        assert jobs[0].wait(timeout=5, interval=0.001)["metrics"]["cost"] == pricing.PRICES["svd"]
        assert free.submit_async("svd", **SVD).request_id

        # 403: the free key may not call motionctrl-svd.
        assert refused(lambda: free.submit_async("motionctrl-svd", **MODELS["motionctrl-svd"].example)) == (
            403,
            "Forbidden: this API key is not allowed to use motionctrl-svd; it may use svd",
        )

        # 401 for a key the config does not declare.
        stranger = SegmindClient(api_key="SG_ffffffffffffffff", base_url=f"{url}/v1")
        assert refused(lambda: stranger.submit_async("svd", **SVD)) == (401, api_errors.STATUS_MESSAGES[401])
        stranger._client.close()

        # A dropped connection, asked for through the admin API.
        admin.post("/scenarios", json={"outcome": "disconnect", "times": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            free.submit_async("svd", **SVD)

        balances = {entry["key"]: entry["balance"] for entry in admin.get("/accounts").json()["accounts"]}
        assert balances == {mask_key(POOR): 0.165, mask_key(FREE): None}  # keys shown masked
    finally:
        for client in (poor._client, free._client, admin):
            client.close()


def test_serve_refuses_a_bad_config_and_says_why(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[keys.SG_a]\nplan = "gold"\n')
    ran = subprocess.run([*COMMAND, "--port", "0", "--config", str(config)], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 2
    assert ran.stderr.strip() == f"segmind-mock: {config}: keys.SG_a.plan must be one of free, pro (got 'gold')"

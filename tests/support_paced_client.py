"""A command client for `segmind-mock verify --command` that polls at a chosen real-time pace.

    python support_paced_client.py INTERVAL [RETRY_429_AFTER]

INTERVAL: real seconds slept between status polls (0: none). RETRY_429_AFTER: when given, a
submission answered 429 is sent again after this many real seconds (0: at once), up to 40 times.
It follows the URLs it is given, prints the fetched result and exits 0, or exits 1 on any error.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx

RETRIES = 40


def main(interval: float, retry_after: float | None) -> int:
    """Run one call as the environment describes it."""
    base, model = os.environ["SEGMIND_BASE_URL"], os.environ["SEGMIND_MODEL"]
    payload = json.loads(os.environ["SEGMIND_PAYLOAD"])
    with httpx.Client(headers={"x-api-key": os.environ["SEGMIND_API_KEY"]}, timeout=10) as http:
        answer = http.post(f"{base}/v2/{model}", json=payload)
        for _ in range(RETRIES if retry_after is not None else 0):
            if answer.status_code != 429:
                break
            time.sleep(retry_after or 0)
            answer = http.post(f"{base}/v2/{model}", json=payload)
        if answer.status_code != 200:
            print(f"submit answered {answer.status_code}: {answer.text}", file=sys.stderr)
            return 1
        submitted = answer.json()
        while True:
            status = http.get(submitted["status_url"])
            state = status.json().get("status") if status.status_code == 200 else None
            if state == "COMPLETED":
                print(http.get(submitted["response_url"]).raise_for_status().text)
                return 0
            if state not in ("QUEUED", "PROCESSING"):
                print(f"status answered {status.status_code}: {status.text}", file=sys.stderr)
                return 1
            if interval:
                time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None))

"""A client in "another language" for `segmind-mock verify --command`: reads the call from its environment.

`sdk`: the official SDK; prints the result as JSON and exits 0, or prints the error and exits 1.
`careless`: polls with pauses, then prints the last status it got as the result and always exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
from segmind import SegmindClient


def main(behaviour: str) -> int:
    """Run one call as the environment describes it."""
    base, key, model = os.environ["SEGMIND_BASE_URL"], os.environ["SEGMIND_API_KEY"], os.environ["SEGMIND_MODEL"]
    payload = json.loads(os.environ["SEGMIND_PAYLOAD"])
    if behaviour == "sdk":
        client = SegmindClient(api_key=key, base_url=f"{base}/v1")
        try:
            print(json.dumps(client.submit_async(model, **payload).wait(timeout=20)))
            return 0
        except Exception as error:
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
            return 1
        finally:
            client._client.close()
    with httpx.Client(headers={"x-api-key": key}) as http:
        answer = http.post(f"{base}/v2/{model}", json=payload).json()
        while answer.get("status") in ("QUEUED", "PROCESSING") and "status_url" in answer:
            time.sleep(0.05)
            answer = http.get(answer["status_url"]).json() | {"status_url": answer["status_url"]}
        print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

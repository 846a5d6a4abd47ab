"""A small typed client for segmind-mock's admin API (`/_mock/...`): its clock, scenarios, jobs and journal.

The contract suite and the client verification set the fake up and watch it through this one
client; the routes themselves are described in docs/ (the admin API). Every call but `is_fake`
raises `httpx.HTTPStatusError` on an error answer. A fake that requires an admin token (`serve
--admin-token`, or any bind beyond loopback) is sent it as `Authorization: Bearer`, on the admin
calls (`headers`, which the suite adds to its v1 calls to the fake only), never to the output files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

Entry = dict[str, Any]


class FakeAdmin:
    """The admin API of the fake at `base` (no trailing slash), called through `client` with `token` if given."""

    def __init__(self, client: httpx.Client, base: str, token: str | None = None) -> None:
        self.client = client
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def is_fake(self) -> bool:
        """Tell whether `base` is a segmind-mock fake: its health check answers ok with the clock."""
        try:
            response = self._request("GET", "/health")
        except httpx.HTTPError:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        return response.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok" and "now" in body

    def now(self) -> float:
        """The fake's simulated time, in seconds since the epoch."""
        now: float = self._get("/clock")["now"]
        return now

    def speed(self) -> float:
        """How fast the fake's clock runs, in simulated seconds a real second (0: stopped)."""
        speed: float = self._get("/clock")["speed"]
        return speed

    def set_speed(self, speed: float) -> None:
        """Run the fake's clock at `speed` times real time (0 stops it)."""
        self._request("POST", "/clock", {"speed": speed}).raise_for_status()

    def advance(self, seconds: float) -> float:
        """Move the fake's clock `seconds` forward; return the simulated time it then shows."""
        response = self._request("POST", "/clock/advance", {"seconds": seconds}).raise_for_status()
        now: float = response.json()["now"]
        return now

    @contextlib.contextmanager
    def clock_stopped(self) -> Iterator[float]:
        """Stop the fake's clock while the block runs (it moves only when advanced), then restore its speed.

        Yields the speed it had. Restored also when the block raises; a failed restore then does not
        replace the error in flight.
        """
        speed = self.speed()
        self.set_speed(0)
        try:
            yield speed
        except BaseException:
            with contextlib.suppress(httpx.HTTPError):
                self.set_speed(speed)
            raise
        self.set_speed(speed)

    @contextlib.contextmanager
    def scenario_once(self, rule: Mapping[str, Any], api_key: str, model: str) -> Iterator[str]:
        """`rule` as a one-time scenario for `api_key` and `model` only (no other client meets it), then removed.

        Yields the rule's id. One used up is gone already (404 on removal), which leaves nothing to do.
        """
        scoped = {**rule, "times": 1, "match": {"api_key": api_key, "model": model}}
        rule_id: str = self._request("POST", "/scenarios", scoped).raise_for_status().json()["id"]
        try:
            yield rule_id
        finally:
            self._request("DELETE", f"/scenarios/{rule_id}")

    def scenario_ids(self) -> set[str]:
        """The ids of the fake's scenarios not used up yet."""
        return {rule["id"] for rule in self._get("/scenarios")}

    def jobs(self) -> list[Entry]:
        """The fake's retained jobs, oldest first."""
        jobs: list[Entry] = self._get("/jobs")
        return jobs

    def job_ids(self) -> set[str]:
        """The request ids of the fake's retained jobs."""
        return {job["request_id"] for job in self.jobs()}

    def job(self, request_id: str) -> Entry:
        """One retained job, with its times."""
        job: Entry = self._get(f"/jobs/{request_id}")
        return job

    def requests(self) -> list[Entry]:
        """The fake's journal of calls, oldest first."""
        entries: list[Entry] = self._get("/requests")
        return entries

    def count_requests(self, path: str) -> int:
        """How many calls in the journal had `path` in their path (its `X-Total-Count`, one entry read)."""
        response = self._request("GET", "/requests", params={"path": path, "limit": 1}).raise_for_status()
        return int(response.headers["X-Total-Count"])

    def _get(self, path: str) -> Any:
        return self._request("GET", path).raise_for_status().json()

    def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, str | int] | None = None
    ) -> httpx.Response:
        return self.client.request(method, f"{self.base}/_mock{path}", json=body, params=params, headers=self.headers)

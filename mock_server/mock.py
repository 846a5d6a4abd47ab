"""SegmindMock: the fake as a Python object, usable with or without pytest.

A thin facade: the service (`service.py`), the ASGI app serving it (`app.py`), and the controls
a test reaches for, named as the admin API names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp

from contracts.openapi import LIVE_URL
from mock_server import har
from mock_server.accounts import Accounts
from mock_server.app import App
from mock_server.clock import Clock
from mock_server.jobs import Job, State
from mock_server.replay import Replay
from mock_server.replay_app import ReplayApp
from mock_server.rulebook import RuleBook
from mock_server.scenarios import Outcome, Rule
from mock_server.service import Accepted, Service, Settings


class SegmindMock:
    """The fake Segmind service: its clock, jobs, scenarios and journal, and the ASGI app serving them."""

    def __init__(self, settings: Settings | None = None, replay: Replay | None = None) -> None:
        self.service = Service(settings)
        # Recorded flows, served in front of the fake's own answers (`serve --replay`, docs/recording.md).
        self.replay = replay
        self.app: ASGIApp = App(self.service) if replay is None else ReplayApp(App(self.service), self.service, replay)

    @property
    def settings(self) -> Settings:
        """The settings the fake runs under."""
        return self.service.settings

    @property
    def clock(self) -> Clock:
        """The fake's clock."""
        return self.service.clock

    @property
    def scenarios(self) -> RuleBook:
        """The scenario rule book."""
        return self.service.rules

    @property
    def accounts(self) -> Accounts:
        """The accounts: keys, credits, rate limits."""
        return self.service.accounts

    def now(self) -> float:
        """The fake's simulated time, in Unix seconds."""
        return self.service.clock.now()

    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward and return the new simulated time."""
        return self.service.advance(seconds)

    def add_scenario(
        self,
        match: Mapping[str, Any] | None = None,
        outcome: Outcome = "completed",
        times: int = -1,
        **details: Any,
    ) -> Rule:
        """Add a scenario rule, with the same meaning as `POST /_mock/scenarios`."""
        return self.service.add_scenario({"match": match or {}, "outcome": outcome, "times": times, **details})

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The journal of exchanges with the Segmind routes, oldest first."""
        return self.service.requests()

    def journal_har(self, base_url: str = LIVE_URL) -> bytes:
        """The journal as a HAR recording (`GET /_mock/journal.har`), or raise har.SecretFound if it holds a secret."""
        return har.dumps(self.service.journal_recording(base_url))

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Every retained job, as `GET /_mock/jobs` shows it."""
        return self.service.job_views()[0]

    def job(self, request_id: str) -> dict[str, Any] | None:
        """One retained job, or None once it is unknown or expired."""
        return self.service.job_view(request_id)

    def submit(self, model: str, payload: Mapping[str, Any], api_key: str, *, sync: bool = False) -> Accepted:
        """Submit a job as `POST /v2/{model}` would, or raise the ApiError it would answer."""
        spec = self.service.model(model, api_key)
        return self.service.submit(spec, payload, api_key, sync=sync)

    def lookup(self, request_id: str) -> tuple[Job, State]:
        """A retained job and its current state, or raise the 404 the service answers."""
        return self.service.lookup(request_id)

    def reset(self) -> None:
        """Forget jobs, journal, scenarios and account usage, and bring the clock back to the time of day."""
        self.service.reset()
        if self.replay is not None:
            self.replay.reset()

    def configure(self, settings: Settings) -> None:
        """Start afresh under new settings, keeping the app (and any server running it).

        The journal keeps its size, and the store stays where it is.
        """
        self.service.configure(settings)

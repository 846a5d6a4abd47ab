"""Submit latency with no scenario rules, and with the cap's number of rules that cannot match the submission.

`python -m benchmarks.scenario_rules [STORE_URL]`: in-process v2 submits of svd through httpx, timed with no
rule, with `MAX_SCENARIOS` rules for motionctrl-svd, and with as many svd rules for other keys. The
rule book indexes rules by target, model and key (`rulebook.RuleIndex`), so the ratios to the
baseline, measured in the same run, stay near 1 however many such rules there are.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable

import httpx

from benchmarks.common import API_KEY, answer_help
from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.defaults import MAX_SCENARIOS
from mock_server.transport import PortalTransport

SUBMITS = 300
ROUNDS = 9
BASE_URL = "https://api.segmind.com"


def _other_model(mock: SegmindMock, number: int) -> None:
    mock.add_scenario({"model": "motionctrl-svd", "seed": number}, "failed")


def _other_key(mock: SegmindMock, number: int) -> None:
    mock.add_scenario({"model": "svd", "api_key": f"SG_{number:016x}"}, "failed")


def _fake(add_rule: Callable[[SegmindMock, int], None] | None, store: str) -> SegmindMock:
    mock = SegmindMock(Settings(speed=0, journal_size=0, store=store))
    mock.reset()  # a shared store may hold an earlier run's rules
    for number in range(MAX_SCENARIOS if add_rule is not None else 0):
        add_rule(mock, number)  # type: ignore[misc]
    return mock


def ms_per_submit(cases: dict[str, Callable[[SegmindMock, int], None] | None], store: str) -> dict[str, float]:
    """The median wall time per svd submission for each case, its rules added first; rounds interleaved.

    Interleaved, so a busy machine slows every case alike and the ratios between them hold.
    """
    body = MODELS["svd"].example
    rounds: dict[str, list[float]] = {label: [] for label in cases}
    with contextlib.ExitStack() as stack:
        clients = {}
        for label, add_rule in cases.items():
            prefixed = store if store == "memory" else f"{store}?prefix=bench-rules-{len(clients)}"
            transport = stack.enter_context(PortalTransport(_fake(add_rule, prefixed).app))
            headers = {"x-api-key": API_KEY}
            http = stack.enter_context(httpx.Client(transport=transport, base_url=BASE_URL, headers=headers))
            http.post("/v2/svd", json=body)  # warm-up
            clients[label] = http
        for _ in range(ROUNDS):
            for label, http in clients.items():
                started = time.perf_counter()
                for _ in range(SUBMITS):
                    http.post("/v2/svd", json=body)
                rounds[label].append((time.perf_counter() - started) / SUBMITS * 1000)
    return {label: statistics.median(times) for label, times in rounds.items()}


if __name__ == "__main__":
    answer_help(__doc__)
    costs = ms_per_submit(
        {
            "no rules": None,
            f"{MAX_SCENARIOS} rules for motionctrl-svd": _other_model,
            f"{MAX_SCENARIOS} rules for svd under other keys": _other_key,
        },
        sys.argv[1] if len(sys.argv) > 1 else "memory",
    )
    baseline = costs["no rules"]
    for label, cost in costs.items():
        print(f"{label}: {cost:.3f} ms per submit ({cost / baseline:.2f}x)")

"""In-process cost of decoding and validating a submission body: the reference path against the one-pass decoder."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.common import answer_help
from contracts import MODELS, ModelSpec
from contracts.decoding import decode_params
from mock_server.strict_json import parse_json_object


@dataclass(frozen=True)
class DecodeCost:
    """Microseconds per body on each path, for one model's documented example."""

    model: str
    reference_us: float  # json parsing (mock_server.payload), then ModelSpec.validate
    one_pass_us: float  # contracts.decoding.decode_params

    @property
    def speed_up(self) -> float:
        """How many times faster the one-pass decoder is."""
        return self.reference_us / self.one_pass_us


def _best_us(work: Callable[[bytes], object], body: bytes, count: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):  # the best round: the least disturbed by the rest of the machine
        started = time.perf_counter()
        for _ in range(count):
            work(body)
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def _reference(spec: ModelSpec, body: bytes) -> dict[str, Any]:
    return spec.validate(parse_json_object(body))


def measure(count: int = 20_000) -> list[DecodeCost]:
    """Time both paths on each model's documented example body."""
    rows = []
    for slug, spec in MODELS.items():
        body = json.dumps(spec.example).encode()
        assert decode_params(slug, body) == spec.validate(parse_json_object(body))
        reference = _best_us(functools.partial(_reference, spec), body, count)
        one_pass = _best_us(functools.partial(decode_params, slug), body, count)
        rows.append(DecodeCost(slug, reference, one_pass))
    return rows


if __name__ == "__main__":
    answer_help(__doc__)
    for row in measure():
        print(
            f"{row.model}: reference {row.reference_us:.2f} us, one pass {row.one_pass_us:.2f} us, "
            f"{row.speed_up:.1f}x faster"
        )

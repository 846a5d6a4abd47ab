"""What the contract suite sends, as options: apart from the suite so the command line reads them without Hypothesis."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.models import MODELS


@dataclass(frozen=True)
class Options:
    """What the suite sends: how many paid jobs and invalid payloads, and how it polls."""

    # The documented examples (one per model), one plain and one base64 v1 call.
    max_jobs: int = 4
    jobs: bool = True
    invalid_examples: int = 25
    poll_interval: float = 2.0
    poll_timeout: float = 900.0
    seed: int = 0
    models: tuple[str, ...] = tuple(MODELS)
    # Check only rules graded DOCS (documented by Segmind), leaving out SDK, 2ND and GUESS ones.
    documented_only: bool = False

"""What the contract suite sends, and how verify runs a command: apart from both, for the command line to read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from contracts.models import MODELS
from contracts.spec import ModelSpec


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
    # Every model loaded (the shipped two and those of --model-file), by slug; `models` picks among them.
    registry: Mapping[str, ModelSpec] = field(default_factory=lambda: MODELS)
    # Check only rules graded DOCS (documented by Segmind), leaving out SDK, 2ND and GUESS ones.
    documented_only: bool = False


# The environment a command client gets (see verify.verify_command).
COMMAND_VARIABLES = ("SEGMIND_BASE_URL", "SEGMIND_API_KEY", "SEGMIND_MODEL", "SEGMIND_PAYLOAD")
# Where `serve` reads its admin token, and `contract` and `verify` the token of the fake they drive,
# when --admin-token is not given.
ADMIN_TOKEN_VARIABLE = "SEGMIND_MOCK_ADMIN_TOKEN"


def admin_token_from(environ: Mapping[str, str]) -> str | None:
    """The admin token `environ` gives through ADMIN_TOKEN_VARIABLE; None when unset or empty."""
    return environ.get(ADMIN_TOKEN_VARIABLE) or None


# The key a verified client gets when neither `verify --api-key` nor $SEGMIND_API_KEY gives one: any
# key in open mode.
VERIFY_API_KEY = "SG_00000000c0ffee00"
# Real seconds one run of a client's command may take (`verify --timeout`).
COMMAND_TIMEOUT_SECONDS = 60.0
# The model files `serve`, `contract` and `verify` load beside the shipped two (`--model-file`): none.
MODEL_FILES: tuple[str, ...] = ()

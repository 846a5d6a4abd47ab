"""The contract suite as one pytest test, configured by environment variables.

    SEGMIND_CONTRACT_BASE_URL=https://api.segmind.com SEGMIND_API_KEY=SG_... \\
        pytest --pyargs contracts.pytest_suite

Variables: SEGMIND_CONTRACT_BASE_URL (the test is skipped without it), SEGMIND_API_KEY,
SEGMIND_CONTRACT_MAX_JOBS, SEGMIND_CONTRACT_NO_JOBS=1, SEGMIND_CONTRACT_INVALID_EXAMPLES,
SEGMIND_CONTRACT_POLL_INTERVAL, SEGMIND_CONTRACT_POLL_TIMEOUT, SEGMIND_CONTRACT_DOCUMENTED_ONLY=1,
SEGMIND_CONTRACT_MODEL_FILES (model files, separated as in PATH; docs/models.md),
SEGMIND_CONTRACT_MODELS (slugs to check, separated by commas; default: every loaded model),
and SEGMIND_MOCK_ADMIN_TOKEN for a fake whose admin API requires its token.
From your own tests, call
`contracts.suite.assert_conforms(base_url, api_key, Options(...))` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from contracts.model_file import load_models
from contracts.models import MODELS
from contracts.openapi import API_KEY_VARIABLE
from contracts.options import Options, admin_token_from
from contracts.suite import assert_conforms

PREFIX = "SEGMIND_CONTRACT_"


def options_from(environ: Mapping[str, str]) -> Options:
    """Suite options from SEGMIND_CONTRACT_* variables; unset ones keep their defaults."""
    defaults = Options()
    files = [path for path in environ.get(f"{PREFIX}MODEL_FILES", "").split(os.pathsep) if path]
    registry = load_models(files, MODELS)
    chosen = [slug for slug in environ.get(f"{PREFIX}MODELS", "").split(",") if slug]
    return Options(
        models=tuple(chosen or registry),
        registry=registry,
        max_jobs=int(environ.get(f"{PREFIX}MAX_JOBS", defaults.max_jobs)),
        jobs=environ.get(f"{PREFIX}NO_JOBS", "") in ("", "0"),
        invalid_examples=int(environ.get(f"{PREFIX}INVALID_EXAMPLES", defaults.invalid_examples)),
        poll_interval=float(environ.get(f"{PREFIX}POLL_INTERVAL", defaults.poll_interval)),
        poll_timeout=float(environ.get(f"{PREFIX}POLL_TIMEOUT", defaults.poll_timeout)),
        documented_only=environ.get(f"{PREFIX}DOCUMENTED_ONLY", "") not in ("", "0"),
    )


def test_target_conforms_to_the_documented_contract() -> None:
    """The server at SEGMIND_CONTRACT_BASE_URL meets every rule of the contract suite."""
    base_url = os.environ.get(f"{PREFIX}BASE_URL")
    if not base_url:
        pytest.skip(f"set {PREFIX}BASE_URL to the server to check (and {API_KEY_VARIABLE})")
    api_key = os.environ.get(API_KEY_VARIABLE, "")
    assert_conforms(base_url, api_key, options_from(os.environ), admin_token=admin_token_from(os.environ))

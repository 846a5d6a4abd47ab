"""Shared data of the accounts and network-fault tests: a config of keys, and a submission helper."""

from __future__ import annotations

import httpx

from contracts import MODELS
from mock_server.accounts import parse_config

SVD = MODELS["svd"].example
RICH = "SG_00000000000000aa"  # 100 credits, every model, no rate limit
POOR = "SG_00000000000000bb"  # 1 credit
FREE = "SG_00000000000000cc"  # the free plan: 5 requests a minute
SVD_ONLY = "SG_00000000000000dd"  # may call svd only
CONFIG = parse_config(
    {
        "keys": {
            RICH: {"credits": 100},
            POOR: {"credits": 1},
            FREE: {"plan": "free"},
            SVD_ONLY: {"models": ["svd"]},
        }
    }
)


def submit(http: httpx.Client, api_key: str, model: str = "svd", **headers: str) -> httpx.Response:
    """Submit the model's documented example under `api_key`."""
    payload = MODELS[model].example
    return http.post(f"/v2/{model}", json=payload, headers={"x-api-key": api_key, **headers})

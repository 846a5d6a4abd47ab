"""Shared by the fuzz tests: the small body limit, the routes taking a body, the error envelope and JSON strategies."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from contracts import MODELS, Param
from tests.support import API_KEY

LIMIT = 4096
KEY = {"x-api-key": API_KEY}
BODY_ROUTES = ["/v2/svd", "/v1/motionctrl-svd", "/_mock/scenarios", "/_mock/clock/advance", "/_mock/clock"]


def assert_envelope(status: int, content_type: str, body: bytes) -> None:
    """A 4xx in the documented `{"error": "..."}` envelope, with a message to act on."""
    assert 400 <= status < 500, (status, body[:300])
    assert content_type.startswith("application/json"), (content_type, body[:300])
    document = json.loads(body)
    assert list(document) == ["error"]
    assert isinstance(document["error"], str) and len(document["error"]) > 10


any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_PARAMS: dict[str, Param] = {param.name: param for spec in MODELS.values() for param in spec.params}
_ADMIN_FIELDS = ("match", "outcome", "times", "error", "status", "headers", "queue_seconds", "seconds", "speed")


def _edges(param: Param) -> list[object]:
    """A parameter's documented edges (default, bounds, allowed values) and their neighbours in type."""
    values = [param.default, param.minimum, param.maximum, *(param.enum or ())]
    return [value for value in values if value is not None] + ["14", 7.0, -1, 1e308]


# Objects near the documented ones: every known field, each an edge value or any JSON at all.
near_payload = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.sampled_from(_edges(param)) | any_json for name, param in _PARAMS.items()},
        **{name: any_json | st.sampled_from(["failed", "http_error", 429, 1, -1]) for name in _ADMIN_FIELDS},
    },
)

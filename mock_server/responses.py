"""JSON answers as the fake sends them: compact UTF-8, never NaN, like Starlette's, encoded faster."""

from __future__ import annotations

import json
from typing import Any

from starlette import responses

# One encoder for every answer: `json.dumps` with options builds a new encoder on each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSONResponse(responses.JSONResponse):
    """Starlette's JSONResponse, byte for byte, with its encoder built once."""

    def render(self, content: Any) -> bytes:
        """Encode `content` as compact UTF-8 JSON."""
        return _ENCODER.encode(content).encode("utf-8")

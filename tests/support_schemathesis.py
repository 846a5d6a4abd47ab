"""A schemathesis hook for the outsider's run and the in-process one: inline images that are images.

The document's image pattern admits a data: URI or raw base64, as the fake does, but no schema can
say that the data must decode as an image: schemathesis fills the pattern with random bytes, which
the fake refuses with 400. This hook keeps each generated inline image's form and puts a real PNG
in it, as an outsider tells schemathesis the one rule the document cannot state. URLs and values
outside the pattern are left as generated. The outsider's run registers it through
`tests/schemathesis_hooks.py` (its SCHEMATHESIS_HOOKS file); the in-process run on its schemas.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from contracts import MODELS
from contracts.spec import is_image_reference
from tests.support_video import png

IMAGE_FIELDS = frozenset(spec.image_param.name for spec in MODELS.values())
PICTURE = base64.b64encode(png(np.full((64, 64, 3), 128, np.uint8))).decode()


def map_body(context: Any, body: Any) -> Any:
    """Replace the bytes of every generated inline image by a real picture, in the same form."""
    if isinstance(body, dict):
        for name in IMAGE_FIELDS & body.keys():
            value = body[name]
            if isinstance(value, str) and is_image_reference(value) and not value.startswith(("http://", "https://")):
                head, comma, _ = value.rpartition(",")  # data:image/png;base64,<data>, or raw base64
                body[name] = f"{head}{comma}{PICTURE}"
    return body

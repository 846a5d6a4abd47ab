"""The documented API of both video models, as data: the single source of every range and default.

Transcribed from Segmind's model pages (`shared/api-reference/`). Validation, the OpenAPI
document, the Hypothesis strategies and the docs all read these specs; nothing else restates them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from contracts.spec import ModelSpec, Param

SVD = ModelSpec(
    slug="svd",
    title="Stable Video Diffusion",
    summary="Takes image as input and returns a video.",
    latency_seconds=29.63,
    params=(
        Param("image", "image", "Input Image.", required=True),
        Param("base64", "boolean", "Base64 encoding of the output video.", default=False),
        Param("cond_aug", "number", "noise added to the conditioning image", default=0.2, minimum=0, maximum=1),
        Param("fps", "integer", "Number of frames per second", default=7, minimum=1, maximum=60),
        Param(
            "frames",
            "integer",
            "No of frames in output video",
            default=14,
            enum=(14, 25),
            numeric_string=True,
        ),
        Param(
            "motion",
            "integer",
            "to control the motion of the generated video",
            default=127,
            minimum=1,
            maximum=180,
        ),
        Param(
            "resize_method",
            "string",
            "Decides the output video dimensions",
            default="maintain_aspect_ratio",
            enum=("maintain_aspect_ratio", "crop_to_16_9"),
        ),
        Param("seed", "integer", "Seed for video generation.", default=-1, minimum=-1, maximum=999999999999999),
    ),
    example={
        "image": "https://segmind-sd-models.s3.amazonaws.com/outputs/svd_input.png",
        "fps": 7,
        "motion": 127,
        "seed": 452361789,
        "cond_aug": 0.1,
        "frames": "14",
        "resize_method": "maintain_aspect_ratio",
        "base64": False,
    },
)

MOTIONCTRL_SVD = ModelSpec(
    slug="motionctrl-svd",
    title="Motion Control SVD",
    summary="Animates a still image with controlled camera and object motion.",
    latency_seconds=62.74,
    params=(
        Param(
            "cond_aug",
            "number",
            "Conditional augmentation",
            default=0.02,
            required=True,
            minimum=0,
            maximum=1,
        ),
        Param(
            "fps",
            "integer",
            "Frames per second for the video",
            default=7,
            required=True,
            minimum=5,
            maximum=30,
        ),
        Param(
            "input_image",
            "image",
            "Input image",
            default="https://segmind-sd-models.s3.amazonaws.com/display_images/motion-control-svd/motionctrl_ip.png",
            required=True,
        ),
        Param(
            "motion",
            "string",
            "Motion type",
            default="CW",
            required=True,
            enum=("Pan Up", "Pan Down", "Pan Right", "Pan Left", "Zoom In", "Zoom Out", "CW", "ACW"),
        ),
        Param(
            "motion_bucket_id",
            "integer",
            "Motion bucket ID",
            default=127,
            required=True,
            minimum=127,
            maximum=255,
        ),
        Param("base64", "boolean", "Base64 encoding of the output image.", default=False),
        Param("decoding_t", "integer", "Decoding time", default=1),
        Param("maintain_aspect_ratio", "boolean", "Maintain aspect ratio", default=True),
        Param("motion_speed", "number", "Speed of the motion", default=1, minimum=0, maximum=10),
        Param("seed", "integer", "Seed for random number generation", default=985445),
    ),
    example={
        "input_image": "https://segmind-sd-models.s3.amazonaws.com/display_images/motion-control-svd/motionctrl_ip.png",
        "fps": 7,
        "motion": "CW",
        "motion_bucket_id": 127,
        "cond_aug": 0.02,
        "seed": 985445,
        "decoding_t": 1,
        "maintain_aspect_ratio": True,
        "motion_speed": 1,
        "base64": False,
    },
)

MODELS: dict[str, ModelSpec] = {spec.slug: spec for spec in (SVD, MOTIONCTRL_SVD)}

# The parameters that ask each model for a 16:9 frame. svd's are documented: the option is named
# crop_to_16_9 (DOCS). motionctrl-svd's are the fake's choice (GUESS): its docs say only "Maintain
# aspect ratio", so not maintaining it gets SVD's native 16:9 shape (docs/videos.md).
WIDE_REQUESTS: dict[str, dict[str, Any]] = {
    SVD.slug: {"resize_method": "crop_to_16_9"},
    MOTIONCTRL_SVD.slug: {"maintain_aspect_ratio": False},
}
# The models whose 16:9 request is documented: the contract suite checks only these against a target.
DOCUMENTED_WIDE_MODELS = (SVD.slug,)


def wants_wide(model: str, params: Mapping[str, Any]) -> bool:
    """Tell whether checked `params` (defaults filled in) ask `model` for a 16:9 frame."""
    return all(params[name] == value for name, value in WIDE_REQUESTS[model].items())


def wide_request_text(model: str) -> str:
    """The parameters that ask `model` for a 16:9 frame, as words: `resize_method crop_to_16_9`."""
    return ", ".join(
        f"{name} {value if isinstance(value, str) else json.dumps(value)}"
        for name, value in WIDE_REQUESTS[model].items()
    )

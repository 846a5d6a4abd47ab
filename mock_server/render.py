"""Rendering the fake's output videos: H.264 MP4 through PyAV, from numpy pixels.

This module needs the `video` extra (PyAV and numpy): `outputs.py` imports it only when both are
installed, and `video.py` serves the prepared files otherwise. Every choice below is a fake's choice, not Segmind's:

- Size: a request for 16:9 (`contracts.models.wants_wide`) gives 512x288, SVD's native 1024x576
  halved: the same 16:9 shape, multiples of 16, and four times fewer pixels to warp and encode.
  Keeping the input's aspect spends the same pixel budget on its shape (each side even and within
  `SIZE_LIMITS`); the test card, having no input, is always 16:9.
- Frames: svd renders exactly `frames`; motionctrl-svd renders 14, SVD's default clip length.
- Motion: names are camera moves, so the picture moves the other way: "Pan Left" slides the
  content right, "Zoom In" grows it, "CW" rolls the camera clockwise and turns the content
  anticlockwise. `_CAMERA_MOVES` is the one place to change that.
- Determinism: one x264 thread (x264's output depends on its thread count, which "auto" would take
  from the machine) and FFmpeg's bitexact flags, so the muxer writes no version string or time.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from contracts import MODELS
from contracts.models import wants_wide
from mock_server.video import Fallback, checked_params, require_av

FULL_SIZE = (512, 288)
# motionctrl-svd takes no frame count: it renders SVD's default clip length.
MOTIONCTRL_FRAMES = MODELS["svd"].param("frames").default
SIZE_LIMITS = (32, 1024)
# veryfast at CRF 28 encodes 25 frames of 512x288 in about 50 ms here and keeps files small.
X264_OPTIONS = {"preset": "veryfast", "crf": "28", "threads": "1"}

Motion = tuple[float, float, float, float]  # content shift x, y (fractions of the frame), zoom, roll (radians)

# Per unit of `motion_speed`, over the whole clip. Pans move the content against the camera.
_CAMERA_MOVES: dict[str, Motion] = {
    "Pan Up": (0.0, 0.15, 1.0, 0.0),
    "Pan Down": (0.0, -0.15, 1.0, 0.0),
    "Pan Left": (0.15, 0.0, 1.0, 0.0),
    "Pan Right": (-0.15, 0.0, 1.0, 0.0),
    "Zoom In": (0.0, 0.0, 1.3, 0.0),
    "Zoom Out": (0.0, 0.0, 1 / 1.3, 0.0),
    "CW": (0.0, 0.0, 1.0, -math.radians(20)),
    "ACW": (0.0, 0.0, 1.0, math.radians(20)),
}


def render_video(
    model: str, params: Mapping[str, Any], seed: int, image: np.ndarray | None, card: Sequence[str] | None = None
) -> bytes:
    """Render the H.264 MP4 a job of `model` outputs; `image` is RGB pixels, None for the test card.

    The test card prints `card`, by default the request's own model, parameters and seed.
    `params` are checked by the contract first (a job's were, when it was accepted: `render_checked`).
    """
    return render_checked(model, checked_params(model, params), seed, image, card)


def render_checked(
    model: str, checked: Mapping[str, Any], seed: int, image: np.ndarray | None, card: Sequence[str] | None = None
) -> bytes:
    """Render as `render_video` does, from parameters already checked (an accepted job's)."""
    size = output_size(model, checked, image)
    lines = card if card is not None else card_lines(model, checked, seed)
    source = image if image is not None else draw_test_card(size, lines)
    source = np.ascontiguousarray(source)  # so that _warp can view it as a flat list of pixels
    motions = _motions(model, checked, seed)
    frames = (_warp(source, size, motion) for motion in motions)
    return encode_mp4(frames, size, checked["fps"])


def output_size(model: str, params: Mapping[str, Any], image: np.ndarray | None) -> tuple[int, int]:
    """Return the (width, height) of the video for these checked parameters and input."""
    if wants_wide(model, params) or image is None:
        return FULL_SIZE
    aspect = image.shape[1] / image.shape[0]
    width = math.sqrt(FULL_SIZE[0] * FULL_SIZE[1] * aspect)
    return _even(width), _even(width / aspect)


def _even(length: float) -> int:
    low, high = SIZE_LIMITS
    return min(max(2 * round(length / 2), low), high)


def encode_mp4(frames: Iterable[np.ndarray], size: tuple[int, int], fps: int) -> bytes:
    """Encode an iterable of RGB frames of `size` as H.264 (yuv420p) in MP4, deterministically."""
    pyav = require_av()
    output = io.BytesIO()
    with pyav.open(output, "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.flags |= pyav.codec.context.Flags.bitexact
        for index, pixels in enumerate(frames):
            frame = pyav.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return output.getvalue()


def _motions(model: str, params: Mapping[str, Any], seed: int) -> list[Motion]:
    """Return each frame's camera state: content shift, zoom and roll."""
    rng = np.random.default_rng(seed % 2**64)
    if model == "svd":
        count = params["frames"]
        # A gentle drift in a seeded direction: at most 6% of the frame, 8% zoom and 3 degrees of roll.
        amount = params["motion"] / MODELS["svd"].param("motion").maximum
        angle = rng.uniform(0, 2 * math.pi)
        zoom = 1 + 0.08 * amount * rng.choice((-1, 1))
        roll = math.radians(3) * amount * rng.uniform(-1, 1)
        total = (0.06 * amount * math.cos(angle), 0.06 * amount * math.sin(angle), zoom, roll)
        shake = 0.0
    else:
        count = MOTIONCTRL_FRAMES
        speed = params["motion_speed"]
        x, y, zoom, roll = _CAMERA_MOVES[params["motion"]]
        total = (x * speed, y * speed, zoom**speed, roll * speed)
        # A hand-held wobble that grows with the motion bucket, so seeds differ; none when still.
        bucket = params["motion_bucket_id"] / MODELS["motionctrl-svd"].param("motion_bucket_id").maximum
        shake = 0.004 * speed * bucket
    jitter = rng.uniform(-shake, shake, size=(count, 2))
    steps = np.linspace(0.0, 1.0, count)
    return [
        (total[0] * t + dx, total[1] * t + dy, total[2] ** t, total[3] * t)
        for t, (dx, dy) in zip(steps, jitter, strict=True)
    ]


def _warp(source: np.ndarray, size: tuple[int, int], motion: Motion) -> np.ndarray:
    """Return one frame: `source` scaled to cover `size`, then moved by the camera (nearest pixel)."""
    width, height = size
    shift_x, shift_y, zoom, roll = motion
    rows, cols = source.shape[:2]
    cover = max(width / cols, height / rows) * zoom
    x = np.arange(width, dtype=np.float32) - (width / 2 - 0.5) - shift_x * width
    y = np.arange(height, dtype=np.float32)[:, None] - (height / 2 - 0.5) - shift_y * height
    cos, sin = math.cos(roll) / cover, math.sin(roll) / cover
    # Inverse map: each output pixel samples the source point the camera move brought there.
    source_x = cos * x + sin * y + (cols / 2 - 0.5)
    source_y = cos * y - sin * x + (rows / 2 - 0.5)
    # Gathering rows of a flat pixel list is several times faster than 2-D fancy indexing.
    index = _mirror(source_y, rows) * cols + _mirror(source_x, cols)
    pixels: np.ndarray = np.take(source.reshape(-1, 3), index, axis=0)
    return pixels


def _mirror(coordinate: np.ndarray, length: int) -> np.ndarray:
    """Round to pixel indices, reflecting those outside the image back in (no seams or streaks)."""
    index = np.rint(coordinate).astype(np.int32) % (2 * length)
    mirrored: np.ndarray = np.minimum(index, 2 * length - 1 - index)
    return mirrored


def card_lines(model: str, params: Mapping[str, Any], seed: int) -> list[str]:
    """The test card's text for a request: the model, every checked parameter and the seed."""
    shown = {name: value for name, value in {**params, "seed": seed}.items() if name != "base64"}
    return [f"SEGMIND-MOCK TEST CARD: {model}", *(f"{name}: {value}" for name, value in shown.items())]


# 5x7 glyphs, one byte a row, the top bit of five the leftmost pixel. Lower case prints as upper.
_GLYPHS = {
    "A": "0E11111F111111",
    "B": "1E11111E11111E",
    "C": "0E11101010110E",
    "D": "1C12111111121C",
    "E": "1F10101E10101F",
    "F": "1F10101E101010",
    "G": "0E11101711110F",
    "H": "1111111F111111",
    "I": "0E04040404040E",
    "J": "0702020202120C",
    "K": "11121418141211",
    "L": "1010101010101F",
    "M": "111B1515111111",
    "N": "11111915131111",
    "O": "0E11111111110E",
    "P": "1E11111E101010",
    "Q": "0E11111115120D",
    "R": "1E11111E141211",
    "S": "0F10100E01011E",
    "T": "1F040404040404",
    "U": "1111111111110E",
    "V": "11111111110A04",
    "W": "1111111515150A",
    "X": "11110A040A1111",
    "Y": "11110A04040404",
    "Z": "1F01020408101F",
    "0": "0E11131519110E",
    "1": "040C040404040E",
    "2": "0E11010204081F",
    "3": "1F02040201110E",
    "4": "02060A121F0202",
    "5": "1F101E0101110E",
    "6": "0608101E11110E",
    "7": "1F010204080808",
    "8": "0E11110E11110E",
    "9": "0E11110F01020C",
    " ": "00000000000000",
    ".": "00000000000C0C",
    ",": "000000000C0408",
    ":": "000C0C000C0C00",
    "-": "0000001F000000",
    "_": "0000000000001F",
    "/": "00010204081000",
    "=": "00001F001F0000",
    "+": "0004041F040400",
    "(": "02040808080402",
    ")": "08040202020408",
    "?": "0E110102040004",
    "%": "18190204081303",
}


@cache
def _glyph(char: str) -> np.ndarray:
    code = _GLYPHS.get(char.upper(), _GLYPHS["?"])
    rows = np.frombuffer(bytes.fromhex(code), dtype=np.uint8)
    return np.unpackbits(rows[:, None], axis=1)[:, 3:].astype(bool)


def _draw_text(canvas: np.ndarray, text: str, left: int, top: int, scale: int) -> None:
    """Print `text` in white on a black strip, clipped to the canvas."""
    height, width = canvas.shape[:2]
    room = (width - left) // (6 * scale)
    text = text[:room]
    bottom, right = min(top + 9 * scale, height), left + 6 * scale * len(text) + scale
    canvas[top:bottom, left:right] = 0
    for position, char in enumerate(text):
        mask = np.kron(_glyph(char), np.ones((scale, scale), dtype=bool))
        x, y = left + scale + 6 * scale * position, top + scale
        window = canvas[y : y + mask.shape[0], x : x + mask.shape[1]]
        window[mask[: window.shape[0], : window.shape[1]]] = 255


def draw_test_card(size: tuple[int, int], lines: Sequence[str]) -> np.ndarray:
    """Draw the stand-in input: checks, colour bars, a target ring and `lines` of text."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    squares = ((x // 32 + y // 32) % 2).astype(np.uint8)
    card = np.repeat((60 + 30 * squares)[..., None], 3, axis=2)
    bars = np.array(
        [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
    )
    band = height // 8
    card[:band] = bars[x[:band] * len(bars) // width]
    radius = np.hypot(x - width * 0.75, y - height * 0.6)
    card[np.abs(radius - height / 5) < 3] = (255, 255, 255)
    card[radius < height / 16] = (255, 96, 0)
    scale = max(1, height // 144)
    for number, line in enumerate(lines):
        _draw_text(card, line, scale * 4, band + scale * (4 + 10 * number), scale)
    return card


def prepared_card_lines(fallback: Fallback) -> list[str]:
    """A prepared file's card: what it is, the parameters it follows, and that it follows no others.

    It is served to every request most like it, so it prints none of the example request's other
    parameters, which would read as the request's own.
    """
    followed = ", ".join(f"{name}: {value}" for name, value in fallback.params.items())
    return [
        f"SEGMIND-MOCK PREPARED: {fallback.model}",
        f"follows only {followed}",
        "not your fps, size, seed or image",
        "install the video extra to render yours",
    ]


def render_fallback(fallback: Fallback) -> bytes:
    """Render a prepared file's video with its card, from the model's example request."""
    spec = MODELS[fallback.model]
    params = {**spec.example, **fallback.params}
    return render_video(fallback.model, params, spec.example["seed"], None, prepared_card_lines(fallback))

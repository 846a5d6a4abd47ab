"""Rendering the fake's output videos: H.264 MP4 through PyAV, from numpy pixels.

This module needs the `video` extra (PyAV and numpy): `outputs.py` imports it only when both are
installed, and `video.py` serves the prepared files otherwise. Every choice below is a fake's choice, not Segmind's:

- Size: a request for 16:9 (`ModelSpec.wants_wide`) gives 512x288, SVD's native 1024x576
  halved: the same 16:9 shape, multiples of 16, and four times fewer pixels to warp and encode.
  Keeping the input's aspect spends the same pixel budget on its shape (each side even and within
  `SIZE_LIMITS`); the test card, having no input, is always 16:9. A model file's `[steer]` may
  name width and height parameters (honoured, within the limits) or an aspect one ("16:9").
- Frames: what the model file's `[steer]` says: svd renders exactly `frames`; motionctrl-svd
  renders 14, SVD's default clip length; a `duration` gives seconds at the frame rate.
- Images: an image model's output is the first frame, as PNG, JPEG or WebP (FFmpeg's encoders).
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
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np

from contracts import MODELS, ModelSpec
from contracts.model_file import aspect_of
from contracts.models import spec_of
from mock_server.video import Fallback, checked_params, require_av

FULL_SIZE = (512, 288)
SIZE_LIMITS = (32, 1024)
# An image model's picture when nothing asks for a size, and the largest side it is given (GUESS).
IMAGE_SIZE = (1024, 1024)
IMAGE_SIZE_LIMITS = (16, 2048)
# Frames rendered at most, whatever a duration and rate ask: 10 s at 25 fps (bounds the work of one job).
MAX_FRAMES = 250
# The drift of a model whose file names no parameter for it: half of svd's largest (GUESS).
GUESSED_DRIFT = 0.5
# FFmpeg encoders of the image outputs, and the pixel format each is given.
IMAGE_ENCODERS = {
    "image/png": ("png", "rgb24"),
    "image/jpeg": ("mjpeg", "yuvj444p"),
    "image/webp": ("libwebp", "yuv420p"),
}
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
# A camera value that names no move above: the camera stays still (only the shake moves it).
_STILL: Motion = (0.0, 0.0, 1.0, 0.0)


def render_output(spec: ModelSpec, checked: Mapping[str, Any], seed: int, image: np.ndarray | None) -> bytes:
    """Render a job's output file from its checked parameters: a video model's MP4, an image model's picture."""
    render = render_checked if spec.is_video else render_image
    return render(spec, checked, seed, image)


def render_video(
    model: str | ModelSpec,
    params: Mapping[str, Any],
    seed: int,
    image: np.ndarray | None,
    card: Sequence[str] | None = None,
) -> bytes:
    """Render the H.264 MP4 a job of `model` outputs; `image` is RGB pixels, None for the test card.

    The test card prints `card`, by default the request's own model, parameters and seed.
    `params` are checked by the contract first (a job's were, when it was accepted: `render_checked`).
    """
    spec = spec_of(model)
    return render_checked(spec, checked_params(spec, params), seed, image, card)


def render_checked(
    model: str | ModelSpec,
    checked: Mapping[str, Any],
    seed: int,
    image: np.ndarray | None,
    card: Sequence[str] | None = None,
) -> bytes:
    """Render as `render_video` does, from parameters already checked (an accepted job's)."""
    spec = spec_of(model)
    size = output_size(spec, checked, image)
    lines = card if card is not None else card_lines(spec.slug, checked, seed)
    source = image if image is not None else draw_test_card(size, lines)
    source = np.ascontiguousarray(source)  # so that _warp can view it as a flat list of pixels
    motions = _motions(spec, checked, seed)
    frames = (_warp(source, size, motion) for motion in motions)
    return encode_mp4(frames, size, frame_rate(spec, checked))


def render_image(spec: ModelSpec, checked: Mapping[str, Any], seed: int, image: np.ndarray | None) -> bytes:
    """Render an image model's output from checked parameters: the input (or the test card) at the requested size."""
    size = output_size(spec, checked, image)
    source = image if image is not None else draw_test_card(size, card_lines(spec.slug, checked, seed))
    pixels = _warp(np.ascontiguousarray(source), size, _STILL)
    return encode_image(pixels, spec.output)


def encode_image(pixels: np.ndarray, media_type: str) -> bytes:
    """Encode RGB pixels as one PNG, JPEG or WebP file with FFmpeg's encoder for it."""
    pyav = require_av()
    name, pix_fmt = IMAGE_ENCODERS[media_type]
    context = pyav.CodecContext.create(name, "w")
    context.height, context.width = pixels.shape[:2]
    context.pix_fmt = pix_fmt
    context.time_base = Fraction(1, 25)
    context.flags |= pyav.codec.context.Flags.bitexact
    frame = pyav.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24").reformat(format=pix_fmt)
    frame.pts = 0
    return b"".join(bytes(packet) for packet in (*context.encode(frame), *context.encode(None)))


def frame_count(spec: ModelSpec, params: Mapping[str, Any]) -> int:
    """Frames of video the checked `params` ask for: the `[steer]` frames, else duration times rate."""
    frames = spec.steer.frames
    if frames is None:
        seconds = params[spec.steer.duration] if spec.steer.duration is not None else 1
        count = float(seconds) * frame_rate(spec, params)
    else:
        count = frames if isinstance(frames, int) else params[frames]
    return min(max(round(count), 1), MAX_FRAMES)


def frame_rate(spec: ModelSpec, params: Mapping[str, Any]) -> int:
    """Frames a second the checked `params` ask for (a whole number, 1 to 120)."""
    fps = spec.steer.fps
    rate = fps if isinstance(fps, int) else params[fps]
    return int(min(max(round(rate), 1), 120))


def output_size(model: str | ModelSpec, params: Mapping[str, Any], image: np.ndarray | None) -> tuple[int, int]:
    """Return the (width, height) of the output for these checked parameters and input."""
    spec = spec_of(model)
    steer = spec.steer
    if steer.width is not None and steer.height is not None:
        return _side(spec, params[steer.width]), _side(spec, params[steer.height])
    full = FULL_SIZE if spec.is_video else IMAGE_SIZE
    shape = aspect_of(params[steer.aspect]) if steer.aspect is not None else None
    if spec.wants_wide(params):
        shape = (16, 9)
    if shape == (16, 9) and spec.is_video:
        return FULL_SIZE
    if shape is not None:
        aspect = shape[0] / shape[1]
    elif image is not None:
        aspect = image.shape[1] / image.shape[0]
    else:
        return full
    width = math.sqrt(full[0] * full[1] * aspect)
    return _side(spec, width), _side(spec, width / aspect)


def _side(spec: ModelSpec, length: float) -> int:
    """A side of the output: even for a video (H.264's 4:2:0), within the limits of its kind."""
    if not spec.is_video:
        low, high = IMAGE_SIZE_LIMITS
        return int(min(max(round(length), low), high))
    return _even(length)


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


def _motions(spec: ModelSpec, params: Mapping[str, Any], seed: int) -> list[Motion]:
    """Return each frame's camera state: content shift, zoom and roll."""
    rng = np.random.default_rng(seed % 2**64)
    count = frame_count(spec, params)
    steer = spec.steer
    if steer.camera is None:
        # A gentle drift in a seeded direction: at most 6% of the frame, 8% zoom and 3 degrees of roll.
        amount = _fraction(spec, steer.drift, params, GUESSED_DRIFT)
        angle = rng.uniform(0, 2 * math.pi)
        zoom = 1 + 0.08 * amount * rng.choice((-1, 1))
        roll = math.radians(3) * amount * rng.uniform(-1, 1)
        total = (0.06 * amount * math.cos(angle), 0.06 * amount * math.sin(angle), zoom, roll)
        shake = 0.0
    else:
        speed = params[steer.camera_speed] if steer.camera_speed is not None else 1
        x, y, zoom, roll = _CAMERA_MOVES.get(params[steer.camera], _STILL)
        total = (x * speed, y * speed, zoom**speed, roll * speed)
        # A hand-held wobble that grows with the motion bucket, so seeds differ; none when still.
        bucket = _fraction(spec, steer.shake, params, GUESSED_DRIFT)
        shake = 0.004 * speed * bucket
    jitter = rng.uniform(-shake, shake, size=(count, 2))
    steps = np.linspace(0.0, 1.0, count)
    return [
        (total[0] * t + dx, total[1] * t + dy, total[2] ** t, total[3] * t)
        for t, (dx, dy) in zip(steps, jitter, strict=True)
    ]


def _fraction(spec: ModelSpec, name: str | None, params: Mapping[str, Any], guess: float) -> float:
    """A steering parameter's value over its documented maximum, or `guess` when none is named or bounded."""
    if name is None:
        return guess
    maximum = spec.param(name).maximum
    return float(params[name]) / maximum if maximum else guess


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


# The prepared image's size: what an image model known from a file gets without the video extra.
PREPARED_IMAGE_SIZE = (512, 512)


def render_prepared_image(media_type: str) -> bytes:
    """The prepared picture of an image type, served for every image model without the video extra."""
    lines = [
        f"SEGMIND-MOCK PREPARED: {media_type}",
        "not your size, seed or image",
        "install the video extra to render yours",
    ]
    return encode_image(draw_test_card(PREPARED_IMAGE_SIZE, lines), media_type)


def render_fallback(fallback: Fallback) -> bytes:
    """Render a prepared file's video with its card, from the model's example request."""
    spec = MODELS[fallback.model]
    params = {**spec.example, **fallback.params}
    return render_video(fallback.model, params, spec.example["seed"], None, prepared_card_lines(fallback))

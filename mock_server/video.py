"""Rendering the fake's output videos: H.264 MP4 through PyAV, or prepared files without it.

PyAV is the optional `video` extra, so this module imports without it and fails only when asked
to render. Every choice below is a fake's choice, not Segmind's:

- Size: `crop_to_16_9` (svd) or `maintain_aspect_ratio: false` (motionctrl-svd) give 512x288,
  SVD's native 1024x576 halved: the same 16:9 shape, multiples of 16, and four times fewer pixels
  to warp and encode. Keeping the input's aspect spends the same pixel budget on its shape (each
  side even and within `SIZE_LIMITS`); the test card, having no input, is always 16:9.
- Frames: svd renders exactly `frames`; motionctrl-svd renders 14, SVD's default clip length.
- Motion: names are camera moves, so the picture moves the other way: "Pan Left" slides the
  content right, "Zoom In" grows it, "CW" rolls the camera clockwise and turns the content
  anticlockwise. `_CAMERA_MOVES` is the one place to change that.
- Determinism: one x264 thread (x264's output depends on its thread count, which "auto" would take
  from the machine) and FFmpeg's bitexact flags, so the muxer writes no version string or time.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from contracts import MODELS

try:
    import av
except ImportError:  # the optional `video` extra is missing: video_available() tells the server
    av = None  # type: ignore[assignment]  # checked by video_available() before any use

FULL_SIZE = (512, 288)
# motionctrl-svd takes no frame count: it renders SVD's default clip length.
MOTIONCTRL_FRAMES = MODELS["svd"].param("frames").default
SIZE_LIMITS = (32, 1024)
# veryfast at CRF 28 encodes 25 frames of 512x288 in about 50 ms here and keeps files small.
X264_OPTIONS = {"preset": "veryfast", "crf": "28", "threads": "1"}
# A 25-frame video is about 100 kB, so the default cache holds some hundreds of them.
VIDEO_CACHE_BYTES = 64 * 1024 * 1024

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


class VideoUnavailable(RuntimeError):
    """Rendering was asked for but PyAV is not installed."""


def video_available() -> bool:
    """Tell whether PyAV is installed, so that videos can be rendered rather than picked."""
    return av is not None


def require_av() -> ModuleType:
    """Return the PyAV module, or raise VideoUnavailable saying how to install it."""
    if av is None:
        raise VideoUnavailable("rendering videos needs PyAV: pip install 'segmind-mock[video]'")
    return av


def render_video(model: str, params: Mapping[str, Any], seed: int, image: np.ndarray | None) -> bytes:
    """Render the H.264 MP4 a job of `model` outputs; `image` is RGB pixels, None for the test card."""
    checked = checked_params(model, params)
    size = output_size(model, checked, image)
    source = image if image is not None else draw_test_card(size, _card_lines(model, checked, seed))
    source = np.ascontiguousarray(source)  # so that _warp can view it as a flat list of pixels
    motions = _motions(model, checked, seed)
    frames = (_warp(source, size, motion) for motion in motions)
    return encode_mp4(frames, size, checked["fps"])


def checked_params(model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check `params` by the contract, keeping the image reference as given.

    The image is checked where it is read (`images.py`), which also accepts files the contract does
    not know of, under the directories the user allowed.
    """
    spec = MODELS[model]
    name = spec.image_param.name
    checked = spec.validate({**params, name: spec.example[name]})
    checked[name] = params.get(name, checked[name])
    return checked


def output_size(model: str, params: Mapping[str, Any], image: np.ndarray | None) -> tuple[int, int]:
    """Return the (width, height) of the video for these checked parameters and input."""
    keep = params["resize_method"] == "maintain_aspect_ratio" if model == "svd" else params["maintain_aspect_ratio"]
    if not keep or image is None:
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


def _card_lines(model: str, params: Mapping[str, Any], seed: int) -> list[str]:
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


def draw_test_card(size: tuple[int, int], lines: list[str]) -> np.ndarray:
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


def cache_key(model: str, params: Mapping[str, Any], seed: int, image_digest: str | None) -> Hashable:
    """Key a rendering: model, canonical parameters, seed and input image digest (None: test card)."""
    checked = checked_params(model, params)
    image_name = MODELS[model].image_param.name
    if image_digest is None:
        # The test card prints the image reference, so the reference itself is the input.
        image_digest = "card:" + hashlib.sha256(str(checked[image_name]).encode()).hexdigest()
    rest = {name: value for name, value in checked.items() if name not in (image_name, "base64", "seed")}
    return model, json.dumps(rest, sort_keys=True), seed, image_digest


class VideoCache:
    """Rendered videos, least recently used dropped first once their total size passes `max_bytes`.

    `get_or_render` renders each video once however many clients ask for it at the same time
    (single flight): the others wait for that rendering instead of starting their own.
    """

    def __init__(self, max_bytes: int = VIDEO_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.renders = 0  # videos rendered so far (single flight keeps it at one per key while cached)
        self._videos: OrderedDict[Hashable, bytes] = OrderedDict()
        self._rendering: dict[Hashable, _Flight] = {}
        self._total = 0
        self._lock = threading.Lock()  # renders finish on worker threads

    def get(self, key: Hashable) -> bytes | None:
        """Return the cached video for `key`, marking it recently used, or None."""
        with self._lock:
            video = self._videos.get(key)
            if video is not None:
                self._videos.move_to_end(key)
            return video

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """Return the video for `key`: cached, being rendered by another caller (waited for), or rendered now.

        Blocking: call it on a worker thread. A failed rendering fails every caller waiting for it.
        """
        with self._lock:
            video = self._videos.get(key)
            if video is not None:
                self._videos.move_to_end(key)
                return video
            flight = self._rendering.get(key)
            leader = flight is None
            if flight is None:
                flight = self._rendering[key] = _Flight()
                self.renders += 1
        if not leader:
            return flight.wait()
        try:
            video = render()
        except BaseException as error:
            flight.fail(error)
            raise
        finally:
            with self._lock:
                del self._rendering[key]
        self.put(key, video)
        flight.land(video)
        return video

    def put(self, key: Hashable, video: bytes) -> None:
        """Keep `video` under `key`, dropping the least recently used ones to stay within the limit."""
        with self._lock:
            if key in self._videos:
                self._total -= len(self._videos.pop(key))
            if len(video) > self.max_bytes:
                return
            self._videos[key] = video
            self._total += len(video)
            while self._total > self.max_bytes:
                self._total -= len(self._videos.popitem(last=False)[1])

    @property
    def total_bytes(self) -> int:
        """The size of every cached video together."""
        return self._total

    def __len__(self) -> int:
        return len(self._videos)


class _Flight:
    """One rendering under way, which other callers of the same key wait for."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._video = b""
        self._error: BaseException | None = None

    def land(self, video: bytes) -> None:
        """Hand the finished video to every waiter."""
        self._video = video
        self._done.set()

    def fail(self, error: BaseException) -> None:
        """Hand the rendering's error to every waiter."""
        self._error = error
        self._done.set()

    def wait(self) -> bytes:
        """Wait for the rendering and return its video, or raise its error."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._video


@dataclass(frozen=True)
class Fallback:
    """A prepared video in `fixtures/`, served without PyAV to requests most like its parameters."""

    name: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self) -> bytes:
        """Render this file's video with the test card, from the model's example request."""
        spec = MODELS[self.model]
        params = {**spec.example, **self.params}
        return render_video(self.model, params, spec.example["seed"], None)


def _fallbacks() -> tuple[Fallback, ...]:
    """One prepared file per svd length and per camera move, all from the models' example requests."""
    frames, motions = MODELS["svd"].param("frames"), MODELS["motionctrl-svd"].param("motion")
    # The server served placeholder.mp4 before there was a renderer: keep that name for the default.
    svd = [
        Fallback("placeholder.mp4" if count == frames.default else f"svd-{count}.mp4", "svd", {"frames": count})
        for count in frames.enum or ()
    ]
    motionctrl = [
        Fallback(f"motionctrl-svd-{motion.lower().replace(' ', '-')}.mp4", "motionctrl-svd", {"motion": motion})
        for motion in motions.enum or ()
    ]
    return (*svd, *motionctrl)


FALLBACKS = _fallbacks()

_PACKAGE = Path(__file__).resolve().parent


def fixture_path(name: str) -> Path:
    """Find a file of `fixtures/`: in the source tree, or packed into the wheel as `_fixtures/`."""
    for folder in (_PACKAGE.parent / "fixtures", _PACKAGE / "_fixtures"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"fixture {name!r} is missing from the installation")


def fallback_video(model: str, params: Mapping[str, Any]) -> bytes:
    """Return the prepared MP4 of `model` whose parameters match the most of `params`."""
    candidates = [fallback for fallback in FALLBACKS if fallback.model == model]
    best = max(candidates, key=lambda fallback: _matches(fallback.params, params))
    return _read_fixture(best.name)


def _matches(prepared: Mapping[str, Any], params: Mapping[str, Any]) -> int:
    # Compare as text: the docs send `frames` both as 14 and "14".
    return sum(str(params.get(name)) == str(value) for name, value in prepared.items())


@cache
def _read_fixture(name: str) -> bytes:
    return fixture_path(name).read_bytes()

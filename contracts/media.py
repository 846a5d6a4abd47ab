"""Checking an output video: fetched within a size and time bound, decoded with PyAV when it is installed.

PyAV (`av`) is optional: without it the suite still checks that the output is served as a video,
and says plainly that the decoded checks (frames, fps, 16:9, playable) were skipped.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType

import httpx

# An output larger than this, or slower to arrive than this, is not read further (a 25-frame
# clip is a few MB; the real outputs live on a CDN).
MAX_VIDEO_BYTES = 64 * 1024 * 1024
FETCH_SECONDS = 60.0
# Containers PyAV reports for an MP4 (FFmpeg's one demuxer covers the ISO family).
MP4_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "mp4", "mov"})
WIDE = Fraction(16, 9)
# A frame counts as 16:9 when its sides are within a pixel of it (encoders want even sides).
WIDE_TOLERANCE_PIXELS = 2


# How each output type's file begins (its magic bytes): an ISO media file has an `ftyp` box at 4.
_MAGIC: dict[str, Callable[[bytes], bool]] = {
    "video/mp4": lambda data: data[4:8] == b"ftyp",
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
}


def is_media(data: bytes, media_type: str) -> bool:
    """Tell whether `data` begins as a file of `media_type` does (MP4, PNG, JPEG or WebP)."""
    return _MAGIC[media_type](data)


class FetchError(Exception):
    """The output could not be fetched within the bounds; the message says why."""


@dataclass(frozen=True)
class Fetched:
    """An output as it arrived: its status, content type and bytes."""

    status: int
    content_type: str
    data: bytes


@dataclass(frozen=True)
class VideoFacts:
    """What decoding an output found."""

    container: str
    frames: int
    fps: Fraction | None
    width: int
    height: int
    duration: float | None  # seconds: the stream's, else the container's; None when neither says

    def is_wide(self) -> bool:
        """Tell whether the frame is 16:9, within the tolerance."""
        return abs(self.width - self.height * WIDE) <= WIDE_TOLERANCE_PIXELS


class DecodeError(Exception):
    """The bytes are not a playable video; the message says what failed."""


def pyav() -> ModuleType | None:
    """PyAV, or None when it is not installed (the media checks are then skipped)."""
    try:
        import av  # optional: about 100 MB with its FFmpeg
    except ImportError:
        return None
    return av


def fetch(client: httpx.Client, url: str) -> Fetched:
    """GET `url` reading at most MAX_VIDEO_BYTES within FETCH_SECONDS, or raise FetchError."""
    deadline = time.monotonic() + FETCH_SECONDS
    body = bytearray()
    try:
        # CDN links may redirect (the suite's own calls never follow redirects).
        with client.stream("GET", url, timeout=FETCH_SECONDS, follow_redirects=True) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_VIDEO_BYTES:
                raise FetchError(f"the output is {declared} bytes, over the suite's bound of {MAX_VIDEO_BYTES}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_VIDEO_BYTES:
                    raise FetchError(f"the output is over the suite's bound of {MAX_VIDEO_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"the output took longer than {FETCH_SECONDS:g}s to arrive")
            return Fetched(response.status_code, response.headers.get("content-type", ""), bytes(body))
    except httpx.HTTPError as error:
        raise FetchError(f"fetching the output failed: {type(error).__name__}: {error}") from None


def decode(av: ModuleType, data: bytes) -> VideoFacts:
    """Decode every frame of a video (or image) and return what it is, or raise DecodeError.

    The one decoder of outputs: the suite's video checks and the recording proxy's media facts.
    """
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            frames = sum(1 for _ in container.decode(stream))
            duration: float | None = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / 1_000_000
            return VideoFacts(
                container=container.format.name,
                frames=frames,
                fps=Fraction(rate) if rate else None,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                duration=duration,
            )
    except (av.FFmpegError, IndexError, ValueError, OSError) as error:
        raise DecodeError(f"the bytes do not decode as a video: {error}") from None

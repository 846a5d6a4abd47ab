"""The fake's output videos without rendering: availability, the cache, and the prepared files.

Rendering (`render.py`) needs the optional `video` extra, PyAV and numpy; without it a completed
job gets the prepared MP4 of `fixtures/` whose parameters are closest to its own. This module
imports neither, so that serving starts without them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from contracts import MODELS, ModelSpec
from contracts.models import spec_of
from contracts.spec import EXTENSIONS
from mock_server.defaults import VIDEO_CACHE_BYTES


class VideoUnavailable(RuntimeError):
    """Rendering was asked for but the `video` extra (PyAV and numpy) is not installed."""


@cache
def video_available() -> bool:
    """Tell whether PyAV and numpy are installed, so that videos can be rendered rather than picked."""
    # find_spec looks for them without importing them: serving imports them at the first render.
    # Asked once: what is installed does not change while the fake runs (it was searched on every download).
    return all(importlib.util.find_spec(name) is not None for name in ("av", "numpy"))


def require_av() -> ModuleType:
    """Return the PyAV module, or raise VideoUnavailable saying how to install it."""
    if not video_available():
        raise VideoUnavailable("rendering videos needs the video extra: pip install 'segmind-mock[video]'")
    import av  # the optional `video` extra, checked just above

    return av


def checked_params(model: str | ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check `params` by the contract, keeping the image reference as given.

    The image is checked where it is read (`images.py`), which also accepts files the contract does
    not know of, under the directories the user allowed.
    """
    spec = spec_of(model)
    name = spec.image_name
    if name is None:
        return spec.validate(params)
    checked = spec.validate({**params, name: spec.example[name]})
    checked[name] = params.get(name, checked[name])
    return checked


def cache_key(model: str | ModelSpec, params: Mapping[str, Any], seed: int, image_digest: str | None) -> Hashable:
    """Key a rendering: model, checked parameters, seed and input image digest (None: test card).

    The parameters are a job's, validated once when it was accepted: not again on every fetch.
    """
    spec = spec_of(model)
    image_name = spec.image_name
    if image_digest is None:
        # The test card prints the image reference, so the reference itself is the input.
        reference = params[image_name] if image_name is not None else None
        image_digest = "card:" + hashlib.sha256(str(reference).encode()).hexdigest()
    rest = {name: value for name, value in params.items() if name not in (image_name, "base64", "seed")}
    return spec.slug, json.dumps(rest, sort_keys=True), seed, image_digest


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
    """A prepared video in `fixtures/`, served without the video extra to requests most like its parameters."""

    name: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)


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


# The prepared file of a model known only from a file, by output type: the test card of its kind.
PREPARED_OUTPUTS = {media_type: f"placeholder.{extension}" for media_type, extension in EXTENSIONS.items()}


def fallback_video(model: str | ModelSpec, params: Mapping[str, Any]) -> bytes:
    """Return the prepared output of `model` whose parameters match the most of `params` (else its kind's card)."""
    spec = spec_of(model)
    candidates = [fallback for fallback in FALLBACKS if fallback.model == spec.slug]
    if not candidates:
        return _read_fixture(PREPARED_OUTPUTS[spec.output])
    best = max(candidates, key=lambda fallback: _matches(fallback.params, params))
    return _read_fixture(best.name)


def _matches(prepared: Mapping[str, Any], params: Mapping[str, Any]) -> int:
    # Compare as text: the docs send `frames` both as 14 and "14".
    return sum(str(params.get(name)) == str(value) for name, value in prepared.items())


@cache
def _read_fixture(name: str) -> bytes:
    return fixture_path(name).read_bytes()

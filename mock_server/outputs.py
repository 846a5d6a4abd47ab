"""The output videos of completed jobs: rendered once, cached, or without PyAV the closest prepared file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts import ModelSpec
from mock_server import api_errors
from mock_server.images import ImageError, ImageSource, load_image
from mock_server.jobs import Job
from mock_server.video import VideoCache, cache_key, fallback_video, video_available

if TYPE_CHECKING:
    import numpy as np


def video_for(spec: ModelSpec, job: Job, policy: ImageSource, cache: VideoCache) -> bytes:
    """Return a completed job's output (MP4 or image); blocking (decoding and encoding): call it on a worker thread."""
    if not video_available():
        return fallback_video(spec, job.params)
    from mock_server import render  # needs the optional `video` extra (numpy), checked just above

    key = cache_key(spec, job.params, job.seed, job.image_digest)
    return cache.get_or_render(
        key, lambda: render.render_output(spec, job.params, job.seed, _input_pixels(spec, job, policy))
    )


def cached_video(spec: ModelSpec, job: Job, cache: VideoCache) -> bytes | None:
    """Return a completed job's output if it is at hand without rendering (cached, or a prepared file)."""
    if not video_available():
        return None  # reading a prepared file is disk work: left to a worker thread
    return cache.get(cache_key(spec, job.params, job.seed, job.image_digest))


def _input_pixels(spec: ModelSpec, job: Job, policy: ImageSource) -> np.ndarray | None:
    """Read the job's input image again; it was checked at submission, so only a change can fail here."""
    if spec.image_name is None:
        return None
    reference = job.params[spec.image_name]
    try:
        image = load_image(reference, policy)
    except ImageError as error:
        raise api_errors.ApiError(api_errors.INPUT_CHANGED_STATUS, f"{api_errors.INPUT_CHANGED}: {error}") from None
    digest = None if image is None else image.digest
    if digest != job.image_digest:
        # Rendering other pixels would cache a video under a key that does not describe it.
        raise api_errors.ApiError(
            api_errors.INPUT_CHANGED_STATUS, f"{api_errors.INPUT_CHANGED}: its content is not the same"
        )
    return None if image is None else image.pixels

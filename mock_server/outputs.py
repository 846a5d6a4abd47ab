"""The output videos of completed jobs: rendered once, cached, or without PyAV the closest prepared file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts import MODELS
from mock_server import api_errors
from mock_server.images import ImageError, ImageSource, load_image
from mock_server.jobs import Job
from mock_server.video import VideoCache, cache_key, fallback_video, video_available

if TYPE_CHECKING:
    import numpy as np


def video_for(job: Job, policy: ImageSource, cache: VideoCache) -> bytes:
    """Return a completed job's MP4; blocking (decoding and encoding), so call it on a worker thread."""
    if not video_available():
        return fallback_video(job.model, job.params)
    from mock_server import render  # needs the optional `video` extra (numpy), checked just above

    key = cache_key(job.model, job.params, job.seed, job.image_digest)
    return cache.get_or_render(
        key, lambda: render.render_checked(job.model, job.params, job.seed, _input_pixels(job, policy))
    )


def cached_video(job: Job, cache: VideoCache) -> bytes | None:
    """Return a completed job's MP4 if it is at hand without rendering (cached, or a prepared file)."""
    if not video_available():
        return None  # reading a prepared file is disk work: left to a worker thread
    return cache.get(cache_key(job.model, job.params, job.seed, job.image_digest))


def _input_pixels(job: Job, policy: ImageSource) -> np.ndarray | None:
    """Read the job's input image again; it was checked at submission, so only a change can fail here."""
    reference = job.params[MODELS[job.model].image_param.name]
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

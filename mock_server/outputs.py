"""The output videos the fake hands back for completed jobs."""

from __future__ import annotations

import functools
from pathlib import Path

from mock_server.jobs import Job

_PACKAGE = Path(__file__).resolve().parent


def fixture_path(name: str) -> Path:
    """Find a data file of `fixtures/`: in the source tree, or packed into the wheel."""
    for folder in (_PACKAGE.parent / "fixtures", _PACKAGE / "_fixtures"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"fixture {name!r} is missing from the installation")


@functools.cache
def placeholder_video() -> bytes:
    """Return the prepared MP4 served for every completed job."""
    return fixture_path("placeholder.mp4").read_bytes()


async def video_for(job: Job) -> bytes:
    """Return the MP4 bytes of a completed job's output."""
    return placeholder_video()

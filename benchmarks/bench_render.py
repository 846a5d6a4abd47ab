"""Time rendering a 25-frame svd video (crop_to_16_9) against encoding blank frames, in one run.

Run as `python benchmarks/bench_render.py`. The ratio to the baseline (the same number of blank
frames through PyAV's libx264 at the same size and settings) says how much the fake's warping,
test card and real picture content cost over the bare encoder, whatever the machine's speed.
Then the same through the fake: fetching a completed job's result when its video must be rendered,
against fetching it again from the video cache.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import av
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not an installed copy

from benchmarks.common import API_KEY, answer_help, median_seconds
from contracts import MODELS
from mock_server import SegmindMock, Settings
from mock_server.render import FULL_SIZE, X264_OPTIONS, render_video
from mock_server.transport import PortalTransport

RUNS = 9
FRAMES = 25


def blank_baseline() -> None:
    """Encode FRAMES black frames at the renderer's size and x264 settings."""
    width, height = FULL_SIZE
    with av.open(io.BytesIO(), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=7, options=X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        black = np.zeros((height, width, 3), dtype=np.uint8)
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(black, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def photo() -> np.ndarray:
    """A smooth, textured 1024x768 input, larger than the output like a typical upload."""
    y, x = np.mgrid[0:768, 0:1024].astype(np.float32)
    channels = (np.sin(x / 37) + np.cos(y / 23), np.sin((x + y) / 51), np.cos(x / 13) * np.sin(y / 17))
    return np.stack([(127 + 60 * c).astype(np.uint8) for c in channels], axis=-1)


def main() -> None:
    """Print the baseline, each case's median and its ratio to the baseline."""
    params = {**MODELS["svd"].example, "frames": FRAMES, "resize_method": "crop_to_16_9"}
    image = photo()
    baseline = median_seconds(blank_baseline, RUNS)
    print(f"baseline: {FRAMES} blank frames {FULL_SIZE[0]}x{FULL_SIZE[1]} through libx264: {baseline * 1000:.1f} ms")
    cases = {
        "svd 25 frames, test card": lambda: render_video("svd", params, 452361789, None),
        "svd 25 frames, 1024x768 input": lambda: render_video("svd", params, 452361789, image),
    }
    for name, work in cases.items():
        seconds = median_seconds(work, RUNS)
        print(f"{name}: median {seconds * 1000:.1f} ms over {RUNS} runs, {seconds / baseline:.1f}x the baseline")
    compare_result_fetches(params)


def compare_result_fetches(params: dict) -> None:
    """Time `GET /v2/requests/{id}` in-process when the video is rendered, and when it is cached."""
    mock = SegmindMock(Settings(speed=0))
    with (
        PortalTransport(mock.app) as transport,
        httpx.Client(transport=transport, base_url="https://api.segmind.com", headers={"x-api-key": API_KEY}) as client,
    ):
        # One job per uncached fetch (each seed renders a new video), all finished before timing.
        jobs = [client.post("/v2/svd", json={**params, "seed": seed}).json() for seed in range(RUNS + 1)]
        mock.advance(1000)
        fresh = iter(jobs)
        uncached = median_seconds(lambda: client.get(next(fresh)["response_url"]).raise_for_status(), RUNS)
        cached = median_seconds(lambda: client.get(jobs[0]["response_url"]).raise_for_status(), RUNS)
    print(f"result fetch, video rendered: median {uncached * 1000:.1f} ms over {RUNS} runs")
    print(f"result fetch, video cached: median {cached * 1000:.2f} ms, {uncached / cached:.0f}x faster than rendering")


if __name__ == "__main__":
    answer_help(__doc__)
    main()

"""`segmind-mock serve` and its videos: prepared files without PyAV, rendered ones and image flags with it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from contracts import MODELS
from mock_server.video import fixture_path
from tests.support import API_KEY
from tests.support_video import blob_image, data_uri, png

# The command as installed, run in a process that cannot import the extras' packages when asked to
# hide them: the light install (no video, contracts or pytest extra).
LAUNCH = """
import sys
if sys.argv.pop(1) == "hide":
    for name in ("av", "numpy", "hypothesis", "respx", "pytest"):
        sys.modules[name] = None
from mock_server.cli import main
sys.exit(main())
"""


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[str, str]]]:
    """Start `segmind-mock serve --speed 0` (PyAV hidden or not); return its base URL and start-up text."""
    processes: list[subprocess.Popen] = []

    def start(pyav: str, *flags: str) -> tuple[str, str]:
        command = [sys.executable, "-c", LAUNCH, pyav, "serve", "--port", "0", "--speed", "0", *flags]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(3))
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        return url, banner

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def finished_output(client: httpx.Client, model: str, params: dict) -> httpx.Response:
    """Submit on v2, move the fake's clock past the job's end, and fetch the output URL."""
    job = client.post(f"/v2/{model}", json=params).json()
    client.post("/_mock/clock/advance", json={"seconds": 1000})
    return client.get(client.get(job["response_url"]).json()["output"])


def test_a_light_install_says_so_and_serves_the_closest_prepared_videos_without_numpy(serve) -> None:
    url, banner = serve("hide")
    assert "the video extra (PyAV, numpy) is not installed: serving prepared videos from fixtures/" in banner
    assert "pip install 'segmind-mock[video]'" in banner
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as client:
        svd = {**MODELS["svd"].example, "frames": "25", "image": data_uri(png(blob_image()))}
        output = finished_output(client, "svd", svd)
        assert output.headers["content-type"] == "video/mp4"
        assert output.content == fixture_path("svd-25.mp4").read_bytes()
        zoom = finished_output(client, "motionctrl-svd", {**MODELS["motionctrl-svd"].example, "motion": "Zoom In"})
        assert zoom.content == fixture_path("motionctrl-svd-zoom-in.mp4").read_bytes()
        part = client.get(str(zoom.url), headers={"Range": "bytes=0-7"})
        assert (part.status_code, part.content) == (206, zoom.content[:8])
        # Without a decoder the file type is still checked before a job is accepted.
        refused = client.post("/v2/svd", json={**svd, "image": data_uri(b"GIF? no, plain text")})
        assert refused.status_code == 400
        assert "image cannot be used" in refused.json()["error"]


def test_with_pyav_the_fake_renders_and_reads_files_from_an_allowed_directory(serve, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from tests.support_video import decode

    (tmp_path / "portrait.png").write_bytes(png(blob_image(240, 320, 120, 160)))
    url, banner = serve("keep", "--allow-dir", str(tmp_path), "--video-cache-bytes", "1000000")
    assert "rendering videos with PyAV" in banner
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as client:
        params = {**MODELS["svd"].example, "image": str(tmp_path / "portrait.png"), "frames": 25, "fps": 12}
        frames, fps = decode(finished_output(client, "svd", params).content)
        height, width = frames[0].shape[:2]
        assert (len(frames), fps) == (25, 12)
        assert width / height == pytest.approx(0.75, rel=0.02)
        assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.1  # the camera drifts
        outside = client.post("/v2/svd", json={**params, "image": "/etc/hostname"})
        assert outside.status_code == 400
        assert "outside the directories" in outside.json()["error"]


def test_help_explains_the_image_and_video_flags() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    shown = " ".join(shown.split())  # argparse wraps the help text
    for flag in ("--allow-dir", "--fetch-remote", "--allow-private", "--max-image-bytes", "--fetch-timeout"):
        assert flag in shown
    assert "--video-cache-bytes" in shown and "never fetched" in shown

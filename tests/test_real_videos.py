"""The fake's videos as clients get them: over HTTP and the official SDK, decoded with PyAV."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from segmind import SegmindClient

from contracts import MODELS
from contracts.responses import BASE64_VIDEO_KEY, VIDEO_CONTENT_TYPE
from mock_server import SegmindMock, Settings, api_errors, wire
from mock_server.images import ImageSource
from mock_server.render import render_video
from mock_server.transport import PortalTransport
from tests.support import API_KEY, SEGMIND
from tests.support_video import blob, blob_image, data_uri, decode, png, serve_image

pytest.importorskip("av")

SVD = MODELS["svd"]
MOTIONCTRL = MODELS["motionctrl-svd"]
BLOB = blob_image()
BLOB_URI = data_uri(png(BLOB))
# Builds a fake with the given settings and an httpx client of it (the `make_fake` fixture).
MakeFake = Callable[..., tuple[SegmindMock, httpx.Client]]


def instant(mock: SegmindMock) -> None:
    """Make every job finish the moment it is accepted, so v1 calls answer at once on a frozen clock."""
    mock.add_scenario(queue_seconds=0, processing_seconds=0)


def output_of(http: httpx.Client, mock: SegmindMock, model: str, params: dict[str, Any]) -> bytes:
    """Submit on v2, let the job finish, and download its video from the output URL."""
    job = http.post(f"/v2/{model}", json=params).json()
    mock.advance(1000)
    return http.get(http.get(job["response_url"]).json()["output"]).content


@pytest.fixture
def make_fake() -> Iterator[MakeFake]:
    """Build fakes with chosen settings, each with an httpx client reaching it in-process."""
    made: list[tuple[PortalTransport, httpx.Client]] = []

    def build(**settings: Any) -> tuple[SegmindMock, httpx.Client]:
        mock = SegmindMock(Settings(speed=0, **settings))
        transport = PortalTransport(mock.app)
        client = httpx.Client(transport=transport, base_url=SEGMIND, headers={"x-api-key": API_KEY})
        made.append((transport, client))
        return mock, client

    yield build
    for transport, client in made:
        client.close()
        transport.close()


@pytest.mark.parametrize("frames", [25, "25"])
def test_a_25_frame_svd_request_at_12_fps_cropped_to_16_9_decodes_as_asked(
    sdk: SegmindClient, mock: SegmindMock, frames: int | str
) -> None:
    params = {**SVD.example, "frames": frames, "fps": 12, "resize_method": "crop_to_16_9"}
    instant(mock)
    sync_video = sdk.run_sync("svd", **params).content
    result = sdk.submit_async("svd", **params).wait(timeout=5, interval=0.001)
    url_video = sdk._client.get(result["output"]).content
    for video in (sync_video, url_video):
        decoded, fps = decode(video)
        height, width = decoded[0].shape[:2]
        assert (len(decoded), fps) == (25, 12)
        assert width * 9 == height * 16
    assert sync_video == url_video


def test_base64_answers_carry_the_same_video_as_the_binary_ones(http: httpx.Client, mock: SegmindMock) -> None:
    instant(mock)
    params = {**SVD.example, "base64": True}
    binary = http.post("/v1/svd", json={**params, "base64": False}).content
    sync = base64.b64decode(http.post("/v1/svd", json=params).json()[BASE64_VIDEO_KEY])
    assert base64.b64decode(http.get(http.post("/v2/svd", json=params).json()["response_url"]).json()["output"]) == (
        binary
    )
    assert sync == binary


def test_maintain_aspect_ratio_follows_the_input_image(http: httpx.Client, mock: SegmindMock) -> None:
    instant(mock)
    portrait = data_uri(png(blob_image(300, 400, 150, 200)))
    params = {**SVD.example, "image": portrait, "resize_method": "maintain_aspect_ratio"}
    decoded, _ = decode(http.post("/v1/svd", json=params).content)
    height, width = decoded[0].shape[:2]
    assert width / height == pytest.approx(300 / 400, rel=0.02)


@pytest.mark.parametrize(
    ("motion", "moved"),
    [
        ("Pan Left", lambda first, last: last[0] - first[0] > 20),
        ("Pan Up", lambda first, last: last[1] - first[1] > 20),
        ("Zoom In", lambda first, last: last[2] > first[2] * 1.4),
        ("Zoom Out", lambda first, last: last[2] < first[2] / 1.4),
    ],
)
def test_motionctrl_camera_moves_are_visible_in_the_frames(
    http: httpx.Client, mock: SegmindMock, motion: str, moved: Any
) -> None:
    instant(mock)
    params = {**MOTIONCTRL.example, "input_image": BLOB_URI, "motion": motion, "fps": 9}
    decoded, fps = decode(http.post("/v1/motionctrl-svd", json=params).content)
    assert fps == 9
    assert moved(blob(decoded[0]), blob(decoded[-1]))


def test_motion_speed_makes_the_camera_faster(http: httpx.Client, mock: SegmindMock) -> None:
    instant(mock)

    def travel(speed: float) -> float:
        params = {**MOTIONCTRL.example, "input_image": BLOB_URI, "motion": "Pan Right", "motion_speed": speed}
        decoded, _ = decode(http.post("/v1/motionctrl-svd", json=params).content)
        return blob(decoded[0])[0] - blob(decoded[-1])[0]

    assert travel(2) > travel(1) * 1.6 > 20


@pytest.mark.parametrize("spec", [SVD, MOTIONCTRL], ids=lambda spec: spec.slug)
def test_seed_minus_one_draws_a_seed_reports_it_and_renders_with_it(
    http: httpx.Client, mock: SegmindMock, spec: Any
) -> None:
    instant(mock)
    drawn = http.post(f"/v1/{spec.slug}", json={**spec.example, "seed": -1})
    seed = int(drawn.headers["x-seed-value"])
    assert seed >= 0
    again = http.post(f"/v1/{spec.slug}", json={**spec.example, "seed": seed})
    assert again.headers["x-seed-value"] == str(seed)
    assert again.content == drawn.content
    other = http.post(f"/v1/{spec.slug}", json={**spec.example, "seed": -1})
    assert other.headers["x-seed-value"] != str(seed)
    assert other.content != drawn.content


def test_the_same_request_and_seed_give_the_same_bytes_on_every_path(http: httpx.Client, mock: SegmindMock) -> None:
    params = {**MOTIONCTRL.example, "input_image": BLOB_URI, "motion": "ACW"}
    first = output_of(http, mock, "motionctrl-svd", params)
    second = output_of(http, mock, "motionctrl-svd", params)
    instant(mock)
    assert first == second == http.post("/v1/motionctrl-svd", json=params).content
    assert output_of(http, mock, "motionctrl-svd", {**params, "seed": params["seed"] + 1}) != first


def test_a_remote_image_url_is_never_fetched_and_a_test_card_stands_in(http: httpx.Client, mock: SegmindMock) -> None:
    with serve_image(png(BLOB)) as server:
        params = {**SVD.example, "image": server.url}
        video = output_of(http, mock, "svd", params)
        instant(mock)
        assert http.post("/v1/svd", json=params).content == video
        assert server.paths == []
    assert video == render_video("svd", params, params["seed"], None)


def test_remote_images_are_fetched_only_when_allowed(make_fake: MakeFake) -> None:
    with serve_image(png(BLOB)) as server:
        params = {**SVD.example, "image": server.url}
        mock, http = make_fake(images=ImageSource(fetch_remote=True))
        refused = http.post("/v2/svd", json=params)
        assert refused.status_code == 400
        assert refused.json()["error"].startswith("image cannot be used:")
        assert "private" in refused.json()["error"]
        assert server.paths == [] and mock.jobs == []
        mock, http = make_fake(images=ImageSource(fetch_remote=True, allow_private=True))
        video = output_of(http, mock, "svd", params)
        assert server.paths  # read at submission to check it, and again to render it
    assert video == render_video("svd", params, params["seed"], BLOB)


def test_image_files_are_read_only_under_an_allowed_directory(make_fake: MakeFake, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "input.png").write_bytes(png(BLOB))
    (tmp_path / "secret.png").write_bytes(png(BLOB))
    mock, http = make_fake(images=ImageSource(allowed_dirs=(allowed,)))
    expected = render_video("svd", SVD.example, SVD.example["seed"], BLOB)
    for reference in (str(allowed / "input.png"), (allowed / "input.png").as_uri()):
        assert output_of(http, mock, "svd", {**SVD.example, "image": reference}) == expected
    refused = http.post("/v2/svd", json={**SVD.example, "image": str(tmp_path / "secret.png")})
    assert refused.status_code == 400
    assert "outside the directories" in refused.json()["error"]
    mock, http = make_fake()
    refused = http.post("/v2/svd", json={**SVD.example, "image": str(allowed / "input.png")})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("image must be an http(s) URL")


@pytest.mark.parametrize("spec", [SVD, MOTIONCTRL], ids=lambda spec: spec.slug)
@pytest.mark.parametrize(
    ("image", "says"),
    [
        (base64.b64encode(b"plain text, not a picture").decode(), "not a PNG, JPEG"),
        (data_uri(png(BLOB)[:60]), "damaged or truncated"),
    ],
)
def test_an_unusable_image_is_refused_at_submission_naming_the_parameter(
    http: httpx.Client, mock: SegmindMock, spec: Any, image: str, says: str
) -> None:
    name = spec.image_param.name
    for route in ("v2", "v1"):
        response = http.post(f"/{route}/{spec.slug}", json={**spec.example, name: image})
        assert response.status_code == 400
        assert response.json()["error"].startswith(f"{name} cannot be used:")
        assert says in response.json()["error"]
    assert mock.jobs == []


def test_an_input_file_changed_after_acceptance_is_reported_not_rendered(make_fake: MakeFake, tmp_path: Path) -> None:
    (tmp_path / "input.png").write_bytes(png(BLOB))
    mock, http = make_fake(images=ImageSource(allowed_dirs=(tmp_path,)))
    job = http.post("/v2/svd", json={**SVD.example, "image": str(tmp_path / "input.png")}).json()
    (tmp_path / "input.png").write_bytes(png(blob_image(x=100)))
    mock.advance(1000)
    response = http.get(job["response_url"])
    assert response.status_code == api_errors.INPUT_CHANGED_STATUS
    assert response.json()["error"].startswith(api_errors.INPUT_CHANGED)


def test_outputs_serve_byte_ranges_and_head_as_players_need(server: tuple[SegmindMock, str]) -> None:
    mock, url = server
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as client:
        job = client.post("/v2/svd", json=SVD.example).json()
        mock.advance(1000)
        output = client.get(job["response_url"]).json()["output"]
        full = client.get(output)
        size = len(full.content)
        assert full.status_code == 200
        assert full.headers["content-type"] == VIDEO_CONTENT_TYPE
        assert full.headers["content-length"] == str(size)
        assert full.headers["accept-ranges"] == "bytes"
        for header, first, last in [
            ("bytes=0-99", 0, 99),
            ("bytes=100-", 100, size - 1),
            ("bytes=-50", size - 50, size - 1),
            ("bytes=10-99999999", 10, size - 1),
        ]:
            part = client.get(output, headers={"Range": header})
            assert part.status_code == 206
            assert part.content == full.content[first : last + 1]
            assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert part.headers["content-length"] == str(last + 1 - first)
        beyond = client.get(output, headers={"Range": f"bytes={size}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{size}"
        assert "outside the video" in beyond.json()["error"]
        assert client.get(output, headers={"Range": "bytes=0-1,5-6"}).content == full.content
        head = client.head(output)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(size)


def test_outputs_expire_after_the_output_retention_on_the_fake_clock(http: httpx.Client, mock: SegmindMock) -> None:
    job = http.post("/v2/svd", json=SVD.example).json()
    finished_at = mock.job(job["request_id"])["finished_at"]
    mock.advance(finished_at - mock.clock.now())
    output = http.get(job["response_url"]).json()["output"]
    mock.advance(wire.OUTPUT_RETENTION_SECONDS - 1)
    assert http.get(output, headers={"Range": "bytes=0-9"}).status_code == 206
    mock.advance(1)
    gone = http.get(output, headers={"Range": "bytes=0-9"})
    assert gone.status_code == 404
    assert set(gone.json()) == {"error"}


def test_rendered_videos_are_kept_within_the_configured_memory(make_fake: MakeFake) -> None:
    mock, http = make_fake(video_cache_bytes=100_000)
    videos = [output_of(http, mock, "svd", {**SVD.example, "seed": seed}) for seed in range(4)]
    assert len(set(videos)) == 4
    assert mock.service.videos.total_bytes <= 100_000 < sum(map(len, videos))
    assert 0 < len(mock.service.videos) < 4


@pytest.mark.parametrize(("cache_bytes", "served"), [(10_000_000, True), (0, False)])
def test_a_cached_video_is_served_without_reading_the_input_again(
    make_fake: MakeFake, tmp_path: Path, cache_bytes: int, served: bool
) -> None:
    (tmp_path / "input.png").write_bytes(png(BLOB))
    mock, http = make_fake(images=ImageSource(allowed_dirs=(tmp_path,)), video_cache_bytes=cache_bytes)
    job = http.post("/v2/svd", json={**SVD.example, "image": str(tmp_path / "input.png")}).json()
    mock.advance(1000)
    first = http.get(job["response_url"])
    (tmp_path / "input.png").unlink()
    again = http.get(first.json()["output"])
    if served:
        assert again.status_code == 200
        assert again.content == render_video("svd", SVD.example, SVD.example["seed"], BLOB)
    else:
        assert again.status_code == api_errors.INPUT_CHANGED_STATUS

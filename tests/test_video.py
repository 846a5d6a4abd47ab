"""The rendered videos, decoded with PyAV: length, rate, shape, determinism and visible camera motion."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import MODELS
from mock_server.jobs import resolve_seed
from mock_server.render import card_lines, draw_test_card, output_size, prepared_card_lines, render_video
from mock_server.video import FALLBACKS, VideoCache, cache_key, fallback_video, fixture_path
from tests.support_video import blob, blob_image, decode

pytest.importorskip("av")

SVD = MODELS["svd"]
MOTIONCTRL = MODELS["motionctrl-svd"]
REMOTE = "https://example.com/input.png"


def svd(**overrides: Any) -> dict[str, Any]:
    return {**SVD.example, **overrides}


def motionctrl(**overrides: Any) -> dict[str, Any]:
    return {**MOTIONCTRL.example, "maintain_aspect_ratio": False, **overrides}


def test_svd_renders_exactly_the_frames_asked_at_the_fps_asked() -> None:
    frames, fps = decode(render_video("svd", svd(frames="25", fps=12), 1, None))
    assert len(frames) == 25
    assert fps == 12


@settings(max_examples=5, deadline=None)
@given(
    fps=st.integers(int(SVD.param("fps").minimum), int(SVD.param("fps").maximum)),
    frames=st.sampled_from(SVD.param("frames").enum).flatmap(lambda n: st.sampled_from((n, str(n)))),
    resize=st.sampled_from(SVD.param("resize_method").enum),
)
def test_any_valid_svd_request_gives_a_decodable_video_of_that_length_and_rate(
    fps: int, frames: int | str, resize: str
) -> None:
    decoded, rate = decode(render_video("svd", svd(fps=fps, frames=frames, resize_method=resize), 7, None))
    assert len(decoded) == int(frames)
    assert rate == fps


@settings(max_examples=5, deadline=None)
@given(
    fps=st.integers(int(MOTIONCTRL.param("fps").minimum), int(MOTIONCTRL.param("fps").maximum)),
    motion=st.sampled_from(MOTIONCTRL.param("motion").enum),
    speed=st.floats(MOTIONCTRL.param("motion_speed").minimum, MOTIONCTRL.param("motion_speed").maximum),
)
def test_any_valid_motionctrl_request_gives_a_decodable_video_at_that_rate(fps: int, motion: str, speed: float) -> None:
    decoded, rate = decode(
        render_video("motionctrl-svd", motionctrl(fps=fps, motion=motion, motion_speed=speed), 7, None)
    )
    assert len(decoded) == 14
    assert rate == fps


def test_crop_to_16_9_gives_a_16_9_frame_whatever_the_input() -> None:
    square = blob_image(300, 300, 150, 150)
    frames, _ = decode(render_video("svd", svd(resize_method="crop_to_16_9"), 1, square))
    height, width = frames[0].shape[:2]
    assert width * 9 == height * 16


@pytest.mark.parametrize(("width", "height"), [(300, 400), (640, 480), (1000, 250)])
def test_maintain_aspect_ratio_keeps_the_input_aspect(width: int, height: int) -> None:
    frames, _ = decode(render_video("svd", svd(resize_method="maintain_aspect_ratio"), 1, blob_image(width, height)))
    rows, cols = frames[0].shape[:2]
    assert rows % 2 == cols % 2 == 0
    assert cols / rows == pytest.approx(width / height, rel=0.02)


def test_motionctrl_keeps_the_input_aspect_when_asked() -> None:
    frames, _ = decode(render_video("motionctrl-svd", motionctrl(maintain_aspect_ratio=True), 1, blob_image(300, 400)))
    rows, cols = frames[0].shape[:2]
    assert cols / rows == pytest.approx(0.75, rel=0.02)


@pytest.mark.parametrize("model", ["svd", "motionctrl-svd"])
def test_the_same_request_and_seed_give_the_same_bytes(model: str) -> None:
    params = svd() if model == "svd" else motionctrl()
    assert render_video(model, params, 99, blob_image()) == render_video(model, params, 99, blob_image())
    assert render_video(model, params, 99, None) == render_video(model, params, 99, None)


@pytest.mark.parametrize("model", ["svd", "motionctrl-svd"])
def test_different_seeds_give_different_videos(model: str) -> None:
    params = svd() if model == "svd" else motionctrl()
    assert render_video(model, params, 1, blob_image()) != render_video(model, params, 2, blob_image())


def test_svd_motion_follows_the_motion_parameter() -> None:
    def travel(motion: int) -> float:
        frames, _ = decode(render_video("svd", svd(motion=motion, resize_method="crop_to_16_9"), 5, blob_image()))
        first, last = blob(frames[0]), blob(frames[-1])
        return math.hypot(last[0] - first[0], last[1] - first[1]) + abs(math.sqrt(last[2]) - math.sqrt(first[2]))

    assert travel(SVD.param("motion").maximum) > travel(SVD.param("motion").minimum) + 5


# The motion names are camera moves: the picture travels the other way.
@pytest.mark.parametrize(
    ("motion", "dx", "dy"),
    [("Pan Left", 1, 0), ("Pan Right", -1, 0), ("Pan Up", 0, 1), ("Pan Down", 0, -1)],
)
def test_pans_move_the_picture_against_the_camera(motion: str, dx: int, dy: int) -> None:
    frames, _ = decode(render_video("motionctrl-svd", motionctrl(motion=motion), 3, blob_image()))
    (x0, y0, _), (x1, y1, _) = blob(frames[0]), blob(frames[-1])
    assert (x1 - x0) * dx + (y1 - y0) * dy > 20
    assert abs((x1 - x0) * dy) + abs((y1 - y0) * dx) < 5


@pytest.mark.parametrize(("motion", "grows"), [("Zoom In", True), ("Zoom Out", False)])
def test_zooms_scale_the_picture(motion: str, grows: bool) -> None:
    frames, _ = decode(render_video("motionctrl-svd", motionctrl(motion=motion), 3, blob_image()))
    first, last = blob(frames[0])[2], blob(frames[-1])[2]
    assert (last > first * 1.4) if grows else (last < first / 1.4)


def test_cw_and_acw_turn_the_picture_opposite_ways() -> None:
    def turn(motion: str) -> float:
        image = blob_image(x=356, y=144)
        frames, _ = decode(render_video("motionctrl-svd", motionctrl(motion=motion), 3, image))
        (x0, y0, _), (x1, y1, _) = blob(frames[0]), blob(frames[-1])
        return math.degrees(math.atan2(y1 - 143.5, x1 - 255.5) - math.atan2(y0 - 143.5, x0 - 255.5))

    # Rows grow downwards, so a positive angle turns clockwise on screen; a CW camera roll turns
    # the picture anticlockwise.
    assert turn("CW") < -10
    assert turn("ACW") > 10


def test_motion_speed_makes_the_camera_faster_and_zero_holds_it_still() -> None:
    def travel(speed: float) -> tuple[float, list[np.ndarray]]:
        frames, _ = decode(
            render_video("motionctrl-svd", motionctrl(motion="Pan Left", motion_speed=speed), 3, blob_image())
        )
        return blob(frames[-1])[0] - blob(frames[0])[0], frames

    assert travel(2)[0] > travel(1)[0] * 1.6
    distance, frames = travel(0)
    assert abs(distance) < 0.5
    assert max(np.abs(frame.astype(int) - frames[0]).mean() for frame in frames) < 1


def test_the_test_card_shows_the_request_parameters() -> None:
    one, _ = decode(render_video("svd", svd(fps=7), 1, None))
    other, _ = decode(render_video("svd", svd(fps=8), 1, None))
    assert np.abs(one[0].astype(int) - other[0]).max() > 100
    assert not np.array_equal(draw_test_card((512, 288), ["FPS: 7"]), draw_test_card((512, 288), ["FPS: 8"]))


def test_resolve_seed_keeps_a_seed_and_draws_one_for_minus_one() -> None:
    assert resolve_seed(SVD, 452361789) == 452361789
    drawn = {resolve_seed(SVD, -1) for _ in range(5)}
    assert len(drawn) > 1
    assert all(0 <= seed <= SVD.param("seed").maximum for seed in drawn)


def test_cache_keys_follow_what_changes_the_pixels() -> None:
    def checked(**overrides: Any) -> dict[str, Any]:  # a job's parameters, as validated when it was accepted
        return SVD.validate(svd(**overrides))

    key = cache_key("svd", checked(frames=14), 1, "abc")
    assert cache_key("svd", checked(frames="14", base64=True), 1, "abc") == key
    assert cache_key("svd", checked(frames=25), 1, "abc") != key
    assert cache_key("svd", checked(frames=14), 2, "abc") != key
    assert cache_key("svd", checked(frames=14), 1, "abd") != key
    # Without an image the card prints the reference, so the reference is part of the key.
    assert cache_key("svd", checked(image=REMOTE), 1, None) != cache_key("svd", checked(image=REMOTE + "?v=2"), 1, None)


def test_the_cache_drops_the_least_recently_used_videos_beyond_its_size() -> None:
    cache = VideoCache(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"
    cache.put("c", b"9012")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1234", None, b"9012")
    assert cache.total_bytes == 8
    cache.put("huge", b"x" * 11)
    assert cache.get("huge") is None
    assert len(cache) == 2


def test_fallback_videos_are_the_closest_prepared_files() -> None:
    assert fallback_video("svd", svd(frames="25")) == fixture_path("svd-25.mp4").read_bytes()
    assert fallback_video("svd", svd(frames=14)) == fixture_path("placeholder.mp4").read_bytes()
    zoom = fallback_video("motionctrl-svd", motionctrl(motion="Zoom In"))
    assert zoom == fixture_path("motionctrl-svd-zoom-in.mp4").read_bytes()


@pytest.mark.parametrize("fallback", FALLBACKS, ids=lambda fallback: fallback.name)
def test_every_prepared_file_is_a_video_like_its_request(fallback: Any) -> None:
    frames, fps = decode(fixture_path(fallback.name).read_bytes())
    params = MODELS[fallback.model].validate({**MODELS[fallback.model].example, **fallback.params})
    assert len(frames) == params.get("frames", 14)
    assert fps == params["fps"]


@pytest.mark.parametrize("fallback", FALLBACKS, ids=lambda fallback: fallback.name)
def test_a_prepared_files_card_claims_only_the_parameters_it_follows(fallback: Any) -> None:
    spec = MODELS[fallback.model]
    example = spec.validate({**spec.example, **fallback.params})
    first = decode(fixture_path(fallback.name).read_bytes())[0][0].astype(int)
    size = output_size(fallback.model, example, None)
    honest = draw_test_card(size, prepared_card_lines(fallback)).astype(int)
    # What it printed before: the example request's parameters and seed, which read as the client's own.
    claiming = draw_test_card(size, card_lines(fallback.model, example, spec.example["seed"])).astype(int)
    text = slice(size[1] // 8, size[1] // 2)  # the card's lines of text, under the colour bars
    shown_error = np.abs(first[text] - honest[text]).mean()
    assert shown_error < np.abs(first[text] - claiming[text]).mean() / 2


def test_the_module_imports_and_serves_prepared_files_without_pyav() -> None:
    script = """
import sys
sys.modules["av"] = None
from mock_server.render import render_video
from mock_server.video import VideoUnavailable, fallback_video, video_available
from contracts import MODELS
assert not video_available()
assert fallback_video("svd", dict(MODELS["svd"].example))[4:8] == b"ftyp"
try:
    render_video("svd", dict(MODELS["svd"].example), 1, None)
except VideoUnavailable as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pip install 'segmind-mock[video]'" in result.stdout

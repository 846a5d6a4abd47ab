"""Reading input images: inline data, allowed files only, and remote URLs only when asked."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mock_server import images
from mock_server.images import ImageError, ImageSource, LoadedImage, load_image
from tests.support_video import ImageServer, jpeg, png, serve_image

pytest.importorskip("av")

PIXELS = np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3)

PNG = png(PIXELS)


@pytest.fixture
def server() -> Iterator[ImageServer]:
    """A running ImageServer on 127.0.0.1 serving PNG."""
    with serve_image(PNG) as image_server:
        yield image_server


def fetching(**overrides: object) -> ImageSource:
    return ImageSource(fetch_remote=True, **overrides)  # type: ignore[arg-type]


def test_raw_base64_is_decoded() -> None:
    loaded = load_image(base64.b64encode(PNG).decode(), ImageSource())
    assert isinstance(loaded, LoadedImage)
    assert np.array_equal(loaded.pixels, PIXELS)


def test_a_base64_data_uri_is_decoded_and_jpeg_works_too() -> None:
    jpeg_bytes = jpeg(PIXELS)
    loaded = load_image("data:image/jpeg;base64," + base64.b64encode(jpeg_bytes).decode(), ImageSource())
    assert loaded is not None
    assert loaded.pixels.shape == PIXELS.shape
    assert np.abs(loaded.pixels.astype(int) - PIXELS).mean() < 12


def test_the_same_image_bytes_give_the_same_digest() -> None:
    first = load_image(base64.b64encode(PNG).decode(), ImageSource())
    second = load_image("data:image/png;base64," + base64.b64encode(PNG).decode(), ImageSource())
    other = load_image(base64.b64encode(png(PIXELS[::-1])).decode(), ImageSource())
    assert first is not None and second is not None and other is not None
    assert first.digest == second.digest != other.digest


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("data:image/png,rawtext", "must be base64-encoded"),
        ("data:image/png;base64,%%%", "not valid base64"),
        (base64.b64encode(b"hello, not an image").decode(), "not a PNG, JPEG"),
        (base64.b64encode(PNG[:40]).decode(), "damaged or truncated"),
        ("no image here", "neither a URL"),
    ],
)
def test_unusable_images_raise_errors_that_say_what_to_fix(reference: str, says: str) -> None:
    with pytest.raises(ImageError, match=says):
        load_image(reference, ImageSource())


def test_images_over_the_size_or_pixel_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImageError, match="limit of 100 bytes"):
        load_image(base64.b64encode(PNG).decode(), ImageSource(max_bytes=100))
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="32x24"):
        load_image(base64.b64encode(PNG).decode(), ImageSource())


def test_a_remote_url_is_never_fetched_by_default(server: ImageServer) -> None:
    assert load_image(server.url, ImageSource()) is None
    assert server.paths == []


def test_an_opted_in_fetch_still_refuses_loopback_without_allow_private(server: ImageServer) -> None:
    with pytest.raises(ImageError, match="private"):
        load_image(server.url, fetching())
    with pytest.raises(ImageError, match="private"):
        load_image(server.url.replace("127.0.0.1", "localhost"), fetching())
    with pytest.raises(ImageError, match="private"):
        load_image(server.url.replace("127.0.0.1", "[::ffff:127.0.0.1]"), fetching())
    assert server.paths == []


def test_an_opted_in_fetch_with_allow_private_reads_the_image(server: ImageServer) -> None:
    loaded = load_image(server.url + "?size=small", fetching(allow_private=True))
    assert loaded is not None
    assert np.array_equal(loaded.pixels, PIXELS)
    assert server.paths == ["/input.png?size=small"]


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_fetch_stops_at_the_size_limit(server: ImageServer, declare_length: bool) -> None:
    server.body, server.declare_length = PNG + bytes(300_000), declare_length
    with pytest.raises(ImageError, match="limit of 200000 bytes"):
        load_image(server.url, fetching(allow_private=True, max_bytes=200_000))


def test_a_fetch_stops_at_the_time_limit(server: ImageServer) -> None:
    server.stall = True
    with pytest.raises(ImageError, match="could not fetch"):
        load_image(server.url, fetching(allow_private=True, timeout_seconds=0.2))


def test_a_fetch_that_does_not_answer_200_is_refused(server: ImageServer) -> None:
    server.status = 302
    with pytest.raises(ImageError, match="HTTP 302"):
        load_image(server.url, fetching(allow_private=True))


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    """An allowed directory holding input.png, beside a secret.png outside it."""
    folder = tmp_path / "allowed"
    folder.mkdir()
    (folder / "input.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    return folder


def test_files_in_an_allowed_directory_are_read_by_path_or_file_url(allowed: Path) -> None:
    policy = ImageSource(allowed_dirs=(allowed,))
    for reference in (str(allowed / "input.png"), (allowed / "input.png").as_uri()):
        loaded = load_image(reference, policy)
        assert loaded is not None
        assert np.array_equal(loaded.pixels, PIXELS)


def test_files_are_refused_unless_a_directory_is_allowed(allowed: Path) -> None:
    with pytest.raises(ImageError, match="reads no local image files"):
        load_image((allowed / "input.png").as_uri(), ImageSource())


def test_paths_that_escape_the_allowed_directory_are_refused(allowed: Path) -> None:
    policy = ImageSource(allowed_dirs=(allowed,))
    (allowed / "link.png").symlink_to(allowed.parent / "secret.png")
    for reference in (str(allowed / ".." / "secret.png"), (allowed / "link.png").as_uri(), "/etc/hostname"):
        with pytest.raises(ImageError, match="outside the directories"):
            load_image(reference, policy)
    with pytest.raises(ImageError, match="absolute path"):
        load_image("allowed/input.png", policy)
    with pytest.raises(ImageError, match="no image file"):
        load_image(str(allowed / "missing.png"), policy)

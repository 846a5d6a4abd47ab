"""Reading input images: inline data, allowed files only, and remote URLs only when asked."""

from __future__ import annotations

import base64
import os
import struct
import threading
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
def image_server() -> Iterator[ImageServer]:
    """A running ImageServer on 127.0.0.1 serving PNG."""
    with serve_image(PNG) as running:
        yield running


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


def test_images_over_the_size_or_pixel_limit_are_refused() -> None:
    with pytest.raises(ImageError, match="limit of 100 bytes"):
        load_image(base64.b64encode(PNG).decode(), ImageSource(max_bytes=100))
    with pytest.raises(ImageError, match="32x24"):
        load_image(base64.b64encode(PNG).decode(), ImageSource(max_pixels=100))


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixel data: decoding it could only fail."""
    return png(np.zeros((1, 1, 3), np.uint8)).replace(struct.pack(">II", 1, 1), struct.pack(">II", width, height), 1)


@pytest.mark.parametrize(
    "image",
    [
        _header_only_png(4096, 4096),
        b"GIF89a" + struct.pack("<HH", 4096, 4096) + bytes(20),
        b"BM" + bytes(16) + struct.pack("<ii", 4096, -4096) + bytes(30),
        b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + bytes(14) + b"\xff\xc0" + struct.pack(">HBHH", 17, 8, 4096, 4096),
        b"RIFF" + bytes(4) + b"WEBPVP8X" + bytes(8) + (4095).to_bytes(3, "little") * 2 + bytes(10),
    ],
)
def test_the_pixel_limit_is_checked_from_the_header_before_decoding(image: bytes) -> None:
    # The default limit refuses 4096x4096 (50 MB decoded), and says so before any decoding.
    with pytest.raises(ImageError, match="4096x4096; send at most 4194304 pixels"):
        load_image(base64.b64encode(image).decode(), ImageSource())


def test_a_small_file_declaring_a_huge_picture_costs_no_decoding_memory() -> None:
    # 74 kB of PNG that decodes to 50 MB: refused by its header, so FFmpeg never allocates the frame.
    huge = png(np.zeros((4096, 4096, 3), np.uint8))
    assert len(huge) < 100_000
    with pytest.raises(ImageError, match="4096x4096"):
        load_image(base64.b64encode(huge).decode(), ImageSource())


def test_a_remote_url_is_never_fetched_by_default(image_server: ImageServer) -> None:
    assert load_image(image_server.url, ImageSource()) is None
    assert image_server.paths == []


def test_an_opted_in_fetch_still_refuses_loopback_without_allow_private(image_server: ImageServer) -> None:
    with pytest.raises(ImageError, match="private"):
        load_image(image_server.url, fetching())
    with pytest.raises(ImageError, match="private"):
        load_image(image_server.url.replace("127.0.0.1", "localhost"), fetching())
    with pytest.raises(ImageError, match="private"):
        load_image(image_server.url.replace("127.0.0.1", "[::ffff:127.0.0.1]"), fetching())
    assert image_server.paths == []


def test_an_opted_in_fetch_with_allow_private_reads_the_image(image_server: ImageServer) -> None:
    loaded = load_image(image_server.url + "?size=small", fetching(allow_private=True))
    assert loaded is not None
    assert np.array_equal(loaded.pixels, PIXELS)
    assert image_server.paths == ["/input.png?size=small"]


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_fetch_stops_at_the_size_limit(image_server: ImageServer, declare_length: bool) -> None:
    image_server.body, image_server.declare_length = PNG + bytes(300_000), declare_length
    with pytest.raises(ImageError, match="limit of 200000 bytes"):
        load_image(image_server.url, fetching(allow_private=True, max_bytes=200_000))


def test_a_fetch_stops_at_the_time_limit(image_server: ImageServer) -> None:
    image_server.stall = True
    with pytest.raises(ImageError, match=r"took longer than 0\.2 s"):
        load_image(image_server.url, fetching(allow_private=True, timeout_seconds=0.2))


def test_a_fetch_is_cut_at_its_deadline_however_steadily_bytes_arrive(image_server: ImageServer) -> None:
    # A byte every 50 ms never trips a per-read timeout of 0.3 s; the whole fetch still ends at 0.3 s.
    image_server.drip_seconds = 0.05
    with pytest.raises(ImageError, match=r"took longer than 0\.3 s"):
        load_image(image_server.url, fetching(allow_private=True, timeout_seconds=0.3))
    # Cut while the status line and headers (40 bytes) were still coming: the fetch did not wait for more.
    assert image_server.dripped < 30


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[fe80::1]",
        "224.0.0.1",
        "[ff02::1]",
        "255.255.255.255",
        "0.0.0.0",
        "[::ffff:169.254.169.254]",
    ],
)
def test_metadata_multicast_and_broadcast_addresses_are_never_fetched(host: str) -> None:
    with pytest.raises(ImageError, match="never fetches from those"):
        load_image(f"http://{host}:8080/input.png", fetching(allow_private=True))


@pytest.mark.parametrize("port", ["0", "65536", "99999999999999999999"])
def test_a_url_port_outside_1_to_65535_is_refused(image_server: ImageServer, port: str) -> None:
    with pytest.raises(ImageError, match="port must be a number from 1 to 65535"):
        load_image(f"http://127.0.0.1:{port}/input.png", fetching(allow_private=True))
    assert image_server.paths == []


def test_a_fetch_that_does_not_answer_200_is_refused(image_server: ImageServer) -> None:
    image_server.status = 302
    with pytest.raises(ImageError, match="HTTP 302"):
        load_image(image_server.url, fetching(allow_private=True))


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


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("nul\x00.png", "embedded null byte"),
        ("loop.png", "Too many levels of symbolic links"),
        ("x" * 300 + ".png", "File name too long"),
        ("folder", "not a regular file"),
        ("fifo", "not a regular file"),
        ("missing.png", "there is no image file there"),
    ],
)
def test_odd_paths_in_the_allowed_directory_are_refused_with_a_reason(allowed: Path, name: str, says: str) -> None:
    (allowed / "loop.png").symlink_to(allowed / "loop.png")
    (allowed / "folder").mkdir()
    os.mkfifo(allowed / "fifo")
    with pytest.raises(ImageError, match=says):
        load_image(str(allowed) + "/" + name, ImageSource(allowed_dirs=(allowed,)))


@pytest.mark.slow
@pytest.mark.parametrize("swapped", ["file", "directory"])
def test_swapping_in_a_link_out_of_the_allowed_directory_never_reads_outside(tmp_path: Path, swapped: str) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    inside_png, secret_png = png(PIXELS), png(PIXELS[::-1])
    (allowed / "sub" / "input.png").write_bytes(inside_png)
    (outside / "input.png").write_bytes(secret_png)
    # input.png (or the directory holding it) keeps being swapped for a link to the secret outside.
    stop = threading.Event()

    def swap_file() -> None:
        target = allowed / "sub" / "input.png"
        while not stop.is_set():
            (allowed / "next").symlink_to(outside / "input.png")
            os.replace(allowed / "next", target)
            (allowed / "next").write_bytes(inside_png)
            os.replace(allowed / "next", target)
            stop.wait(0.0002)  # leave the real file in place a moment, so some reads do find it

    def swap_directory() -> None:
        sub, held = allowed / "sub", allowed / "held"
        while not stop.is_set():
            os.rename(sub, held)
            sub.symlink_to(outside)
            sub.unlink()
            os.rename(held, sub)
            stop.wait(0.0002)

    swap = swap_file if swapped == "file" else swap_directory
    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    read: set[str] = set()
    try:
        for _ in range(3000):
            try:
                loaded = load_image(str(allowed / "sub" / "input.png"), ImageSource(allowed_dirs=(allowed,)))
            except ImageError:
                continue
            assert loaded is not None
            read.add(loaded.digest)
    finally:
        stop.set()
        swapper.join(10)
    assert images.image_digest(secret_png) not in read
    assert images.image_digest(inside_png) in read  # the file was read whenever it was in place

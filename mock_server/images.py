"""Reading a request's input image: inline data, allowed local files, and (only if asked) remote URLs.

By default the fake reads no file and fetches no URL: a remote image gets the test card instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import io
import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from mock_server.video import require_av, video_available

if TYPE_CHECKING:
    import numpy as np  # decoded pixels are numpy arrays; PyAV imports numpy when it makes them

MAX_PIXELS = 4096 * 4096
# Demuxers picked by magic bytes: letting FFmpeg probe any format would let a playlist format
# (HLS, concat) inside an "image" open other files or URLs.
_IMAGE_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "png_pipe"),
    (b"\xff\xd8\xff", "jpeg_pipe"),
    (b"GIF8", "gif"),
    (b"BM", "bmp_pipe"),
)


class ImageError(ValueError):
    """The input image cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ImageSource:
    """Where the fake may take input images from, and how much it may read."""

    allowed_dirs: tuple[Path, ...] = ()
    fetch_remote: bool = False
    allow_private: bool = False
    max_bytes: int = 20 * 1024 * 1024
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class LoadedImage:
    """A decoded input image: RGB pixels (height, width, 3) and the SHA-256 of its encoded bytes."""

    pixels: np.ndarray
    digest: str


def load_image(reference: str, policy: ImageSource) -> LoadedImage | None:
    """Decode the image `reference` names, or return None when the test card should stand in."""
    data = read_image(reference, policy)
    return None if data is None else LoadedImage(decode_image(data), image_digest(data))


def inspect_image(reference: str, policy: ImageSource) -> str | None:
    """Check at submission that the image can be used and return its digest (None: the test card stands in).

    With PyAV the image is decoded, so damaged data is refused before a job is accepted; without it
    (the prepared videos ignore the input) only the file type is checked.
    """
    data = read_image(reference, policy)
    if data is None:
        return None
    if video_available():
        decode_image(data)
    else:
        _image_format(data)
    return image_digest(data)


def reads_image(reference: object, policy: ImageSource) -> bool:
    """Tell whether using `reference` means reading data (inline, a file, or a fetch), not just the test card."""
    if not isinstance(reference, str):
        return False
    return policy.fetch_remote or not reference.startswith(("http://", "https://"))


def read_image(reference: str, policy: ImageSource) -> bytes | None:
    """Return the encoded image `reference` names, or None for a remote URL the fake may not fetch."""
    if reference.startswith(("http://", "https://")):
        data = _fetch(reference, policy) if policy.fetch_remote else None
    elif reference.startswith("data:"):
        data = _data_uri(reference)
    elif reference.startswith("file:"):
        data = _read_file(_file_url_path(reference), policy)
    else:
        try:
            data = base64.b64decode(reference, validate=True)
        except (binascii.Error, ValueError):
            if not policy.allowed_dirs:
                raise ImageError("the image is neither a URL, a data: URI nor valid base64 data") from None
            data = _read_file(Path(reference), policy)
    if data is not None:
        _check_size(len(data), policy)
    return data


def image_digest(data: bytes) -> str:
    """The SHA-256 of an encoded image: what identifies the input in the video cache."""
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes) -> np.ndarray:
    """Decode a PNG, JPEG, WebP, GIF or BMP image to RGB pixels, or raise ImageError."""
    av = require_av()
    try:
        with av.open(io.BytesIO(data), format=_image_format(data)) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > MAX_PIXELS:
                raise ImageError(f"the image is {width}x{height}; send at most {MAX_PIXELS} pixels")
            pixels: np.ndarray = next(container.decode(stream)).to_ndarray(format="rgb24")
            return pixels
    except (av.FFmpegError, IndexError, StopIteration) as error:
        raise ImageError(f"the image data is damaged or truncated and could not be decoded ({error})") from None


def _image_format(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp_pipe"
    for magic, name in _IMAGE_FORMATS:
        if data.startswith(magic):
            return name
    raise ImageError("the image is not a PNG, JPEG, WebP, GIF or BMP file")


def _check_size(size: int, policy: ImageSource) -> None:
    if size > policy.max_bytes:
        raise ImageError(f"the image is larger than the fake's limit of {policy.max_bytes} bytes")


def _data_uri(reference: str) -> bytes:
    header, _, payload = reference.partition(",")
    if not header.endswith(";base64"):
        raise ImageError("a data: URI image must be base64-encoded: data:image/png;base64,...")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("the data: URI's base64 payload is not valid base64") from None


def _file_url_path(reference: str) -> Path:
    parts = urlsplit(reference)
    if parts.netloc not in ("", "localhost"):
        raise ImageError(f"file URLs must name a local file, not one on host {parts.netloc!r}")
    return Path(url2pathname(unquote(parts.path)))


def _read_file(path: Path, policy: ImageSource) -> bytes:
    """Read a file that lies, after following links and `..`, inside an allowed directory."""
    if not policy.allowed_dirs:
        raise ImageError("the fake reads no local image files unless a directory is allowed for them")
    if not path.is_absolute():
        raise ImageError(f"give the image file as an absolute path or file:// URL, not {str(path)!r}")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(folder.resolve()) for folder in policy.allowed_dirs):
        raise ImageError(f"{path} is outside the directories the fake may read images from")
    if not resolved.is_file():
        raise ImageError(f"there is no image file at {path}")
    _check_size(resolved.stat().st_size, policy)
    return resolved.read_bytes()


def _fetch(url: str, policy: ImageSource) -> bytes:
    """GET `url` without redirects, within the size and time limits, from a permitted address."""
    deadline = time.monotonic() + policy.timeout_seconds
    parts = urlsplit(url)
    host, secure = parts.hostname or "", parts.scheme == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:  # urlsplit checks the port only when asked for it
        raise ImageError(f"the URL's port must be a number from 1 to 65535: {url[:100]}") from None
    address = _permitted_address(host, port, policy)
    kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    connection = kind(host, port, timeout=policy.timeout_seconds)
    # Connect to the address checked above, so a second DNS answer cannot swap in a private one;
    # TLS still verifies the certificate against `host`.
    connection._create_connection = lambda _, *args: socket.create_connection((address, port), *args)  # type: ignore[attr-defined]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("GET", target, headers={"Accept": "image/*", "User-Agent": "segmind-mock"})
        return _read_response(connection.getresponse(), url, policy, deadline)
    except (OSError, http.client.HTTPException) as error:
        raise ImageError(f"could not fetch the image from {url}: {error}") from None
    finally:
        connection.close()


def _read_response(response: Any, url: str, policy: ImageSource, deadline: float) -> bytes:
    if response.status != 200:
        raise ImageError(f"fetching the image from {url} answered HTTP {response.status} (redirects are not followed)")
    declared = response.getheader("Content-Length", "")
    if declared.isdigit():
        _check_size(int(declared), policy)
    body = bytearray()
    while chunk := response.read(64 * 1024):
        body += chunk
        _check_size(len(body), policy)
        if time.monotonic() > deadline:
            raise ImageError(f"fetching the image from {url} took longer than {policy.timeout_seconds} s")
    return bytes(body)


def _permitted_address(host: str, port: int, policy: ImageSource) -> str:
    """Resolve `host`; refuse it if any of its addresses is not public, unless private ones are allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ImageError(f"cannot resolve the image host {host!r}: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not policy.allow_private:
        for address in addresses:
            if not _is_public(address):
                raise ImageError(
                    f"the image host {host!r} resolves to {address}, a loopback, private or reserved address; "
                    "the fake fetches from those only when private addresses are allowed"
                )
    return addresses[0]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast

"""Reading a request's input image: inline data, allowed local files, and (only if asked) remote URLs.

By default the fake reads no file and fetches no URL: a remote image gets the test card instead.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import http.client
import io
import ipaddress
import os
import socket
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

try:
    import fcntl
except ImportError:  # Windows: _check_opened falls back to resolving the path again
    fcntl = None  # type: ignore[assignment]

from mock_server.defaults import FETCH_TIMEOUT_SECONDS, MAX_IMAGE_BYTES, MAX_PIXELS
from mock_server.video import require_av, video_available

if TYPE_CHECKING:
    import numpy as np  # decoded pixels are numpy arrays; PyAV imports numpy when it makes them

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
    max_bytes: int = MAX_IMAGE_BYTES
    # One deadline for a whole fetch (connect, headers and body), however slowly the bytes come.
    timeout_seconds: float = FETCH_TIMEOUT_SECONDS
    max_pixels: int = MAX_PIXELS


@dataclass(frozen=True)
class LoadedImage:
    """A decoded input image: RGB pixels (height, width, 3) and the SHA-256 of its encoded bytes."""

    pixels: np.ndarray
    digest: str


def load_image(reference: str, policy: ImageSource) -> LoadedImage | None:
    """Decode the image `reference` names, or return None when the test card should stand in."""
    data = read_image(reference, policy)
    return None if data is None else LoadedImage(decode_image(data, policy.max_pixels), image_digest(data))


def inspect_image(reference: str, policy: ImageSource) -> str | None:
    """Check at submission that the image can be used and return its digest (None: the test card stands in).

    With PyAV the image is decoded, so damaged data is refused before a job is accepted; without it
    (the prepared videos ignore the input) only the file type is checked.
    """
    data = read_image(reference, policy)
    if data is None:
        return None
    if video_available():
        decode_image(data, policy.max_pixels)
    else:
        _image_format(data)
        _check_pixels(declared_size(data), policy.max_pixels)
    return image_digest(data)


def reads_image(reference: object, policy: ImageSource) -> bool:
    """Tell whether using `reference` means reading data (inline, a file, or a fetch), not just the test card."""
    if not isinstance(reference, str):
        return False
    return policy.fetch_remote or not reference.startswith(("http://", "https://"))


def fetches_image(reference: object, policy: ImageSource) -> bool:
    """Tell whether using `reference` means fetching it from a remote server."""
    return policy.fetch_remote and isinstance(reference, str) and reference.startswith(("http://", "https://"))


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


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a PNG, JPEG, WebP, GIF or BMP image to RGB pixels, or raise ImageError."""
    av = require_av()
    image_format = _image_format(data)
    _check_pixels(declared_size(data), max_pixels)
    try:
        with av.open(io.BytesIO(data), format=image_format) as container:
            stream = container.streams.video[0]
            # The header read above may not be the one FFmpeg trusts (a JPEG with two frames): check again.
            _check_pixels((stream.codec_context.width, stream.codec_context.height), max_pixels)
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


def declared_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) an image's header declares, read without decoding; None if not found."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith(b"GIF8"):
            return struct.unpack("<HH", data[6:10])
        if data.startswith(b"BM"):
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)  # a negative height means top-down rows
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:
        return None  # too short: the decoder says it is truncated
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


# JPEG start-of-frame markers (every SOFn but DHT, JPG and DAC), which carry the picture's size.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return None


def _check_pixels(size: tuple[int, int] | None, max_pixels: int) -> None:
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"the image is {size[0]}x{size[1]}; send at most {max_pixels} pixels (--max-image-pixels)")


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
    """Read a file that lies, after following links and `..`, inside an allowed directory.

    The file is opened first and the opened file itself is then checked (its real path inside an
    allowed directory names the very same inode), so swapping a link in between cannot redirect the
    read. Every way a path can be unusable is an ImageError, hence a 400.
    """
    if not policy.allowed_dirs:
        raise ImageError("the fake reads no local image files unless a directory is allowed for them")
    if not path.is_absolute():
        raise ImageError(f"give the image file as an absolute path or file:// URL, not {str(path)[:200]!r}")
    shown = str(path)[:200]
    try:
        # O_NONBLOCK: a FIFO must not hang the open; the regular-file check below refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as error:
        raise ImageError(f"cannot open the image file {shown}: {_reason(error)}") from None
    try:
        opened = os.fstat(descriptor)
        _check_opened(path, descriptor, opened, policy)
        if not stat.S_ISREG(opened.st_mode):
            raise ImageError(f"{shown} is not a regular file")
        with os.fdopen(os.dup(descriptor), "rb") as file:
            data = file.read(policy.max_bytes + 1)
    finally:
        os.close(descriptor)
    _check_size(len(data), policy)
    return data


def _check_opened(path: Path, descriptor: int, opened: os.stat_result, policy: ImageSource) -> None:
    """Refuse the opened file unless it lies inside an allowed directory.

    Where the system can say where an open file is (/proc on Linux, F_GETPATH on macOS), that is the
    answer, with no race. Elsewhere the path is resolved again and must name the very file opened;
    a directory swapped for a link in between could still slip through there.
    """
    shown = str(path)[:200]
    try:
        located = _opened_path(descriptor)
        resolved = Path(located if located is not None else os.path.realpath(path))
        inside = any(resolved.is_relative_to(os.path.realpath(folder)) for folder in policy.allowed_dirs)
        # lstat: a link swapped in at the resolved path must not lead back to the opened file.
        current = os.lstat(resolved) if inside and located is None else opened
    except (OSError, ValueError, RuntimeError) as error:
        raise ImageError(f"cannot check the image file {shown}: {_reason(error)}") from None
    if not inside:
        raise ImageError(f"{shown} is outside the directories the fake may read images from")
    if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
        raise ImageError(f"{shown} changed while it was being opened; send it again once it stays put")


_PROC_FDS = Path("/proc/self/fd")


def _opened_path(descriptor: int) -> str | None:
    """Where the open file `descriptor` is, as the kernel knows it; None where the system cannot say."""
    if _PROC_FDS.is_dir():
        return os.readlink(_PROC_FDS / str(descriptor))
    get_path = getattr(fcntl, "F_GETPATH", None) if fcntl is not None else None
    if get_path is not None:
        return bytes(fcntl.fcntl(descriptor, get_path, bytes(1024))).rstrip(b"\0").decode()
    return None


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno == errno.ENOENT:
        return "there is no image file there"
    if isinstance(error, OSError) and error.errno is not None:
        return os.strerror(error.errno)
    return str(error)


def _fetch(url: str, policy: ImageSource) -> bytes:
    """GET `url` without redirects, within the size limit and one deadline, from a permitted address."""
    parts = urlsplit(url)
    host, secure = parts.hostname or "", parts.scheme == "https"
    try:
        port = parts.port
    except ValueError:  # urlsplit checks the port only when asked for it
        port = 0
    if port is None:
        port = 443 if secure else 80
    if not 1 <= port <= 65535:
        raise ImageError(f"the URL's port must be a number from 1 to 65535: {url[:100]}")
    address = _permitted_address(host, port, policy)
    kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    connection = kind(host, port, timeout=policy.timeout_seconds)
    # The socket timeout bounds each read only: a server sending a byte a second never trips it.
    # At the deadline the watchdog shuts the socket, which ends whatever read is under way.
    watchdog = _Watchdog(policy.timeout_seconds, connection)

    def connect(_: object, *args: Any) -> socket.socket:
        # Connect to the address checked above, so a second DNS answer cannot swap in a private one;
        # TLS still verifies the certificate against `host`.
        return watchdog.watch(socket.create_connection((address, port), *args))

    connection._create_connection = connect  # type: ignore[attr-defined]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("GET", target, headers={"Accept": "image/*", "User-Agent": "segmind-mock"})
        data = _read_response(connection.getresponse(), url, policy)
    except (OSError, http.client.HTTPException, ValueError) as error:
        if watchdog.expired.is_set() or isinstance(error, TimeoutError):
            raise _too_slow(url, policy) from None
        raise ImageError(f"could not fetch the image from {url[:100]}: {error}") from None
    finally:
        watchdog.cancel()
        connection.close()
    if watchdog.expired.is_set():
        raise _too_slow(url, policy)
    return data


def _too_slow(url: str, policy: ImageSource) -> ImageError:
    return ImageError(f"fetching the image from {url[:100]} took longer than {policy.timeout_seconds} s")


class _Watchdog:
    """Shuts the sockets it watches once `seconds` have passed: a wall-clock deadline for a whole fetch."""

    def __init__(self, seconds: float, connection: http.client.HTTPConnection) -> None:
        self.expired = threading.Event()
        self._connection = connection
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> socket.socket:
        """Shut `sock` at the deadline (at once if it has passed)."""
        self._sockets.append(sock)
        if self.expired.is_set():
            _shut(sock)
        return sock

    def cancel(self) -> None:
        """Stop the timer: the fetch is over."""
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired.set()
        # The connection's own socket too: TLS wraps (and detaches) the one connected.
        for sock in [*self._sockets, self._connection.sock]:
            if sock is not None:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _read_response(response: Any, url: str, policy: ImageSource) -> bytes:
    if response.status != 200:
        raise ImageError(
            f"fetching the image from {url[:100]} answered HTTP {response.status} (redirects are not followed)"
        )
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and len(declared) < 20:
        _check_size(int(declared), policy)
    body = bytearray()
    while chunk := response.read(64 * 1024):
        body += chunk
        _check_size(len(body), policy)
    return bytes(body)


def _permitted_address(host: str, port: int, policy: ImageSource) -> str:
    """Resolve `host`; refuse it if any of its addresses is not public, unless private ones are allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ImageError(f"cannot resolve the image host {host!r}: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        if _is_never_fetched(address):
            raise ImageError(
                f"the image host {host!r} resolves to {address}, a link-local (cloud metadata), multicast, "
                "broadcast or unspecified address; the fake never fetches from those"
            )
    if not policy.allow_private:
        for address in addresses:
            if not _is_public(address):
                raise ImageError(
                    f"the image host {host!r} resolves to {address}, a loopback, private or reserved address; "
                    "the fake fetches from those only when private addresses are allowed"
                )
    return addresses[0]


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_public(address: str) -> bool:
    ip = _ip(address)
    return ip.is_global and not ip.is_multicast


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _is_never_fetched(address: str) -> bool:
    """Link-local (where cloud metadata services live), multicast, broadcast and unspecified addresses."""
    ip = _ip(address)
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip == _BROADCAST

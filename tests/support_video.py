"""Helpers for tests of videos and input images: encoding pictures, decoding videos, tracking a bright disk.

PyAV is imported only by the helpers that need it, so modules that run without it can use `png`.
"""

from __future__ import annotations

import base64
import http.server
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def png(pixels: np.ndarray) -> bytes:
    """Encode RGB pixels (height, width, 3) as a PNG file, in plain Python so that it needs no PyAV."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(pixels, dtype=np.uint8))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def data_uri(image: bytes, kind: str = "png") -> str:
    """The image as a base64 data: URI."""
    return f"data:image/{kind};base64,{base64.b64encode(image).decode()}"


def jpeg(pixels: np.ndarray) -> bytes:
    """Encode RGB pixels as one JPEG image with PyAV."""
    import av

    output = io.BytesIO()
    with av.open(output, "w", format="image2pipe") as container:
        stream = container.add_stream("mjpeg")
        stream.height, stream.width = pixels.shape[:2]
        stream.pix_fmt = "yuvj420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return output.getvalue()


def decode(video: bytes) -> tuple[list[np.ndarray], float]:
    """Return every frame of an H.264 yuv420p MP4 as RGB pixels, and the stream's frame rate."""
    import av

    with av.open(io.BytesIO(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate)


def blob_image(width: int = 512, height: int = 288, x: float = 256, y: float = 144, radius: float = 20) -> np.ndarray:
    """A dark picture with one bright disk: its centroid and area show how the camera moved."""
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 20, dtype=np.uint8)
    image[np.hypot(cols - x, rows - y) < radius] = 240
    return image


def blob(frame: np.ndarray) -> tuple[float, float, int]:
    """Return the bright disk's centroid (x, y) and area in pixels."""
    rows, cols = np.nonzero(frame.mean(axis=2) > 128)
    return float(cols.mean()), float(rows.mean()), len(rows)


class ImageServer(http.server.ThreadingHTTPServer):
    """A local HTTP server that records every request and serves `body` (or stalls, if told)."""

    def __init__(self, body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _ImageHandler)
        self.paths: list[str] = []
        self.body, self.status, self.declare_length = body, 200, True
        self.stall = False
        # Seconds between single bytes of the body (0: all at once): a server that never stops answering.
        self.drip_seconds = 0.0
        self.dripped = 0  # bytes sent so far in drip mode
        self.release = threading.Event()
        self.arrivals = threading.Semaphore(0)  # released once per request received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/input.png"


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    server: ImageServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.server.arrivals.release()
        if self.server.drip_seconds:
            self._drip()
            return
        self.send_response(self.server.status)
        if self.server.declare_length:
            self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        if self.server.stall:
            self.wfile.flush()
            self.server.release.wait(10)
            return
        self.wfile.write(self.server.body)

    def _drip(self) -> None:
        """Send the whole answer, status line and headers too, one byte at a time."""
        head = f"HTTP/1.1 {self.server.status} OK\r\nContent-Length: {len(self.server.body)}\r\n\r\n"
        for byte in head.encode() + self.server.body:
            if self.server.release.wait(self.server.drip_seconds):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return  # the client gave up
            self.server.dripped += 1

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_image(body: bytes) -> Iterator[ImageServer]:
    """Run an ImageServer serving `body` in a thread; stop it (releasing any stalled reply) afterwards."""
    server = ImageServer(body)
    # A short poll interval keeps shutdown() quick; it returns once the loop notices.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()

"""Reading a connection's answers off a raw socket, however many there are, framed by Content-Length."""

from __future__ import annotations

import socket

from tests.support_load import RawResponse

Answers = list[RawResponse]


def read_answers(sock: socket.socket, count: int | None = None) -> Answers:
    """Read answers until `count` are in, or (without a count) until the server closes the connection."""
    buffer = b""
    answers: Answers = []
    while count is None or len(answers) < count:
        answer, rest = split_answer(buffer)
        if answer is not None:
            answers.append(answer)
            buffer = rest
            continue
        chunk = sock.recv(65536)  # the socket's timeout bounds the wait: a hang fails instead
        if not chunk:
            assert not buffer, f"the connection closed in the middle of an answer: {buffer[:200]!r}"
            break
        buffer += chunk
    return answers


def split_answer(buffer: bytes) -> tuple[RawResponse | None, bytes]:
    """The first whole answer in `buffer` and what follows it, or None while it is incomplete."""
    head, found, rest = buffer.partition(b"\r\n\r\n")
    if not found:
        return None, buffer
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    if len(rest) < length:
        return None, buffer
    return RawResponse(int(status_line.split()[1]), headers, rest[:length]), rest[length:]


def trickle(sock: socket.socket, line: bytes, seconds: float) -> bytes:
    """Send `line` again and again, each well within any deadline, until the server answers; return the answer.

    Gives up after `seconds` (the test then fails on the empty answer); a reset while sending ends it too.
    """
    sock.settimeout(TRICKLE_SECONDS)
    for _ in range(int(seconds / TRICKLE_SECONDS)):
        try:
            sock.sendall(line)
            return sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset: the server closed while we were still sending
            break
    return b""


# Seconds between two lines of a trickle.
TRICKLE_SECONDS = 0.05

"""Recordings as HAR 1.2 files: the typed model, the writer and the reader (docs/recording.md).

One session a file, pretty-printed, keys in a stable order, entries in the order they started.
What HAR has no field for lives in `_`-prefixed fields, which other readers ignore (the HAR spec's
extension rule): `log._segmind` (format, tool, upstream, when) and `entry._segmind` (role, model,
request id, seconds since the job's submission, state seen). A video or image body is described,
not inlined: `content.size`, `mimeType`, `_sha256`, `_media` (PyAV's decoded facts, or null) and
`_file` (the kept bytes, relative to the HAR). Every name of those fields is written here once.

The writer rewrites the whole file after every exchange (a temporary file, then `os.replace`), so
the file on disk is valid HAR whenever the recorder is killed; before each write, the new entry is
scanned for secrets (`redaction.py`) and a write that would carry one is refused.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

import msgspec
from msgspec import UNSET, UnsetType, field

from contracts.openapi import POLL_PATH, RESULT_PATH, STATUS_PATH, SUBMIT_PATH, SYNC_PATH
from mock_server import redaction

HAR_VERSION = "1.2"
# The version of the `_segmind` extension; a reader refuses a newer one.
FORMAT = 1
TOOL = "segmind-mock"
# The extension fields, named once.
EXTENSION = "_segmind"
SHA256 = "_sha256"
MEDIA = "_media"
FILE = "_file"
# What stands in for the API key in `x-api-key` (redaction's one placeholder).
REDACTED = redaction.PLACEHOLDER

Role = Literal["submit", "status", "result", "output", "sync", "error"]
ROLES: tuple[Role, ...] = get_args(Role)
JobState = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]
# Bodies of these types are described by size, sha256 and media facts rather than inline.
MEDIA_TYPES = ("video/", "image/", "audio/", "application/octet-stream")
# Pretty-printing indent of the written file.
INDENT = 2


class NotARecording(ValueError):
    """A file that is not a segmind-mock recording: not JSON, not HAR, or without the `_segmind` fields."""


class Header(msgspec.Struct, frozen=True):
    """One header, or one query parameter (HAR's name/value pair)."""

    name: str
    value: str


class MediaFacts(msgspec.Struct, frozen=True):
    """What decoding a video (or image) told: PyAV's view of its first video stream."""

    frames: int | None
    fps: float | None
    width: int | None
    height: int | None
    duration: float | None


class Content(msgspec.Struct, frozen=True):
    """A response body: JSON and text inline as `text`; a binary body by its size, sha256 and media facts."""

    size: int
    mimeType: str
    text: str | UnsetType = UNSET
    comment: str | UnsetType = UNSET
    sha256: str | UnsetType | None = field(default=UNSET, name=SHA256)
    media: MediaFacts | UnsetType | None = field(default=UNSET, name=MEDIA)
    file: str | UnsetType = field(default=UNSET, name=FILE)


class PostData(msgspec.Struct, frozen=True):
    """A request body, inline as text."""

    mimeType: str
    text: str
    comment: str | UnsetType = UNSET


class Request(msgspec.Struct, frozen=True):
    """A request as the upstream received it (the key replaced by the placeholder)."""

    method: str
    url: str
    httpVersion: str
    headers: list[Header]
    queryString: list[Header]
    bodySize: int
    postData: PostData | UnsetType = UNSET
    cookies: list[Header] = []
    headersSize: int = -1

    def header(self, name: str) -> str | None:
        """The value of the first header of that name (any case), or None."""
        return text_header([(header.name, header.value) for header in self.headers], name)

    def body_text(self) -> str | None:
        """The body as text, or None without one."""
        return None if isinstance(self.postData, UnsetType) else self.postData.text

    def json(self) -> Any:
        """The body decoded as JSON, or None when there is none or it is not JSON."""
        return decoded_json(self.body_text())


class Response(msgspec.Struct, frozen=True):
    """A response as the upstream sent it (headers allow-listed, output URLs without signatures)."""

    status: int
    statusText: str
    httpVersion: str
    headers: list[Header]
    content: Content
    bodySize: int
    cookies: list[Header] = []
    redirectURL: str = ""
    headersSize: int = -1

    def header(self, name: str) -> str | None:
        """The value of the first header of that name (any case), or None."""
        return text_header([(header.name, header.value) for header in self.headers], name)

    def body_text(self) -> str | None:
        """The body inline as text, or None for a binary body (see `content.media`)."""
        return None if isinstance(self.content.text, UnsetType) else self.content.text

    def json(self) -> Any:
        """The body decoded as JSON, or None when it is binary or not JSON."""
        return decoded_json(self.body_text())

    @property
    def is_media(self) -> bool:
        """Whether the body is binary, described by its size, sha256 and media facts rather than inline."""
        return not isinstance(self.content.sha256, UnsetType)


class Timings(msgspec.Struct, frozen=True):
    """Milliseconds spent sending, waiting for the answer's head, and receiving its body (-1: not measured)."""

    send: float
    wait: float
    receive: float
    blocked: float = -1.0
    dns: float = -1.0
    connect: float = -1.0
    ssl: float = -1.0


class EntryFacts(msgspec.Struct, frozen=True):
    """`entry._segmind`: what the exchange was in Segmind's terms."""

    role: Role
    model: str | None
    request_id: str | None
    # Seconds since that job's submission as the recorder saw it: wall clock for a live recording,
    # simulated for the fake's journal. None when the recorder did not see the submission.
    since_submit_seconds: float | None
    state: JobState | None


class Entry(msgspec.Struct, frozen=True):
    """One exchange."""

    startedDateTime: str
    time: float
    request: Request
    response: Response
    timings: Timings
    segmind: EntryFacts = field(name=EXTENSION)
    cache: dict[str, Any] = {}

    @property
    def started(self) -> datetime:
        """When the request started, as an aware UTC datetime."""
        return datetime.fromisoformat(self.startedDateTime)


class Creator(msgspec.Struct, frozen=True):
    """The tool that wrote the file."""

    name: str
    version: str


class LogFacts(msgspec.Struct, frozen=True):
    """`log._segmind`: the extension's format, the tool, where the traffic went, when recording began."""

    format: int
    tool: str
    upstream: str
    recorded_at: str


class Log(msgspec.Struct, frozen=True):
    """HAR's `log`: one recording session."""

    version: str
    creator: Creator
    entries: list[Entry]
    segmind: LogFacts = field(name=EXTENSION)


class Har(msgspec.Struct, frozen=True):
    """A HAR file: its one `log`."""

    log: Log


class _Loose(msgspec.Struct):
    """Enough of a HAR file to tell what it is before decoding it strictly."""

    log: dict[str, Any]


def iso_time(seconds: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds, as HAR's `startedDateTime` takes it."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_facts(version: str, upstream: str, recorded_at: float) -> LogFacts:
    """`log._segmind` for a session of `segmind-mock <version>` against `upstream`, begun at `recorded_at` (Unix s)."""
    return LogFacts(format=FORMAT, tool=f"{TOOL} {version}", upstream=upstream, recorded_at=iso_time(recorded_at))


def route_of(method: str, path: str) -> tuple[Role, str | None, str | None] | None:
    """The role, model and request id of a call to one of Segmind's documented routes; None for any other."""
    parts = path.split("/")
    if method == "POST" and len(parts) == 3 and parts[2]:
        for template, role in ((SUBMIT_PATH, "submit"), (SYNC_PATH, "sync")):
            if path == template.format(model=parts[2]):
                return role, parts[2], None  # type: ignore[return-value]
    if method in ("GET", "HEAD") and len(parts) >= 4 and parts[3]:
        request_id = parts[3]
        for template, role in ((STATUS_PATH, "status"), (RESULT_PATH, "result"), (POLL_PATH, "result")):
            if path == template.format(request_id=request_id):
                return role, None, request_id  # type: ignore[return-value]
    return None


def sync_state(status: int | None) -> JobState | None:
    """The state a v1 (sync) answer's status tells: 200 COMPLETED, 422 FAILED, any other none."""
    return "COMPLETED" if status == 200 else "FAILED" if status == 422 else None


def is_media(content_type: str) -> bool:
    """Whether a body of this type is binary, described by size, sha256 and media facts rather than inline."""
    return content_type.lower().startswith(MEDIA_TYPES)


def status_text(status: int) -> str:
    """HTTP's reason phrase of a status ("" for one it does not name, and for 0: no answer)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def query_string(url: str) -> list[Header]:
    """HAR's `queryString` of a URL: its parameters decoded, in order."""
    return [Header(name, value) for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)]


def decoded_json(body: bytes | str | None) -> Any:
    """A body decoded as JSON, or None when there is none or it is not JSON."""
    if not body:
        return None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def encode(har: Har) -> bytes:
    """The file's text: pretty-printed JSON, keys in the model's order, ending in a newline."""
    return msgspec.json.format(msgspec.json.encode(har), indent=INDENT) + b"\n"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: a reader (or a kill) sees the old file or the new, never half."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class SecretFound(RuntimeError):
    """A write refused: what it would have written holds a secret (the message says what and where)."""


class HarWriter:
    """A recording on disk, rewritten whole after each exchange; every entry scanned for secrets first.

    `secrets` are strings never to be written (the API key in use), beyond the shapes `redaction`
    knows. The file exists, with no entries, as soon as the writer is made. Each entry is encoded
    once, when added: a rewrite joins the encoded entries (the same bytes `encode` writes), so an
    exchange costs the same late in a long session as early (docs/recording.md, benchmarks).
    """

    def __init__(self, path: Path, facts: LogFacts, version: str, secrets: Sequence[str] = ()) -> None:
        self.path = path
        self.secrets: set[str] = set(secrets)
        self._facts = facts
        self._creator = Creator(TOOL, version)
        self._entries: list[Entry] = []
        self._starts: list[str] = []
        self._encoded: list[bytes] = []
        findings = redaction.scan(msgspec.to_builtins(self.har()), tuple(self.secrets))
        if findings:
            raise SecretFound(f"refused to write {self.path}: {redaction.describe(findings)}")
        empty = encode(self.har())
        head, _, tail = empty.partition(_NO_ENTRIES)
        self._head, self._tail = head + b'"entries": [\n', b"\n" + _ENTRIES_INDENT[:-2] + b"]" + tail
        write_atomically(self.path, empty)

    @property
    def entries(self) -> list[Entry]:
        """The entries written so far, in the order they started."""
        return list(self._entries)

    def add(self, entry: Entry) -> None:
        """Add an exchange and rewrite the file, or raise SecretFound (the file unchanged) if it holds a secret."""
        index = bisect.bisect_right(self._starts, entry.startedDateTime)
        findings = redaction.scan(msgspec.to_builtins(entry), tuple(self.secrets), f"log.entries[{index}]")
        if findings:
            raise SecretFound(f"refused to write {self.path}: {redaction.describe(findings)}")
        lines = msgspec.json.format(msgspec.json.encode(entry), indent=INDENT).split(b"\n")
        self._entries.insert(index, entry)
        self._starts.insert(index, entry.startedDateTime)
        self._encoded.insert(index, b"\n".join(_ENTRIES_INDENT + line for line in lines))
        self._write()

    def har(self) -> Har:
        """The recording as it stands."""
        return Har(Log(HAR_VERSION, self._creator, list(self._entries), self._facts))

    def _write(self) -> None:
        write_atomically(self.path, b"".join((self._head, b",\n".join(self._encoded), self._tail)))


# How `encode` writes a log without entries, and how deep it indents each entry's lines.
_NO_ENTRIES = b'"entries": []'
_ENTRIES_INDENT = b" " * (3 * INDENT)


def dumps(har: Har, secrets: Sequence[str] = ()) -> bytes:
    """The file's text of a whole recording, or raise SecretFound saying what and where."""
    findings = redaction.scan(msgspec.to_builtins(har), secrets)
    if findings:
        raise SecretFound(f"refused to write the recording: {redaction.describe(findings)}")
    return encode(har)


def loads(data: bytes, name: str = "the file") -> Har:
    """Decode a recording, or raise NotARecording saying why it is not one."""
    try:
        loose = msgspec.json.decode(data, type=_Loose)
    except msgspec.DecodeError as error:
        raise NotARecording(f"{name} is not a HAR file ({error}): a HAR file is JSON with a `log` object") from None
    extension = loose.log.get(EXTENSION)
    if not isinstance(extension, dict):
        raise NotARecording(
            f"{name} is HAR but not a segmind-mock recording: its log has no {EXTENSION} object "
            "(record one with `segmind-mock record`, or export the fake's journal)"
        )
    found = extension.get("format")
    if not isinstance(found, int) or found > FORMAT:
        raise NotARecording(
            f"{name} is a recording of format {found!r}; this segmind-mock reads format {FORMAT}: upgrade it"
        )
    try:
        return msgspec.json.decode(data, type=Har)
    except msgspec.ValidationError as error:
        raise NotARecording(f"{name} is not a valid recording: {error}") from None


def load(path: str | os.PathLike[str]) -> Har:
    """Read a recording from disk, or raise NotARecording (also for a file that cannot be read)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise NotARecording(f"{path} cannot be read: {error.strerror or error}") from None
    return loads(data, str(path))


def text_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The value of the first of `headers` named `name` (in any case), or None when there is none.

    Text pairs as a recording holds them (HAR keeps the sender's case) and as the recording proxy
    reads them: matched in any case, and None told apart from an empty value. The raw ASGI byte
    pairs of a request being served are `answers.asgi_header`'s.
    """
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)

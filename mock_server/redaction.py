"""Keeping secrets out of recordings: what headers are kept, signatures cut from URLs, and the scan that fails closed.

A recording is redacted as it is built (headers allow-listed, the key replaced by a placeholder,
signature parameters cut from output URLs); then, before every write, what would be written is
scanned, and a write that still holds a secret is refused, saying what and where. The scan walks
the decoded JSON, so an escape (`\\u0053G_...`) or percent-encoding hides nothing from it.
`segmind-mock scan FILE...` runs the same scan on files (exit 3 when it finds one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from contracts.openapi import API_KEY_HEADER, API_KEY_PATTERN, API_KEY_SHAPE

# Request headers a recording keeps (the key's value replaced): what a client's request is made of.
REQUEST_HEADERS = frozenset(
    {"accept", "accept-encoding", "content-type", "content-length", "user-agent", "x-initiator"}
)
# Response headers a recording keeps with their values: the documented ones and HTTP's own. Any
# other is kept by name with its value redacted, so a new header is seen without what it carries;
# those in DROPPED_HEADERS not even by name.
RESPONSE_HEADERS = frozenset(
    {
        "accept-ranges",
        "access-control-allow-origin",
        "allow",
        "cache-control",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "date",
        "etag",
        "last-modified",
        "retry-after",
        "server",
        "vary",
        "x-cost",
        "x-generation-time",
        "x-rate-limit-reset-at-utc",
        "x-remaining-credits",
        "x-request-id",
        "x-seed-value",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "set-cookie2"})
DROPPED_HEADERS = CREDENTIAL_HEADERS | {"www-authenticate", "proxy-authenticate", "connection", "transfer-encoding"}
PLACEHOLDER = "<redacted>"
# Query parameters of presigned URLs (S3, GCS, Azure SAS, CloudFront) and tokens: cut from output
# URLs, and a secret anywhere else.
_SIGNATURE_PARAM = re.compile(
    r"x-amz-[a-z0-9-]+|x-goog-[a-z0-9-]+|signature|expires|awsaccesskeyid|key-pair-id|policy|sig|se|sv|sp|st|skoid|"
    r"sktid|token|access_token|id_token|refresh_token|auth|api_key|apikey|api-key|key|secret|password|session",
    re.IGNORECASE,
)
_PARAM_IN_TEXT = re.compile(r"[?&]([A-Za-z0-9_.~-]+)=")
_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>\\]+")
_BEARER = re.compile(r"\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# The key in use is looked for only when it is this long: a shorter one would match ordinary text.
SHORTEST_KEY = 8


@dataclass(frozen=True)
class Finding:
    """A secret found: what it looked like and where (a JSON path in the file)."""

    where: str
    what: str


def request_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request headers a recording keeps: allow-listed, the key replaced by the placeholder."""
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower == API_KEY_HEADER:
            kept.append((name, PLACEHOLDER))
        elif lower in REQUEST_HEADERS:
            kept.append((name, value))
    return kept


def response_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers a recording keeps: allow-listed values, other names with their values redacted."""
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower in DROPPED_HEADERS:
            continue
        kept.append((name, value if lower in RESPONSE_HEADERS else PLACEHOLDER))
    return kept


def unsigned_url(url: str) -> str:
    """`url` without its signature and token parameters (a presigned output URL's), otherwise as it was."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    kept = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if not _is_secret(name)]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def unsigned_urls(value: Any) -> Any:
    """A decoded JSON body with every http(s) URL in it unsigned (see `unsigned_url`)."""
    if isinstance(value, str):
        return unsigned_url(value) if value.startswith(("http://", "https://")) else value
    if isinstance(value, list):
        return [unsigned_urls(item) for item in value]
    if isinstance(value, dict):
        return {key: unsigned_urls(item) for key, item in value.items()}
    return value


def unsigned_text(text: str) -> str:
    """Text (a JSON body) with every http(s) URL in it unsigned, the rest as it was."""
    return _URL_IN_TEXT.sub(lambda found: unsigned_url(found.group()), text)


def without_keys(text: str, keys: Iterable[str]) -> str:
    """Text with each of `keys` (SHORTEST_KEY characters or more) and anything shaped like a Segmind key replaced."""
    for key in keys:
        if len(key) >= SHORTEST_KEY:
            text = text.replace(key, PLACEHOLDER)
    return API_KEY_PATTERN.sub(PLACEHOLDER, text)


def scan(data: Any, secrets: Sequence[str] = (), root: str = "") -> list[Finding]:
    """Every secret in decoded JSON: the `secrets` given, Segmind keys, credentials, presigned-URL parameters."""
    wanted = tuple(secret for secret in secrets if len(secret) >= SHORTEST_KEY)
    return [finding for where, text, kind in _strings(data, root) for finding in _check(where, text, kind, wanted)]


def scan_text(text: str, secrets: Sequence[str] = ()) -> list[Finding]:
    """The same scan on text that is not JSON (a file `scan` cannot decode): where is a line number."""
    wanted = tuple(secret for secret in secrets if len(secret) >= SHORTEST_KEY)
    return [
        finding
        for number, line in enumerate(text.splitlines(), 1)
        for finding in _check(f"line {number}", line, "value", wanted)
    ]


def describe(findings: Sequence[Finding]) -> str:
    """The findings as one message: what, where."""
    return "; ".join(f"{finding.what} at {finding.where}" for finding in findings)


def _strings(value: Any, where: str, kind: str = "value") -> Iterator[tuple[str, str, str]]:
    """Every string in decoded JSON with its path and kind: a value, a key, a header's or parameter's name."""
    if isinstance(value, str):
        yield where, value, kind
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str) and "value" in value:
            # A HAR name/value pair: a header, a query parameter or a cookie.
            pair = where.rpartition(".")[2].partition("[")[0]
            yield f"{where}.name", name, pair
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            yield path, key, "key"
            yield from _strings(item, path)


def _check(where: str, text: str, kind: str, secrets: tuple[str, ...]) -> Iterator[Finding]:
    """The first secret in one string, if any (its percent-decoded form looked at too)."""
    if kind == "cookies":
        yield Finding(where, f"a cookie ({text})")
        return
    if kind in ("headers", "key") and text.lower() in CREDENTIAL_HEADERS:
        yield Finding(where, f"an {text} header" if text[0] in "aA" else f"a {text} header")
        return
    if kind == "queryString" and _is_secret(text):
        yield Finding(where, f"a presigned-URL or token parameter ({text})")
        return
    decoded = unquote_plus(text) if "%" in text or "+" in text else text
    for candidate in (text, decoded) if decoded != text else (text,):
        if any(secret in candidate for secret in secrets):
            yield Finding(where, "the API key in use")
            return
        if API_KEY_PATTERN.search(candidate):
            yield Finding(where, f"a Segmind API key ({API_KEY_SHAPE})")
            return
        if _BEARER.search(candidate):
            yield Finding(where, "an Authorization credential (Bearer or Basic)")
            return
        for name in _PARAM_IN_TEXT.findall(candidate) if "=" in candidate else ():
            if _is_secret(name):
                yield Finding(where, f"a presigned-URL or token parameter ({name})")
                return


def _is_secret(name: str) -> bool:
    return _SIGNATURE_PARAM.fullmatch(name) is not None

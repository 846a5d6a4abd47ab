"""`segmind-mock record`, `scan` and `journal`: live traffic as HAR, files checked for secrets, the journal saved.

`cli.py` parses the arguments; see docs/recording.md.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import uvicorn

from mock_server import har, redaction, server
from mock_server.recorder import Recorder
from mock_server.version import installed_version

# Exit statuses of `scan` (and of `journal` when what it would write holds a secret).
CLEAN, UNREADABLE, SECRET = 0, 2, 3
JOURNAL_ROUTE = "/_mock/journal.har"


class _Refused(Exception):
    """The command line asks for what cannot be done: said, exit 2."""


def record(args: argparse.Namespace) -> int:
    """Run the recording proxy until interrupted (Ctrl-C or SIGTERM), the file valid throughout; exit 0."""
    try:
        sock, recorder = _open(args)
    except _Refused as refused:
        print(f"segmind-mock record: {refused}", file=sys.stderr)
        return 2
    url = server.url_of(sock)
    jobs = f"{args.max_jobs} paid call{'s' if args.max_jobs != 1 else ''}"
    print(
        f"segmind-mock record: forwarding {url} to {recorder.upstream}, recording into {recorder.out} "
        f"(at most {jobs}: --max-jobs)\n"
        f'  point the SDK at it: SegmindClient(api_key=..., base_url="{url}/v1"); Ctrl-C ends the recording',
        flush=True,
    )
    if not server.is_loopback(args.host):
        print(f"  WARNING: bound beyond loopback ({args.host}): anyone who reaches the port can send through it")
    # SIGTERM ends the recording as Ctrl-C does: uvicorn lets the calls in progress finish, then it ends.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    proxy = uvicorn.Server(server.config(recorder, lifespan="on", timeout_graceful_shutdown=args.timeout))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises the signal it shut down for again, once done
        proxy.run(sockets=[sock])
    entries = len(recorder.writer.entries)
    secrets = f", {len(recorder.refusals)} refused for a secret" if recorder.refusals else ""
    print(
        f"segmind-mock record: {entries} exchange{'s' if entries != 1 else ''} in {recorder.out} "
        f"({recorder.paid_calls} paid call{'s' if recorder.paid_calls != 1 else ''} forwarded{secrets})",
        flush=True,
    )
    return 0


def _open(args: argparse.Namespace) -> tuple[socket.socket, Recorder]:
    """The listening socket and the recorder (its file written empty), or _Refused saying why not."""
    upstream = str(args.upstream).rstrip("/")
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise _Refused(f"--upstream must be an http(s) URL like https://api.segmind.com (got {upstream!r})")
    if parts.username is not None or parts.password is not None:
        raise _Refused("--upstream must not carry credentials: the client's key passes through the recorder")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise _Refused(f"--out {out}: the directory {out.parent} does not exist")
    try:
        recorder = Recorder(
            upstream,
            out,
            version=installed_version(),
            max_jobs=args.max_jobs,
            keep_media=args.keep_media,
            timeout=args.timeout,
        )
    except OSError as error:
        raise _Refused(f"cannot write {out}: {error.strerror or error}") from None
    except har.SecretFound as refused:
        raise _Refused(str(refused)) from None
    try:
        return server.bind(args.host, args.port), recorder
    except OSError as error:
        raise _Refused(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None


def scan(args: argparse.Namespace) -> int:
    """Scan files for secrets: 0 clean, 3 when one holds a secret (said where), 2 when one cannot be read."""
    secrets = [args.key] if args.key else []
    status = CLEAN
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as error:
            print(f"{name}: cannot be read: {error.strerror or error}", file=sys.stderr)
            status = max(status, UNREADABLE)
            continue
        try:
            findings = redaction.scan(msgspec.json.decode(data), secrets)
        except msgspec.DecodeError:
            findings = redaction.scan_text(data.decode("utf-8", "replace"), secrets)
        for finding in findings:
            print(f"{name}: {finding.what} at {finding.where}")
        if findings:
            status = SECRET
        elif args.verbose:
            print(f"{name}: clean")
    return status


def journal(args: argparse.Namespace) -> int:
    """Save a running fake's journal as HAR: 0 when written, 2 when it cannot be fetched, 3 when it holds a secret."""
    url = args.url.rstrip("/") + JOURNAL_ROUTE
    headers = {"authorization": f"Bearer {args.admin_token}"} if args.admin_token else {}
    try:
        response = httpx.get(url, headers=headers, timeout=args.timeout, trust_env=False)
    except httpx.HTTPError as error:
        print(f"segmind-mock journal: cannot fetch {url}: {error}", file=sys.stderr)
        return UNREADABLE
    if response.status_code != 200:
        print(f"segmind-mock journal: {url} answered {response.status_code}: {response.text[:500]}", file=sys.stderr)
        return UNREADABLE
    try:
        data = har.dumps(har.loads(response.content, url))
    except har.NotARecording as error:
        print(f"segmind-mock journal: {error}", file=sys.stderr)
        return UNREADABLE
    except har.SecretFound as refused:
        print(f"segmind-mock journal: {refused}", file=sys.stderr)
        return SECRET
    out = Path(args.out)
    try:
        har.write_atomically(out, data)
    except OSError as error:
        print(f"segmind-mock journal: cannot write {out}: {error.strerror or error}", file=sys.stderr)
        return UNREADABLE
    print(f"segmind-mock journal: {len(har.loads(data).log.entries)} exchanges in {out}")
    return CLEAN

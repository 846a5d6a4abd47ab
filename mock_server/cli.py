"""The `segmind-mock` command line: its arguments, and which command runs.

It imports argparse and plain values only (`defaults.py`, the contract's model names, the
subcommands' arguments), and the module of a command when it runs it: `segmind-mock --help` and
a bad argument import no server.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from contracts import command_line
from contracts.flags import Parser, non_negative, port, positive, positive_seconds, whole
from contracts.openapi import API_KEY_VARIABLE
from contracts.options import ADMIN_TOKEN_VARIABLE, admin_token_from
from mock_server import defaults
from mock_server.version import installed_version


def build_parser() -> argparse.ArgumentParser:
    """The command line: `segmind-mock serve ...`, `segmind-mock contract ...` and `segmind-mock verify ...`."""
    parser = Parser(
        prog="segmind-mock",
        description="An offline fake of Segmind's video APIs (svd, motionctrl-svd) for development and tests.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the fake Segmind API on a uvicorn server",
        description="Run the fake Segmind API (docs/cli.md). Admin API under /_mock/ (docs/admin.md).",
    )
    _add_listen_flags(serve, defaults.SERVE_PORT)
    serve.add_argument(
        "--admin-token",
        default=admin_token_from(os.environ),
        help=(
            f"token the admin API (/_mock/ but health, outputs and static files) requires; "
            f"also ${ADMIN_TOKEN_VARIABLE}. Default: none on loopback, a fresh one printed at "
            "start-up beyond it (see docs/robustness.md)"
        ),
    )
    serve.add_argument(
        "--speed",
        type=non_negative,
        default=defaults.SPEED,
        help="simulated seconds per real second: 1 is real time, 100 a hundred times faster, "
        "0 frozen so time moves only through POST /_mock/clock/advance (default: %(default)s)",
    )
    serve.add_argument(
        "--queue-seconds",
        type=non_negative,
        default=defaults.QUEUE_SECONDS,
        help="simulated seconds a job waits QUEUED before PROCESSING (default: %(default)s)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive,
        default=defaults.MAX_BODY_BYTES,
        help="largest request body accepted; larger ones get 413 (default: %(default)s)",
    )
    serve.add_argument(
        "--journal-size",
        type=whole,
        default=defaults.JOURNAL_SIZE,
        help="how many exchanges GET /_mock/requests keeps; 0 records none, the fastest for load tests "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--max-scenarios",
        type=whole,
        default=defaults.MAX_SCENARIOS,
        help="scenario rules kept at once; more are refused with 400 (default: %(default)s)",
    )
    serve.add_argument(
        "--max-scenario-bytes",
        type=positive,
        default=defaults.MAX_SCENARIO_BYTES,
        help="largest scenario rule, as JSON; larger ones are refused with 400 (default: %(default)s)",
    )
    serve.add_argument(
        "--max-jobs-kept",
        type=positive,
        default=defaults.MAX_JOBS_KEPT,
        help="jobs kept at most, and as many outputs, whatever their retention: past it the oldest go first, "
        "counted by GET /_mock/health (default: %(default)s)",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file declaring API keys (then only those are accepted) with their credits, models and "
        "rate limits, model prices, and model files to load; see docs/accounts.md (default: any key, unlimited)",
    )
    serve.add_argument(
        "--store",
        default=defaults.store_from_environment(),
        metavar="URL",
        help=f"where jobs, clock, scenarios, journal and accounts live: {defaults.MEMORY!r} (this process only), or "
        "redis://HOST:PORT/DB[?prefix=NAME] to share them between workers and machines; see docs/scaling.md "
        f"(default: ${defaults.STORE_VARIABLE}, else %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="worker processes sharing the port; more than 1 needs a Redis --store (default: %(default)s)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="print one line per request to standard output: method, path, status, time in ms (default: off)",
    )
    command_line.add_model_file_flag(serve)
    _add_limit_flags(serve)
    _add_video_flags(serve)
    _add_replay_flags(serve)
    command_line.add_parser(commands)
    command_line.add_verify_parser(commands)
    command_line.add_model_parser(commands)
    _add_recording_parsers(commands)
    _add_drift_parser(commands)
    return parser


def _add_drift_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    drift = commands.add_parser(
        "drift",
        help="grade recordings of the live API against the contract and the fake",
        description="Grade each recording (HAR files from `segmind-mock record`) against the contract's rules, "
        "with their DOCS/SDK/2ND/GUESS grades, and against an in-process fake sent the recorded requests at the "
        "same simulated times. Per fact a verdict: confirmed, contradicted, unobserved or stale. Exit 0 when no "
        "DOCS, SDK or 2ND fact is contradicted, 1 when one is (GUESS facts and new surface too with --strict), "
        "2 when it cannot run or a file is not a recording, 3 when a file holds a secret. See docs/recording.md.",
    )
    drift.add_argument("files", nargs="+", metavar="FILE.har", help="the recordings to grade")
    drift.add_argument("--json", metavar="PATH", help="also write the verdicts as JSON")
    drift.add_argument("--junit", metavar="PATH", help="also write the verdicts as JUnit XML (one test case per fact)")
    drift.add_argument("--markdown", metavar="PATH", help="also write the verdicts as a markdown report")
    drift.add_argument(
        "--max-age",
        metavar="DURATION",
        help="facts seen only in recordings older than this are stale, not judged: seconds, or 30d, 12h, 90m "
        "(default: no limit)",
    )
    drift.add_argument(
        "--strict", action="store_true", help="fail on a contradicted GUESS fact or new surface too (exit 1)"
    )


def _add_recording_parsers(commands: argparse._SubParsersAction[Parser]) -> None:
    """`record`, `scan` and `journal`: live traffic as HAR, secrets kept out of it (docs/recording.md)."""
    record = commands.add_parser(
        "record",
        help="record live traffic as HAR through a loopback proxy",
        description="Forward calls to the upstream (the live API) and record each exchange into a HAR file, "
        "valid after every exchange; the key passes through and is never written (docs/recording.md).",
    )
    record.add_argument("--out", required=True, metavar="FILE.har", help="the HAR file to write (replaced)")
    record.add_argument(
        "--upstream", default=defaults.RECORD_UPSTREAM, metavar="URL", help="where to forward (default: %(default)s)"
    )
    _add_listen_flags(record, defaults.RECORD_PORT)
    record.add_argument(
        "--max-jobs",
        type=whole,
        default=defaults.RECORD_MAX_JOBS,
        help="paid calls (v2 submissions and v1 calls) forwarded at most; past it a 406 in the error envelope, "
        "never forwarded (default: %(default)s)",
    )
    record.add_argument(
        "--keep-media",
        type=Path,
        metavar="DIR",
        help="keep video and image bodies in DIR, named by their sha256 (default: described only)",
    )
    record.add_argument(
        "--timeout",
        type=positive_seconds,
        default=defaults.RECORD_TIMEOUT_SECONDS,
        help="seconds an upstream answer may take; also how long Ctrl-C waits for calls in progress "
        "(default: %(default)s)",
    )
    scan = commands.add_parser(
        "scan",
        help="check files for secrets (exit 0 clean, 3 secret found, 2 unreadable)",
        description="Scan files (HAR or any JSON or text) for the secrets a recording must not hold: Segmind "
        "keys, Authorization and cookies, presigned-URL parameters and tokens. Exit 0 when clean, 3 when a "
        "secret is found (saying where), 2 when a file cannot be read.",
    )
    scan.add_argument("files", nargs="+", metavar="FILE")
    scan.add_argument(
        "--key",
        default=os.environ.get(API_KEY_VARIABLE) or None,
        help=f"an API key to look for too, whatever its shape (default: ${API_KEY_VARIABLE})",
    )
    scan.add_argument("--verbose", action="store_true", help="say so for each clean file")
    journal = commands.add_parser(
        "journal",
        help="save a running fake's journal as HAR",
        description="Fetch GET {URL}/_mock/journal.har from a running fake and write it to a file (docs/recording.md).",
    )
    journal.add_argument(
        "--url", default=f"http://127.0.0.1:{defaults.SERVE_PORT}", help="the fake's base URL (default: %(default)s)"
    )
    journal.add_argument("--out", required=True, metavar="FILE.har", help="the HAR file to write (replaced)")
    journal.add_argument(
        "--admin-token",
        default=admin_token_from(os.environ),
        help=f"the fake's admin token, if it has one (default: ${ADMIN_TOKEN_VARIABLE})",
    )
    journal.add_argument(
        "--timeout",
        type=positive_seconds,
        default=defaults.FETCH_TIMEOUT_SECONDS,
        help="seconds (default: %(default)s)",
    )


def _add_listen_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=port, default=default_port, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )


def _add_limit_flags(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group("limits on what clients may hold (see docs/robustness.md)")
    limits.add_argument(
        "--max-header-bytes",
        type=positive,
        default=defaults.MAX_HEADER_BYTES,
        help="largest request line and headers together; larger ones get 431 (default: %(default)s)",
    )
    limits.add_argument(
        "--request-timeout",
        type=positive_seconds,
        default=defaults.REQUEST_TIMEOUT_SECONDS,
        help="seconds a client has to send a whole request, headers and body; then 408 (default: %(default)s)",
    )
    limits.add_argument(
        "--max-concurrent-requests",
        type=positive,
        default=defaults.MAX_CONCURRENT_REQUESTS,
        help="requests served at once by each worker; more get 503 (default: %(default)s)",
    )


def _add_replay_flags(serve: argparse.ArgumentParser) -> None:
    replay = serve.add_argument_group("replaying recordings (see docs/recording.md)")
    replay.add_argument(
        "--replay-strict",
        action="store_true",
        help="refuse a submission no recording matches (404 naming the nearest recorded request) instead of "
        "letting the fake answer it",
    )
    replay.add_argument(
        "--replay-match",
        choices=defaults.REPLAY_MATCHES,
        default=defaults.REPLAY_MATCH,
        help="what a submission must share with a recorded one to replay it: its model and every parameter, "
        "or its model alone (default: %(default)s)",
    )
    replay.add_argument(
        "--replay",
        metavar="FILE.har",
        type=Path,
        action="append",
        default=[],
        help="serve the recorded flows of this recording: a matching submission gets the recorded job's answers "
        "at the simulated times they were seen; repeatable",
    )


def _add_video_flags(serve: argparse.ArgumentParser) -> None:
    images = serve.add_argument_group("videos and input images (see docs/videos.md)")
    images.add_argument(
        "--allow-dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="let input images name files (absolute paths or file:// URLs) under DIR; repeatable",
    )
    images.add_argument(
        "--fetch-remote",
        action="store_true",
        help="fetch http(s) input images; by default they are never fetched and a test card stands in",
    )
    images.add_argument(
        "--allow-private",
        action="store_true",
        help="with --fetch-remote, also fetch from loopback and private addresses (never link-local, "
        "multicast or broadcast ones)",
    )
    images.add_argument(
        "--max-image-bytes",
        type=positive,
        default=defaults.MAX_IMAGE_BYTES,
        help="largest input image read or fetched (default: %(default)s)",
    )
    images.add_argument(
        "--fetch-timeout",
        type=non_negative,
        default=defaults.FETCH_TIMEOUT_SECONDS,
        help="seconds a whole fetch of an input image may take, however slowly it arrives (default: %(default)s)",
    )
    images.add_argument(
        "--max-image-pixels",
        type=positive,
        default=defaults.MAX_PIXELS,
        help="largest input image in pixels (width x height), checked before decoding (default: %(default)s)",
    )
    images.add_argument(
        "--fetch-threads",
        type=positive,
        default=defaults.FETCH_THREADS,
        help="worker threads fetching remote input images (default: %(default)s)",
    )
    images.add_argument(
        "--render-threads",
        type=positive,
        default=defaults.RENDER_THREADS,
        help="worker threads decoding input images and rendering videos (default: %(default)s)",
    )
    images.add_argument(
        "--video-cache-bytes",
        type=positive,
        default=defaults.VIDEO_CACHE_BYTES,
        help="memory for rendered videos, least recently used dropped first (default: %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `segmind-mock` command."""
    args = build_parser().parse_args(argv)
    # The command's module, imported once the arguments are known to be good (see the docstring).
    if args.command == "drift":
        from mock_server import drift_command

        return drift_command.run(args)
    if args.command in ("contract", "verify", "model"):
        from contracts import cli as contract_cli

        runners = {"contract": contract_cli.run, "verify": contract_cli.run_verify, "model": contract_cli.run_from_page}
        return runners[args.command](args)
    if args.command in ("record", "scan", "journal"):
        from mock_server import record_command

        recording = {"record": record_command.record, "scan": record_command.scan, "journal": record_command.journal}
        return recording[args.command](args)
    from mock_server import serve_command

    try:
        return serve_command.serve(args)
    except KeyboardInterrupt:
        # Ctrl-C is how `serve` is meant to end: uvicorn shuts down gracefully, then re-raises it.
        return 0

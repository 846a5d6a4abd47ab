"""The `segmind-mock` command."""

from __future__ import annotations

import argparse
import functools
import gc
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from contracts import MODELS
from contracts import cli as contract_cli
from contracts.flags import Parser, non_negative, port, positive, positive_seconds, whole
from mock_server import server
from mock_server.access_log import AccessLog
from mock_server.accounts import AccountsConfig, ConfigError, load_config
from mock_server.images import ImageSource
from mock_server.mock import SegmindMock
from mock_server.service import Settings
from mock_server.storage import StoreError
from mock_server.store_memory import MEMORY
from mock_server.stores import STORE_VARIABLE, shared_url, store_from_environment
from mock_server.video import video_available


def build_parser() -> argparse.ArgumentParser:
    """The command line: `segmind-mock serve ...` and `segmind-mock contract ...`."""
    defaults = Settings()
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
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--admin-token",
        default=os.environ.get(server.ADMIN_TOKEN_VARIABLE) or None,
        help=(
            f"token the admin API (/_mock/ but health, outputs and static files) requires; "
            f"also ${server.ADMIN_TOKEN_VARIABLE}. Default: none on loopback, a fresh one printed at "
            "start-up beyond it (see docs/robustness.md)"
        ),
    )
    serve.add_argument(
        "--port", type=port, default=8000, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--speed",
        type=non_negative,
        default=defaults.speed,
        help="simulated seconds per real second: 1 is real time, 100 a hundred times faster, "
        "0 frozen so time moves only through POST /_mock/clock/advance (default: %(default)s)",
    )
    serve.add_argument(
        "--queue-seconds",
        type=non_negative,
        default=defaults.queue_seconds,
        help="simulated seconds a job waits QUEUED before PROCESSING (default: %(default)s)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive,
        default=defaults.max_body_bytes,
        help="largest request body accepted; larger ones get 413 (default: %(default)s)",
    )
    serve.add_argument(
        "--journal-size",
        type=whole,
        default=defaults.journal_size,
        help="how many exchanges GET /_mock/requests keeps; 0 records none, the fastest for load tests "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--max-jobs-kept",
        type=positive,
        default=defaults.max_jobs_kept,
        help="jobs kept at most, and as many outputs, whatever their retention: past it the oldest go first, "
        "counted by GET /_mock/health (default: %(default)s)",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file declaring API keys (then only those are accepted) with their credits, models and "
        "rate limits, and model prices; see docs/accounts.md (default: any key, unlimited)",
    )
    serve.add_argument(
        "--store",
        default=store_from_environment(),
        metavar="URL",
        help=f"where jobs, clock, scenarios, journal and accounts live: {MEMORY!r} (this process only), or "
        "redis://HOST:PORT/DB[?prefix=NAME] to share them between workers and machines; see docs/scaling.md "
        f"(default: ${STORE_VARIABLE}, else %(default)s)",
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
    _add_limit_flags(serve)
    _add_video_flags(serve, defaults)
    contract_cli.add_parser(commands)
    contract_cli.add_verify_parser(commands)
    return parser


def _add_limit_flags(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group("limits on what clients may hold (see docs/robustness.md)")
    defaults = server.Limits()
    limits.add_argument(
        "--max-header-bytes",
        type=positive,
        default=defaults.max_header_bytes,
        help="largest request line and headers together; larger ones get 431 (default: %(default)s)",
    )
    limits.add_argument(
        "--request-timeout",
        type=positive_seconds,
        default=defaults.request_timeout,
        help="seconds a client has to send a whole request, headers and body; then 408 (default: %(default)s)",
    )
    limits.add_argument(
        "--max-concurrent-requests",
        type=positive,
        default=defaults.max_concurrent,
        help="requests served at once by each worker; more get 503 (default: %(default)s)",
    )


def _add_video_flags(serve: argparse.ArgumentParser, defaults: Settings) -> None:
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
        default=defaults.images.max_bytes,
        help="largest input image read or fetched (default: %(default)s)",
    )
    images.add_argument(
        "--fetch-timeout",
        type=non_negative,
        default=defaults.images.timeout_seconds,
        help="seconds a whole fetch of an input image may take, however slowly it arrives (default: %(default)s)",
    )
    images.add_argument(
        "--max-image-pixels",
        type=positive,
        default=defaults.images.max_pixels,
        help="largest input image in pixels (width x height), checked before decoding (default: %(default)s)",
    )
    images.add_argument(
        "--fetch-threads",
        type=positive,
        default=defaults.fetch_threads,
        help="worker threads fetching remote input images (default: %(default)s)",
    )
    images.add_argument(
        "--render-threads",
        type=positive,
        default=defaults.render_threads,
        help="worker threads decoding input images and rendering videos (default: %(default)s)",
    )
    images.add_argument(
        "--video-cache-bytes",
        type=positive,
        default=defaults.video_cache_bytes,
        help="memory for rendered videos, least recently used dropped first (default: %(default)s)",
    )


def rendering_line() -> str:
    """The start-up line saying how videos are made."""
    if video_available():
        return "  rendering videos with PyAV and numpy"
    return (
        "  the video extra (PyAV, numpy) is not installed: serving prepared videos from fixtures/"
        " (pip install 'segmind-mock[video]')"
    )


def serve(args: argparse.Namespace) -> int:
    """Run the fake until interrupted."""
    try:
        accounts = load_config(args.config) if args.config else AccountsConfig()
    except ConfigError as error:
        print(f"segmind-mock: {error}", file=sys.stderr)
        return 2
    if args.workers > 1 and args.store == MEMORY:
        print(
            f"segmind-mock: --workers {args.workers} needs a shared store: in-memory state cannot be shared "
            "between processes; add --store redis://HOST:PORT/DB (see docs/scaling.md)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = Settings(
            speed=args.speed,
            queue_seconds=args.queue_seconds,
            max_body_bytes=args.max_body_bytes,
            journal_size=args.journal_size,
            max_jobs_kept=args.max_jobs_kept,
            accounts=accounts,
            images=ImageSource(
                allowed_dirs=tuple(args.allow_dir),
                fetch_remote=args.fetch_remote,
                allow_private=args.allow_private,
                max_bytes=args.max_image_bytes,
                timeout_seconds=args.fetch_timeout,
                max_pixels=args.max_image_pixels,
            ),
            video_cache_bytes=args.video_cache_bytes,
            fetch_threads=args.fetch_threads,
            render_threads=args.render_threads,
            admin_token=server.admin_token_for(args.host, args.admin_token),
            # Every worker opens the same namespace.
            store=shared_url(args.store),
        )
        # Built here even with workers: it checks the store and sets the shared clock up at --speed.
        mock = SegmindMock(settings)
    except StoreError as error:
        print(f"segmind-mock: --store: {error}", file=sys.stderr)
        return 2
    try:
        sock = server.bind(args.host, args.port)
    except OSError as error:
        print(f"segmind-mock: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2
    url = server.url_of(sock)
    limits = server.Limits(args.max_header_bytes, args.request_timeout, args.max_concurrent_requests)
    workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
    store = mock.service.backend.name
    print(
        f"segmind-mock: serving {', '.join(MODELS)} on {url} (speed {settings.speed:g}x, store {store}, "
        f"{workers}, admin API at {url}/_mock/)\n"
        f'  point the SDK at it: SegmindClient(api_key="SG_...", base_url="{url}/v1")',
        flush=True,
    )
    if _every_interface(sock):
        port = sock.getsockname()[1]
        print(f"  listening on every interface ({args.host}): reachable from other machines on port {port}", flush=True)
    if not server.is_loopback(args.host):
        print(
            f"  WARNING: bound beyond loopback ({args.host}): anyone who reaches the port can call the fake; "
            "its admin API needs the token below",
            flush=True,
        )
    if settings.admin_token is not None:
        print(
            f"  admin token required: open {url}/_mock/?token={settings.admin_token} for the dashboard, "
            f"or send `Authorization: Bearer {settings.admin_token}`",
            flush=True,
        )
    if accounts.keys:
        print(f"  accepting only the {len(accounts.keys)} API keys declared in {args.config}", flush=True)
    print(rendering_line(), flush=True)
    if args.access_log:
        print("  access log on: method, path, status, time", flush=True)
    if args.workers == 1:
        served = worker_app(settings, args.access_log, mock)
        uvicorn.Server(server.config(served, limits, log_level="info")).run(sockets=[sock])
        return 0
    # uvicorn's supervisor spawns the workers (each builds its own fake on the shared store) on the
    # socket bound above, and restarts any that dies.
    app = functools.partial(worker_app, settings, args.access_log)
    options = {"factory": True, "workers": args.workers, "log_level": "info"}
    Multiprocess(server.config(app, limits, **options), sockets=[sock]).run()
    return 0


def _every_interface(sock: socket.socket) -> bool:
    """Tell whether a socket listens on every interface (0.0.0.0 or ::), not on one address."""
    return ipaddress.ip_address(sock.getsockname()[0]).is_unspecified


def worker_app(settings: Settings, access_log: bool, mock: SegmindMock | None = None) -> ASGIApp:
    """The app one worker process serves: its own fake on the shared store (or `mock`), logged if asked."""
    app = (mock or SegmindMock(settings)).app
    # What is built by now (modules, the contract, the app) lives as long as the process: out of
    # the collector's reach, the full collections that a growing job store sets off walk the jobs
    # only (they cost a third of a submit otherwise; docs/benchmarks.md).
    gc.freeze()
    return AccessLog(app) if access_log else app


def installed_version() -> str:
    """The version of the installed segmind-mock package, from its metadata."""
    try:
        return metadata.version("segmind-mock")
    except metadata.PackageNotFoundError:
        return "(not installed: no package metadata; pip install -e .)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `segmind-mock` command."""
    args = build_parser().parse_args(argv)
    if args.command == "contract":
        return contract_cli.run(args)
    if args.command == "verify":
        return contract_cli.run_verify(args)
    try:
        return serve(args)
    except KeyboardInterrupt:
        # Ctrl-C is how `serve` is meant to end: uvicorn shuts down gracefully, then re-raises it.
        return 0

"""`segmind-mock serve`: the fake on a uvicorn server, as the parsed command line says (`cli.py` parses it)."""

from __future__ import annotations

import argparse
import functools
import gc
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import NoReturn

from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from contracts import MODELS, ModelSpec
from contracts.model_file import ModelFileError, load_models
from mock_server import har, server
from mock_server.access_log import AccessLog
from mock_server.accounts import AccountsConfig, ConfigError, config_model_files, parse_config_of, read_config
from mock_server.defaults import MEMORY
from mock_server.images import ImageSource
from mock_server.mock import SegmindMock
from mock_server.replay import Replay
from mock_server.service import Settings
from mock_server.storage import StoreError
from mock_server.store_urls import shared_url
from mock_server.video import video_available


def rendering_line() -> str:
    """The start-up line saying how videos are made."""
    if video_available():
        return "  rendering videos with PyAV and numpy"
    return (
        "  the video extra (PyAV, numpy) is not installed: serving prepared videos from fixtures/"
        " (pip install 'segmind-mock[video]')"
    )


def load_accounts_and_models(
    config: str | None, model_files: Sequence[str]
) -> tuple[AccountsConfig, Mapping[str, ModelSpec]]:
    """The accounts config and the models to serve: the shipped two, the config's `models` list, then `--model-file`s.

    Raises ConfigError or ModelFileError, whose message is the one line to print.
    """
    data = read_config(config) if config else {}
    files = [*(config_model_files(data, config) if config else ()), *model_files]
    models = load_models(files, MODELS)
    return (parse_config_of(config, data, models) if config else AccountsConfig().priced(models)), models


def serve(args: argparse.Namespace) -> int:
    """Run the fake until interrupted."""
    try:
        accounts, models = load_accounts_and_models(args.config, args.model_file)
    except (ConfigError, ModelFileError) as error:
        print(f"segmind-mock: {error}", file=sys.stderr)
        return 2
    if args.workers > 1 and args.store == MEMORY:
        print(
            f"segmind-mock: --workers {args.workers} needs a shared store: in-memory state cannot be shared "
            "between processes; add --store redis://HOST:PORT/DB (see docs/scaling.md)",
            file=sys.stderr,
        )
        return 2
    if args.replay and args.workers > 1:
        print(
            f"segmind-mock: --replay keeps its replayed jobs in one process; drop --workers {args.workers}",
            file=sys.stderr,
        )
        return 2
    try:
        replay = Replay.from_files(args.replay, args.replay_match, args.replay_strict, models) if args.replay else None
    except har.NotARecording as error:
        print(f"segmind-mock: --replay: {error}", file=sys.stderr)
        return 2
    try:
        settings = Settings(
            speed=args.speed,
            queue_seconds=args.queue_seconds,
            max_body_bytes=args.max_body_bytes,
            journal_size=args.journal_size,
            max_jobs_kept=args.max_jobs_kept,
            max_scenarios=args.max_scenarios,
            max_scenario_bytes=args.max_scenario_bytes,
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
            models=models,
        )
        # Built here even with workers: it checks the store and sets the shared clock up at --speed.
        mock = SegmindMock(settings, replay)
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
        f"segmind-mock: serving {', '.join(models)} on {url} (speed {settings.speed:g}x, store {store}, "
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
        keys = f"{len(accounts.keys)} API key{'s' if len(accounts.keys) > 1 else ''}"
        print(f"  accepting only the {keys} declared in {args.config}", flush=True)
    print(rendering_line(), flush=True)
    if replay is not None:
        flows, files = len(replay.recordings.flows), len(args.replay)
        said = f"{flows} recorded flow{'s' if flows != 1 else ''} from {files} file{'s' if files != 1 else ''}"
        print(f"  replaying {said} (match {replay.match}{', strict' if replay.strict else ''})", flush=True)
    if args.access_log:
        print("  access log on: method, path, status, time", flush=True)
    if args.workers == 1:
        served = worker_app(settings, args.access_log, mock)
        # SIGTERM ends `serve` as Ctrl-C does (exit 0): uvicorn shuts down, then raises it again here.
        signal.signal(signal.SIGTERM, _terminated)
        server.Server(server.config(served, limits, log_level="info"), mock.service.clock).run(sockets=[sock])
        return 0
    # uvicorn's supervisor spawns the workers (each builds its own fake on the shared store) on the
    # socket bound above, and restarts any that dies.
    app = functools.partial(worker_app, settings, args.access_log)
    options = {"factory": True, "workers": args.workers, "log_level": "info"}
    Multiprocess(server.config(app, limits, **options), sockets=[sock]).run()
    return 0


def _terminated(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM: a normal end of `serve` (exit 0), like Ctrl-C, whenever it comes."""
    # Not an exception: one raised while the server starts may land in a callback that swallows it
    # (a weakref's, say) and leave the process running. Once uvicorn has shut down, nothing is left to do.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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

"""The `segmind-mock` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from contracts import MODELS
from contracts import cli as contract_cli
from mock_server import server
from mock_server.accounts import AccountsConfig, ConfigError, load_config
from mock_server.mock import SegmindMock, Settings


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number, 0 or more (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: `segmind-mock serve ...` and `segmind-mock contract ...`."""
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="segmind-mock",
        description="An offline fake of Segmind's video APIs (svd, motionctrl-svd) for development and tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the fake Segmind API on a uvicorn server",
        description="Run the fake Segmind API. Admin API under /_mock/ (see the README).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--speed",
        type=_non_negative,
        default=defaults.speed,
        help="simulated seconds per real second: 1 is real time, 100 a hundred times faster, "
        "0 frozen so time moves only through POST /_mock/clock/advance (default: %(default)s)",
    )
    serve.add_argument(
        "--queue-seconds",
        type=_non_negative,
        default=defaults.queue_seconds,
        help="simulated seconds a job waits QUEUED before PROCESSING (default: %(default)s)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="largest request body accepted; larger ones get 413 (default: %(default)s)",
    )
    serve.add_argument(
        "--journal-size",
        type=int,
        default=defaults.journal_size,
        help="how many exchanges GET /_mock/requests keeps (default: %(default)s)",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file declaring API keys (then only those are accepted) with their credits, models and "
        "rate limits, and model prices; see docs/accounts.md (default: any key, unlimited)",
    )
    contract_cli.add_parser(commands)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Run the fake until interrupted."""
    try:
        accounts = load_config(args.config) if args.config else AccountsConfig()
    except ConfigError as error:
        print(f"segmind-mock: {error}", file=sys.stderr)
        return 2
    settings = Settings(
        speed=args.speed,
        queue_seconds=args.queue_seconds,
        max_body_bytes=args.max_body_bytes,
        journal_size=args.journal_size,
        accounts=accounts,
    )
    try:
        sock = server.bind(args.host, args.port)
    except OSError as error:
        print(f"segmind-mock: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2
    url = server.url_of(sock)
    mock = SegmindMock(settings)
    print(
        f"segmind-mock: serving {', '.join(MODELS)} on {url} (speed {settings.speed:g}x, admin API at {url}/_mock/)\n"
        f'  point the SDK at it: SegmindClient(api_key="SG_...", base_url="{url}/v1")',
        flush=True,
    )
    if accounts.keys:
        print(f"  accepting only the {len(accounts.keys)} API keys declared in {args.config}", flush=True)
    uvicorn.Server(server.config(mock.app, lifespan="off", log_level="info")).run(sockets=[sock])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `segmind-mock` command."""
    args = build_parser().parse_args(argv)
    return contract_cli.run(args) if args.command == "contract" else serve(args)

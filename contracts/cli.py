"""The `segmind-mock contract` command: the contract suite against any base URL."""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from contracts.flags import integer, non_negative, whole
from contracts.models import MODELS
from contracts.openapi import API_KEY_VARIABLE
from contracts.suite import Options, run_suite

# Exit codes: conforming, violations found, could not run.
EXIT_OK, EXIT_VIOLATIONS, EXIT_ERROR = 0, 1, 2


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `contract` subcommand to the `segmind-mock` command line."""
    defaults = Options()
    parser = commands.add_parser(
        "contract",
        help="check a server (the fake or the live API) against the documented contract",
        description="Run the contract suite against BASE_URL: free checks (401, 404, invalid payloads "
        "refused with 400), then at most --max-jobs paid submissions polled to their end. Against "
        "segmind-mock the fake's clock is advanced instead of waiting. Exit 0 when the target "
        "conforms, 1 with a report of each violation, 2 when the suite cannot run.",
    )
    parser.add_argument("--base-url", required=True, help="e.g. https://api.segmind.com or http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None, help=f"API key (default: ${API_KEY_VARIABLE})")
    parser.add_argument(
        "--max-jobs",
        type=whole,
        default=defaults.max_jobs,
        help="valid submissions, which cost credits on the live API: the documented examples "
        "first, then generated payloads (default: %(default)s)",
    )
    parser.add_argument("--no-jobs", action="store_true", help="only the free checks: submit no valid payload")
    parser.add_argument(
        "--invalid-examples",
        type=whole,
        default=defaults.invalid_examples,
        help="generated invalid payloads per model, beside one per documented rule (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-interval",
        type=non_negative,
        default=defaults.poll_interval,
        help="seconds between polls (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-timeout",
        type=non_negative,
        default=defaults.poll_timeout,
        help="seconds a job may take before it counts as unfinished (default: %(default)s)",
    )
    parser.add_argument("--seed", type=integer, default=defaults.seed, help="seed of the generated payloads")
    parser.add_argument(
        "--model", action="append", choices=list(MODELS), help="check only this model (repeatable; default: all)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the suite as the parsed arguments say; print progress to stderr and the report to stdout."""
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE, "")
    if not api_key:
        print(f"segmind-mock contract: give --api-key or set {API_KEY_VARIABLE}", file=sys.stderr)
        return EXIT_ERROR
    options = Options(
        max_jobs=args.max_jobs,
        jobs=not args.no_jobs,
        invalid_examples=args.invalid_examples,
        poll_interval=args.poll_interval,
        poll_timeout=args.poll_timeout,
        seed=args.seed,
        models=tuple(args.model or MODELS),
    )
    try:
        report = run_suite(
            args.base_url, api_key, options, progress=lambda line: print(line, file=sys.stderr, flush=True)
        )
    except httpx.HTTPError as error:
        print(f"segmind-mock contract: cannot reach {args.base_url}: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(report.render())
    return EXIT_OK if report.ok else EXIT_VIOLATIONS

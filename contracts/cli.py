"""The `segmind-mock contract` and `segmind-mock verify` commands: the contract suite, and client verification.

Their arguments are in `contracts.command_line`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import httpx

from contracts.extras import MissingExtra
from contracts.from_page import from_page
from contracts.model_file import ModelFileError, load_models
from contracts.models import MODELS
from contracts.openapi import API_KEY_VARIABLE
from contracts.options import ADMIN_TOKEN_VARIABLE, VERIFY_API_KEY, Options
from contracts.spec import ModelSpec
from contracts.verify import CannotVerify, KeyRefused, verify_command

# Exit codes: conforming, violations found, could not run.
EXIT_OK, EXIT_VIOLATIONS, EXIT_ERROR = 0, 1, 2


def _unreachable(command: str, base_url: str, error: httpx.HTTPError) -> str:
    """The one line saying why `command` could not run against `base_url`."""
    line = f"segmind-mock {command}: cannot reach {base_url}: {error}".splitlines()[0]
    if isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 401:
        line += f"; the fake's admin API needs its admin token: give --admin-token or set ${ADMIN_TOKEN_VARIABLE}"
    return line


def run(args: argparse.Namespace) -> int:
    """Run the suite as the parsed arguments say; print progress to stderr and the report to stdout."""
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE, "")
    if not api_key:
        print(f"segmind-mock contract: give --api-key or set {API_KEY_VARIABLE}", file=sys.stderr)
        return EXIT_ERROR
    try:
        registry = loaded_models(args.model_file, args.model, "contract")
    except ModelFileError as error:
        print(f"segmind-mock contract: {error}", file=sys.stderr)
        return EXIT_ERROR
    options = Options(
        max_jobs=args.max_jobs,
        jobs=not args.no_jobs,
        invalid_examples=args.invalid_examples,
        poll_interval=args.poll_interval,
        poll_timeout=args.poll_timeout,
        seed=args.seed,
        models=tuple(args.model or registry),
        registry=registry,
        documented_only=args.documented_only,
    )
    try:
        suite = _suite()
    except MissingExtra as error:
        print(error, file=sys.stderr)
        return EXIT_ERROR
    try:
        report = suite.run_suite(
            args.base_url,
            api_key,
            options,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            admin_token=args.admin_token,
        )
    except httpx.HTTPError as error:
        print(_unreachable("contract", args.base_url, error), file=sys.stderr)
        return EXIT_ERROR
    print(report.render())
    for path, text in ((args.junit, report.to_junit), (args.json, report.to_json)):
        if path:
            Path(path).write_text(text(), encoding="utf-8")
    return EXIT_OK if report.ok else EXIT_VIOLATIONS


def run_from_page(args: argparse.Namespace) -> int:
    """`model from-page`: write the model file of a page; say what the page did not give."""
    try:
        page = Path(args.page).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"segmind-mock model from-page: cannot read {args.page}: {error}", file=sys.stderr)
        return EXIT_ERROR
    read = from_page(page)
    if args.out:
        Path(args.out).write_text(read.text, encoding="utf-8")
    else:
        sys.stdout.write(read.text)
    for note in read.unread:
        print(f"segmind-mock model from-page: could not read {note}", file=sys.stderr)
    try:
        spec = read.spec()
    except ModelFileError as error:
        print(f"segmind-mock model from-page: the file written does not load: {error}", file=sys.stderr)
        return EXIT_VIOLATIONS
    where = args.out or "standard output"
    print(
        f"segmind-mock model from-page: wrote {spec.slug} ({len(spec.params)} parameters) to {where}", file=sys.stderr
    )
    return EXIT_OK


def loaded_models(files: list[str], chosen: list[str] | None, command: str) -> Mapping[str, ModelSpec]:
    """The shipped models and those of `files`; raise ModelFileError for a bad file or a `--model` none of them is."""
    registry = load_models(files, MODELS)
    unknown = [slug for slug in chosen or () if slug not in registry]
    if unknown:
        raise ModelFileError(f"--model {unknown[0]}: not a loaded model; choose from {', '.join(registry)}")
    return registry


def _suite() -> ModuleType:
    """The contract suite module, or MissingExtra when Hypothesis (the `contracts` extra) is absent."""
    try:
        from contracts import suite  # generates payloads with Hypothesis, the optional `contracts` extra
    except ModuleNotFoundError as error:
        if error.name != "hypothesis":
            raise
        raise MissingExtra("segmind-mock contract", "contracts") from None
    return suite


def run_verify(args: argparse.Namespace) -> int:
    """Verify the command client as the parsed arguments say and print the verdict."""
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or VERIFY_API_KEY
    try:
        registry = loaded_models(args.model_file, [args.model], "verify")
    except ModelFileError as error:
        print(f"segmind-mock verify: {error}", file=sys.stderr)
        return EXIT_ERROR
    try:
        report = verify_command(
            args.client_command,
            args.base_url,
            model=registry[args.model],
            api_key=api_key,
            timeout=args.timeout,
            admin_token=args.admin_token,
        )
    except httpx.HTTPError as error:
        print(_unreachable("verify", args.base_url, error), file=sys.stderr)
        return EXIT_ERROR
    except CannotVerify as error:
        hint = f"; give one it accepts with --api-key or ${API_KEY_VARIABLE}" if isinstance(error, KeyRefused) else ""
        print(f"segmind-mock verify: cannot run: {error}{hint}", file=sys.stderr)
        return EXIT_ERROR
    print(report.render())
    return EXIT_OK if report.ok else EXIT_VIOLATIONS

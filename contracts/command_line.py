"""The arguments of the `segmind-mock contract` and `segmind-mock verify` commands (`contracts.cli` runs them).

Apart from the commands, and importing neither httpx nor the suite, so that `segmind-mock --help`
and a bad argument cost no more than argparse.
"""

from __future__ import annotations

import argparse
import os

from contracts.flags import Parser, integer, non_negative, positive_seconds, whole
from contracts.models import MODELS
from contracts.openapi import API_KEY_VARIABLE
from contracts.options import (
    ADMIN_TOKEN_VARIABLE,
    COMMAND_TIMEOUT_SECONDS,
    COMMAND_VARIABLES,
    MODEL_FILES,
    VERIFY_API_KEY,
    Options,
    admin_token_from,
)


def add_parser(commands: argparse._SubParsersAction[Parser]) -> argparse.ArgumentParser:
    """Add the `contract` subcommand to the `segmind-mock` command line."""
    defaults = Options()
    parser = commands.add_parser(
        "contract",
        help="check a server (the fake or the live API) against the documented contract",
        description="Run the contract suite against BASE_URL: free checks (401, 404, invalid payloads "
        "refused with 400), then at most --max-jobs paid calls (v2 jobs polled to their end, v1 calls), their videos "
        "fetched and decoded. Against "
        "segmind-mock the fake's clock is advanced instead of waiting. Exit 0 when the target "
        "conforms, 1 with a report of each violation, 2 when the suite cannot run.",
    )
    parser.add_argument("--base-url", required=True, help="e.g. https://api.segmind.com or http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None, help=f"API key (default: ${API_KEY_VARIABLE})")
    parser.add_argument(
        "--max-jobs",
        type=whole,
        default=defaults.max_jobs,
        help="paid calls, which cost credits on the live API, in this order: each model's documented example "
        "(v2), a plain and a base64 v1 call, then generated payloads (v2) (default: %(default)s)",
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
    parser.add_argument(
        "--documented-only",
        action="store_true",
        help="check only rules Segmind documents (graded DOCS), leaving out what rests on the SDK, "
        "second-hand copies of the docs or guesses",
    )
    parser.add_argument("--junit", metavar="PATH", help="also write the report as JUnit XML (one test case per rule)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--seed", type=integer, default=defaults.seed, help="seed of the generated payloads")
    parser.add_argument(
        "--model",
        action="append",
        metavar="SLUG",
        help=f"check only this model, one of {', '.join(MODELS)} or a --model-file's (repeatable; default: all)",
    )
    add_model_file_flag(parser)
    _add_admin_token(parser)
    return parser


def add_verify_parser(commands: argparse._SubParsersAction[Parser]) -> argparse.ArgumentParser:
    """Add the `verify` subcommand: client verification of a command, in any language."""
    parser = commands.add_parser(
        "verify",
        help="judge a client (any language, run as a command) against every scenario of a running fake",
        description="Run COMMAND once per scenario of the fake at --base-url, with "
        + ", ".join(COMMAND_VARIABLES)
        + " (the request body as JSON) in its environment. Exit status 0 with the result on stdout "
        "is a result; any other exit status is a reported failure. Exit 0 when every scenario was "
        "handled as documented, 1 otherwise, 2 when it cannot judge: the fake cannot be reached, "
        "refuses the API key, or the command cannot start.",
    )
    parser.add_argument(
        "--command",
        dest="client_command",
        metavar="COMMAND",
        required=True,
        help='the client to run, e.g. "node client.js"',
    )
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8000", help="a running segmind-mock (default: %(default)s)"
    )
    parser.add_argument(
        "--model",
        default="svd",
        metavar="SLUG",
        help=f"the model to call: {', '.join(MODELS)} or a --model-file's (default: %(default)s)",
    )
    add_model_file_flag(parser)
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"the key the client gets, which the fake must accept (default: ${API_KEY_VARIABLE}, "
        f"else {VERIFY_API_KEY}, which a fake without declared keys accepts)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=COMMAND_TIMEOUT_SECONDS,
        help="real seconds one run of the command may take (default: %(default)s)",
    )
    _add_admin_token(parser)
    return parser


def add_model_parser(commands: argparse._SubParsersAction[Parser]) -> argparse.ArgumentParser:
    """Add `model from-page`: a model file written from a Segmind model page."""
    parser = commands.add_parser(
        "model", help="write model files (docs/models.md)", description="Model files: see docs/models.md."
    )
    actions = parser.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    page = actions.add_parser(
        "from-page",
        help="write a model file from the text of a Segmind model page",
        description="Read PAGE (the text of a Segmind model page, as in shared/api-reference/) and write its model "
        "file to --out, or to standard output. What the page does not say is listed on standard error. Exit 0 "
        "when the file was written and loads, 1 when it was written but does not load, 2 when PAGE cannot be read.",
    )
    page.add_argument("page", metavar="PAGE", help="the page's text, e.g. kling.txt")
    page.add_argument("--out", metavar="FILE", help="where to write the model file (default: standard output)")
    return parser


def add_model_file_flag(parser: argparse.ArgumentParser) -> None:
    """Add `--model-file PATH` (repeatable): models beside the shipped two (docs/models.md)."""
    parser.add_argument(
        "--model-file",
        action="append",
        default=list(MODEL_FILES),
        metavar="PATH",
        help="a model file (TOML, docs/models.md) to load beside svd and motionctrl-svd (repeatable)",
    )


def _add_admin_token(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin-token",
        default=admin_token_from(os.environ),
        help=f"the admin token of a segmind-mock fake that requires one (serve --admin-token, or a bind beyond "
        f"loopback); also ${ADMIN_TOKEN_VARIABLE}. Sent to the fake's /_mock/ API and, by contract, "
        "with its v1 calls to the fake",
    )

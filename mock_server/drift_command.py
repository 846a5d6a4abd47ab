"""`segmind-mock drift`: recordings graded against the contract and the fake (`drift.py`); `cli.py` parses it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mock_server import drift


def run(args: argparse.Namespace) -> int:
    """Grade the recordings, print the verdicts, write the reports asked for; return the exit code."""
    try:
        max_age = drift.max_age(args.max_age) if args.max_age else None
    except ValueError as error:
        print(f"segmind-mock drift: {error}", file=sys.stderr)
        return drift.EXIT_ERROR
    try:
        graded = drift.grade([Path(name) for name in args.files], max_age)
    except drift.SecretInFile as error:
        print(f"segmind-mock drift: {error}", file=sys.stderr)
        return drift.EXIT_SECRET
    except drift.CannotRun as error:
        print(f"segmind-mock drift: {error}", file=sys.stderr)
        return drift.EXIT_ERROR
    print(graded.render())
    drift.write_reports(graded, {"json": args.json, "junit": args.junit, "markdown": args.markdown})
    return drift.EXIT_DRIFT if graded.failed(args.strict) else drift.EXIT_OK

"""`segmind-mock drift`: recordings graded (`drift.py`) and reported (`drift_report.py`); `cli.py` parses it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mock_server import drift, drift_report


def run(args: argparse.Namespace) -> int:
    """Grade the recordings, print the verdicts, write the reports asked for; return the exit code."""
    try:
        max_age = drift.max_age(args.max_age) if args.max_age else None
    except ValueError as error:
        print(f"segmind-mock drift: {error}", file=sys.stderr)
        return drift_report.EXIT_ERROR
    try:
        graded = drift.grade([Path(name) for name in args.files], max_age)
    except drift.SecretInFile as error:
        print(f"segmind-mock drift: {error}", file=sys.stderr)
        return drift_report.EXIT_SECRET
    except drift.CannotRun as error:
        print(f"segmind-mock drift: {error}", file=sys.stderr)
        return drift_report.EXIT_ERROR
    print(graded.render())
    drift_report.write_reports(graded, {"json": args.json, "junit": args.junit, "markdown": args.markdown})
    return drift_report.EXIT_DRIFT if graded.failed(args.strict) else drift_report.EXIT_OK

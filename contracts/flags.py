"""Command-line plumbing shared by `segmind-mock serve` and `segmind-mock contract`.

A bad flag value is reported in one line saying what was expected and what was given, with exit
code 2, instead of argparse's usage block and type-function names ("invalid _whole value").
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import NoReturn

# The exit code of a bad command line (argparse's own).
EXIT_USAGE = 2
HIGHEST_PORT = 65535


class Parser(argparse.ArgumentParser):
    """argparse, reporting a bad command line in one line and exit code 2 (its subcommands too)."""

    def parse_known_args(  # type: ignore[override]  # one signature of argparse's overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse; a parser of no subcommands reports an unknown argument itself, naming its own --help.

        argparse leaves a subcommand's unknown arguments to the top-level parser, whose error would
        point at `segmind-mock --help` rather than at `segmind-mock serve --help`.
        """
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """Print `PROG: --flag: what is wrong (see PROG --help)` and exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message.removeprefix('argument ')} (see {self.prog} --help)\n")


def _number(text: str, kind: type[float] | type[int], expected: str, low: float, high: float = math.inf) -> float:
    """The value of `text` if it is a finite number of that kind from low to high; else say what was expected."""
    try:
        value = kind(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number, 0 or more: seconds, speeds."""
    return _number(text, float, "a number >= 0", 0)


def positive_seconds(text: str) -> float:
    """A finite number of seconds, more than 0: deadlines."""
    value = _number(text, float, "a number of seconds > 0", 0)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def integer(text: str) -> int:
    """Any whole number: seeds."""
    return int(_number(text, int, "a whole number", -math.inf))


def whole(text: str) -> int:
    """A whole number, 0 or more: counts."""
    return int(_number(text, int, "a whole number >= 0", 0))


def positive(text: str) -> int:
    """A whole number, 1 or more: sizes, worker counts."""
    return int(_number(text, int, "a whole number >= 1", 1))


def port(text: str) -> int:
    """A TCP port number; 0 asks the system for a free one."""
    return int(_number(text, int, f"a port number from 0 to {HIGHEST_PORT}", 0, HIGHEST_PORT))

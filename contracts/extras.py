"""The optional extras of segmind-mock, and the one-line error naming the one a feature is missing."""

from __future__ import annotations


class MissingExtra(RuntimeError):
    """A feature was used without the optional dependencies of its extra; the message says how to install it."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra} extra: pip install 'segmind-mock[{extra}]'")
        self.extra = extra

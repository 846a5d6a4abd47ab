"""The version of segmind-mock as installed: what `--version` prints and recordings name as their tool."""

from __future__ import annotations

from importlib import metadata


def installed_version() -> str:
    """The version of the installed segmind-mock package, from its metadata."""
    try:
        return metadata.version("segmind-mock")
    except metadata.PackageNotFoundError:
        return "(not installed: no package metadata; pip install -e .)"

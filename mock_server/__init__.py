"""segmind-mock: an offline fake of Segmind's video-generation APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mock_server.mock import SegmindMock
    from mock_server.service import Settings

__all__ = ["SegmindMock", "Settings"]


def __getattr__(name: str) -> Any:
    """Import `SegmindMock` and `Settings` when first asked for.

    pytest loads the plugin `mock_server.pytest_plugin`, and with it this package, in every run of
    an environment with segmind-mock installed: importing the fake here would cost every such run.
    """
    if name == "SegmindMock":
        from mock_server.mock import SegmindMock  # deferred: see the docstring

        return SegmindMock
    if name == "Settings":
        from mock_server.service import Settings  # deferred: see the docstring

        return Settings
    raise AttributeError(f"module 'mock_server' has no attribute {name!r}")

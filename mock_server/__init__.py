"""segmind-mock: an offline fake of Segmind's video-generation APIs."""

from mock_server.mock import SegmindMock
from mock_server.service import Settings

__all__ = ["SegmindMock", "Settings"]

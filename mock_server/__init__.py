"""segmind-mock: an offline fake of Segmind's video-generation APIs."""

from mock_server.mock import SegmindMock, Settings

__all__ = ["SegmindMock", "Settings"]

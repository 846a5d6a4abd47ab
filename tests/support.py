"""Constants every test module shares: the key the tests' clients send, and the host the fake stands in for."""

from __future__ import annotations

from contracts.openapi import LIVE_URL
from mock_server.pytest_plugin import FAKE_API_KEY

API_KEY = FAKE_API_KEY
SEGMIND = LIVE_URL

"""Matching a request to a Segmind route by splitting its path: no regular expressions, no Route objects.

A route's path is the contract's template with at most one `{parameter}`, which takes any one
non-empty path segment, as Starlette's default `{name}` does. Paths are grouped by their number of
segments, so a request is compared with the two or three routes of its length only, and the
matches of recent paths are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from mock_server import api_errors
from mock_server.bounded_cache import BoundedCache

H = TypeVar("H")
# Matches kept, of paths no longer than `bounded_cache.LONGEST_KEY_CHARS`: about a MiB at most.
MATCH_CACHE_SIZE = 4096


class Router(Generic[H]):
    """The routes of one app: (path template, methods, handler, prefix) in the order they are tried."""

    def __init__(self, routes: Sequence[tuple[str, tuple[str, ...], H, str]]) -> None:
        self._by_length: dict[int, list[tuple[list[str], int, list[str], tuple[str, ...], H, str]]] = {}
        # Matches of the paths clients call again and again (the submit path, a polled job's).
        self._matched: BoundedCache[tuple[str, str], tuple[H, str, str]] = BoundedCache(MATCH_CACHE_SIZE)
        for template, methods, handler, prefix in routes:
            parts = template.split("/")
            slot = next((index for index, part in enumerate(parts) if part.startswith("{")), len(parts))
            entry = (parts[:slot], slot, parts[slot + 1 :], methods, handler, prefix)
            self._by_length.setdefault(len(parts), []).append(entry)

    def match(self, method: str, path: str) -> tuple[H, str, str]:
        """The handler, the path's parameter ("" if none) and the route's prefix; or raise the 404 or 405."""
        found = self._matched.get((method, path))
        if found is None:
            found = self._match(method, path)
            self._matched.keep((method, path), found, len(path))
        return found

    def _match(self, method: str, path: str) -> tuple[H, str, str]:
        parts = path.split("/")
        allowed: set[str] = set()
        for head, slot, tail, methods, handler, prefix in self._by_length.get(len(parts), ()):
            if parts[:slot] != head or parts[slot + 1 :] != tail:
                continue
            param = parts[slot] if slot < len(parts) else ""
            if slot < len(parts) and not param:
                continue  # a parameter takes a non-empty segment
            if method in methods:
                return handler, param, prefix
            allowed.update(methods)
        if allowed:
            raise api_errors.method_not_allowed(method, path, sorted(allowed))
        raise api_errors.no_route(method, path)

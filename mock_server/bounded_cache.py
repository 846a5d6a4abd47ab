"""A cache keyed by what clients send (paths, hosts): bounded in entries and in each key's length."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

# The longest key text kept: real paths and base URLs are some tens of characters, so clients
# sending long unique ones make a cache hold little.
LONGEST_KEY_CHARS = 256
K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Values for keys clients choose: at most `entries` of them, emptied when full, none for a key text too long.

    Emptied rather than trimmed when full: the keys in use come back at once, and nothing is kept
    per entry to choose which to drop. A key whose text is longer than `longest` characters is
    never kept, so clients sending long unique paths or hosts can make it hold little.
    """

    def __init__(self, entries: int, longest: int = LONGEST_KEY_CHARS) -> None:
        self.entries = entries
        self.longest = longest
        self._kept: dict[K, V] = {}
        # The dict's own lookup, called straight (never replaced: `keep` empties it in place).
        self.get: Callable[[K], V | None] = self._kept.get

    def keep(self, key: K, value: V, length: int) -> None:
        """Keep `value` for `key`, whose text is `length` characters long, unless that is too long."""
        if length <= self.longest:
            if len(self._kept) >= self.entries:
                self._kept.clear()
            self._kept[key] = value

    def __len__(self) -> int:
        return len(self._kept)

"""Query parameters of the admin API's lists: paging, order, and the journal's filters.

Without any of them a list is answered whole and oldest first, as it always was; every list
answer carries `X-Total-Count`, how many items matched before paging.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.datastructures import QueryParams

from mock_server import api_errors
from mock_server.journal import mask_key

T = TypeVar("T")

TOTAL_HEADER = "X-Total-Count"
ORDERS = ("oldest", "newest")
# A status filter: one code (`422`), a class (`4xx`), or `none` for an exchange that got no answer.
_STATUS_FILTER = re.compile(r"[1-5](?:[0-9][0-9]|xx)|none")
# Offsets and limits far past any journal or job store, short of numbers worth refusing.
_COUNT = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Page:
    """Which slice of a list to answer: `offset` items skipped, at most `limit` (None: all), in `order`."""

    offset: int = 0
    limit: int | None = None
    order: str = "oldest"

    def of(self, items: Sequence[T]) -> list[T]:
        """The page's items, in its order."""
        ordered = list(reversed(items)) if self.order == "newest" else list(items)
        end = None if self.limit is None else self.offset + self.limit
        return ordered[self.offset : end]


def page_of(query: QueryParams) -> Page:
    """Read `offset`, `limit` and `order` from a query string, or raise the 400 saying what to fix."""
    order = query.get("order", "oldest")
    if order not in ORDERS:
        raise api_errors.ApiError(400, f"order must be one of {', '.join(ORDERS)} (got {order!r})")
    limit = query.get("limit")
    return Page(
        offset=_count(query.get("offset", "0"), "offset", 0),
        limit=None if limit is None else _count(limit, "limit", 1),
        order=order,
    )


def total_header(total: int) -> dict[str, str]:
    """The header telling how many items matched before paging."""
    return {TOTAL_HEADER: str(total)}


def journal_filter(query: QueryParams) -> Callable[[dict[str, Any]], bool]:
    """The test a journal entry passes under the query's `status`, `path` and `key` filters."""
    status = query.get("status", "").strip().lower()
    if status and not _STATUS_FILTER.fullmatch(status):
        raise api_errors.ApiError(
            400, f"status must be a code such as 422, a class such as 4xx, or none (got {status!r})"
        )
    path = query.get("path", "")
    key = query.get("key", "")
    # A key is matched whole, in clear or as the journal masks it: the journal never shows keys in clear.
    keys = {key, mask_key(key)} if key else set()

    def passes(entry: dict[str, Any]) -> bool:
        shown = "none" if entry["status"] is None else str(entry["status"])
        if status and not (shown == status or (status.endswith("xx") and shown[0] == status[0])):
            return False
        return path in entry["path"] and (not keys or entry["api_key"] in keys)

    return passes


def _count(text: str, name: str, least: int) -> int:
    if not _COUNT.fullmatch(text) or int(text) < least:
        raise api_errors.ApiError(400, f"{name} must be a whole number, {least} or more (got {text!r})")
    return int(text)

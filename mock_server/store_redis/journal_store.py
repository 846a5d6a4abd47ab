"""The journal as a capped Redis list of JSON entries."""

from __future__ import annotations

import json

import msgspec

from mock_server.journal import Entry
from mock_server.store_redis.scripts import JOURNAL_RECORD
from mock_server.store_redis.session import Call, Namespace, strings


class RedisJournal:
    """The journal as a capped Redis list of JSON entries."""

    def __init__(self, backend: Namespace, size: int) -> None:
        self.size = size
        self._backend = backend
        self._redis = backend.redis
        self._key = backend.key("journal")
        self._record = self._redis.register_script(JOURNAL_RECORD)

    def record(self, entry: Entry) -> None:
        """Add an exchange, dropping the oldest past the journal's size."""
        fields = msgspec.structs.asdict(entry)
        # Bodies, query and headers are raw bytes; latin-1 maps each byte to one character and back.
        for name in _ENTRY_BYTES:
            fields[name] = getattr(entry, name).decode("latin-1")
        call = Call(self._record, [self._key], [_encode_entry(fields), self.size], droppable=True)
        self._backend.defer(self._backend.current.get(), call)

    def entries(self) -> list[Entry]:
        """Every kept exchange."""
        return [_entry(raw) for raw in strings(self._redis.lrange(self._key, 0, -1))]

    def clear(self) -> None:
        """Forget every exchange."""
        self._redis.delete(self._key)


# An entry is stored as a JSON object of its fields by name, encoded in C (`json.dumps` and
# `dataclasses.asdict` cost a tenth of a poll's time on Redis, docs/benchmarks.md).
_encode_entry = msgspec.json.Encoder().encode
_ENTRY_BYTES = ("query", "api_key", "request_body", "response_type", "response_body")


def _entry(raw: str) -> Entry:
    fields = json.loads(raw)
    for name in _ENTRY_BYTES:
        fields[name] = fields[name].encode("latin-1")
    return Entry(**fields)

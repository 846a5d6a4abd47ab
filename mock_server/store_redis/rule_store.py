"""Scenario rules as Redis hashes, counted and used up by Lua scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from mock_server.scenarios import Rule
from mock_server.store_redis.scripts import RULES_ADD, RULES_ALL, RULES_REMOVE, RULES_TAKE
from mock_server.store_redis.session import Call, Namespace, strings
from mock_server.store_redis.watch import RULES_VERSION_KEY

_COUNTERS = ("times", "seen", "hits")


class RedisRuleStore:
    """Rules as Redis hashes, ordered by id; `take` counts and uses them up in one Lua script."""

    def __init__(self, backend: Namespace) -> None:
        self._redis = backend.redis
        self._index = backend.key("rules")
        self._rule_prefix = backend.key("rule", "")
        self._ids = backend.key("rule-ids")
        # Bumped when a rule is added or removed (counting does not bump it): rules read at a
        # version can be matched again while requests still see that version.
        self._version = backend.key(RULES_VERSION_KEY)
        # The rules read at a version (prefixed by the namespace's epoch, so never one seen before a data loss).
        self._cached: tuple[str, list[Rule]] | None = None
        self._backend = backend
        self._all = self._redis.register_script(RULES_ALL)
        self._take = self._redis.register_script(RULES_TAKE)
        self._add = self._redis.register_script(RULES_ADD)
        self._remove = self._redis.register_script(RULES_REMOVE)

    def next_id(self) -> str:
        """The next number of the namespace's counter."""
        return str(self._redis.incr(self._ids))

    def add(self, rule: Rule) -> None:
        """Keep a new rule, tried last."""
        static = {name: value for name, value in asdict(rule).items() if name not in _COUNTERS}
        self._add(
            keys=[self._rule_prefix + rule.id, self._index, self._version],
            args=[rule.id, json.dumps(static), rule.nth, rule.times],
        )
        self._backend.watch.local_change()

    def rules(self) -> Sequence[Rule]:
        """The rules in order, read from Redis."""
        call = Call(self._all, [self._index, self._rule_prefix], [])
        flat = strings(self._backend.run(self._backend.current.get(), call)[0])
        return [_rule(flat[at : at + 5]) for at in range(0, len(flat), 5)]

    def matching(self) -> Sequence[Rule]:
        """The rules in order: inside a request, those read at the version its clock read saw.

        No round trip while no rule is added or removed (without rules, none at all). Their
        counters may be stale; matching does not use them, and `take` counts in Redis.
        """
        session = self._backend.current.get()
        version = session.rules_version if session is not None else None
        cached = self._cached
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        rules = self.rules()
        if version is not None:
            self._cached = (version, list(rules))
        return rules

    def count(self) -> int:
        """How many rules the index holds: one round trip, no rule read."""
        return int(self._redis.zcard(self._index))

    def remove(self, rule_id: str) -> bool:
        """Remove one rule; tell whether it existed."""
        removed = bool(self._remove(keys=[self._index, self._rule_prefix + rule_id, self._version], args=[rule_id]))
        self._backend.watch.local_change()
        return removed

    def clear(self) -> None:
        """Remove every rule (ids keep counting, as in memory)."""
        self._backend.delete_matching("rule:*")
        self._redis.delete(self._index)
        self._redis.incr(self._version)
        self._backend.watch.local_change()

    def take(self, candidates: Sequence[tuple[str, bool]], count_undecided: bool) -> Rule | None:
        """Count the request and use the deciding rule up, in one script."""
        keys = [self._index, self._version, *(self._rule_prefix + rule_id for rule_id, _ in candidates)]
        args = ["1" if count_undecided else "0"]
        for rule_id, may in candidates:
            args += [rule_id, "1" if may else "0"]
        taken = self._backend.run(self._backend.current.get(), Call(self._take, keys, args, timely=True))[0]
        if not taken:
            return None
        rule = _rule(strings(taken))
        if rule.times == 0:  # used up: the script removed it and moved the version on
            self._backend.watch.local_change()
        return rule


def _rule(state: list[str]) -> Rule:
    rule_id, data, times, seen, hits = state
    fields = json.loads(data)
    fields.update(id=rule_id, times=int(times), seen=int(seen), hits=int(hits))
    return Rule(**fields)

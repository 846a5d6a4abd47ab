"""The rule book: which scenario rule decides a request, chosen once for every store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mock_server.scenarios import Rule, parse_rule
from mock_server.storage import RuleStore


class RuleBook:
    """The ordered rules: the first matching rule past its `nth` decides a request, and one of its times is used up.

    Every matching rule counts the request, so `nth` means the nth matching request since the rule
    was added, whichever rule decided the earlier ones. Matching happens here; the store counts
    and uses rules up atomically (`RuleStore.take`).
    """

    def __init__(self, store: RuleStore) -> None:
        self.store = store

    def add(self, data: Mapping[str, Any]) -> Rule:
        """Add a rule from its JSON form; raise ValueError saying what to fix."""
        rule = parse_rule(data, rule_id=self.store.next_id())
        self.store.add(rule)
        return rule

    def rules(self) -> list[Rule]:
        """The active rules, in the order they are tried."""
        return list(self.store.rules())

    def remove(self, rule_id: str) -> bool:
        """Remove one rule; tell whether it existed."""
        return self.store.remove(rule_id)

    def clear(self) -> None:
        """Remove every rule."""
        self.store.clear()

    def take(
        self, target: str, model: str, api_key: str, params: Mapping[str, Any], *, refused: bool = False
    ) -> Rule | None:
        """Return the rule that decides this request and use it up; None when none does.

        A submission `refused` for its parameters is decided only by an `http_error` rule (a
        gateway refuses before anyone reads the parameters); otherwise it counts for no rule.
        """
        rules = self.store.matching()
        if not rules:  # the common case, on every request
            return None
        candidates = [
            (rule.id, not refused or rule.outcome == "http_error")
            for rule in rules
            if rule.applies(target, model, api_key, params)
        ]
        return self.store.take(candidates, count_undecided=not refused) if candidates else None

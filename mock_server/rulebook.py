"""The rule book: which scenario rule decides a request, chosen once for every store."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import msgspec

from contracts import MODELS, ModelSpec
from mock_server.defaults import MAX_SCENARIO_BYTES, MAX_SCENARIOS
from mock_server.scenarios import Rule, Target, parse_rule
from mock_server.storage import RuleStore

# A rule with its place in the order rules are tried.
Placed = tuple[int, Rule]
_NONE: tuple[list[Placed], dict[str, list[Placed]]] = ([], {})


class RuleIndex:
    """The rules a request could match, by target and model, then by key: a request looks at its candidates only.

    Built once for each version of the rules (the store hands out the same sequence while none
    is added or removed), so many rules for other models, keys or routes cost a request nothing.
    """

    def __init__(self, rules: Sequence[Rule], models: Iterable[str] = MODELS) -> None:
        self.rules = rules
        # (target, model) -> (rules matching any key, rules by the one key they match)
        self._routes: dict[tuple[Target, str], tuple[list[Placed], dict[str, list[Placed]]]] = {}
        for place, rule in enumerate(rules):
            for model in [rule.match["model"]] if "model" in rule.match else models:
                anyone, by_key = self._routes.setdefault((rule.target, model), ([], {}))
                key = rule.match.get("api_key")
                (anyone if key is None else by_key.setdefault(key, [])).append((place, rule))

    def candidates(self, target: Target, model: str, api_key: str) -> Iterable[Rule]:
        """The rules for `target` on `model` that match any key or `api_key`, in the order they are tried."""
        anyone, by_key = self._routes.get((target, model), _NONE)
        own = by_key.get(api_key)
        placed: Iterable[Placed] = anyone if own is None else heapq.merge(anyone, own, key=lambda item: item[0])
        return (rule for _, rule in placed)


class RuleBook:
    """The ordered rules: the first matching rule past its `nth` decides a request, and one of its times is used up.

    Every matching rule counts the request, so `nth` means the nth matching request since the rule
    was added, whichever rule decided the earlier ones. Matching happens here; the store counts
    and uses rules up atomically (`RuleStore.take`).
    """

    def __init__(self, store: RuleStore, models: Mapping[str, ModelSpec] = MODELS) -> None:
        self.store = store
        # The models served: rules are checked against them, and indexed by them.
        self.models = models
        self._index = RuleIndex(())

    def add(self, data: Mapping[str, Any], max_rules: int = MAX_SCENARIOS, max_bytes: int = MAX_SCENARIO_BYTES) -> Rule:
        """Add a rule from its JSON form; raise ValueError saying what to fix, or which cap it would pass."""
        rule = parse_rule(data, rule_id="new", models=self.models)
        size = len(msgspec.json.encode(asdict(rule)))
        if size > max_bytes:
            raise ValueError(
                f"the rule takes {size} bytes as JSON; a rule may take at most {max_bytes} (--max-scenario-bytes)"
            )
        # Counted before adding: with a shared store, workers adding at once may pass the cap by a few.
        if self.store.count() >= max_rules:
            raise ValueError(
                f"the fake keeps at most {max_rules} scenario rules (--max-scenarios); remove some first "
                "(DELETE /_mock/scenarios/{id}, or DELETE /_mock/scenarios for all)"
            )
        rule.id = self.store.next_id()
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
        self, target: Target, model: str, api_key: str, params: Mapping[str, Any], *, refused: bool = False
    ) -> Rule | None:
        """Return the rule that decides this request and use it up; None when none does.

        A submission `refused` for its parameters is decided only by an `http_error` rule (a
        gateway refuses before anyone reads the parameters); otherwise it counts for no rule.
        """
        rules = self.store.matching()
        if not rules:  # the common case, on every request
            return None
        index = self._index
        if index.rules is not rules:  # rules added or removed since: index them again, once
            index = self._index = RuleIndex(rules, tuple(self.models))
        candidates = [
            (rule.id, not refused or rule.outcome == "http_error")
            for rule in index.candidates(target, model, api_key)
            if rule.matches(model, api_key, params)
        ]
        return self.store.take(candidates, count_undecided=not refused) if candidates else None

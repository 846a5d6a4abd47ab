"""Drift's verdicts and reports: per fact confirmed, contradicted, unobserved or stale; text, JSON, JUnit, Markdown."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from contracts.report import Report, Violation
from contracts.rules import Grade
from mock_server.drift_facts import FACTS, OBSERVED_BY, diagnosis

Verdict = Literal["confirmed", "contradicted", "unobserved", "stale"]
# Exit codes: no graded fact contradicted; one is; cannot run (or not a recording); a secret found.
EXIT_OK, EXIT_DRIFT, EXIT_ERROR, EXIT_SECRET = 0, 1, 2, 3
# Grades whose contradiction fails the run; GUESS ones (and new surface) fail only with --strict.
FAILING: frozenset[Grade] = frozenset({"DOCS", "SDK", "2ND"})
JUNIT_SUITE = "segmind-drift"


@dataclass(frozen=True)
class Observation:
    """One observation of a fact: where, whether it held, what was expected and what was seen."""

    fact: str
    file: str
    index: int
    held: bool
    expected: str = ""
    seen: str = ""
    stale: bool = False
    # For the fake differing from live: the contract fact live contradicts at the same entry, if any.
    explained_by: str | None = None

    @property
    def where(self) -> str:
        """The HAR entry, as a report names it."""
        return f"{self.file} entry {self.index}"

    @property
    def diagnosis(self) -> str:
        """What this contradiction means, and who acts on it."""
        if self.explained_by is not None:
            return (
                f"the fake does what the contract says, and live contradicts the contract here "
                f"({self.explained_by}): settle that fact first"
            )
        return diagnosis(FACTS[self.fact])


@dataclass
class Drift:
    """The verdicts of some recordings."""

    files: list[str]
    observations: list[Observation] = field(default_factory=list)

    def verdict(self, name: str) -> Verdict:
        """A fact's verdict over every recording."""
        found = [item for item in self.observations if item.fact == name]
        fresh = [item for item in found if not item.stale]
        if not found:
            return "unobserved"
        if not fresh:
            return "stale"
        return "contradicted" if any(not item.held for item in fresh) else "confirmed"

    def contradictions(self, name: str) -> list[Observation]:
        """The fresh observations contradicting a fact."""
        return [item for item in self.observations if item.fact == name and not item.held and not item.stale]

    def failed(self, strict: bool) -> bool:
        """Whether a fact of a failing grade (any, with `strict`) is contradicted."""
        return any(
            self.verdict(name) == "contradicted" and (strict or fact.grade in FAILING) for name, fact in FACTS.items()
        )

    def to_dict(self) -> dict[str, Any]:
        """The verdicts as JSON-ready data: per fact its grade, verdict, and each contradiction diagnosed."""
        facts = []
        for name, fact in FACTS.items():
            verdict = self.verdict(name)
            item: dict[str, Any] = {"fact": name, "description": fact.description, "grade": fact.grade}
            item["verdict"] = verdict
            item["observations"] = sum(1 for seen in self.observations if seen.fact == name)
            if verdict == "unobserved":
                item["observe_with"] = OBSERVED_BY[name]
            item["contradictions"] = [
                {"entry": seen.where, "expected": seen.expected, "seen": seen.seen, "diagnosis": seen.diagnosis}
                for seen in self.contradictions(name)
            ]
            facts.append(item)
        return {"files": self.files, "failed": self.failed(False), "facts": facts}

    def render(self) -> str:
        """The verdicts in words: a summary line, then each contradicted fact with its diagnosis."""
        counts = {verdict: 0 for verdict in ("confirmed", "contradicted", "unobserved", "stale")}
        for name in FACTS:
            counts[self.verdict(name)] += 1
        lines = [f"Drift over {', '.join(self.files)}: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."]
        for name, fact in FACTS.items():
            found = self.contradictions(name)
            if not found:
                continue
            lines.append(f"\nCONTRADICTED {name} [{fact.grade}]: {fact.description}\n  {diagnosis(fact)}")
            lines += [
                f"  - {seen.where}: expected {seen.expected}; seen {seen.seen}{_explained(seen)}" for seen in found[:3]
            ]
            if len(found) > 3:
                lines.append(f"  ... and {len(found) - 3} more")
        stale = [name for name in FACTS if self.verdict(name) == "stale"]
        if stale:
            lines.append(f"\nStale (seen only in recordings older than --max-age): {', '.join(stale)}")
        unobserved = [name for name in FACTS if self.verdict(name) == "unobserved"]
        if unobserved:
            lines.append(f"\nUnobserved ({len(unobserved)}):")
            lines += [f"  - {name}: observed by {OBSERVED_BY[name]}" for name in unobserved]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The verdicts as a markdown table, contradictions listed under it."""
        lines = ["# Drift report", "", f"Recordings: {', '.join(self.files)}", ""]
        lines += ["| fact | grade | verdict | note |", "| --- | --- | --- | --- |"]
        for name, fact in FACTS.items():
            verdict = self.verdict(name)
            found = self.contradictions(name)
            note = found[0].where if found else (f"observed by {OBSERVED_BY[name]}" if verdict == "unobserved" else "")
            lines.append(f"| {name} | {fact.grade} | {verdict} | {note} |")
        for name, fact in FACTS.items():
            found = self.contradictions(name)
            if found:
                lines += ["", f"## {name} [{fact.grade}]", "", diagnosis(fact), ""]
                lines += [
                    f"- {seen.where}: expected {seen.expected}; seen {seen.seen}{_explained(seen)}" for seen in found
                ]
        return "\n".join(lines) + "\n"

    def to_junit(self) -> str:
        """The verdicts as JUnit XML, through the contract suite's report: a fact per test case."""
        report = Report(base_url=", ".join(self.files), catalog=FACTS, suite=JUNIT_SUITE)
        for name in FACTS:
            verdict = self.verdict(name)
            report.checked[name] = sum(1 for seen in self.observations if seen.fact == name and not seen.stale)
            if verdict in ("unobserved", "stale"):
                report.left_out[name] = f"{verdict}: observed by {OBSERVED_BY[name]}"
            for seen in self.contradictions(name):
                message = f"{seen.where}: {seen.diagnosis}"
                report.violations.append(
                    Violation(name, message, seen.where, f"expected {seen.expected}; seen {seen.seen}")
                )
        return report.to_junit()


def _explained(seen: Observation) -> str:
    return f" (explained: live contradicts {seen.explained_by} here)" if seen.explained_by else ""


def write_reports(drift: Drift, outputs: Mapping[str, str | None]) -> None:
    """Write the reports asked for: `json`, `junit`, `markdown` paths (None: not asked)."""
    makers = {
        "json": lambda: json.dumps(drift.to_dict(), indent=2) + "\n",
        "junit": drift.to_junit,
        "markdown": drift.to_markdown,
    }
    for kind, target in outputs.items():
        if target:
            Path(target).write_text(makers[kind](), encoding="utf-8")

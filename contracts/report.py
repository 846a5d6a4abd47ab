"""The contract suite's report: in words for people, JUnit XML and JSON for CI systems.

JUnit XML: one test suite, one test case per rule (`classname` "segmind-contract.<GRADE>"); a
broken rule is one failed test case, with one `<failure>` listing each violation (the request sent
and the answer got), so the suite's `failures` counts failed test cases as JUnit's schema means;
`<skipped>` for a rule the run did not check, with the cause. JSON: the same facts as one object
(see docs/contracts.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from contracts.rules import RULES, Rule

# How many violations of one rule the report in words prints in full.
SHOWN_PER_RULE = 3
JUNIT_SUITE = "segmind-contract"
# Said in the report when PyAV is missing, so nobody reads a pass as "the videos were checked".
MEDIA_SKIPPED = (
    "Media checks skipped: PyAV is not installed (pip install av), so frames, fps, 16:9 and "
    "playability were not checked; only that outputs are served as video."
)
# The cause given for each video rule then.
PYAV_MISSING = "PyAV is not installed (pip install av): videos were not decoded"
# The cause of a rule left unchecked when the run recorded none (Report.left_out).
NO_CASE = "no case for it arose in this run"


@dataclass(frozen=True)
class Violation:
    """One broken rule: what was sent and what came back."""

    rule: str
    message: str
    request: str
    response: str


@dataclass
class Report:
    """The suite's findings against one base URL."""

    base_url: str
    fake: bool = False
    jobs: int = 0
    violations: list[Violation] = field(default_factory=list)
    # Checks made per rule, and why a rule may go unchecked (left out on purpose, or its case
    # prevented: --max-jobs, PyAV, a job that never completed); reported only for rules unchecked.
    checked: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    # The rules reported on, and the JUnit suite's name: the contract's, or another judge's (drift).
    catalog: Mapping[str, Rule] = field(default_factory=lambda: RULES)
    suite: str = JUNIT_SUITE

    @property
    def checks(self) -> int:
        """Checks made, over every rule."""
        return sum(self.checked.values())

    media_skipped: bool = False

    @property
    def ok(self) -> bool:
        """True when the target met every rule checked."""
        return not self.violations

    @property
    def rules(self) -> set[str]:
        """The names of the broken rules."""
        return {violation.rule for violation in self.violations}

    def skipped(self) -> dict[str, str]:
        """Every rule this run did not check, with the cause."""
        return {name: self.left_out.get(name, NO_CASE) for name in self.catalog if not self.checked.get(name)}

    def render(self) -> str:
        """The report in words: a summary line, then each broken rule with its violations."""
        head = f"Contract suite against {self.base_url}: {self.checks} checks, {self.jobs} paid jobs, "
        notes = [MEDIA_SKIPPED] if self.media_skipped else []
        skipped = self.skipped()
        if skipped:
            notes.append(f"Not checked ({len(skipped)} rules):")
            notes += [f"  - {name}: {cause}" for name, cause in skipped.items()]
        if self.ok:
            return "\n".join([head + "no violations: the target conforms.", *notes])
        lines = [head + f"{len(self.violations)} violations of {len(self.rules)} rules.", *notes]
        for name in sorted(self.rules):
            rule = self.catalog[name]
            found = [violation for violation in self.violations if violation.rule == name]
            lines.append(f"\nFAIL {name} ({len(found)}x) [{rule.grade}]: {rule.description}")
            for violation in found[:SHOWN_PER_RULE]:
                lines += [
                    f"  - {violation.message}",
                    f"    sent: {violation.request}",
                    f"    got:  {violation.response}",
                ]
            if len(found) > SHOWN_PER_RULE:
                lines.append(f"  ... and {len(found) - SHOWN_PER_RULE} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: summary, then every rule with its grade, checks and violations."""
        skipped = self.skipped()
        rules = []
        for name, rule in self.catalog.items():
            found = [violation for violation in self.violations if violation.rule == name]
            outcome = "failed" if found else ("skipped" if name in skipped else "passed")
            entry: dict[str, Any] = {
                "rule": name,
                "description": rule.description,
                "grade": rule.grade,
                "outcome": outcome,
                "checks": self.checked.get(name, 0),
                "violations": [{"message": v.message, "request": v.request, "response": v.response} for v in found],
            }
            if outcome == "skipped":
                entry["skipped"] = skipped[name]
            rules.append(entry)
        return {
            "base_url": self.base_url,
            "ok": self.ok,
            "fake": self.fake,
            "checks": self.checks,
            "paid_jobs": self.jobs,
            "media_checked": not self.media_skipped,
            "rules": rules,
        }

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def to_junit(self) -> str:
        """The report as JUnit XML: each rule a test case, failed with one `<failure>` listing its violations."""
        data = self.to_dict()
        failures = sum(rule["outcome"] == "failed" for rule in data["rules"])
        skipped = sum(rule["outcome"] == "skipped" for rule in data["rules"])
        suites = ElementTree.Element("testsuites", name=self.suite)
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=self.suite,
            tests=str(len(data["rules"])),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
        )
        properties = ElementTree.SubElement(suite, "properties")
        for key in ("base_url", "fake", "checks", "paid_jobs", "media_checked"):
            ElementTree.SubElement(properties, "property", name=key, value=str(data[key]))
        for rule in data["rules"]:
            case = ElementTree.SubElement(
                suite, "testcase", name=rule["rule"], classname=f"{self.suite}.{rule['grade']}"
            )
            if rule["outcome"] == "skipped":
                ElementTree.SubElement(case, "skipped", message=rule["skipped"])
            found = rule["violations"]
            if found:
                message = (f"{len(found)} violations, the first: " if len(found) > 1 else "") + found[0]["message"]
                failure = ElementTree.SubElement(case, "failure", message=message, type=rule["grade"])
                failure.text = "\n\n".join(
                    f"{violation['message']}\nsent: {violation['request']}\ngot:  {violation['response']}"
                    for violation in found
                )
            if rule["outcome"] != "skipped":
                out = ElementTree.SubElement(case, "system-out")
                out.text = f"{rule['description']} [{rule['grade']}]; {rule['checks']} checks"
        ElementTree.indent(suites)
        return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

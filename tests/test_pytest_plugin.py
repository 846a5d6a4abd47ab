"""The pytest plugin, run as users run it: pytest inside a test (pytester), the docs' examples verbatim."""

from __future__ import annotations

import importlib.metadata

import pytest

import mock_server.pytest_plugin  # imported once here, so inner runs reuse it rather than re-import
from tests.support_pytest import count_tests, examples, run

pytest_plugins = ["pytester"]

EXAMPLES = examples()


def test_the_docs_have_an_example_file_for_each_fixture() -> None:
    fixtures = {"segmind_mock", "segmind_server", "segmind_offline"}
    assert {name for name in fixtures if any(name in code for code in EXAMPLES.values())} == fixtures


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_example_passes_offline_without_sleeping(pytester: pytest.Pytester, name: str) -> None:
    pytester.makepyfile(**{name.removesuffix(".py"): EXAMPLES[name]})
    result = run(pytester)
    result.assert_outcomes(passed=count_tests(EXAMPLES[name]))


def test_docs_example_is_skipped_live_without_a_key(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    code = EXAMPLES["test_videos_offline.py"]
    pytester.makepyfile(test_videos_offline=code)
    result = run(pytester, "--segmind-live")
    result.assert_outcomes(skipped=count_tests(code))
    result.stdout.fnmatch_lines(["*--segmind-live needs a real API key in the SEGMIND_API_KEY*"])

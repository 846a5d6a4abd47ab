"""The pytest plugin, run as users run it: pytest inside a test (pytester), the docs' examples verbatim."""

from __future__ import annotations

import importlib.metadata

import pytest

# Imported once here, so inner runs reuse them rather than re-import: the inner runs forget the
# modules they import, and numpy (which renders) refuses to load twice in a process.
import mock_server.pytest_plugin
import mock_server.render
from tests.support_pytest import count_tests, examples, run

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


@pytest.mark.parametrize("fixture", ["segmind_mock", "segmind_server"])
def test_state_never_leaks_from_one_test_to_the_next(pytester: pytest.Pytester, fixture: str) -> None:
    pytester.makepyfile(
        f"""
        import time

        import httpx
        import pytest

        IMAGE = "https://example.com/cat.png"


        def submit(fake):
            with httpx.Client(base_url=fake.url, headers={{"x-api-key": fake.api_key}}) as http:
                return http.post("/v2/svd", json={{"image": IMAGE}})


        @pytest.mark.segmind_settings(speed=50, queue_seconds=9)
        @pytest.mark.segmind_scenario(outcome="failed")
        def test_first_leaves_jobs_rules_requests_and_a_moved_clock({fixture}):
            {fixture}.mock.add_scenario(outcome="http_error", status=429, match={{"fps": 60}})
            assert submit({fixture}).status_code == 200
            {fixture}.mock.advance(7200)
            assert {fixture}.mock.requests and {fixture}.mock.scenarios.rules()
            assert {fixture}.mock.clock.speed == 50


        def test_second_starts_from_a_clean_fake({fixture}):
            fake = {fixture}.mock
            assert (fake.jobs, fake.requests, fake.scenarios.rules()) == ([], [], [])
            assert abs(fake.clock.now() - time.time()) < 5  # back to the time of day, not 2 hours on
            assert (fake.clock.speed, fake.clock.virtual, fake.settings.queue_seconds) == (0, True, 2.0)
            job = submit({fixture}).json()
            assert fake.job(job["request_id"])["state"] == "QUEUED"
            fake.advance(40)
            assert fake.job(job["request_id"])["state"] == "COMPLETED"  # no failed rule left over
        """
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=2)


def test_segmind_server_is_one_server_for_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        seen = set()

        def test_a(segmind_server):
            seen.add(segmind_server.url)

        def test_b(segmind_server):
            seen.add(segmind_server.url)
            assert len(seen) == 1 and segmind_server.url.startswith("http://127.0.0.1:")
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_scenario_marks_nearest_the_test_are_tried_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.segmind_scenario(outcome="failed", error="from the module")


        @pytest.mark.segmind_scenario(outcome="failed", error="from the top mark")
        @pytest.mark.segmind_scenario(match={"fps": 60}, outcome="failed", error="nearest, for fps 60")
        def test_rules(segmind_mock):
            rules = segmind_mock.mock.scenarios.rules()
            assert [rule.error for rule in rules] == ["nearest, for fps 60", "from the top mark", "from the module"]
        """
    )
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("segmind_settings(sped=100)", "segmind_settings got unknown option(s) sped; allowed: "),
        ("segmind_settings(100)", "segmind_settings takes keyword arguments only"),
        ("segmind_scenario(outcome='exploded')", "segmind_scenario: outcome must be one of"),
        ("segmind_scenario(outcome='http_error', status=418)", "segmind_scenario: status must be one of"),
    ],
)
@pytest.mark.parametrize("fixture", ["segmind_mock", "segmind_server"])
def test_a_bad_mark_fails_the_test_saying_what_to_fix(
    pytester: pytest.Pytester, fixture: str, mark: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{mark}
        def test_marked({fixture}):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_the_shared_server_refuses_a_journal_size_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.segmind_settings(journal_size=5)
        def test_marked(segmind_server):
            pass

        @pytest.mark.segmind_settings(journal_size=5)
        def test_in_process(segmind_mock):
            assert segmind_mock.mock.service.journal._entries.maxlen == 5

        @pytest.mark.segmind_settings(max_jobs_kept=5, admin_token="t")
        def test_kept_settings(segmind_server):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*its journal_size cannot change per test*"])
    # Before, these were dropped without a word: the test ran on the session's.
    result.stdout.fnmatch_lines(["*its max_jobs_kept, admin_token cannot change per test*"])


def test_virtual_time_off_keeps_real_sleeps_and_a_running_clock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time

        import pytest
        import segmind.v2


        @pytest.mark.segmind_settings(virtual_time=False)
        @pytest.mark.parametrize("fixture", ["segmind_mock", "segmind_server"])
        def test_off(request, fixture):
            fake = request.getfixturevalue(fixture).mock
            assert segmind.v2.time is time
            assert (fake.clock.speed, fake.clock.virtual) == (1.0, False)


        @pytest.mark.parametrize("fixture", ["segmind_mock", "segmind_server"])
        def test_on(request, fixture):
            fake = request.getfixturevalue(fixture).mock
            before = fake.clock.now()
            segmind.v2.time.sleep(600)
            assert fake.clock.now() - before == pytest.approx(600)
            assert segmind.v2.time.monotonic() - time.monotonic() == pytest.approx(600, abs=1)
        """
    )
    run(pytester).assert_outcomes(passed=4)


def test_listed_modules_of_your_own_sleep_on_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        segmind_virtual_time_modules =
            poller
        """
    )
    pytester.makepyfile(
        poller="""
        import asyncio
        from time import monotonic, sleep

        import httpx


        def wait(url, key, timeout):
            deadline = monotonic() + timeout
            with httpx.Client(headers={"x-api-key": key}) as http:
                while (status := http.get(url).json()["status"]) not in ("COMPLETED", "FAILED"):
                    if monotonic() > deadline:
                        return "TIMEOUT"
                    sleep(5)
            return status


        async def wait_async(url, key):
            async with httpx.AsyncClient(headers={"x-api-key": key}) as http:
                while (status := (await http.get(url)).json()["status"]) not in ("COMPLETED", "FAILED"):
                    await asyncio.sleep(5)
            return status
        """,
        test_poller="""
        import asyncio
        from time import monotonic as real_monotonic, sleep as real_sleep

        import httpx

        import poller


        def submit(fake):
            headers = {"x-api-key": fake.api_key}
            response = httpx.post(f"{fake.url}/v2/svd", json={"image": "https://x/y.png"}, headers=headers)
            return response.json()["status_url"]


        def test_sync_poller(segmind_mock):
            start = segmind_mock.mock.now()
            assert poller.wait(submit(segmind_mock), segmind_mock.api_key, timeout=600) == "COMPLETED"
            assert segmind_mock.mock.now() - start == 35  # seven polls 5 s apart: past 31.63 s
            assert poller.sleep is not real_sleep


        def test_timeout_on_virtual_time(segmind_mock):
            segmind_mock.mock.add_scenario(processing_seconds=10_000)
            assert poller.wait(submit(segmind_mock), segmind_mock.api_key, timeout=60) == "TIMEOUT"
            assert 60 <= segmind_mock.mock.now() - segmind_mock.mock.jobs[0]["submitted_at"] <= 70


        def test_async_poller(segmind_mock):
            start = segmind_mock.mock.now()
            assert asyncio.run(poller.wait_async(submit(segmind_mock), segmind_mock.api_key)) == "COMPLETED"
            assert segmind_mock.mock.now() - start == 35
            assert asyncio.sleep is not poller.asyncio.sleep


        def test_the_patch_ends_with_the_test():
            assert (poller.sleep, poller.monotonic, poller.asyncio) == (real_sleep, real_monotonic, asyncio)
        """,
    )
    run(pytester, "test_poller.py").assert_outcomes(passed=4)


def test_live_mode_skips_fake_only_tests_and_points_the_rest_at_the_real_api(
    pytester: pytest.Pytester, monkeypatch
) -> None:
    monkeypatch.setenv("SEGMIND_API_KEY", "SG_feedfacefeedface")
    pytester.makepyfile(
        """
        import time

        import httpx
        import pytest
        import respx
        import segmind.v2

        ran = []


        @pytest.mark.parametrize("fixture", ["segmind_mock", "segmind_server"])
        def test_live_wiring(request, fixture):
            fake = request.getfixturevalue(fixture)
            assert (fake.live, fake.url, fake.api_key) == (True, "https://api.segmind.com", "SG_feedfacefeedface")
            assert segmind.v2.time is time  # real time against the real API
            # Nothing of the fake is routed: the request reaches the network layer, caught here by respx.
            with respx.mock(assert_all_called=True) as network:
                network.post("https://api.segmind.com/v2/svd").respond(402, json={"error": "the real API"})
                assert httpx.post(f"{fake.url}/v2/svd", json={}).json() == {"error": "the real API"}


        @pytest.mark.segmind_fake_only
        def test_marked_fake_only(segmind_mock):
            ran.append("fake only")


        @pytest.mark.segmind_scenario(outcome="failed")
        def test_with_a_scenario(segmind_server):
            ran.append("scenario")


        def test_a_control_skips_where_it_is_used(segmind_mock):
            segmind_mock.mock.advance(10)
            ran.append("after advance")


        def test_nothing_ran_past_a_skip():
            assert ran == []
        """
    )
    result = run(pytester, "--segmind-live", "-p", "no:randomly")
    result.assert_outcomes(passed=3, skipped=3)
    result.stdout.fnmatch_lines_random(
        [
            "*fake-only test (segmind_fake_only or segmind_scenario or segmind_replay): --segmind-live skips it*",
            "*this test controls the fake, which --segmind-live replaces by the real API*",
        ]
    )


def test_the_live_option_is_in_the_help(pytester: pytest.Pytester) -> None:
    run(pytester, "--help").stdout.fnmatch_lines(["*--segmind-live*point segmind_mock and segmind_server*"])


def test_installing_the_package_registers_the_plugin(pytester: pytest.Pytester) -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11", name="mock_server.pytest_plugin")
    if not entry_points:
        pytest.skip("segmind-mock is installed without its pytest11 entry point: run `pip install -e .` again")
    assert next(iter(entry_points)).load() is mock_server.pytest_plugin
    pytester.makepyfile("def test_fixture(segmind_mock):\n    assert segmind_mock.url == 'https://api.segmind.com'\n")
    pytester.runpytest().assert_outcomes(passed=1)

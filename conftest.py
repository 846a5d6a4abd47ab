"""The root conftest: pytest's own plugins the tests use. The shared fixtures are in tests/conftest.py."""

pytest_plugins = ("pytester",)

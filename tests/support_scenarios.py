"""Shared by the scenario and network-fault tests: adding a scenario rule through the admin API."""

from __future__ import annotations

import httpx


def add(http: httpx.Client, rule: dict) -> dict:
    response = http.post("/_mock/scenarios", json=rule)
    assert response.status_code == 201, response.text
    return response.json()

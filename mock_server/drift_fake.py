"""Drift against the fake: each recorded flow re-sent to an in-process fake at the same simulated times,
its answers compared with live's field by field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from contracts.openapi import API_KEY_HEADER
from mock_server import har
from mock_server.defaults import FAKE_API_KEY
from mock_server.drift_facts import FAKE_AGREES, VOLATILE, Found, check
from mock_server.mock import SegmindMock
from mock_server.replay import Flow, Seen, load_recording
from mock_server.scenarios import LONGEST_HEADER_SECONDS
from mock_server.service import Settings
from mock_server.transport import PortalTransport

FAKE_URL = "http://segmind-drift.invalid"


def against_fake(path: Path, recording: har.Har) -> Iterator[Found]:
    """Each recorded flow's requests re-sent to an in-process fake at the same simulated times, answers compared."""
    flows = load_recording(path, recording).flows
    mock = SegmindMock(Settings(speed=0, virtual=True))
    with PortalTransport(mock.app) as transport, httpx.Client(transport=transport, base_url=FAKE_URL) as client:
        for flow in flows:
            yield from _replayed(client, mock, flow)


def _replayed(client: httpx.Client, mock: SegmindMock, flow: Flow) -> Iterator[Found]:
    headers = {API_KEY_HEADER: FAKE_API_KEY} if flow.keyed else {}
    if flow.accepted:
        queue, processing, error = flow.timeline()
        headers["x-mock-queue-seconds"] = str(min(queue, LONGEST_HEADER_SECONDS))
        headers["x-mock-processing-seconds"] = str(min(processing, LONGEST_HEADER_SECONDS))
        if error is not None:
            headers.update({"x-mock-outcome": "failed", "x-mock-error": error})
    path = f"/{'v1' if flow.role == 'sync' else 'v2'}/{flow.model}"
    started = mock.clock.now()
    answer = client.post(path, json=flow.params, headers=headers)
    yield from _compare(flow.answer, answer)
    fake_id = answer.json().get("request_id") if flow.role == "submit" and answer.status_code == 200 else None
    if not isinstance(fake_id, str):
        return
    seen_all = sorted(
        ((role, seen) for role, items in flow.polls.items() for seen in items), key=lambda pair: pair[1].since
    )
    for role, seen in seen_all:
        lag = started + seen.since - mock.clock.now()
        if lag > 0:
            mock.advance(lag)
        suffix = "/status" if role == "status" else ""
        polled = client.get(f"/v2/requests/{fake_id}{suffix}", headers={API_KEY_HEADER: FAKE_API_KEY})
        yield from _compare(seen, polled)


def _compare(seen: Seen, answer: httpx.Response) -> Iterator[Found]:
    """Live's recorded answer against the fake's, field by field; volatile fields by type only."""
    differences = []
    if answer.status_code != seen.status:
        differences.append(f"status {answer.status_code} (live {seen.status})")
    fake_type = answer.headers.get("content-type", "")
    live_type = seen.content.mimeType
    if fake_type.split(";")[0] != live_type.split(";")[0]:
        differences.append(f"content-type {fake_type} (live {live_type})")
    if seen.body is not None and seen.whole and fake_type.startswith("application/json"):
        differences += _field_differences(seen.body, answer.json())
    said = "; ".join(differences) or "the same"
    yield check(FAKE_AGREES.name, seen.index, not differences, "the fake answering as live did", said)


def _field_differences(live: Any, fake: Any, prefix: str = "") -> list[str]:
    if not isinstance(live, dict) or not isinstance(fake, dict):
        return (
            []
            if type(live) is type(fake)
            else [f"{prefix or 'body'} is {type(fake).__name__} (live {type(live).__name__})"]
        )
    found = []
    for key in sorted(set(live) | set(fake)):
        name = f"{prefix}{key}"
        if key not in fake:
            found.append(f"{name} missing (live sends it)")
        elif key not in live:
            found.append(f"{name} sent (live does not)")
        elif isinstance(live[key], dict) and isinstance(fake[key], dict):
            found += _field_differences(live[key], fake[key], f"{name}.")
        elif name in VOLATILE:
            if live[key] is not None and fake[key] is not None and type(live[key]) is not type(fake[key]):
                found.append(f"{name} is {type(fake[key]).__name__} (live {type(live[key]).__name__})")
        elif live[key] != fake[key]:
            found.append(f"{name} {json.dumps(fake[key])[:60]} (live {json.dumps(live[key])[:60]})")
    return found

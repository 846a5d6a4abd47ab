"""The OpenAPI document says what the server does: openapi-core's 3.1 validation of captured exchanges, and an
outsider's whole schemathesis run against a real server."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_core.validation.response.exceptions import MissingRequiredHeader
from werkzeug.datastructures import Headers, ImmutableMultiDict

from contracts import MODELS
from contracts.openapi import openapi_document
from contracts.responses import ERROR_CODES, POLL_ERROR_CODES
from mock_server import SegmindMock, Settings
from mock_server.accounts import parse_config
from mock_server.server import ServerThread
from tests.support import API_KEY
from tests.support_fakes import FakeFactory
from tests.support_video import data_uri, png

ROOT = Path(__file__).resolve().parents[1]
SVD = dict(MODELS["svd"].example)
MOTION = dict(MODELS["motionctrl-svd"].example)


@dataclass
class CapturedRequest:
    """An httpx request as openapi-core reads it."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters


@dataclass
class CapturedResponse:
    """An httpx response as openapi-core reads it."""

    data: bytes
    status_code: int
    content_type: str
    headers: Headers


def captured(response: httpx.Response) -> tuple[CapturedRequest, CapturedResponse]:
    """One exchange, in openapi-core's terms."""
    request = response.request
    parameters = RequestParameters(
        query=ImmutableMultiDict(request.url.params.multi_items()),
        header=Headers(list(request.headers.items())),
        cookie=ImmutableMultiDict(),
    )
    return (
        CapturedRequest(
            f"{request.url.scheme}://{request.url.netloc.decode()}",
            request.url.path,
            request.method.lower(),
            request.content or None,
            request.headers.get("content-type", ""),
            parameters,
        ),
        CapturedResponse(
            response.content,
            response.status_code,
            response.headers.get("content-type", ""),
            Headers(list(response.headers.items())),
        ),
    )


@pytest.fixture
def served(make_fake: FakeFactory) -> Iterator[tuple[SegmindMock, httpx.Client, OpenAPI]]:
    """The fake with a declared key (others 401, credits for one job), on a real server, and its own document."""
    config = parse_config({"keys": {API_KEY: {}, "SG_00000000000000aa": {"credits": 0.2, "models": ["svd"]}}})
    mock = make_fake(speed=0, accounts=config)
    with ServerThread(mock.app) as url, httpx.Client(base_url=url, headers={"x-api-key": API_KEY}) as http:
        yield mock, http, OpenAPI.from_dict(openapi_document(url))


def exchanges(mock: SegmindMock, http: httpx.Client) -> list[httpx.Response]:
    """Every kind of answer the fake gives on the documented operations."""
    answers = [http.post("/v2/svd", json=SVD)]
    submitted = answers[0].json()
    answers += [http.get(submitted["status_url"]), http.get(submitted["response_url"]), http.get(submitted["poll_url"])]
    mock.advance(100)
    answers += [http.get(submitted["status_url"]), http.get(submitted["response_url"]), http.get(submitted["poll_url"])]
    mock.add_scenario(outcome="failed", times=1)
    failed = http.post("/v2/svd", json=SVD).json()
    mock.advance(100)
    answers += [http.get(failed["status_url"]), http.get(failed["response_url"])]
    mock.clock.virtual = True  # v1 calls answer at once
    answers += [http.post("/v1/svd", json=SVD), http.post("/v1/svd", json={**SVD, "base64": True})]
    mock.add_scenario(outcome="failed", times=1)
    answers.append(http.post("/v1/motionctrl-svd", json=dict(MODELS["motionctrl-svd"].example)))
    answers += [
        http.post("/v2/svd", json={**SVD, "fps": 0}),  # 400
        http.post("/v2/svd", json=SVD, headers={"x-api-key": "SG_ffffffffffffffff"}),  # 401
        http.post("/v2/motionctrl-svd", json={}, headers={"x-api-key": "SG_00000000000000aa"}),  # 403
        http.post("/v2/svd", json=SVD, headers={"x-api-key": "SG_00000000000000aa"}),
        http.post("/v2/svd", json=SVD, headers={"x-api-key": "SG_00000000000000aa"}),  # 406
        http.get(f"/v2/requests/{'0' * 8}-0000-4000-8000-{'0' * 12}/status"),  # 404
        http.post("/v2/svd", content=b"x" * (Settings().max_body_bytes + 1)),  # 413
    ]
    for code in (429, 500, 502, 504):
        mock.add_scenario(outcome="http_error", status=code, times=1)
        answers.append(http.post("/v2/svd", json=SVD))
    mock.add_scenario(outcome="http_error", status=429, times=1, target="status")
    answers.append(http.get(submitted["status_url"]))
    return answers


def test_openapi_core_validates_every_captured_exchange(served: tuple[SegmindMock, httpx.Client, OpenAPI]) -> None:
    mock, http, api = served
    answers = exchanges(mock, http)
    seen = {answer.status_code for answer in answers}
    assert seen == {200, 400, 401, 403, 404, 406, 413, 422, 429, 500, 502, 504}
    assert {answer.headers["content-type"] for answer in answers} >= {"video/mp4", "application/json"}
    for answer in answers:
        request, response = captured(answer)
        api.validate_response(request, response)  # raises, naming what the document does not allow


def test_every_answer_states_its_own_length_once(served: tuple[SegmindMock, httpx.Client, OpenAPI]) -> None:
    mock, http, _ = served
    for answer in exchanges(mock, http):
        assert answer.headers.get_list("content-length") == [str(len(answer.content))], answer.request.url


@pytest.mark.parametrize("form", ["data-uri", "base64"])
def test_openapi_core_accepts_the_inline_images_the_fake_accepts(
    served: tuple[SegmindMock, httpx.Client, OpenAPI], form: str
) -> None:
    mock, http, api = served
    image = png(np.full((64, 64, 3), 200, np.uint8))
    inline = data_uri(image) if form == "data-uri" else base64.b64encode(image).decode()
    mock.clock.virtual = True  # v1 calls answer at once
    answers = [
        http.post("/v2/svd", json={**SVD, "image": inline}),
        http.post("/v2/motionctrl-svd", json={**MOTION, "input_image": inline}),
        http.post("/v1/svd", json={**SVD, "image": inline}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        request, response = captured(answer)
        api.validate_request(request)  # raises, naming what the document does not allow
        api.validate_response(request, response)
    refused = http.post("/v2/svd", json={**SVD, "image": "a cat"})
    assert refused.status_code == 400
    with pytest.raises(OpenAPIError):
        api.validate_request(captured(refused)[0])


def test_every_answer_a_poll_rule_can_force_is_in_the_document(
    served: tuple[SegmindMock, httpx.Client, OpenAPI],
) -> None:
    _, http, api = served
    job = http.post("/v2/svd", json=SVD).json()
    forced = set()
    for code in ERROR_CODES:
        rule = {"target": "status", "outcome": "http_error", "status": code, "times": 1}
        if http.post("/_mock/scenarios", json=rule).status_code != 201:
            continue  # refused, naming what a poll may answer
        answer = http.get(job["status_url"])
        assert answer.status_code == code
        forced.add(code)
        api.validate_response(*captured(answer))
    assert forced == set(POLL_ERROR_CODES)


def test_openapi_core_sees_a_429_without_its_reset_header(served: tuple[SegmindMock, httpx.Client, OpenAPI]) -> None:
    mock, http, api = served
    mock.add_scenario(outcome="http_error", status=429, times=1)
    request, response = captured(http.post("/v2/svd", json=SVD))
    del response.headers["x-rate-limit-reset-at-utc"]
    with pytest.raises(MissingRequiredHeader):
        api.validate_response(request, response)


# The outsider's run: every check, every phase, both modes, the key declared in a config file; kept
# bounded (few examples per operation, a time budget) since it is a whole run of an outside tool.
SCHEMATHESIS = [
    *("run", "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all"),
    *("-n", "5", "--max-time", "60", "-w", "1", "--generation-database", "none"),
]


@pytest.mark.slow
def test_an_outsiders_schemathesis_run_finds_nothing(tmp_path: Path, make_fake: FakeFactory) -> None:
    executable = shutil.which("schemathesis")
    if executable is None:
        pytest.skip("the schemathesis command is not installed")
    (tmp_path / "schemathesis.toml").write_text(f'[headers]\n"x-api-key" = "{API_KEY}"\n')
    # Inline images must decode as images, which the document cannot say: the run is told (the hook).
    hooks = {"SCHEMATHESIS_HOOKS": str(ROOT / "tests" / "schemathesis_hooks.py"), "PYTHONPATH": str(ROOT)}
    # Declared keys: a made-up key is refused with 401, as schemathesis' ignored_auth check expects.
    mock = make_fake(speed=0, virtual=True, accounts=parse_config({"keys": {API_KEY: {}}}))
    url = make_fake.serve(mock)
    done = subprocess.run(
        [executable, *SCHEMATHESIS, f"{url}/openapi.json"],
        cwd=tmp_path,
        env={**os.environ, **hooks},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    assert "No issues found" in out or " passed" in out, out[-3000:]
    assert "FAILURES" not in out

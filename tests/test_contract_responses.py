"""The response shapes and the OpenAPI document: the fake's bodies meet them, and the document is valid."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from contracts import MODELS
from contracts import responses as shapes
from contracts.openapi import RESULT_OPERATION, STATUS_OPERATION, openapi_document, request_schema
from contracts.strategies import invalid_payloads, valid_payloads
from mock_server import SegmindMock, defaults
from tests.support import examples


def conforms(schema: dict[str, Any], body: Any) -> None:
    assert shapes.problems(schema, body) == [], body


@pytest.mark.parametrize("spec", list(MODELS.values()), ids=lambda spec: spec.slug)
@pytest.mark.parametrize("base64", [False, True])
def test_the_fakes_bodies_meet_the_shapes_through_a_whole_job(
    http: httpx.Client, mock: SegmindMock, spec, base64: bool
) -> None:
    submitted = http.post(f"/v2/{spec.slug}", json={**spec.example, "base64": base64})
    conforms(shapes.SUBMIT, submitted.json())
    status_url, response_url = submitted.json()["status_url"], submitted.json()["response_url"]
    for state, seconds in (("QUEUED", 0), ("PROCESSING", defaults.QUEUE_SECONDS + 0.5)):
        mock.advance(seconds)
        status, result = http.get(status_url), http.get(response_url)
        assert (status.status_code, status.json()["status"]) == (200, state)
        conforms(shapes.STATUS_BY_STATE[state], status.json())
        conforms(shapes.RESULT_BY_STATE[state], result.json())
        conforms(shapes.STATUS, status.json())
        conforms(shapes.RESULT, result.json())
    mock.advance(spec.latency_seconds)
    status, result = http.get(status_url), http.get(response_url)
    conforms(shapes.STATUS_COMPLETED, status.json())
    conforms(shapes.RESULT_COMPLETED, result.json())


def test_the_failed_body_meets_its_shape_with_422(http: httpx.Client, mock: SegmindMock) -> None:
    mock.add_scenario(outcome="rai_blocked")
    submitted = http.post("/v2/svd", json=MODELS["svd"].example).json()
    mock.advance(1000)
    for url in (submitted["status_url"], submitted["response_url"]):
        answer = http.get(url)
        assert answer.status_code == shapes.FAILED_STATUS
        conforms(shapes.FAILED, answer.json())


@pytest.mark.parametrize("code", sorted(shapes.ERROR_CODES))
def test_each_documented_error_code_uses_the_envelope(http: httpx.Client, mock: SegmindMock, code: int) -> None:
    mock.add_scenario(outcome="http_error", status=code)
    answer = http.post("/v2/svd", json=MODELS["svd"].example)
    assert answer.status_code == code
    conforms(shapes.ERROR, answer.json())


def test_refusals_use_the_envelope(http: httpx.Client) -> None:
    for answer in (
        http.post("/v2/svd", json={"fps": 7}),
        http.post("/v2/svd", json={"image": "http://["}),  # once a 500: urlsplit raised
        http.post("/v2/svd", json=MODELS["svd"].example, headers={"x-api-key": ""}),
        http.get("/v2/requests/5b0c3a52-7a53-4f5e-9a0e-1f2d3c4b5a69/status"),
    ):
        assert answer.status_code in (400, 401, 404)
        conforms(shapes.ERROR, answer.json())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status_url": "/v2/requests/x/status"}, 'status_url: "/v2/requests/x/status" is not an absolute URL'),
        ({"request_id": "job-1"}, 'request_id: "job-1" is not a uuid'),
        ({"status": "ACCEPTED"}, 'status: "ACCEPTED" is not one of "QUEUED"'),
        ({"response_url": None}, "response_url: expected string, got null"),
    ],
)
def test_problems_say_what_breaks_the_shape(http: httpx.Client, change: dict[str, Any], problem: str) -> None:
    body = {**http.post("/v2/svd", json=MODELS["svd"].example).json(), **change}
    assert shapes.problems(shapes.SUBMIT, body) == [problem]
    assert shapes.problems(shapes.ERROR, {"message": "x"}) == ["missing required key 'error'"]


def test_the_served_document_is_valid_openapi_3_1(http: httpx.Client) -> None:
    # Asked at another host than SEGMIND (the document's default server URL), so it must name the one asked.
    document = http.get("http://fake.test/openapi.json").json()
    validate(document)
    assert document == openapi_document("http://fake.test")
    assert document["components"]["securitySchemes"]["apiKey"] == {
        **document["components"]["securitySchemes"]["apiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }


def test_the_submit_response_links_to_status_and_result() -> None:
    document = openapi_document()
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    for spec in MODELS.values():
        submit = document["paths"][f"/v2/{spec.slug}"]["post"]
        links = submit["responses"]["200"]["links"]
        targets = {link["operationId"] for link in links.values()}
        assert {STATUS_OPERATION, RESULT_OPERATION} <= targets <= operations
        assert all(link["parameters"] == {"request_id": "$response.body#/request_id"} for link in links.values())
        # The documented codes, and 413 for a body over the server's limit.
        assert set(submit["responses"]) == {"200", "413", *map(str, shapes.SUBMIT_ERROR_CODES)}
        assert f"/v1/{spec.slug}" in document["paths"]  # the sync endpoint too
    status = document["paths"]["/v2/requests/{request_id}/status"]["get"]
    assert set(status["responses"]) == {"200", "422", *map(str, shapes.POLL_ERROR_CODES)}


@pytest.mark.parametrize("spec", list(MODELS.values()), ids=lambda spec: spec.slug)
def test_the_documented_example_meets_the_request_schema(spec) -> None:
    jsonschema.Draft202012Validator(request_schema(spec)).validate(dict(spec.example))


@settings(max_examples=examples(150), deadline=None)
@given(st.data())
def test_the_request_schemas_agree_with_the_validator(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(list(MODELS.values())))
    checker = jsonschema.Draft202012Validator(request_schema(spec))
    assert checker.is_valid(data.draw(valid_payloads(spec)))
    payload, broken = data.draw(invalid_payloads(spec))
    assert not checker.is_valid(payload), broken

"""Every documented parameter rule, checked over HTTP; the cases derive from the spec in contracts/."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from contracts import MODELS, Param
from tests.support_video import png


def cases(keep=lambda param: True) -> list:
    """(model spec, parameter) pairs of both models, for the parameters `keep` selects."""
    return [
        pytest.param(spec, param, id=f"{spec.slug}.{param.name}")
        for spec in MODELS.values()
        for param in spec.params
        if keep(param)
    ]


def post(http: httpx.Client, model: str, payload: dict) -> httpx.Response:
    return http.post(f"/v2/{model}", json=payload)


def assert_refused(response: httpx.Response, param: Param) -> None:
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert param.name in message
    assert param.allowed() in message


@pytest.mark.parametrize("spec", MODELS.values(), ids=lambda spec: spec.slug)
def test_documented_example_is_accepted_verbatim(http: httpx.Client, spec) -> None:
    assert post(http, spec.slug, dict(spec.example)).status_code == 200


@pytest.mark.parametrize(("spec", "param"), cases(lambda param: param.minimum is not None))
def test_values_just_outside_the_documented_range_are_refused(http: httpx.Client, spec, param: Param) -> None:
    step = 1 if param.type == "integer" else 0.001
    for value in (param.minimum - step, param.maximum + step):
        assert_refused(post(http, spec.slug, {**spec.example, param.name: value}), param)


@pytest.mark.parametrize(("spec", "param"), cases(lambda param: param.minimum is not None))
def test_range_ends_are_accepted(http: httpx.Client, spec, param: Param) -> None:
    for value in (param.minimum, param.maximum):
        value = int(value) if param.type == "integer" else value
        assert post(http, spec.slug, {**spec.example, param.name: value}).status_code == 200


@pytest.mark.parametrize(("spec", "param"), cases(lambda param: param.enum is not None))
def test_every_allowed_value_is_accepted_and_others_refused(http: httpx.Client, spec, param: Param) -> None:
    for value in param.enum:
        assert post(http, spec.slug, {**spec.example, param.name: value}).status_code == 200
    outside = "not-a-documented-value" if param.type == "string" else max(param.enum) + 1
    assert_refused(post(http, spec.slug, {**spec.example, param.name: outside}), param)


WRONG_TYPES = {
    "integer": ["7", 7.5, True, None, [7]],
    "number": ["0.5", True, None, {"value": 1}],
    "boolean": [1, 0, "true", None],
    "string": [7, True, None],
    "image": [7, "", "not base64 !", "ftp://example.com/a.png", "data:image/png,raw"],
}


@pytest.mark.parametrize(("spec", "param"), cases())
def test_values_of_the_wrong_type_are_refused(http: httpx.Client, spec, param: Param) -> None:
    for value in WRONG_TYPES[param.type]:
        if param.numeric_string and value == "7":
            continue
        assert_refused(post(http, spec.slug, {**spec.example, param.name: value}), param)


@pytest.mark.parametrize(("spec", "param"), cases(lambda param: param.required))
def test_missing_required_parameter_is_refused(http: httpx.Client, spec, param: Param) -> None:
    payload = {key: value for key, value in spec.example.items() if key != param.name}
    response = post(http, spec.slug, payload)
    assert response.status_code == 400
    assert f"{param.name} is required" in response.json()["error"]


def test_frames_is_accepted_as_integer_or_numeric_string(http: httpx.Client) -> None:
    spec = MODELS["svd"]
    for frames in (25, "25", 14, "14"):
        assert post(http, "svd", {**spec.example, "frames": frames}).status_code == 200
    assert_refused(post(http, "svd", {**spec.example, "frames": "20"}), spec.param("frames"))


def test_integral_float_counts_as_integer_and_json_true_does_not(http: httpx.Client) -> None:
    spec = MODELS["svd"]
    assert post(http, "svd", {**spec.example, "fps": 7.0}).status_code == 200
    assert_refused(post(http, "svd", {**spec.example, "fps": True}), spec.param("fps"))


@pytest.mark.parametrize("spec", MODELS.values(), ids=lambda spec: spec.slug)
def test_image_may_be_base64_or_a_data_uri(http: httpx.Client, spec) -> None:
    data = base64.b64encode(png(np.zeros((8, 8, 3), dtype=np.uint8))).decode()
    image = spec.image_param.name
    for value in (data, f"data:image/png;base64,{data}"):
        assert post(http, spec.slug, {**spec.example, image: value}).status_code == 200


def test_every_broken_rule_is_named_in_one_message(http: httpx.Client) -> None:
    response = post(http, "svd", {"image": MODELS["svd"].example["image"], "fps": 0, "motion": 500})
    message = response.json()["error"]
    assert "fps must be" in message and "motion must be" in message


def test_undocumented_parameters_are_ignored(http: httpx.Client) -> None:
    assert post(http, "svd", {**MODELS["svd"].example, "webhook": "https://example.com"}).status_code == 200


def test_defaults_fill_in_what_the_client_left_out(http: httpx.Client, mock) -> None:
    spec = MODELS["svd"]
    request_id = post(http, "svd", {"image": spec.example["image"]}).json()["request_id"]
    params = mock.job(request_id)["params"]
    for param in spec.params:
        if param.name not in ("image", "seed"):
            assert params[param.name] == param.default
    assert 0 <= params["seed"] <= spec.param("seed").maximum  # -1 asks for a random seed

"""schemathesis over the fake's OpenAPI document for two models known only from files (issue 25).

As tests/test_contract_schemathesis.py does for the shipped two: positive and negative phases on
the submit and sync operations of a video and an image model of the tests' own.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation.modes import GenerationMode

from contracts import MODELS
from contracts.model_file import load_models
from mock_server import SegmindMock, Settings
from tests.support import API_KEY
from tests.support_schemathesis import map_body

FILES = Path(__file__).parent / "model_files"
HEADERS = {"x-api-key": API_KEY}
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
MODELS_LOADED = load_models([FILES / "clip-maker.toml", FILES / "still-image.toml"], MODELS)
# Virtual and frozen: a v1 call jumps to its job's end at once.
FAKE = SegmindMock(Settings(speed=0, virtual=True, models=MODELS_LOADED))


def _load(mode: GenerationMode) -> schemathesis.schemas.BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", FAKE.app).include(path_regex="clip-maker|still-image")
    schema.config.generation.update(modes=[mode])
    schema.hook(map_body)  # inline images that decode as images, as for the shipped models
    return schema


positive = _load(GenerationMode.POSITIVE)
negative = _load(GenerationMode.NEGATIVE)


@positive.parametrize()
@SETTINGS
def test_positive_phase(case: schemathesis.Case) -> None:
    response = case.call_and_validate(headers=HEADERS)
    assert response.status_code == 200, response.text


@negative.parametrize()
@SETTINGS
def test_negative_phase(case: schemathesis.Case) -> None:
    response = case.call_and_validate(headers=HEADERS)
    if response.status_code >= 400:
        assert response.status_code < 500 and response.json()["error"], response.text

"""schemathesis over the fake's own OpenAPI document, in-process: positive, negative and stateful phases.

Beside the checks named here, schemathesis runs its defaults on every call: no server error, only
documented status codes and content types, bodies matching the documented response schemas,
valid data accepted and invalid data refused, and (ignored_auth) a made-up or missing key refused:
the fake accepts only Segmind-shaped keys.

The fake serves the shipped models and two of the tests' own from model files (a video and an
image model, docs/models.md): every phase covers the operations their files give rise to as well.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from contracts import MODELS
from contracts.model_file import load_models
from mock_server import SegmindMock, Settings
from tests.support import API_KEY
from tests.support_schemathesis import map_body

HEADERS = {"x-api-key": API_KEY}
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))

FILES = Path(__file__).parent / "model_files"
MODEL_FILES = [FILES / "clip-maker.toml", FILES / "still-image.toml"]
# Frozen clock: linked polls see QUEUED jobs. Virtual: a v1 call jumps to its job's end at once.
FAKE = SegmindMock(Settings(speed=0, virtual=True, models=load_models(MODEL_FILES, MODELS)))


def _load(mode: GenerationMode) -> schemathesis.schemas.BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", FAKE.app)
    schema.config.generation.update(modes=[mode])
    schema.hook(map_body)  # inline images that decode as images: the one rule the document cannot state
    return schema


positive = _load(GenerationMode.POSITIVE)
negative = _load(GenerationMode.NEGATIVE)


@positive.parametrize()
@SETTINGS
def test_positive_phase(case: schemathesis.Case) -> None:
    response = case.call_and_validate(headers=HEADERS)
    if case.method == "POST":
        assert response.status_code == 200, response.text


@negative.parametrize()
@SETTINGS
def test_negative_phase(case: schemathesis.Case) -> None:
    response = case.call_and_validate(headers=HEADERS)
    # schemathesis' own check asserts the refusal; every refusal uses the documented envelope,
    # including the ones with no schema of their own (405 for a wrong method).
    if response.status_code >= 400:
        assert response.status_code < 500 and response.json()["error"], response.text


class JobFlow(positive.as_state_machine()):  # type: ignore[misc]
    """Submit, then follow the submit response's links to the status and result operations."""

    linked_steps = 0

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
        return {"headers": HEADERS}

    def validate_response(self, response: schemathesis.Response, case: schemathesis.Case, **kwargs: object) -> None:
        case.validate_response(response)

    def step(self, input: StepInput) -> StepOutput:
        output = super().step(input)
        if input.transition is not None and input.is_applied:
            # A request id taken from an accepted submission must be known to the linked poll.
            assert output.response.status_code == 200, (input.transition.id, output.response.text)
            assert output.response.json()["status"] == "QUEUED"
            type(self).linked_steps += 1
        return output


def test_stateful_phase_follows_links_to_status_and_result() -> None:
    JobFlow.run(settings=settings(SETTINGS, max_examples=15, stateful_step_count=4))
    assert JobFlow.linked_steps > 0

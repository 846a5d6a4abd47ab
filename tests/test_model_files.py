"""Models from files (issue 25): a video and an image model of the tests' own, served, checked and judged.

Through the surfaces users touch: the plugin's `segmind_mock` fixture with its `segmind_models`
marker, the official SDK, HTTP, the contract suite, the strategies, and the command line.
"""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from segmind import SegmindClient

from contracts import MODELS, ModelSpec, PayloadError
from contracts.model_file import load_models, read_model_file
from contracts.strategies import invalid_cases, invalid_payloads, valid_payloads
from contracts.suite import Options, run_suite
from tests.support import API_KEY, examples
from tests.support_fakes import FakeFactory

FILES = Path(__file__).parent / "model_files"
VIDEO = read_model_file(FILES / "clip-maker.toml")
IMAGE = read_model_file(FILES / "still-image.toml")
OURS = pytest.mark.segmind_models("model_files/clip-maker.toml", "model_files/still-image.toml")
LIVE = "https://api.segmind.com"


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def video_facts(data: bytes) -> tuple[int, int, int, int]:
    """Frames, frame rate, width and height of an MP4, decoded."""
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, int(stream.average_rate), stream.width, stream.height


@OURS
def test_the_sdk_runs_a_video_model_known_from_a_file(segmind_mock) -> None:
    client = SegmindClient()  # the fixture set SEGMIND_API_KEY
    job = client.submit_async("clip-maker", **{**VIDEO.example, "duration": 10, "aspect_ratio": "9:16"})
    result = job.wait(timeout=120, interval=1)  # virtual time: the SDK's sleeps move the fake's clock
    assert result["status"] == "COMPLETED"
    assert result["metrics"]["inference_time"] == VIDEO.latency_seconds
    assert result["metrics"]["cost"] == VIDEO.price
    assert result["output"].endswith(".mp4")
    # 10 seconds at the file's fixed 8 fps, in a 9:16 frame of the 16:9 one's pixels.
    assert video_facts(httpx.get(result["output"]).content) == (80, 8, 288, 512)


@OURS
def test_the_sdk_runs_an_image_model_known_from_a_file(segmind_mock) -> None:
    client = SegmindClient()
    result = client.submit_async("still-image", prompt="a lighthouse", width=320, height=200).wait(
        timeout=60, interval=1
    )
    assert result["status"] == "COMPLETED" and result["output"].endswith(".png")
    assert "video" not in result
    answer = httpx.get(result["output"])
    assert answer.headers["content-type"] == "image/png"
    assert png_size(answer.content) == (320, 200)


@OURS
def test_v1_answers_the_output_bytes_and_base64(segmind_mock) -> None:
    headers = {"x-api-key": segmind_mock.api_key}
    picture = httpx.post(f"{LIVE}/v1/still-image", json={"prompt": "a fox", "width": 100}, headers=headers)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert png_size(picture.content) == (100, 384)  # the file's default height
    encoded = httpx.post(f"{LIVE}/v1/still-image", json={"prompt": "a fox", "base64": True}, headers=headers)
    assert png_size(base64.b64decode(encoded.json()["image"])) == (512, 384)
    video = httpx.post(f"{LIVE}/v1/clip-maker", json={**VIDEO.example, "base64": True}, headers=headers)
    assert video_facts(base64.b64decode(video.json()["video"])) == (40, 8, 512, 288)
    raw = httpx.post(f"{LIVE}/v1/clip-maker", json=dict(VIDEO.example), headers=headers)
    assert raw.headers["content-type"] == "video/mp4" and raw.content[4:8] == b"ftyp"


@OURS
@pytest.mark.parametrize("spec", [VIDEO, IMAGE], ids=lambda spec: spec.slug)
def test_each_broken_rule_is_refused_naming_the_parameter(segmind_mock, spec: ModelSpec) -> None:
    cases = invalid_cases(spec)
    assert {broken.rule for _, broken in cases} >= {"type", "required", "minimum", "maximum", "enum"}
    for payload, broken in cases:
        answer = httpx.post(f"{LIVE}/v2/{spec.slug}", json=payload, headers={"x-api-key": segmind_mock.api_key})
        assert answer.status_code == 400, (payload, answer.text)
        message = answer.json()["error"]
        assert message.startswith(broken.param) and spec.param(broken.param).allowed() in message


@OURS
def test_unknown_slugs_are_still_404_naming_every_served_model(segmind_mock) -> None:
    answer = httpx.post(f"{LIVE}/v2/kling-v2", json={}, headers={"x-api-key": segmind_mock.api_key})
    assert answer.status_code == 404
    assert answer.json()["error"].endswith("this fake serves svd, motionctrl-svd, clip-maker, still-image")


@OURS
def test_the_served_openapi_document_describes_them_and_is_valid(segmind_mock) -> None:
    document = httpx.get(f"{LIVE}/openapi.json").json()
    validate(document)
    assert {"/v2/clip-maker", "/v1/clip-maker", "/v2/still-image", "/v1/still-image"} <= set(document["paths"])
    sync = document["paths"]["/v1/still-image"]["post"]["responses"]["200"]["content"]
    assert set(sync) == {"image/png", "application/json"}
    schema = document["components"]["schemas"]["ClipMakerRequest"]
    assert schema["required"] == ["prompt", "image"]
    assert schema["properties"]["duration"]["enum"] == [5, 10]


def test_two_fakes_in_one_process_serve_different_models(make_fake: FakeFactory) -> None:
    ours = make_fake(models=load_models([FILES / "still-image.toml"], MODELS))
    plain = make_fake()
    for mock, status in ((ours, 200), (plain, 404)):
        assert make_fake.http(mock).post("/v2/still-image", json={"prompt": "x"}).status_code == status


@pytest.mark.parametrize("spec", [VIDEO, IMAGE], ids=lambda spec: spec.slug)
@settings(max_examples=examples(40))
@given(data=st.data())
def test_strategies_generate_valid_and_each_rule_broken_payloads(spec: ModelSpec, data: st.DataObject) -> None:
    spec.validate(data.draw(valid_payloads(spec)))
    payload, broken = data.draw(invalid_payloads(spec))
    with pytest.raises(PayloadError) as refused:
        spec.validate(payload)
    assert [(error.param, error.rule) for error in refused.value.errors] == [(broken.param, broken.rule)]


def test_the_contract_suite_finds_the_fake_conforming_for_them(make_fake: FakeFactory) -> None:
    registry = load_models([FILES / "clip-maker.toml", FILES / "still-image.toml"], MODELS)
    mock = make_fake(speed=0, models=registry)
    options = Options(max_jobs=5, invalid_examples=5, models=("clip-maker", "still-image"), registry=registry)
    report = run_suite("http://fake.test", API_KEY, options, transport=make_fake.transport(mock))
    assert report.ok, report.render()
    assert report.checked["output-video"] >= 2 and report.checked["invalid-refused"] > 20


def test_without_the_video_extra_a_model_known_from_a_file_gets_its_kinds_prepared_file() -> None:
    script = f"""
import sys
sys.modules["av"] = None  # as in the light install
import httpx
from contracts import MODELS
from contracts.model_file import load_models
from mock_server import SegmindMock, Settings
from mock_server.transport import PortalTransport
from mock_server.video import fixture_path

models = load_models([{str(FILES / "still-image.toml")!r}, {str(FILES / "clip-maker.toml")!r}], MODELS)
mock = SegmindMock(Settings(speed=0, virtual=True, models=models))
with PortalTransport(mock.app) as transport, httpx.Client(transport=transport, base_url="{LIVE}") as http:
    headers = {{"x-api-key": "{API_KEY}"}}
    picture = http.post("/v1/still-image", json={{"prompt": "x", "width": 100}}, headers=headers)
    assert picture.headers["content-type"] == "image/png", picture.text
    assert picture.content == fixture_path("placeholder.png").read_bytes()
    video = http.post("/v1/clip-maker", json={dict(VIDEO.example)!r}, headers=headers)
    assert video.content == fixture_path("placeholder.mp4").read_bytes()
print("served")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout == "served\n", result.stderr


@pytest.mark.parametrize(
    ("output", "extension", "signature"),
    [("image/jpeg", "jpg", b"\xff\xd8\xff"), ("image/webp", "webp", b"RIFF")],
)
def test_jpeg_and_webp_models_answer_their_type(
    tmp_path: Path, make_fake: FakeFactory, output: str, extension: str, signature: bytes
) -> None:
    pytest.importorskip("av")
    path = tmp_path / "still.toml"
    path.write_text((FILES / "still-image.toml").read_text().replace('"image/png"', f'"{output}"'))
    mock = make_fake(speed=0, virtual=True, models=load_models([path], MODELS))
    http = make_fake.http(mock)
    answer = http.post("/v1/still-image", json={"prompt": "x", "width": 90, "height": 70})
    assert answer.headers["content-type"] == output and answer.content.startswith(signature)
    job = http.post("/v2/still-image", json={"prompt": "x"}).json()
    mock.advance(100)
    result = http.get(f"/v2/requests/{job['request_id']}").json()
    assert result["output"].endswith(f".{extension}")
    assert http.get(result["output"]).headers["content-type"] == output
    assert http.get(result["output"].replace(f".{extension}", ".mp4")).status_code == 404
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(answer.content)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (90, 70)


def test_the_contract_suite_finds_the_fake_conforming_for_a_model_without_base64(
    tmp_path: Path, make_fake: FakeFactory
) -> None:
    # A model page that documents no `base64` parameter (as docs/models.md's example): the suite
    # must not judge the fake on a v1 base64 answer the model never offered.
    text = (FILES / "clip-maker.toml").read_text()
    head, _, rest = text.partition('[[params]]\nname = "base64"')
    path = tmp_path / "no-base64.toml"
    path.write_text(head + rest.partition("\n\n")[2] if rest else text)
    registry = load_models([path], MODELS)
    assert "base64" not in [param.name for param in registry["clip-maker"].params]
    mock = make_fake(speed=0, models=registry)
    options = Options(max_jobs=3, invalid_examples=5, models=("clip-maker",), registry=registry)
    report = run_suite("http://fake.test", API_KEY, options, transport=make_fake.transport(mock))
    assert report.ok, report.render()
    assert "sync-base64" not in report.checked and "base64" in report.left_out["sync-base64"]
    assert report.checked["sync-video"] == 2  # the one plain v1 call: its status, then its bytes

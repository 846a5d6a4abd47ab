"""Model files on the command line and in the plugin: one-line refusals, --model-file, the config, from-page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contracts import MODELS
from contracts.model_file import load_models, read_model_file
from mock_server import SegmindMock, Settings
from mock_server.cli import main
from mock_server.serve_command import load_accounts_and_models
from mock_server.server import ServerThread
from tests.support_pytest import run

FILES = Path(__file__).parent / "model_files"
# Copies of Segmind's pages of the two shipped models (shared/api-reference/).
PAGES = FILES / "pages"
SMALL = """slug = "tiny"
latency_seconds = 3.0

[[params]]
name = "prompt"
type = "string"
required = true

[[params]]
name = "steps"
type = "integer"
minimum = 1
maximum = 50
default = 20
"""

# Each mistake the issue names, its line in the file, the key named, and what the line says is allowed.
MALFORMED = {
    "unknown key": (
        SMALL.replace("latency_seconds", "colour = 1\nlatency_seconds"),
        2,
        "colour",
        "unknown key; allowed: slug",
    ),
    "wrong type": (
        SMALL.replace("3.0", '"fast"'),
        2,
        "latency_seconds",
        'a number, 0 or more and below 1e+09 (got "fast")',
    ),
    "a number past its bound": (
        SMALL.replace("3.0", "3.0\nprice = 1e9"),
        3,
        "price",
        "a number, 0 or more and below 1e+09 (got 1000000000",
    ),
    "minimum above maximum": (
        SMALL.replace("minimum = 1", "minimum = 60"),
        12,
        "params.steps.minimum",
        "at most the maximum, 50 (got 60)",
    ),
    "enum value of the wrong type": (
        SMALL + 'enum = [10, "20"]\n',
        15,
        "params.steps.enum",
        'values of the parameter\'s type, integer (got "20")',
    ),
    "default outside its range": (
        SMALL.replace("default = 20", "default = 99"),
        14,
        "params.steps.default",
        "an integer from 1 to 50 (got 99)",
    ),
    "duplicate parameter": (
        SMALL.replace('name = "steps"', 'name = "prompt"'),
        10,
        "params[1].name",
        'each parameter once (got "prompt")',
    ),
    "unknown parameter key": (
        SMALL.replace("required = true", "mandatory = true"),
        7,
        "params[0].mandatory",
        "unknown key; allowed: name",
    ),
    "unknown type": (
        SMALL.replace('type = "string"', 'type = "text"'),
        6,
        "params.prompt.type",
        "one of string, integer",
    ),
    "steering by no parameter": (
        SMALL.replace("latency_seconds = 3.0", 'latency_seconds = 3.0\n\n[steer]\nfps = "rate"'),
        5,
        "steer.fps",
        'the name of an integer or number parameter (steps) (got "rate")',
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=str)
def test_a_malformed_file_is_refused_at_start_up_in_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line, key, allowed = MALFORMED[case]
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    assert main(["serve", "--port", "0", "--model-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"segmind-mock: {path}:{line}: {key}: {allowed}"), err


def test_a_slug_loaded_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "svd-again.toml"
    path.write_text(SMALL.replace('"tiny"', '"svd"'))
    assert main(["serve", "--port", "0", "--model-file", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"segmind-mock: {path}:1: slug: a model called 'svd' is already loaded; each slug once\n"
    )


def test_contract_and_verify_refuse_it_too_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(SMALL.replace("default = 20", "default = 99"))
    for command in (["contract", "--api-key", "SG_0123456789abcdef"], ["verify", "--command", "true"]):
        argv = [
            sys.executable,
            "-m",
            "mock_server",
            *command,
            "--base-url",
            "http://127.0.0.1:9",
            "--model-file",
            str(path),
        ]
        result = subprocess.run(argv, capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"segmind-mock {command[0]}: {path}:14: params.steps.default: an integer from 1 to 50 (got 99)"
        ]


def test_model_chooses_among_the_loaded_models(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["contract", "--base-url", "http://127.0.0.1:9", "--api-key", "SG_0123456789abcdef", "--model", "tiny"]
    assert main(argv) == 2
    assert "--model tiny: not a loaded model; choose from svd, motionctrl-svd" in capsys.readouterr().err


def test_the_config_files_models_list_loads_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.toml").write_text(SMALL)
    config = tmp_path / "fake.toml"
    config.write_text('models = ["models/tiny.toml"]\n[prices]\ntiny = 0.5\n')
    accounts, models = load_accounts_and_models(str(config), [str(FILES / "still-image.toml")])
    assert list(models) == [*MODELS, "tiny", "still-image"]
    assert accounts.prices["tiny"] == 0.5 and accounts.prices["still-image"] == 0.02


@pytest.mark.parametrize("slug", ["svd", "motionctrl-svd"])
def test_from_page_on_the_seed_pages_gives_the_shipped_models(slug: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / f"{slug}.toml"
    assert main(["model", "from-page", str(PAGES / f"{slug}.txt"), "--out", str(out)]) == 0
    written, shipped = read_model_file(out), MODELS[slug]
    # Equal in meaning: what the page says (its summary is the page's, the price is not on it).
    for name in ("slug", "title", "latency_seconds", "output", "params"):
        assert getattr(written, name) == getattr(shipped, name), name
    assert dict(written.example) == dict(shipped.example)
    err = capsys.readouterr().err.splitlines()
    no_price = "could not read price: no `~$` figure on the page; the fake guesses (docs/models.md)"
    assert err[0] == f"segmind-mock model from-page: {no_price}"
    assert err[-1].startswith(f"segmind-mock model from-page: wrote {slug} (")


def test_from_page_on_a_page_edited_to_another_slug(tmp_path: Path, capsys) -> None:
    page = (
        (PAGES / "svd.txt")
        .read_text()
        .replace("/svd", "/svd-xt")
        .replace('submit_async("svd"', 'submit_async("svd-xt"')
    )
    page = page.replace("Stable Video Diffusion Serverless API", "SVD XT Serverless API").replace("~29.63s", "~41.5s")
    (tmp_path / "svd-xt.txt").write_text(page)
    assert main(["model", "from-page", str(tmp_path / "svd-xt.txt")]) == 0
    written = capsys.readouterr().out
    path = tmp_path / "svd-xt.toml"
    path.write_text(written)
    spec = read_model_file(path)
    assert (spec.slug, spec.title, spec.latency_seconds) == ("svd-xt", "SVD XT", 41.5)
    assert spec.params == MODELS["svd"].params
    # And it loads beside the shipped two, as serve would load it.
    _, models = load_accounts_and_models(None, [str(path)])
    assert list(models) == [*MODELS, "svd-xt"]


def test_from_page_says_what_a_thin_page_lacks(tmp_path: Path, capsys) -> None:
    (tmp_path / "thin.txt").write_text("Thin Serverless API\n\nParameters\n\npromptrequired\nstring\n\nWhat to show.\n")
    assert main(["model", "from-page", str(tmp_path / "thin.txt")]) == 0
    err = capsys.readouterr().err
    assert "could not read slug: no `POST https://api.segmind.com/v1/{slug}` line" in err
    assert "could not read example: no `payload = {...}` in the sample code" in err


def test_the_plugins_ini_option_and_marker_load_model_files(pytester: pytest.Pytester) -> None:
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "tiny.toml").write_text(SMALL)
    (pytester.path / "still-image.toml").write_text((FILES / "still-image.toml").read_text())
    pytester.makeini("[pytest]\nsegmind_model_files = models/tiny.toml\n")
    pytester.makepyfile(
        test_models="""
import httpx
import pytest

def post(fake, slug):
    return httpx.post(f"{fake.url}/v2/{slug}", json={"prompt": "x"}, headers={"x-api-key": fake.api_key})

def test_the_ini_files_model_is_served(segmind_mock):
    assert post(segmind_mock, "tiny").status_code == 200
    assert post(segmind_mock, "still-image").status_code == 404

@pytest.mark.segmind_models("still-image.toml")
def test_a_marker_adds_its_own(segmind_mock):
    assert post(segmind_mock, "tiny").status_code == 200
    assert post(segmind_mock, "still-image").status_code == 200

@pytest.mark.segmind_models("still-image.toml")
def test_on_the_shared_server_too(segmind_server):
    assert post(segmind_server, "still-image").status_code == 200
"""
    )
    run(pytester).assert_outcomes(passed=3)


def test_the_plugin_fails_a_test_whose_model_file_is_malformed_in_one_line(pytester: pytest.Pytester) -> None:
    (pytester.path / "tiny.toml").write_text(SMALL.replace("default = 20", "default = 99"))
    pytester.makepyfile(
        test_bad='import pytest\n\n@pytest.mark.segmind_models("tiny.toml")\ndef test_it(segmind_mock):\n    pass\n'
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*segmind-mock: *tiny.toml:14: params.steps.default: an integer from 1 to 50 (got 99)"]
    )


@pytest.mark.slow  # sixteen runs of a command client, each a Python start-up
def test_verify_judges_a_client_on_a_model_from_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(FILES / "still-image.toml")]
    mock = SegmindMock(Settings(speed=0, models=load_models(files, MODELS)))
    client = f"{sys.executable} {Path(__file__).with_name('support_command_client.py')} sdk"
    with ServerThread(mock.app) as url:
        argv = ["verify", "--command", client, "--base-url", url, "--model-file", *files, "--model", "still-image"]
        assert main(argv) == 0, capsys.readouterr()
    assert all(job["model"] == "still-image" for job in mock.jobs)


def test_the_docs_format_example_loads_as_serve_would(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    example = docs.split("## The format", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "kling.toml").write_text(example)
    _, models = load_accounts_and_models(None, [str(tmp_path / "kling.toml")])
    assert list(models) == [*MODELS, "kling-v2"]
    assert dict(models["kling-v2"].example) == {"prompt": "a cat surfing", "image": "https://example.com/cat.png"}

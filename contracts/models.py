"""The two shipped models, read from their model files (`contracts/model_files/`): svd and motionctrl-svd.

Transcribed from Segmind's model pages (`shared/api-reference/`). Validation, the OpenAPI
document, the Hypothesis strategies and the docs all read these specs; nothing else restates them.
A user's models come from their own files (`model_file.load_models`) and travel with the settings
that serve them; `MODELS` is what is served when no file is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from contracts.model_file import read_model_file
from contracts.spec import ModelSpec

SHIPPED_DIR = Path(__file__).resolve().parent / "model_files"
SVD = read_model_file(SHIPPED_DIR / "svd.toml")
MOTIONCTRL_SVD = read_model_file(SHIPPED_DIR / "motionctrl-svd.toml")

# Read-only: two fakes in one process may serve different models, so nobody adds to this one.
MODELS: Mapping[str, ModelSpec] = MappingProxyType({spec.slug: spec for spec in (SVD, MOTIONCTRL_SVD)})
# The models whose 16:9 request is documented: the contract suite checks only these against a target.
DOCUMENTED_WIDE_MODELS = tuple(spec.slug for spec in MODELS.values() if spec.steer.wide_documented)


def spec_of(model: str | ModelSpec) -> ModelSpec:
    """The spec itself, or the shipped model of that slug."""
    return model if isinstance(model, ModelSpec) else MODELS[model]

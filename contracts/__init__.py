"""The documented Segmind video API as an executable contract."""

from contracts.models import MODELS, MOTIONCTRL_SVD, SVD
from contracts.spec import ModelSpec, Param, ParamError, PayloadError

__all__ = ["MODELS", "MOTIONCTRL_SVD", "SVD", "ModelSpec", "Param", "ParamError", "PayloadError"]

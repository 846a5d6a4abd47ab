"""One-pass decoding of a submission body: msgspec structs generated from the parameter specs.

`decode_params` decodes and validates a JSON body in one call and returns exactly what
`ModelSpec.validate(json.loads(body))` returns. It is a fast path only: any body it cannot take
exactly so (a broken rule, a parameter the docs do not name, an integral float such as 7.0 for an
integer, malformed JSON) gives None, and the caller takes the reference path, whose messages
name each broken parameter and what is allowed. So no message depends on msgspec's wording.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from contracts.models import MODELS
from contracts.spec import ModelSpec, Param, ParamError, image_reference_match


def _bounds(param: Param, *, integral: bool) -> msgspec.Meta:
    low, high = param.minimum, param.maximum
    if integral:  # an int compares with a fractional bound as its rounded-inward integer does
        low = None if low is None else math.ceil(low)
        high = None if high is None else math.floor(high)
    return msgspec.Meta(ge=low, le=high)


def field_type(param: Param) -> Any:
    """The msgspec type that accepts what `param.check` accepts, minus the cases left to the reference path."""
    if param.enum is not None:
        values = param.enum + tuple(str(value) for value in param.enum if param.numeric_string)
        return Literal.__getitem__(values)
    if param.type == "integer":
        integer = Annotated[int, _bounds(param, integral=True)]
        return integer | str if param.numeric_string else integer  # the text form is checked after decoding
    if param.type == "number":
        # Both branches: the reference keeps an int an int (0 stays 0, not 0.0).
        return Annotated[int, _bounds(param, integral=True)] | Annotated[float, _bounds(param, integral=False)]
    # An image is a string here and is checked against the contract's pattern after decoding.
    return {"boolean": bool, "string": str, "image": str}[param.type]


def _field(param: Param) -> tuple[str, Any] | tuple[str, Any, Any]:
    # A required parameter has no default in the struct, even where the spec names one.
    if param.required:
        return (param.name, field_type(param))
    return (param.name, field_type(param), param.default)


class ParamsDecoder:
    """Decodes one model's submission body into its checked parameters, or None for the reference path."""

    def __init__(self, spec: ModelSpec) -> None:
        self.fast = all(param.name.isidentifier() and not keyword.iskeyword(param.name) for param in spec.params)
        if not self.fast:
            # A struct's fields are Python names: a model file's "my-param" goes the reference path.
            spec = ModelSpec(spec.slug, spec.title, spec.summary, spec.latency_seconds, ())
        struct = msgspec.defstruct(
            f"{spec.slug.title().replace('-', '')}Params",
            [_field(param) for param in spec.params],
            kw_only=True,  # fields keep the spec's order, required or not
            forbid_unknown_fields=True,  # json.loads checks every value, even of names the docs ignore
        )
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(struct).decode
        self._images = tuple(param.name for param in spec.params if param.type == "image")
        self._texts = tuple((param.name, _text_reader(param)) for param in spec.params if param.numeric_string)

    def decode(self, body: bytes) -> dict[str, Any] | None:
        """Return the checked parameters with defaults filled in, or None if the body needs the reference path."""
        if not self.fast:
            return None
        try:
            params: dict[str, Any] = _asdict(self._decode(body))
        except (msgspec.MsgspecError, ValueError):  # ValueError: a body that is not UTF-8
            return None
        for name in self._images:
            if image_reference_match(params[name]) is None:
                return None
        for name, read in self._texts:
            value = params[name]
            if isinstance(value, str):
                try:
                    params[name] = read(value)
                except ParamError:
                    return None
        return params


def _text_reader(param: Param) -> Callable[[str], Any]:
    """How an integer written as text becomes the integer `param.check` returns, or raises ParamError."""
    if param.enum is not None:
        return {str(value): value for value in param.enum}.__getitem__  # the struct lets only these texts through
    return param.check


_asdict = msgspec.structs.asdict  # called straight: every submission goes through here
DECODERS: dict[str, ParamsDecoder] = {slug: ParamsDecoder(spec) for slug, spec in MODELS.items()}
# The decoder of every spec decoded for, by identity (specs hold dicts: not hashable), the spec kept
# alive beside it so that its id is never reused. Specs are made at start-up only: this stays small.
_BY_SPEC: dict[int, tuple[ModelSpec, ParamsDecoder]] = {
    id(MODELS[slug]): (MODELS[slug], DECODERS[slug]) for slug in MODELS
}


def decoder_of(spec: ModelSpec) -> ParamsDecoder:
    """The one-pass decoder of `spec`, built at its first use."""
    found = _BY_SPEC.get(id(spec))
    if found is None:
        found = _BY_SPEC[id(spec)] = (spec, ParamsDecoder(spec))
    return found[1]


def decode_params(model: str | ModelSpec, body: bytes) -> dict[str, Any] | None:
    """The checked parameters of a body to `model` (a shipped slug or a spec), or None for the reference path."""
    if isinstance(model, str):
        decoder = DECODERS.get(model)
        return None if decoder is None else decoder.decode(body)
    return decoder_of(model).decode(body)

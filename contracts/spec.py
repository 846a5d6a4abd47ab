"""The contract's vocabulary: parameter and model specs, and checking a payload against them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, get_args

ParamType = Literal["string", "integer", "number", "boolean", "image"]
PARAM_TYPES: tuple[ParamType, ...] = get_args(ParamType)
VIDEO_OUTPUT = "video/mp4"
# What a model outputs (a video, or an image of one of the types after it), and how the output
# file's name ends on the fake's output URLs.
EXTENSIONS = {VIDEO_OUTPUT: "mp4", "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
OUTPUTS = tuple(EXTENSIONS)
IMAGE_OUTPUTS = OUTPUTS[1:]

# JSON Schema counts 7.0 as an integer, and schemathesis sends such values in its positive
# phase; the fake accepts integral floats for integer parameters and stores them as ints. The
# strategies rely on it: their wrong types for an integer are non-integral floats only.
INTEGRAL_FLOATS_ARE_INTEGERS = True

# An integer written as text, such as "14" or "-1"; the OpenAPI document repeats it verbatim.
INTEGER_TEXT_PATTERN = r"^-?[0-9]+$"
_INTEGER_TEXT = re.compile(INTEGER_TEXT_PATTERN)
# Integer text longer than this, leading zeros included, is refused as out of range before int()
# reads it (a 64-bit integer has at most 20 characters); the OpenAPI document states it as maxLength.
INTEGER_TEXT_DIGITS = 20
# Integers from this size on are quoted in messages by their number of digits.
SHOWN_INTEGER = 10**INTEGER_TEXT_DIGITS

# What counts as an input image, as one regular expression (the OpenAPI document's pattern too):
# an http(s) URL with a host (a name, an IPv4 or a bracketed IPv6 address), a base64 data: URI, or
# raw base64 (older official samples send that). Base64 must be canonically padded. Inline data must
# also decode as an image, which no pattern can say: the fake answers 400 when it does not. Only
# printable ASCII: `\s` differs between Python and the ECMA regexes of JSON Schema tools.
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
# The host: a name or IPv4 address, or an IPv6 literal in brackets (`http://[2001:db8::1]/cat.png`).
_URL = r"https?://(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:[/?#][!-~]*)?"
IMAGE_PATTERN = rf"^(?:{_URL}|data:[A-Za-z0-9!#$&^_.+/;=-]*;base64,{_BASE64}|{_BASE64})$"
_IMAGE = re.compile(IMAGE_PATTERN)


class ParamError(ValueError):
    """One parameter broke one documented rule."""

    def __init__(self, param: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.rule = rule
        self.message = message


class PayloadError(ValueError):
    """A payload broke one or more documented rules; the message names every one."""

    def __init__(self, errors: list[ParamError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class Param:
    """One documented request parameter: its type, default, range or allowed values."""

    name: str
    type: ParamType
    description: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    # The docs' own sample sends this integer as a string ("14"), so the string form is accepted.
    numeric_string: bool = False

    def allowed(self) -> str:
        """Say in words which values are allowed, for error messages and docs."""
        if self.enum is not None:
            kind = "an integer" if self.type == "integer" else "a string"
            return f"{kind}, one of {', '.join(show_value(value) for value in self.enum)}"
        if self.type == "image":
            return "an http(s) URL, a data: URI or base64-encoded image data"
        kinds = {"integer": "an integer", "number": "a number", "boolean": "a boolean (true or false)"}
        text = kinds.get(self.type, "a string")
        if self.minimum is not None and self.maximum is not None:
            text += f" from {show_value(self.minimum)} to {show_value(self.maximum)}"
        return text

    def check(self, value: Any) -> Any:
        """Return the value in its canonical type, or raise ParamError naming the rule it breaks."""
        checked: Any = _CHECKERS[self.type](self, value)
        if self.enum is not None and checked not in self.enum:
            raise self._error("enum", value)
        if self.minimum is not None and checked < self.minimum:
            raise self._error("minimum", value)
        if self.maximum is not None and checked > self.maximum:
            raise self._error("maximum", value)
        return checked

    def _error(self, rule: str, value: Any) -> ParamError:
        return ParamError(self.name, rule, f"{self.name} must be {self.allowed()} (got {show_value(value)})")


@dataclass(frozen=True)
class Steering:
    """Which parameters steer a model's output file: its frames, rate, size and motion (a model file's `[steer]`).

    Each field names a parameter, or is None when no parameter steers it (a fixed count where the
    type allows one). `model_file.py` fills in what a file leaves out (docs/models.md).
    """

    # Frames of video: a parameter, or a fixed count; None: `duration` seconds at the frame rate.
    frames: str | int | None = None
    # Frames a second: a parameter, or a fixed rate.
    fps: str | int = 8
    # Seconds of video, when no parameter gives the frame count.
    duration: str | None = None
    # Pixels, when parameters give them.
    width: str | None = None
    height: str | None = None
    # A parameter whose values are shapes written "W:H" ("16:9").
    aspect: str | None = None
    # Parameter values that ask for a 16:9 frame, and whether the model's docs say so (else the fake's choice).
    wide: Mapping[str, Any] = field(default_factory=dict)
    wide_documented: bool = False
    # A parameter whose value, over its maximum, scales a seeded drift of the picture.
    drift: str | None = None
    # Named camera moves ("Pan Left", "Zoom In", "CW"...), their speed, and a hand-held shake.
    camera: str | None = None
    camera_speed: str | None = None
    shake: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One documented model: its slug, latency, price, output and parameters."""

    slug: str
    title: str
    summary: str
    latency_seconds: float
    params: tuple[Param, ...]
    # The request body of the docs' own sample, verbatim.
    example: Mapping[str, Any] = field(default_factory=dict)
    # Credits a completed job costs.
    price: float = 0.0
    # The output file's media type: VIDEO_OUTPUT or one of IMAGE_OUTPUTS.
    output: str = VIDEO_OUTPUT
    steer: Steering = field(default_factory=Steering)

    @property
    def extension(self) -> str:
        """How the output file's name ends: mp4, png, jpg or webp."""
        return EXTENSIONS[self.output]

    @property
    def is_video(self) -> bool:
        """Tell whether the model outputs a video (else an image)."""
        return self.output == VIDEO_OUTPUT

    def wants_wide(self, params: Mapping[str, Any]) -> bool:
        """Tell whether checked `params` (defaults filled in) ask for a 16:9 frame."""
        wide = self.steer.wide
        return bool(wide) and all(params[name] == value for name, value in wide.items())

    def wide_request_text(self) -> str:
        """The parameters that ask for a 16:9 frame, as words: `resize_method crop_to_16_9`."""
        return ", ".join(
            f"{name} {value if isinstance(value, str) else json.dumps(value)}"
            for name, value in self.steer.wide.items()
        )

    def param(self, name: str) -> Param:
        """Return the parameter called `name`."""
        return next(param for param in self.params if param.name == name)

    @cached_property  # read on every submission
    def image_param(self) -> Param | None:
        """The parameter that carries the input image, None for a model that takes none."""
        return next((param for param in self.params if param.type == "image"), None)

    @cached_property
    def image_name(self) -> str | None:
        """The name of the parameter that carries the input image, None for a model that takes none."""
        return None if self.image_param is None else self.image_param.name

    def validate(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Return the payload checked, in canonical types and with defaults filled in.

        Parameters the docs do not name are ignored, as most JSON APIs do. Raises PayloadError
        naming every broken rule.
        """
        params: dict[str, Any] = {}
        errors: list[ParamError] = []
        for param in self.params:
            if param.name not in payload:
                if param.required:
                    message = f"{param.name} is required: {param.allowed()}"
                    errors.append(ParamError(param.name, "required", message))
                params[param.name] = param.default
                continue
            try:
                params[param.name] = param.check(payload[param.name])
            except ParamError as error:
                errors.append(error)
        if errors:
            raise PayloadError(errors)
        return params


def show_value(value: Any) -> str:
    """A JSON value as a message quotes it: strings quoted and shortened, containers by kind."""
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and not -SHOWN_INTEGER < value < SHOWN_INTEGER:
        # repr() of 4,300+ digits raises, and a message quoting thousands of digits helps no one.
        digits = math.floor(math.log10(abs(value))) + 1
        digits -= abs(value) < 10 ** (digits - 1)  # log10 of 99...9 rounds up to a whole number
        return f"{'-' if value < 0 else ''}an integer of {digits} digits"
    return repr(value)


def _check_integer(param: Param, value: Any) -> int:
    if isinstance(value, bool):
        raise param._error("type", value)
    if isinstance(value, int):
        return value
    if INTEGRAL_FLOATS_ARE_INTEGERS and isinstance(value, float) and value.is_integer():
        return int(value)
    if param.numeric_string and isinstance(value, str) and is_integer_text(value):
        if len(value) > INTEGER_TEXT_DIGITS:
            # Leading zeros included: the text, not its value, is what is limited (int() of 4,300+
            # digits raises). Longer than any 64-bit integer: refuse it as too large.
            rule = "enum" if param.enum is not None else "minimum" if value.startswith("-") else "maximum"
            raise param._error(rule, value)
        return int(value)
    raise param._error("type", value)


def is_number(value: Any) -> bool:
    """Tell whether a decoded JSON value is a finite number (JSON `true` is not one), however many digits it has.

    An int is always finite: `math.isfinite` would raise OverflowError on one past float range.
    """
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def number_in(value: Any, low: float, below: float) -> bool:
    """Tell whether `value` is a JSON number with `low <= value < below`: every bounded number the fake reads.

    Compared exactly, so an integer of thousands of digits is refused, never converted to a float first.
    """
    return is_number(value) and low <= value < below


def show_range(low: float, below: float) -> str:
    """Say in words which numbers `number_in(value, low, below)` allows, for messages."""
    return f"{show_value(low)} or more and below {below:g}"


def _check_number(param: Param, value: Any) -> float | int:
    if not is_number(value):
        raise param._error("type", value)
    number: float | int = value
    return number


def _check_boolean(param: Param, value: Any) -> bool:
    if not isinstance(value, bool):
        raise param._error("type", value)
    return value


def _check_string(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise param._error("type", value)
    return value


def _check_image(param: Param, value: Any) -> str:
    if not isinstance(value, str) or not is_image_reference(value):
        raise param._error("type", value)
    return value


def is_integer_text(value: str) -> bool:
    """Tell whether `value` is an integer written as text, such as "14" or "-1"."""
    return _INTEGER_TEXT.fullmatch(value) is not None


# fullmatch: `$` alone would also accept a trailing newline. The bound method itself, for the
# one-pass decoder (a Python call less on every submission).
image_reference_match = _IMAGE.fullmatch


def is_image_reference(value: str) -> bool:
    """Tell whether `value` is an http(s) URL, a base64 data: URI, or raw base64 data."""
    return image_reference_match(value) is not None


_CHECKERS = {
    "integer": _check_integer,
    "number": _check_number,
    "boolean": _check_boolean,
    "string": _check_string,
    "image": _check_image,
}

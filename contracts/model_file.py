"""Model files: one Segmind model a TOML file, read into a `ModelSpec`, or refused in one line.

The format is in docs/models.md. Every mistake is reported as `FILE:LINE: KEY: what is allowed
(got ...)`, so that `serve`, `contract` and `verify` can refuse the file at start-up with one line.
tomllib gives no positions, so the line is found in the text: the key's line in its table (the
`[[params]]` entry it belongs to), else the table's header, else line 1.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from contracts.spec import (
    OUTPUTS,
    PARAM_TYPES,
    ModelSpec,
    Param,
    ParamError,
    ParamType,
    PayloadError,
    Steering,
    show_value,
)

# A latency or a price at or past this is a typo, not a model (the admin API caps seconds at 1e9 too).
AMOUNT_BOUND = 1e9
MODEL_KEYS = ("slug", "title", "summary", "latency_seconds", "price", "output", "example", "params", "steer")
REQUIRED_MODEL_KEYS = ("slug", "params")
PARAM_KEYS = ("name", "type", "description", "required", "default", "minimum", "maximum", "enum", "numeric_string")
STEER_KEYS = (
    "frames",
    "fps",
    "duration",
    "width",
    "height",
    "aspect",
    "wide",
    "wide_documented",
    "drift",
    "camera",
    "camera_speed",
    "shake",
)
# A slug is one path segment of Segmind's URLs: lower case letters, digits, dots, dashes, underscores.
SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
# What the fake assumes of a model whose file does not say (GUESS; docs/models.md).
GUESSED_LATENCY_SECONDS = 30.0
GUESSED_PRICE = 0.1
GUESSED_FRAMES = 14
GUESSED_FPS = 8
# The input image of a made-up example, and of generated payloads: a real, fetchable one (svd's sample's).
GUESSED_IMAGE = "https://segmind-sd-models.s3.amazonaws.com/outputs/svd_input.png"
# The parameters the fake takes to steer the output when a file's `[steer]` does not name them.
FRAMES_NAMES = ("frames", "num_frames")
STEER_NAMES = {"fps": ("fps",), "duration": ("duration",), "width": ("width",), "height": ("height",)}
ASPECT_NAMES = ("aspect_ratio", "aspect")
_ASPECT = re.compile(r"([1-9][0-9]*):([1-9][0-9]*)")


class ModelFileError(ValueError):
    """A model file that cannot be used: the message is one line naming the file, the line and the key."""


@dataclass(frozen=True)
class _Where:
    """Finds the line of a key in a model file's text."""

    path: str
    lines: tuple[str, ...]

    def line(self, key: str, param: int | None = None, table: str | None = None) -> int:
        """The line of `key`: top-level, in the `param`-th `[[params]]` entry (from 0), or in `[table]`."""
        headers = [number for number, line in enumerate(self.lines) if line.lstrip().startswith("[")]
        start = 0
        if param is not None:
            entries = [number for number, line in enumerate(self.lines) if line.strip() == "[[params]]"]
            if param >= len(entries):
                return self.line("params")
            start = entries[param]
        elif table is not None:
            start = next((number for number in headers if self.lines[number].strip() == f"[{table}]"), -1)
            if start < 0:
                return self.line(table)
        end = next((number for number in headers if number > start or (param is None and table is None)), None)
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        for number in range(start, len(self.lines) if end is None else end):
            if pattern.match(self.lines[number]):
                return number + 1
        return start + 1

    def error(
        self, key: str, allowed: str, got: Any = None, *, param: int | None = None, show: bool = True
    ) -> ModelFileError:
        """The one-line refusal of `key`: what is allowed, and what the file has."""
        parts = key.split(".")
        if param is not None:
            line = self.line(parts[-1], param)
        elif parts[0] == "steer" and len(parts) > 1:
            line = self.line(parts[1], table="steer")
        else:
            line = self.line(parts[0])
        shown = f" (got {show_value(got)})" if show else ""
        return ModelFileError(f"{self.path}:{line}: {key}: {allowed}{shown}")


def read_model_file(path: str | Path) -> ModelSpec:
    """Read one model file, or raise ModelFileError with its one-line refusal."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}:1: not UTF-8 text") from None
    return parse_model(text, str(path))


def parse_model(text: str, path: str = "<model>") -> ModelSpec:
    """Build a model spec from a model file's text, or raise ModelFileError naming the file and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = re.search(r"at line (\d+)", str(error))
        raise ModelFileError(f"{path}:{line.group(1) if line else 1}: not valid TOML: {error}") from None
    except ValueError:  # tomllib's int() of an integer of more digits than Python converts
        limit = sys.get_int_max_str_digits()
        raise ModelFileError(f"{path}:1: an integer has more than {limit} digits") from None
    return _model(data, _Where(path, tuple(text.splitlines())))


def load_models(paths: Iterable[str | Path], shipped: Mapping[str, ModelSpec] | None = None) -> dict[str, ModelSpec]:
    """The shipped models and those of `paths`, by slug; raise ModelFileError on a bad file or a slug seen twice."""
    models = dict(shipped or {})
    for path in paths:
        spec = read_model_file(path)
        if spec.slug in models:
            line = _Where(str(path), tuple(Path(path).read_text(encoding="utf-8").splitlines())).line("slug")
            raise ModelFileError(f"{path}:{line}: slug: a model called {spec.slug!r} is already loaded; each slug once")
        models[spec.slug] = spec
    return models


def _model(data: Mapping[str, Any], where: _Where) -> ModelSpec:
    _known(data, MODEL_KEYS, where, "")
    for key in REQUIRED_MODEL_KEYS:
        if key not in data:
            raise where.error(key, "required: every model file says it", show=False)
    slug = data["slug"]
    if not isinstance(slug, str) or SLUG_PATTERN.fullmatch(slug) is None:
        raise where.error("slug", "a path segment: lower case letters, digits, '.', '-' or '_'", slug)
    title = _text(data, "title", slug, where)
    summary = _text(data, "summary", "", where)
    latency = _amount(data, "latency_seconds", GUESSED_LATENCY_SECONDS, where)
    price = _amount(data, "price", GUESSED_PRICE, where)
    output = data.get("output", OUTPUTS[0])
    if output not in OUTPUTS:
        raise where.error("output", f"one of {', '.join(OUTPUTS)}", output)
    entries = data["params"]
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise where.error("params", "an array of tables ([[params]])", entries)
    params = tuple(_param(entry, index, where) for index, entry in enumerate(entries))
    names = [param.name for param in params]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise where.error(f"params[{index}].name", "each parameter once", name, param=index)
    example = data.get("example", {})
    if not isinstance(example, dict):
        raise where.error("example", "a table of parameter values", example)
    for name in example:
        if name not in names:
            raise where.error(f"example.{name}", f"a parameter of the model: {', '.join(names)}", name, show=False)
    if "example" not in data:
        example = {param.name: _sample(param) for param in params if param.required or param.default is not None}
    probe = ModelSpec(slug, title, summary, latency, params, example)
    try:
        probe.validate(example)
    except PayloadError as error:
        first = error.errors[0]
        raise where.error(
            f"example.{first.param}", f"a request the model accepts: {first.message}", show=False
        ) from None
    steer = _steer(data.get("steer", {}), params, where)
    return ModelSpec(slug, title, summary, latency, params, example, price, output, steer)


def _sample(param: Param) -> Any:
    """A parameter's value in the example the fake makes up for a file that gives none: its default, else a guess."""
    if param.default is not None:
        return param.default
    if param.enum:
        return param.enum[0]
    guesses = {"image": GUESSED_IMAGE, "string": "a cat surfing a wave at sunset", "boolean": False}
    if param.type in guesses:
        return guesses[param.type]
    low = param.minimum if param.minimum is not None else param.maximum if param.maximum is not None else 1
    return int(low) if param.type == "integer" else low


def _param(entry: Mapping[str, Any], index: int, where: _Where) -> Param:
    key = f"params[{index}]"
    unknown = sorted(set(entry) - set(PARAM_KEYS))
    if unknown:
        raise where.error(
            f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(PARAM_KEYS)}", show=False, param=index
        )
    for required in ("name", "type"):
        if required not in entry:
            raise where.error(f"{key}.{required}", "required in every parameter", show=False, param=index)
    name, kind = entry["name"], entry["type"]
    if not isinstance(name, str) or not name:
        raise where.error(f"{key}.name", "a non-empty string", name, param=index)
    key = f"params.{name}"
    if kind not in PARAM_TYPES:
        raise where.error(f"{key}.type", f"one of {', '.join(PARAM_TYPES)}", kind, param=index)
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise where.error(f"{key}.description", "a string", description, param=index)
    flags = {}
    for flag in ("required", "numeric_string"):
        flags[flag] = entry.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise where.error(f"{key}.{flag}", "true or false", flags[flag], param=index)
    if flags["numeric_string"] and kind != "integer":
        raise where.error(f"{key}.numeric_string", "only for an integer parameter", show=False, param=index)
    bounds: dict[str, float | None] = {}
    for bound in ("minimum", "maximum"):
        value = entry.get(bound)
        if value is not None and (kind not in ("integer", "number") or not _is_number(value, kind)):
            allowed = f"{'an integer' if kind == 'integer' else 'a number'}" if kind in ("integer", "number") else None
            text = allowed or f"not for a {kind} parameter (integer and number only)"
            raise where.error(f"{key}.{bound}", text, value, param=index)
        bounds[bound] = value
    low, high = bounds["minimum"], bounds["maximum"]
    if low is not None and high is not None and low > high:
        raise where.error(f"{key}.minimum", f"at most the maximum, {show_value(high)}", low, param=index)
    enum = entry.get("enum")
    if enum is not None:
        if kind not in ("integer", "string") or not isinstance(enum, list) or not enum:
            allowed = "a non-empty array, for a string or integer parameter"
            raise where.error(f"{key}.enum", allowed, enum, param=index)
        for value in enum:
            if not (_is_number(value, kind) if kind == "integer" else isinstance(value, str)):
                raise where.error(f"{key}.enum", f"values of the parameter's type, {kind}", value, param=index)
        enum = tuple(enum)
    param = Param(
        name, cast(ParamType, kind), description, None, flags["required"], low, high, enum, flags["numeric_string"]
    )
    if "default" in entry:
        try:
            default = param.check(entry["default"])
        except ParamError:
            raise where.error(f"{key}.default", param.allowed(), entry["default"], param=index) from None
        param = replace(param, default=default)
    return param


def _steer(table: Any, params: tuple[Param, ...], where: _Where) -> Steering:
    if not isinstance(table, dict):
        raise where.error("steer", "a table ([steer])", table)
    _known(table, STEER_KEYS, where, "steer.")
    by_name = {param.name: param for param in params}

    def named(key: str, types: tuple[str, ...], guesses: tuple[str, ...] = ()) -> str | None:
        if key not in table:
            return next((name for name in guesses if name in by_name and by_name[name].type in types), None)
        value = table[key]
        if value not in by_name or by_name[value].type not in types:
            choices = [param.name for param in params if param.type in types]
            kinds = " or ".join(types)
            article = "an" if kinds[0] in "aeiou" else "a"
            allowed = f"the name of {article} {kinds} parameter ({', '.join(choices) or 'none'})"
            raise where.error(f"steer.{key}", allowed, value)
        return cast(str, value)

    def counted(key: str, guesses: tuple[str, ...], guess: int | None) -> str | int | None:
        value = table.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= 1000:
                raise where.error(f"steer.{key}", "a parameter's name or a whole number from 1 to 1000", value)
            return value
        return named(key, ("integer", "number"), guesses) or guess

    frames = counted("frames", FRAMES_NAMES, None)
    duration = named("duration", ("integer", "number"), STEER_NAMES["duration"]) if frames is None else None
    fps = counted("fps", STEER_NAMES["fps"], GUESSED_FPS)
    if frames is None and duration is None:
        frames = GUESSED_FRAMES
    wide = table.get("wide", {})
    if not isinstance(wide, dict):
        raise where.error("steer.wide", "a table of parameter values that ask for a 16:9 frame", wide)
    for name, value in wide.items():
        if name not in by_name:
            raise where.error(f"steer.wide.{name}", f"a parameter of the model: {', '.join(by_name)}", show=False)
        try:
            by_name[name].check(value)
        except ParamError:
            raise where.error(f"steer.wide.{name}", by_name[name].allowed(), value) from None
    documented = table.get("wide_documented", False)
    if not isinstance(documented, bool):
        raise where.error("steer.wide_documented", "true or false", documented)
    aspect = named("aspect", ("string",), ASPECT_NAMES)
    if aspect is not None and "aspect" in table:
        shapes = by_name[aspect].enum or ()
        if shapes and not any(_ASPECT.fullmatch(shape) for shape in shapes):
            raise where.error("steer.aspect", 'a parameter whose values are shapes such as "16:9"', aspect)
    return Steering(
        frames=frames,
        fps=cast("str | int", fps),
        duration=duration,
        width=named("width", ("integer",), STEER_NAMES["width"]),
        height=named("height", ("integer",), STEER_NAMES["height"]),
        aspect=aspect,
        wide=wide,
        wide_documented=documented,
        drift=named("drift", ("integer", "number")),
        camera=named("camera", ("string",)),
        camera_speed=named("camera_speed", ("integer", "number")),
        shake=named("shake", ("integer", "number")),
    )


def aspect_of(text: Any) -> tuple[int, int] | None:
    """The (width, height) shape a value such as "16:9" names, or None."""
    match = _ASPECT.fullmatch(text) if isinstance(text, str) else None
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def _known(table: Mapping[str, Any], allowed: tuple[str, ...], where: _Where, prefix: str) -> None:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise where.error(f"{prefix}{unknown[0]}", f"unknown key; allowed: {', '.join(allowed)}", show=False)


def _text(data: Mapping[str, Any], key: str, default: str, where: _Where) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise where.error(key, "a string", value)
    return value


def _amount(data: Mapping[str, Any], key: str, default: float, where: _Where) -> float:
    value = data.get(key, default)
    if not _is_number(value, "number") or not 0 <= value < AMOUNT_BOUND:
        raise where.error(key, f"a number, 0 or more and below {AMOUNT_BOUND:g}", value)
    return cast(float, value)


def _is_number(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    return isinstance(value, int | float) and value == value and abs(value) != float("inf")

"""`segmind-mock model from-page`: a model file written from the text of a Segmind model page.

The page's form is that of `shared/api-reference/`: the title ("... Serverless API"), a summary,
the latency ("~29.63s"), the sample code with its `payload = {...}`, the endpoint
(`POST https://api.segmind.com/v1/{slug}`), then under "Parameters" each parameter: its name run
into "required" or "optional", its type, a description, "Default: ..." and "Range: A - B" or
"Allowed values :" with the values run together, and "Returns: Video" (or Image). What cannot
be read is left out of the file and said, one line each, so the user can fill it in.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from contracts.model_file import parse_model
from contracts.spec import IMAGE_OUTPUTS, PARAM_TYPES, VIDEO_OUTPUT, ModelSpec

_TITLE_SUFFIX = " Serverless API"
_LATENCY = re.compile(r"^~([0-9]+(?:\.[0-9]+)?)s$")
_PRICE = re.compile(r"~\$([0-9]+(?:\.[0-9]+)?)")
_ENDPOINT = re.compile(r"^POST\s*https?://api\.segmind\.com/v1/([A-Za-z0-9._-]+)\s*$")
_PARAM_HEAD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(required|optional)$")
# The page's types: the contract's own (an image is a string said to be a URI), and "float" for number.
_TYPES: dict[str, str] = {**{kind: kind for kind in PARAM_TYPES if kind != "image"}, "float": "number"}
_DEFAULT = re.compile(r"Default:\s*(.*?)\s*(?=Range:|Allowed values|$)")
_RANGE = re.compile(r"Range:\s*(-?[0-9.]+)\s+-\s+(-?[0-9.]+)")
_CODE_LINE = re.compile(r"^\s*[0-9]+")
# What a page's "Returns:" says, as the model file's output (an image is taken to be PNG: GUESS).
_RETURNS = {"video": VIDEO_OUTPUT, "image": IMAGE_OUTPUTS[0]}


@dataclass
class PageModel:
    """What was read from a page: the model file's text, and what could not be read."""

    text: str
    unread: list[str] = field(default_factory=list)

    def spec(self) -> ModelSpec:
        """The model the written file describes (ModelFileError if the page gave too little)."""
        return parse_model(self.text, "<from-page>")


def from_page(page: str) -> PageModel:
    """Read a model page's text into a model file's text, noting what could not be read."""
    lines = [line.rstrip() for line in page.splitlines()]
    unread: list[str] = []
    top: dict[str, Any] = {}
    slug = next((match.group(1) for line in lines if (match := _ENDPOINT.match(line.strip()))), None)
    if slug is None:
        unread.append('slug: no `POST https://api.segmind.com/v1/{slug}` line; write slug = "..."')
    top["slug"] = slug or "my-model"
    title = next((line.strip() for line in lines if line.strip()), "")
    top["title"] = title.removesuffix(_TITLE_SUFFIX) or top["slug"]
    summary = _summary(lines)
    if summary:
        top["summary"] = summary
    latency = next((match.group(1) for line in lines if (match := _LATENCY.match(line.strip()))), None)
    if latency is None:
        unread.append("latency_seconds: no `~NN.NNs` line; the fake guesses (docs/models.md)")
    else:
        top["latency_seconds"] = float(latency)
    price = next((match.group(1) for line in lines if (match := _PRICE.search(line))), None)
    if price is None:
        unread.append("price: no `~$` figure on the page; the fake guesses (docs/models.md)")
    else:
        top["price"] = float(price)
    returns = next((line.split(":", 1)[1].strip().lower() for line in lines if line.startswith("Returns:")), "")
    if returns in _RETURNS:
        top["output"] = _RETURNS[returns]
    else:
        unread.append(f"output: the page returns {returns or 'nothing said'}; written as {VIDEO_OUTPUT}")
        top["output"] = VIDEO_OUTPUT
    example = _example(lines, unread)
    params = _params(lines, example, unread)
    if example:
        top["example"] = example
    return PageModel(_toml(top, params), unread)


def _summary(lines: list[str]) -> str:
    """The page's first paragraph after the title."""
    paragraphs = [line.strip() for line in lines if line.strip()]
    return paragraphs[1] if len(paragraphs) > 1 and not _LATENCY.match(paragraphs[1]) else ""


def _example(lines: list[str], unread: list[str]) -> dict[str, Any]:
    """The sample's `payload = {...}`, its line numbers taken off, read as a Python literal."""
    code = [_CODE_LINE.sub("", line, count=1) for line in lines if _CODE_LINE.match(line)]
    start = next((index for index, line in enumerate(code) if re.match(r"\s*payload\s*=\s*\{", line)), None)
    if start is None:
        unread.append("example: no `payload = {...}` in the sample code")
        return {}
    end = next((index for index in range(start, len(code)) if code[index].strip() == "}"), None)
    source = "\n".join(code[start : (end if end is not None else start) + 1]).split("=", 1)[1]
    try:
        payload = ast.literal_eval(source.strip())
    except (ValueError, SyntaxError):
        unread.append("example: the sample's payload is not a plain literal")
        return {}
    return dict(payload) if isinstance(payload, dict) else {}


def _params(lines: list[str], example: dict[str, Any], unread: list[str]) -> list[dict[str, Any]]:
    """Each parameter under "Parameters", up to "Response Type"."""
    try:
        start = lines.index("Parameters") + 1
    except ValueError:
        unread.append("params: no `Parameters` section")
        return []
    end = next((index for index in range(start, len(lines)) if lines[index].startswith("Response Type")), len(lines))
    body = [line.strip() for line in lines[start:end]]
    heads = [index for index, line in enumerate(body) if _PARAM_HEAD.match(line)]
    return [
        _param(body[head:next_head], example, unread)
        for head, next_head in zip(heads, [*heads[1:], len(body)], strict=True)
    ]


def _param(block: list[str], example: dict[str, Any], unread: list[str]) -> dict[str, Any]:
    """One parameter's block: head, type, description, default, range or allowed values."""
    head = _PARAM_HEAD.match(block[0])
    assert head is not None  # the blocks start at matching heads
    name, required = head.group(1), head.group(2) == "required"
    rest = [line for line in block[1:] if line]
    kind_text = rest[0] if rest else ""
    kind = _TYPES.get(kind_text.split(" ")[0])
    if kind_text.startswith("string") and ("uri" in kind_text or "image" in name):
        kind = "image"
    if kind is None:
        unread.append(f"params.{name}.type: {kind_text!r} is none of {', '.join(_TYPES)}; written as string")
        kind = "string"
    param: dict[str, Any] = {"name": name, "type": kind}
    if required:
        param["required"] = True
    facts = [line for line in rest[1:] if not line.startswith(("Default:", "Allowed values"))]
    described = [line for line in facts if not _RANGE.search(line)]
    if described:
        param["description"] = described[0]
    details = " ".join(rest[1:])
    default = _DEFAULT.search(details)
    if default and default.group(1).strip():
        value = _value(default.group(1).strip(), kind)
        if value is None:
            unread.append(f"params.{name}.default: cannot read {default.group(1).strip()!r}")
        else:
            param["default"] = value
    bounds = _RANGE.search(details)
    if bounds:
        param["minimum"], param["maximum"] = (_number(bounds.group(index), kind) for index in (1, 2))
    if "Allowed values :" in rest:
        given = rest[rest.index("Allowed values :") + 1] if rest.index("Allowed values :") + 1 < len(rest) else ""
        values = _allowed(given, kind, param.get("default"))
        if values is None:
            unread.append(f"params.{name}.enum: cannot split {given!r} into values")
        else:
            param["enum"] = values
    if kind == "integer" and isinstance(example.get(name), str):
        param["numeric_string"] = True  # the page's own sample sends it as text
    return param


def _value(text: str, kind: str) -> Any:
    """A default as the page writes it: JSON (`"CW"`, `false`, `0.02`), for the parameter's type."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number(text: str, kind: str) -> int | float:
    number = float(text)
    return int(number) if kind == "integer" or number.is_integer() else number


def _allowed(text: str, kind: str, default: Any) -> list[Any] | None:
    """Allowed values run together: `"Pan Up""Pan Down"`; integers (`1425`) split at the default's width."""
    if kind != "integer":
        values = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
        return values or None
    if not text.isdigit() or default is None:
        return None
    width = len(str(default))
    if len(text) % width:
        return None
    values = [int(text[index : index + width]) for index in range(0, len(text), width)]
    return values if default in values else None


def _toml(top: dict[str, Any], params: list[dict[str, Any]]) -> str:
    """The model file's text: top-level keys, then one `[[params]]` table per parameter."""
    out = ["# Written by `segmind-mock model from-page`; the format is in docs/models.md."]
    out += [f"{key} = {_literal(value)}" for key, value in top.items()]
    for param in params:
        out += ["", "[[params]]", *(f"{key} = {_literal(value)}" for key, value in param.items())]
    return "\n".join(out) + "\n"


def _literal(value: Any) -> str:
    """A TOML literal of a JSON-like value (JSON's strings are TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(key)} = {_literal(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)

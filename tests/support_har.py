"""Checking recordings with outside HAR validators: har-schema's JSON schema in Python, npm's har-validator in node."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

# har-schema 2.0.0's files (ISC licence, beside them): the schema npm's har-validator checks with.
SCHEMA_DIR = Path(__file__).parent / "har_schema"
HAR_VALIDATOR = "har-validator@5.1.5"
NO_NODE = "npm's har-validator skipped: node and npm are not on the PATH"
# The node script: validate the HAR on standard input, print the errors, exit 1 if any.
_VALIDATE = (
    "let text='';process.stdin.on('data',d=>text+=d).on('end',()=>require('har-validator').har(JSON.parse(text))"
    ".then(()=>process.exit(0)).catch(e=>{console.log(JSON.stringify(e.errors||String(e)));process.exit(1)}))"
)


@functools.cache
def _validator() -> jsonschema.Draft6Validator:
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry: Registry[Any] = Registry().with_resources(resources)
    root = json.loads((SCHEMA_DIR / "har.json").read_text())
    return jsonschema.Draft6Validator(root, registry=registry)


def schema_errors(har: Any) -> list[str]:
    """What har-schema finds wrong in a decoded HAR file (empty: valid)."""
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in _validator().iter_errors(har)]


def install_har_validator(directory: Path) -> Path:
    """Install npm's har-validator under `directory` and return it; skip the test without node, npm or the registry."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(NO_NODE)
    command = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(directory), HAR_VALIDATOR]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"npm's har-validator skipped: npm could not install it ({error})")
    return directory


def har_validator_errors(modules: Path, har_file: Path) -> str:
    """What npm's har-validator says of a HAR file: empty when it is valid."""
    result = subprocess.run(
        ["node", "-e", _VALIDATE],
        input=har_file.read_bytes(),
        capture_output=True,
        cwd=modules,
        timeout=60,
    )
    return "" if result.returncode == 0 else (result.stdout + result.stderr).decode()

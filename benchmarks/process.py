"""Server processes under test: started on a free loopback port, their CPU time read from /proc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from mock_server import server

ROOT = Path(__file__).resolve().parent.parent
URL_PATTERN = re.compile(r"http://127\.0\.0\.1:\d+")
WORKER_START_SECONDS = 60
IDLE_PROBE_SECONDS = 0.3
IDLE_CPU_SECONDS = 0.03  # CPU used over one probe by all workers together, once they have started


def tree_command(tree: Path) -> list[str]:
    """The command line `segmind-mock` of `tree`'s fake: its modules first on the path, whatever PYTHONPATH says."""
    # The console script is exactly this call; running it through this interpreter with the tree
    # first on the path measures that tree, installed or not (another one a `git archive` of main).
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); from mock_server.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code]


FAKE_COMMAND = [*tree_command(ROOT), "serve"]


@dataclass
class Server:
    """A server process under test."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user + system), from /proc."""
        return _cpu_seconds(self.pid)

    def wait_for_workers(self, workers: int) -> None:
        """Wait until `workers` child processes run and have gone idle, so every one of them accepts.

        A worker that is still importing when the load's connections open gets none of them, and
        the run would measure fewer workers than it says.
        """
        deadline = time.monotonic() + WORKER_START_SECONDS
        children: list[int] = []
        used = -1.0
        while time.monotonic() < deadline:
            children = [int(pid) for pid in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
            now_used = sum(_cpu_seconds(pid) for pid in children)
            if len(children) >= workers and now_used - used < IDLE_CPU_SECONDS:
                return
            used = now_used
            time.sleep(IDLE_PROBE_SECONDS)  # nothing to wait on: idleness shows only over time
        raise RuntimeError(f"{workers} workers were not idle within {WORKER_START_SECONDS} s ({len(children)} ran)")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(command: list[str]) -> Iterator[Server]:
    """Start a server process that prints its URL once it listens; yield it, then stop it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert process.stdout is not None
        match = URL_PATTERN.search(process.stdout.readline())
        if match is None:
            raise RuntimeError(f"{command} printed no URL")
        # The command binds and listens before it prints its URL: it is ready.
        yield Server(match.group(0), process.pid)
    finally:
        process.terminate()
        process.wait(10)


def serve_app(name: str, app: ASGIApp) -> None:
    """Serve `app` on the fake's uvicorn stack on a free loopback port, printing its URL once it listens (`serving`)."""
    sock = server.bind("127.0.0.1", 0)
    print(f"{name}: serving on {server.url_of(sock)}", flush=True)
    uvicorn.Server(server.config(app)).run(sockets=[sock])

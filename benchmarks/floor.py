"""The floor: the fake's own essential parts per request, with none of its checks and no layers between them.

On the fake's uvicorn stack, like `benchmarks/raw.py`, one function per request: a submit decodes
and validates its body with the one-pass decoder, keeps a `Job` in a dict and answers from the
fake's templates; a status poll finds the job and answers from a template; both journal the
exchange as the fake does (`journaling.entry` into a bounded deque). No authentication, accounts,
scenario rules, image policy, routing, error envelope, faults or store protocol. Whatever the fake
spends beyond this is the cost of those (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import time
from collections import deque

from starlette.types import Receive, Scope, Send

from benchmarks.common import answer_help
from benchmarks.process import serve_app
from contracts.decoding import DECODERS
from mock_server.answers import Answer
from mock_server.defaults import JOURNAL_SIZE
from mock_server.jobs import Job, State, new_request_id
from mock_server.journal import Entry
from mock_server.journaling import entry
from mock_server.templates import submit_answer, waiting_answer

BASE = "http://127.0.0.1"
QUEUE_SECONDS = 1e9  # jobs stay QUEUED, as under `serve --speed 0`

_jobs: dict[str, Job] = {}
_journal: deque[Entry] = deque(maxlen=JOURNAL_SIZE)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve `POST /v2/{model}` and `GET /v2/requests/{id}/status`, the fake's way, with nothing around them."""
    if scope["type"] != "http":
        return
    key = next((value for name, value in scope["headers"] if name == b"x-api-key"), b"")
    parts = scope["path"].split("/")
    now = time.time()
    body = b""
    answer: Answer
    if scope["method"] == "POST":
        body = (await receive())["body"]
        spec_slug = parts[2]
        params = DECODERS[spec_slug].decode(body)
        assert params is not None, "the floor serves valid bodies only"
        job = Job(new_request_id(), spec_slug, params, key.decode(), now, QUEUE_SECONDS, 0.0, params["seed"])
        _jobs[job.request_id] = job
        answer = submit_answer(job.request_id, BASE)
    else:
        answer = waiting_answer(_jobs[parts[3]].request_id, State.QUEUED, BASE)
    status, headers, content = answer
    journaled = entry(scope, key, body, status, headers, content)
    journaled.at = now
    _journal.append(journaled)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def main() -> None:
    """Serve the floor on a free loopback port and print its URL."""
    gc.freeze()  # as `segmind-mock serve` does once its app is built
    serve_app("floor", app)


if __name__ == "__main__":
    answer_help(__doc__)
    main()

"""The defaults of what `segmind-mock serve` has a flag for: plain values, in a module importing nothing of the fake.

`Settings`, `ImageSource` and `server.Limits` take their defaults from here, and the command line
shows them in its help without importing the server (`segmind-mock --help` stays quick).
"""

from __future__ import annotations

import os

from contracts.openapi import LIVE_URL

# Simulated seconds per real second: real time.
SPEED = 1.0
# Time a job waits for a worker before PROCESSING (GUESS; the docs give only the model latency).
QUEUE_SECONDS = 2.0
# Largest request body the fake reads; base64 input images make bodies large (GUESS).
MAX_BODY_BYTES = 16 * 1024 * 1024
# Exchanges the journal keeps (`GET /_mock/requests`).
JOURNAL_SIZE = 1000
# A 25-frame video is about 100 kB, so the default cache holds some hundreds of them.
VIDEO_CACHE_BYTES = 64 * 1024 * 1024
# Fetches mostly wait on the network, so many may run at once (GUESS: the fake's own choice).
FETCH_THREADS = 16
# Decoding and rendering hold the CPU (and the GIL between FFmpeg calls): a few per core is enough.
RENDER_THREADS = 8

# Input images: the largest read or fetched, and one deadline for a whole fetch (connect, headers
# and body), however slowly the bytes come.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
# Largest input image decoded, in pixels: 2048x2048 decodes to 12 MiB of RGB. Checked from the
# file's header before decoding, since a 74 kB PNG can declare 4096x4096 (50 MB decoded).
MAX_PIXELS = 2048 * 2048

# How many jobs a store keeps, and as many outputs, whatever their retention: past it the oldest
# go first (counted in `JobsSummary`). A job is about 0.75 KB in memory: 100,000 jobs, and their
# outputs, stay within about 150 MiB (`serve --max-jobs-kept`; docs/robustness.md).
MAX_JOBS_KEPT = 100_000
# Scenario rules kept at once, and the size of each (as JSON): what the admin API lets any caller
# make the fake hold, and match against (`--max-scenarios`, `--max-scenario-bytes`).
MAX_SCENARIOS = 1000
MAX_SCENARIO_BYTES = 16 * 1024

# What one client may hold of the server (`server.Limits`): the request line and headers together;
# seconds from a request's first byte until its body is complete; requests served at once by one worker.
MAX_HEADER_BYTES = 32 * 1024
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_CONCURRENT_REQUESTS = 1000

# The port `segmind-mock serve` listens on.
SERVE_PORT = 8000
# `segmind-mock record`: where it forwards to (the live API), the port it listens on (beside `serve`'s
# 8000), how many paid calls (v2 submissions and v1 calls) one session may forward, and how long an
# answer may take (a v1 call waits for its job: 30-60 s live).
RECORD_UPSTREAM = LIVE_URL
RECORD_PORT = 8001
RECORD_MAX_JOBS = 3
RECORD_TIMEOUT_SECONDS = 300.0

# The store of this process only.
MEMORY = "memory"
# Read at the edges only (`segmind-mock serve`'s default, the pytest plugin's fakes), never by
# `Settings`: lets a whole suite or CI job run on Redis without changing its fixtures.
STORE_VARIABLE = "SEGMIND_MOCK_STORE"


def store_from_environment() -> str:
    """The store `$SEGMIND_MOCK_STORE` names, else memory."""
    return os.environ.get(STORE_VARIABLE) or MEMORY


# Replay (`serve --replay`): a submission gets a recorded flow when its model and every parameter
# match a recorded one ("params"), or its model alone ("model"); docs/recording.md.
REPLAY_MATCHES = ("params", "model")
REPLAY_MATCH = "params"

# The key the fake is called with where a caller has none of its own (the pytest plugin's clients,
# `segmind-mock drift`'s in-process fake); well-formed like a real one (SG_ + 16 hex digits).
FAKE_API_KEY = "SG_0123456789abcdef"

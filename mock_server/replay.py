"""Replay: recorded exchanges served again on the fake's clock, each recorded job as a timeline.

State apart from HTTP (moto's backend): recordings read into flows, submissions matched to them,
and the recorded answer of a replayed job at a simulated time since its submission. `replay_app`
serves it. A job's states come at the simulated times they were first seen since its submission,
whatever the client's poll cadence: a state is taken to begin when the recording first saw it
(a client never sees it earlier than the recorded one did). See docs/recording.md.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from contracts import MODELS, ModelSpec, ParamError, PayloadError
from contracts.openapi import API_KEY_HEADER
from contracts.responses import FINAL_STATES, RESULT_RETENTION_SECONDS
from mock_server import har, wire
from mock_server.defaults import MAX_JOBS_KEPT, REPLAY_MATCH, REPLAY_MATCHES
from mock_server.jobs import Job
from mock_server.scenarios import Outcome, Rule, Target
from mock_server.service import Service

# The roles a client's request starts a flow with.
STARTS = ("submit", "sync")
# The roles of the polls of a recorded job, whose answers make its timeline.
POLLS = ("status", "result")
# Response headers a replay does not copy: they frame the answer, and the server sets them anew.
FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "date", "content-encoding", "server"})
# A job whose recording never saw it end stays waiting past its result retention.
NEVER_ENDS_SECONDS = 2 * RESULT_RETENTION_SECONDS


@dataclass(frozen=True)
class Seen:
    """One recorded answer: when it was seen since its job's submission, the state seen, and the answer."""

    index: int
    since: float
    state: str | None
    status: int
    headers: tuple[tuple[str, str], ...]
    text: str | None
    body: Any
    content: har.Content

    @property
    def whole(self) -> bool:
        """Whether the recorded body is all there: a journal cuts long ones, and says so in `comment`."""
        return isinstance(self.content.comment, msgspec.UnsetType)


@dataclass
class Flow:
    """One recorded request that starts a flow (a submission or a v1 call), and what followed it."""

    file: Path
    role: str
    model: str
    params: Any
    keyed: bool
    answer: Seen
    request_id: str | None
    origin: str
    polls: dict[str, list[Seen]] = field(default_factory=dict)
    output: Seen | None = None
    output_url: str | None = None
    duration: float = 0.0
    _by_state: dict[tuple[str, str], list[Seen]] = field(default_factory=dict, init=False, repr=False)

    def index(self) -> None:
        """Sort the polls by time, and index them by route and state (once every entry is read)."""
        self._by_state.clear()
        for role, items in self.polls.items():
            items.sort(key=lambda item: item.since)
            for item in items:
                if item.state is not None and item.whole:
                    self._by_state.setdefault((role, item.state), []).append(item)

    @property
    def source(self) -> str:
        """Where the flow was recorded, as a message names it: the file and the entry's index."""
        return f"{self.file.name} entry {self.answer.index}"

    @property
    def accepted(self) -> bool:
        """Whether the recorded request was accepted (a job was made), not refused with an error."""
        return self.answer.status < 400 or (self.role == "sync" and self.answer.status == 422)

    def timeline(self) -> tuple[float, float, str | None]:
        """The job's queue and processing seconds and its error (None: it completes), from the states seen."""
        if self.role == "sync":
            return 0.0, self.duration, _error(self.answer) if self.answer.status >= 400 else None
        seen = sorted((item for items in self.polls.values() for item in items), key=lambda item: item.since)
        started = next((item.since for item in seen if item.state not in (None, "QUEUED")), None)
        ended = next((item for item in seen if item.state in FINAL_STATES), None)
        if ended is None:
            start = NEVER_ENDS_SECONDS if started is None else started
            return start, NEVER_ENDS_SECONDS, None
        start = ended.since if started is None else started
        return start, ended.since - start, _error(ended) if ended.state == "FAILED" else None

    def rule(self) -> Rule:
        """The one-job rule that gives a matched submission this flow's timeline and ending."""
        queue, processing, error = self.timeline()
        outcome: Outcome = "completed" if error is None else "failed"
        return Rule(id="replay", outcome=outcome, error=error, queue_seconds=queue, processing_seconds=processing)

    @property
    def output_answer(self) -> Seen | None:
        """The recorded answer that holds the output file: a submission's output fetched, a v1 call's own answer."""
        return self.output if self.role == "submit" else self.answer

    @functools.cached_property
    def output_urls(self) -> list[str]:
        """The output URLs the recorded answers name, longest first: the output fetched, any http(s) `output`."""
        return _output_urls(self)

    def at(self, role: str, since: float, state: str) -> Seen | None:
        """The recorded answer of `role` in `state` at `since` seconds since submission; None if none was seen.

        The last one seen by then, else the first one seen later.
        """
        candidates = self._by_state.get((role, state), ())
        earlier = [item for item in candidates if item.since <= since]
        if earlier:
            return earlier[-1]
        return candidates[0] if candidates else None


@dataclass(frozen=True)
class Recordings:
    """The flows of some recordings, and the recorded 404s of polls of unknown ids, in recorded order."""

    flows: tuple[Flow, ...]
    # By poll route: the recorded 404 of a poll of an unknown id, and the id it named.
    missing: dict[str, tuple[Seen, str]]


def load(paths: Iterable[str | Path]) -> Recordings:
    """Read recordings into flows; raise har.NotARecording for a file that is not one."""
    flows: list[Flow] = []
    missing: dict[str, tuple[Seen, str]] = {}
    for path in paths:
        recorded = load_recording(Path(path), har.load(path))
        flows += recorded.flows
        for role, found in recorded.missing.items():
            missing.setdefault(role, found)
    return Recordings(tuple(flows), missing)


def load_recording(path: Path, recording: har.Har) -> Recordings:
    """The flows of one recording read from `path` (kept bytes are found beside it)."""
    flows: list[Flow] = []
    missing: dict[str, tuple[Seen, str]] = {}
    by_id: dict[str, Flow] = {}
    for index, entry in enumerate(recording.log.entries):
        facts = entry.segmind
        request = entry.request
        seen = _seen(index, entry)
        if facts.role in STARTS:
            flow = Flow(
                file=path,
                role=facts.role,
                model=facts.model or "",
                params=request.json(),
                keyed=request.header(API_KEY_HEADER) is not None,
                answer=seen,
                request_id=facts.request_id,
                origin=_origin(request.url),
                duration=entry.time / 1000,
            )
            flows.append(flow)
            if facts.request_id and facts.role == "submit":
                by_id[facts.request_id] = flow
            continue
        request_id = facts.request_id or _id_in(request.url)
        flow_of = by_id.get(request_id or "")
        if facts.role in POLLS and flow_of is not None:
            flow_of.polls.setdefault(facts.role, []).append(seen)
        elif facts.role in POLLS and request_id and seen.status == 404:  # a poll of an id nobody submitted here
            missing.setdefault(facts.role, (seen, request_id))
        elif facts.role == "output" and request_id is not None:
            flow_of = flow_of or _flow_with_output(flows, request.url)
            if flow_of is not None:
                flow_of.output, flow_of.output_url = seen, request.url
    for flow in by_id.values():
        flow.index()
    return Recordings(tuple(flows), missing)


class Replay:
    """Recorded flows served again: matching submissions to them, and the jobs replaying them (by fresh id).

    `match` is "params" (model and every parameter) or "model"; `strict` refuses what nothing
    matches instead of letting the fake answer. The flows of one request are used in recorded
    order, then again from the first.
    """

    def __init__(
        self,
        recordings: Recordings,
        match: str = REPLAY_MATCH,
        strict: bool = False,
        kept: int = MAX_JOBS_KEPT,
        models: Mapping[str, ModelSpec] = MODELS,
    ) -> None:
        if match not in REPLAY_MATCHES:
            raise ValueError(f"replay match must be one of {', '.join(REPLAY_MATCHES)} (got {match!r})")
        self.recordings = recordings
        # The models served (the shipped two and any from model files): how parameters are read.
        self.models = models
        self.match = match
        self.strict = strict
        self._kept = kept
        self._jobs: OrderedDict[str, Flow] = OrderedDict()
        self._turns: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()
        # The flows by what a request must share with them, in recorded order.
        self._by_key: dict[tuple[Any, ...], list[Flow]] = {}
        for flow in recordings.flows:
            self._by_key.setdefault(self._key(flow.role, flow.model, flow.params, flow.keyed), []).append(flow)

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | Path],
        match: str = REPLAY_MATCH,
        strict: bool = False,
        models: Mapping[str, ModelSpec] = MODELS,
    ) -> Replay:
        """Read recordings and replay them; raise har.NotARecording or ValueError saying what to fix."""
        return cls(load(paths), match, strict, models=models)

    def find(self, role: str, model: str, payload: Any, keyed: bool) -> Flow | None:
        """The recorded flow a new request (`role` submit or sync) gets, or None when none matches."""
        wanted = self._key(role, model, payload, keyed)
        matching = self._by_key.get(wanted)
        if not matching:
            return None
        with self._lock:
            turn = self._turns.get(wanted, 0)
            self._turns[wanted] = turn + 1
        return matching[turn % len(matching)]

    def nearest(self, role: str, model: str, payload: Any) -> str:
        """What a strict replay says of an unmatched request: the nearest recorded one, and how it differs."""
        if not self.recordings.flows:
            return "the recordings hold no submission"
        scored = sorted(self.recordings.flows, key=lambda flow: _distance(flow, role, model, payload))
        flow = scored[0]
        differences = _differences(flow.params, payload)
        said = f"; it differs in {', '.join(differences)}" if differences else ""
        path = "/v1/" if flow.role == "sync" else "/v2/"
        return f"the nearest recorded request is POST {path}{flow.model} ({flow.source}){said}"

    def start(self, request_id: str, flow: Flow) -> None:
        """Remember that the job `request_id` replays `flow` (the oldest forgotten past the cap on jobs kept)."""
        with self._lock:
            self._jobs[request_id] = flow
            while len(self._jobs) > self._kept:
                self._jobs.popitem(last=False)

    def job(self, request_id: str) -> Flow | None:
        """The flow the job `request_id` replays, or None for a job of the fake's own (or none)."""
        return self._jobs.get(request_id)

    def recorded_poll(self, service: Service, request_id: str, api_key: str, role: Target) -> Seen | None:
        """The recorded answer of a replayed job's state now on `role`'s route; None where none was recorded.

        The poll is the service's first: its 401, its 404, a scenario's error are raised as the ApiError.
        """
        flow = self._jobs[request_id]
        job, state, _, _ = service.poll(request_id, api_key, role)
        return flow.at(role, service.clock.now() - job.submitted_at, state.value)

    def missing(self, role: str) -> tuple[Seen, str] | None:
        """The recorded 404 of a poll (`role`) of an unknown id, with the id it named; None if none was recorded."""
        return self.recordings.missing.get(role)

    def reset(self) -> None:
        """Forget the replayed jobs and start every flow's turns afresh."""
        with self._lock:
            self._jobs.clear()
            self._turns.clear()

    def _key(self, role: str, model: str, payload: Any, keyed: bool) -> tuple[Any, ...]:
        if self.match == "model":
            return role, model, keyed
        return role, model, keyed, _canonical(self.models.get(model), payload)


def rewrite(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    """Recorded text with each recorded value replaced by its own: ids, hosts, output URLs."""
    for old, new in pairs:
        if old:
            text = text.replace(old, new)
    return text


def replacements(flow: Flow, request_id: str, base: str, output_url: str) -> list[tuple[str, str]]:
    """What a replayed job's answers change of the recorded ones: its output URLs, then its host, then its id."""
    pairs: list[tuple[str, str]] = []
    for url in flow.output_urls:
        pairs.append((url, output_url))
    pairs.append((flow.origin, base))
    if flow.request_id:
        pairs.append((flow.request_id, request_id))
    return pairs


def answer_headers(seen: Seen, pairs: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The recorded answer's headers as ASGI sends them, without framing ones (the server sets those)."""
    return [
        (name.lower().encode("latin-1"), rewrite(value, pairs).encode("latin-1"))
        for name, value in seen.headers
        if name.lower() not in FRAMING and value != har.REDACTED
    ]


def kept_bytes(flow: Flow) -> bytes | None:
    """The recorded output's bytes kept beside the recording (`_file`), or None when only its facts were."""
    seen = flow.output_answer
    if seen is None or isinstance(seen.content.file, msgspec.UnsetType):
        return None
    try:
        return (flow.file.parent / seen.content.file).read_bytes()
    except OSError:
        return None


def rendered_as_recorded(flow: Flow, job: Job, spec: ModelSpec) -> Job:
    """The job as the fake renders its output: with the frames and fps the recorded video had.

    Only where the model's parameters take them, within their documented ranges; the job as it is
    when the recording has no media facts (recorded without PyAV).
    """
    seen = flow.output_answer
    media = seen.content.media if seen is not None else None
    if not isinstance(media, har.MediaFacts):
        return job
    params = dict(job.params)
    recorded = {"frames": media.frames, "fps": round(media.fps) if media.fps else None}
    for param in spec.params:
        value = recorded.get(param.name)
        if value is None:
            continue
        try:
            params[param.name] = param.check(value)
        except ParamError:
            continue
    return msgspec.structs.replace(job, params=params)


def _seen(index: int, entry: har.Entry) -> Seen:
    facts = entry.segmind
    response = entry.response
    return Seen(
        index=index,
        since=facts.since_submit_seconds or 0.0,
        state=facts.state,
        status=response.status,
        headers=tuple((header.name, header.value) for header in response.headers),
        text=response.body_text(),
        body=response.json(),
        content=response.content,
    )


def _error(seen: Seen) -> str:
    body = seen.body
    message = body.get("error") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else wire.FAILED_DEFAULT_ERROR


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _id_in(url: str) -> str | None:
    found = har.route_of("GET", urlsplit(url).path)
    return None if found is None else found[2]


def _flow_with_output(flows: Sequence[Flow], url: str) -> Flow | None:
    """The flow whose completed result named `url` as its output."""
    for flow in reversed(flows):
        for seen in flow.polls.get("result", ()):
            if seen.text and url in seen.text:
                return flow
    return None


def _output_urls(flow: Flow) -> list[str]:
    """The output URLs a flow's answers name: the output fetched, and any http(s) `output` of a result."""
    urls = {flow.output_url} if flow.output_url else set()
    for seen in flow.polls.get("result", ()):
        body: dict[str, Any] = seen.body if isinstance(seen.body, dict) else {}
        video = body.get("video")
        for value in (body.get("output"), video.get("url") if isinstance(video, dict) else None):
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                urls.add(value)
    return sorted(urls, key=len, reverse=True)


def _canonical(spec: ModelSpec | None, payload: Any) -> Any:
    """A payload as validation reads it (so "14" matches 14, and a default sent matches one left out); else as sent."""
    if spec is not None and isinstance(payload, Mapping):
        try:
            return _frozen(spec.validate(payload))
        except PayloadError:
            pass
    return _frozen(payload)


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(key), _frozen(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def _differences(recorded: Any, payload: Any) -> list[str]:
    if not isinstance(recorded, Mapping) or not isinstance(payload, Mapping):
        return [] if recorded == payload else ["the body"]
    names = sorted(set(recorded) | set(payload))
    return [
        f"{name} ({_show(recorded.get(name))} recorded, {_show(payload.get(name))} sent)"
        for name in names
        if recorded.get(name) != payload.get(name)
    ]


def _show(value: Any) -> str:
    text = "absent" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _distance(flow: Flow, role: str, model: str, payload: Any) -> tuple[int, int, int]:
    return (flow.role != role, flow.model != model, len(_differences(flow.params, payload)))

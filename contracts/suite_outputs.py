"""The contract suite's checks of the product: output videos (fetched and decoded) and the v1 sync call."""

from __future__ import annotations

from typing import Any

import httpx

from contracts import media, responses
from contracts.models import DOCUMENTED_WIDE_MODELS
from contracts.openapi import SYNC_PATH
from contracts.responses import SYNC_HEADERS
from contracts.rules import VIDEO_RULES
from contracts.spec import ModelSpec
from contracts.suite_calls import Calls, Job, Planned, base64_bytes, body_of, headers_text

# Real seconds a v1 call to the fake may take (its stopped clock moves to the job's end at once).
SYNC_TIMEOUT_SECONDS = 60.0


class OutputChecks(Calls):
    """The checks of a job's output and of the v1 calls."""

    def _check_output(self, job: Job, output: str, sent: str, result: httpx.Response) -> None:
        if responses.is_absolute_url(output):
            try:
                # No API key: outputs are public CDN links, and the key is not theirs to see.
                fetched = media.fetch(self.client, output)
            except media.FetchError as error:
                self._expect(False, "output-video", str(error), f"GET {output}", "(no answer)")
                self._unmet(VIDEO_RULES, f"the output of job {job.request_id} could not be fetched: {error}")
                return
            got = f"{fetched.status} {fetched.content_type} ({len(fetched.data)} bytes)"
            spec = self._spec(job.model)
            kind = "video/" if spec.is_video else spec.output
            ok = (
                fetched.status == 200
                and fetched.content_type.startswith(kind)
                and media.is_media(fetched.data, spec.output)
            )
            message = f"the output URL answered {fetched.status} as {fetched.content_type or 'no content type'}"
            self._expect(ok, "output-video", message, f"GET {output}", got)
            if ok:
                self._check_video(job.model, job.payload, fetched.data, f"GET {output} (from {sent})", got)
            else:
                self._unmet(VIDEO_RULES, f"job {job.request_id}'s {message}")
            return
        data = base64_bytes(output)  # with "base64": true the output is the video itself
        ok = data is not None and job.payload.get("base64") is True
        self._expect(ok, "output-video", "output is neither a URL nor base64 video data", sent, result)
        if data is not None:
            self._check_video(job.model, job.payload, data, sent, f"{len(data)} bytes of base64 output")
        else:
            self._unmet(VIDEO_RULES, f"the output of job {job.request_id} is neither a URL nor base64 video data")

    def _check_video(self, model: str, payload: dict[str, Any], data: bytes, sent: str, got: str) -> None:
        """Decode a video and check it against what `payload` asked for (skipped without PyAV, and for an image)."""
        spec = self._spec(model)
        if self.av is None or not spec.is_video:
            return
        try:
            facts = media.decode(self.av, data)
        except media.DecodeError as error:
            self._expect(False, "video-playable", str(error), sent, got)
            self._unmet(VIDEO_RULES, f"a {model} video did not decode: {error}")
            return
        got = f"{got}: {facts.container}, {facts.frames} frames at {facts.fps} fps, {facts.width}x{facts.height}"
        playable = facts.container in media.MP4_FORMATS and facts.frames > 0
        self._expect(playable, "video-playable", f"not a playable MP4 ({facts.container})", sent, got)
        asked = spec.validate(payload)
        if model == "svd":
            message = f"{facts.frames} frames, {asked['frames']} asked"
            self._expect(facts.frames == asked["frames"], "video-frames", message, sent, got)
        if model in DOCUMENTED_WIDE_MODELS and spec.wants_wide(asked):
            message = f"a {facts.width}x{facts.height} frame for {spec.wide_request_text()}"
            self._expect(facts.is_wide(), "video-16-9", message, sent, got)
        fps = spec.steer.fps  # checked where a parameter asks for it; a fixed rate is the fake's own choice
        if isinstance(fps, str):
            self._expect(facts.fps == asked[fps], "video-fps", f"{facts.fps} fps, {asked[fps]} asked", sent, got)

    def _sync_calls(self, planned: list[Planned]) -> None:
        kinds = {plan.kind for plan in planned}
        for name in ("sync-video", "sync-base64", "sync-headers"):
            if name not in kinds and (name != "sync-headers" or not kinds):
                self._unmet([name], f"no such v1 call within --max-jobs {self.options.max_jobs}")
        if not planned:
            return
        self.progress(f"      {len(planned)} v1 calls (POST /v1/{{model}}, paid)")
        for plan in planned:
            self.report.jobs += 1
            response, sent = self._sync_call(plan.model, plan.payload)
            self._expect(
                response.status_code == 200, plan.kind, f"v1 call answered {response.status_code}", sent, response
            )
            if response.status_code != 200:
                self._envelope(response, sent)
                self._unmet(["sync-headers", *VIDEO_RULES], f"the {plan.kind} v1 call answered {response.status_code}")
                continue
            missing = [name for name in SYNC_HEADERS if name not in response.headers]
            self._expect(not missing, "sync-headers", f"missing {', '.join(missing)}", sent, headers_text(response))
            data = self._sync_video(plan.kind, response, sent, self._spec(plan.model))
            if data is not None:
                self._check_video(plan.model, plan.payload, data, sent, f"{response.status_code} {len(data)} bytes")

    def _sync_video(self, kind: str, response: httpx.Response, sent: str, spec: ModelSpec) -> bytes | None:
        """The output bytes a v1 answer carries, once its form (raw or base64 JSON) is checked."""
        content_type = response.headers.get("content-type", "")
        if kind == "sync-video":
            wanted = "video/" if spec.is_video else spec.output
            ok = content_type.startswith(wanted) and media.is_media(response.content, spec.output)
            message = f"answered {content_type or 'no content type'}, {len(response.content)} bytes, not video bytes"
            self._expect(ok, kind, message, sent, response)
            if not ok:
                self._unmet(VIDEO_RULES, f"the {kind} v1 call {message}")
            return response.content if ok else None
        body = body_of(response)
        videos = [data for value in body.values() if (data := base64_bytes(value))] if isinstance(body, dict) else []
        found = next((data for data in videos if media.is_media(data, spec.output)), None)
        ok = content_type.startswith("application/json") and found is not None
        message = f"answered {content_type or 'no content type'} without base64 MP4"
        self._expect(ok, kind, message, sent, response)
        if not ok:
            self._unmet(VIDEO_RULES, f"the {kind} v1 call {message}")
        return found

    def _sync_call(self, model: str, payload: dict[str, Any]) -> tuple[httpx.Response, str]:
        url = self.base + SYNC_PATH.format(model=model)
        if not self.report.fake:
            return self._call("POST", url, payload, timeout=self.options.poll_timeout)
        # On the fake's stopped clock the call moves the clock to its job's end and answers at once:
        # with the fake's admin token where it has one, since that move is the admin's to make.
        return self._call("POST", url, payload, admin=True, timeout=SYNC_TIMEOUT_SECONDS)

"""The fake's own routes under `/_mock/`: its controls over HTTP for clients in any language, and the output files."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.spec import number_in, show_range, show_value
from mock_server import admin_query, api_errors, dashboard, har, ranges
from mock_server.accounts import LARGEST_AMOUNT
from mock_server.admin_token import carries_token, same_token
from mock_server.answers import JSONResponse, error_answer, send_answer
from mock_server.jobs import State
from mock_server.payload import read_json_object
from mock_server.service import Service

# Open without the admin token: liveness, the output files clients download (like a CDN's), and
# the dashboard's own static files (no state in them).
TOKEN_FREE_PATHS = ("/_mock/health", "/_mock/outputs/", "/_mock/static/")
DASHBOARD_PATH = "/_mock/"
# The name a downloaded journal is saved under.
JOURNAL_FILE = "segmind-mock-journal.har"
# How many unknown keys of an admin body its 400 names.
SHOWN_KEYS = 5
TOKEN_NEEDED = (
    "This fake's admin API needs its admin token (printed at start-up, or given by --admin-token): "
    "send the header `Authorization: Bearer <token>`, or open /_mock/?token=<token> in a browser once"
)


class AdminToken:
    """Refuses admin calls without the admin token (401 in the envelope) when the fake has one.

    Accepted as `Authorization: Bearer <token>`, as the `segmind_mock_admin` cookie, or as
    `?token=` on `GET /_mock/` itself, which the dashboard then keeps in that cookie.
    """

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an allowed request on; answer any other with the 401."""
        token = self.service.settings.admin_token
        if token is None or scope["type"] != "http" or _allowed(scope, token):
            await self.app(scope, receive, send)
            return
        headers = {"WWW-Authenticate": 'Bearer realm="segmind-mock admin"'}
        await send_answer(send, error_answer(api_errors.ApiError(401, TOKEN_NEEDED, headers)))


class SameOrigin:
    """Refuses what a web page the developer opens could make a browser send to the admin API (Jupyter's checks).

    A write (any method but GET and HEAD) must come from no page or from the server's own (its
    `Origin`, when sent, names the host the request is for) and carry JSON: 403 and 415 otherwise,
    since a form or `fetch` from another site may POST text without asking first. And while the
    admin API is open (no token) on a loopback socket, the `Host` must be a loopback name or the
    server's own address: a page whose name was rebound to 127.0.0.1 (DNS rebinding) gets 403
    (health, the output files and the dashboard's static files, public, answer any host).
    """

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request from the server's own pages or from no page on; answer any other with 403 or 415."""
        refusal = None if scope["type"] != "http" else self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await send_answer(send, error_answer(api_errors.ApiError(*refusal)))

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and self._checks_host(scope) and not _local_host(host, scope):
            return 403, f"{FOREIGN_HOST} (got Host {show_value(host)})"
        if scope["method"] in ("GET", "HEAD"):
            return None
        origin = headers.get("origin")
        if origin is not None and _netloc(origin) != (host or "").lower():
            return 403, f"{FOREIGN_ORIGIN} (got Origin {show_value(origin)} for Host {show_value(host or '')})"
        content_type = headers.get("content-type")
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if (content_type is not None or has_body) and not _is_json(content_type or ""):
            return 415, f"{NOT_JSON} (got {show_value(content_type) if content_type else 'none'})"
        return None

    def _checks_host(self, scope: Scope) -> bool:
        # Open, and served on a loopback socket: in-process transports and token-guarded servers are
        # not rebindable. What needs no token needs no local host either: outputs are public, like a CDN's links.
        if self.service.settings.admin_token is not None or scope["path"].startswith(TOKEN_FREE_PATHS):
            return False
        server = scope.get("server")
        return server is not None and _loopback_address(str(server[0]))


FOREIGN_HOST = (
    "The admin API answers only requests for this server's own host (localhost, a loopback address, or the "
    "address it listens on): a web page whose name points here may not use it"
)
FOREIGN_ORIGIN = (
    "The admin API takes writes only from its own pages (the dashboard) or from clients that send no Origin: "
    "a web page of another site may not change the fake"
)
NOT_JSON = "The admin API takes JSON: send the body with `Content-Type: application/json`"


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _netloc(url: str) -> str | None:
    """The host and port an Origin names, lower case; None for `null` or anything that is no URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None


def _local_host(host: str, scope: Scope) -> bool:
    """Tell whether a Host header names this machine's loopback, or the address the server listens on."""
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    if name is None:
        return False
    server = scope.get("server")
    own = str(server[0]).lower() if server else None
    return name == "localhost" or name.endswith(".localhost") or name == own or _loopback_address(name)


def _loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed(scope: Scope, token: str) -> bool:
    path: str = scope["path"]
    if path.startswith(TOKEN_FREE_PATHS) or carries_token(scope, token):
        return True
    if path == DASHBOARD_PATH and scope["method"] == "GET":
        query = Request(scope).query_params
        return same_token(query.get("token", ""), token)
    return False


Result = TypeVar("Result")


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _in_store(request: Request, work: Callable[[Service], Result]) -> Result:
    """`work` on the service, then its queued writes sent, where a stalled store cannot hold the event loop."""
    service = _service(request)

    def work_then_send() -> Result:
        result = work(service)
        service.finish(None)
        return result

    return await service.store_calls(work_then_send)


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, _service(request).settings.max_body_bytes)


async def _body_of(request: Request, *fields: str) -> dict[str, Any]:
    """The body as a JSON object of `fields` only; a 400 naming any other key (a typo is never ignored)."""
    body = await _body(request)
    unknown = [key for key in body if key not in fields]
    if unknown:
        keys = "key" if len(unknown) == 1 else "keys"
        # A few, each shortened: the message stays small whatever the body holds.
        shown = ", ".join(show_value(key) for key in unknown[:SHOWN_KEYS])
        more = f" and {len(unknown) - SHOWN_KEYS} more" if len(unknown) > SHOWN_KEYS else ""
        takes = ", ".join(show_value(field) for field in fields)
        message = f"unknown {keys} {shown}{more}: {request.method} {request.url.path} takes {takes}"
        raise api_errors.ApiError(400, message)
    return body


def _seconds(body: dict[str, Any], name: str) -> float:
    value: Any = body.get(name)
    if not number_in(value, 0, LARGEST_AMOUNT):
        raise api_errors.ApiError(
            400, f"{name} must be a number, {show_range(0, LARGEST_AMOUNT)} (got {show_value(value)})"
        )
    return float(value)


async def health(request: Request) -> Response:
    """`GET /_mock/health`: liveness, the clock, the retained jobs by state and the next end, the serving process."""
    return JSONResponse(await _in_store(request, _health))


def _health(service: Service) -> dict[str, Any]:
    # Token-free, so anyone may call it in a loop: counts kept by the store, never a walk over the jobs.
    summary = service.summary()
    # `worker` tells the processes of `serve --workers N` apart (a client's keep-alive connection stays on one).
    return {
        "status": "ok",
        "jobs": summary.jobs,
        "jobs_by_state": {
            State.QUEUED.value: summary.queued,
            State.PROCESSING.value: summary.processing,
            State.COMPLETED.value: summary.completed,
            State.FAILED.value: summary.failed,
        },
        "next_job_end": summary.next_end,
        # Jobs and outputs dropped before their retention ended, to stay within --max-jobs-kept.
        "jobs_evicted": summary.jobs_evicted,
        "outputs_evicted": summary.outputs_evicted,
        **service.clock_view(),
        "worker": os.getpid(),
        # Exchanges this worker could not journal while the store was unavailable.
        "journal_dropped": service.journal_dropped,
        # The models served (the shipped two and any model files), by slug.
        "models": list(service.settings.models),
    }


async def reset(request: Request) -> Response:
    """`POST /_mock/reset`: forget jobs, journal and scenarios; the clock returns to the time of day."""
    await _in_store(request, Service.reset)
    return JSONResponse({"status": "reset"})


async def clock(request: Request) -> Response:
    """`GET /_mock/clock` shows the clock; `POST` with `{"speed": S}` changes its speed."""
    speed = _seconds(await _body_of(request, "speed"), "speed") if request.method == "POST" else None

    def view(service: Service) -> dict[str, Any]:
        if speed is not None:
            service.set_speed(speed)
        return service.clock_view()

    return JSONResponse(await _in_store(request, view))


async def advance(request: Request) -> Response:
    """`POST /_mock/clock/advance` with `{"seconds": N}`: move simulated time forward."""
    seconds = _seconds(await _body_of(request, "seconds"), "seconds")

    def advanced(service: Service) -> dict[str, Any]:
        service.advance(seconds)
        return service.clock_view()

    return JSONResponse(await _in_store(request, advanced))


async def requests(request: Request) -> Response:
    """`GET /_mock/requests`: the journal, oldest first, filtered and paged by the query; `DELETE` empties it."""
    page = admin_query.page_of(request.query_params)
    passes = admin_query.journal_filter(request.query_params)
    clear = request.method == "DELETE"

    def journal(service: Service) -> list[dict[str, Any]]:
        if clear:
            service.clear_journal()
        return service.requests()

    entries = [entry for entry in await _in_store(request, journal) if passes(entry)]
    return JSONResponse(page.of(entries), headers=admin_query.total_header(len(entries)))


async def journal_har(request: Request) -> Response:
    """`GET /_mock/journal.har`: the journal as a HAR recording to download, times simulated (docs/recording.md)."""
    base = str(request.base_url)
    recording = await _in_store(request, lambda service: service.journal_recording(base))
    try:
        data = har.dumps(recording)
    except har.SecretFound as refused:
        raise api_errors.ApiError(422, f"{refused}: the journal is not exported while it holds one") from None
    headers = {"content-disposition": f'attachment; filename="{JOURNAL_FILE}"'}
    return Response(data, 200, headers, media_type="application/json")


async def jobs(request: Request) -> Response:
    """`GET /_mock/jobs`: the retained jobs with their derived state, oldest first, filtered by state and paged."""
    page = admin_query.page_of(request.query_params)
    wanted = request.query_params.get("state")
    if wanted is not None and wanted not in State.__members__:
        raise api_errors.ApiError(400, f"state must be one of {', '.join(State.__members__)} (got {wanted!r})")

    state = None if wanted is None else State(wanted)
    shown, total = await _in_store(request, lambda service: service.job_views(state, page.of))
    return JSONResponse(shown, headers=admin_query.total_header(total))


async def job(request: Request) -> Response:
    """`GET /_mock/jobs/{id}`: one retained job."""
    request_id = request.path_params["request_id"]
    view = await _in_store(request, lambda service: service.job_view(request_id))
    if view is None:
        raise api_errors.not_found(request_id)
    return JSONResponse(view)


async def scenarios(request: Request) -> Response:
    """`GET /_mock/scenarios` lists rules, `POST` adds one, `DELETE` removes them all."""
    if request.method == "POST":
        data = await _body(request)
        try:
            rule = await _in_store(request, lambda service: service.add_scenario(data))
        except ValueError as error:
            raise api_errors.ApiError(400, f"Invalid scenario: {error}") from None
        return JSONResponse(rule.to_dict(), 201)
    clear = request.method == "DELETE"

    def listed(service: Service) -> list[dict[str, Any]]:
        if clear:
            service.clear_scenarios()
        return service.scenarios()

    return JSONResponse(await _in_store(request, listed))


async def scenario(request: Request) -> Response:
    """`DELETE /_mock/scenarios/{id}`: remove one rule."""
    rule_id = request.path_params["rule_id"]
    if not await _in_store(request, lambda service: service.remove_scenario(rule_id)):
        raise api_errors.ApiError(404, f"Scenario {rule_id} not found")
    return Response(status_code=204)


async def accounts(request: Request) -> Response:
    """`GET /_mock/accounts`: every known key with its credits, balance, allowed models and rate use."""
    return JSONResponse(await _in_store(request, Service.account_view))


async def credits(request: Request) -> Response:
    """`POST /_mock/accounts/{key}/credits` with `{"add": N}`: top a declared key up (or drain it, N < 0)."""
    add: Any = (await _body_of(request, "add")).get("add")
    if not number_in(add, -LARGEST_AMOUNT, LARGEST_AMOUNT) or add == -LARGEST_AMOUNT:
        raise api_errors.ApiError(
            400,
            f"add must be a number of credits above -{LARGEST_AMOUNT:g} and below {LARGEST_AMOUNT:g}, "
            f'e.g. {{"add": 10}} (got {show_value(add)})',
        )
    key = request.path_params["key"]
    return JSONResponse(await _in_store(request, lambda service: service.top_up(key, float(add))))


async def output(request: Request) -> Response:
    """`GET`/`HEAD /_mock/outputs/{id}.mp4` (.png, .jpg, .webp): a job's output, public like a CDN link, with ranges."""
    request_id = request.path_params["request_id"]
    job = await _in_store(request, lambda service: service.output(request_id))
    spec = _service(request).spec_of(job)
    if request.path_params["extension"] != spec.extension:
        raise api_errors.ApiError(404, f"Output {request_id}.{request.path_params['extension']} not found")
    return ranges.ranged_response(request, await _service(request).video(job), spec.output)


ROUTES = [
    Route("/_mock/outputs/{request_id}.{extension}", output, methods=["GET"]),
    Route("/_mock/health", health, methods=["GET"]),
    Route("/_mock/reset", reset, methods=["POST"]),
    Route("/_mock/clock", clock, methods=["GET", "POST"]),
    Route("/_mock/clock/advance", advance, methods=["POST"]),
    Route("/_mock/requests", requests, methods=["GET", "DELETE"]),
    Route("/_mock/journal.har", journal_har, methods=["GET"]),
    Route("/_mock/jobs", jobs, methods=["GET"]),
    Route("/_mock/jobs/{request_id}", job, methods=["GET"]),
    Route("/_mock/scenarios", scenarios, methods=["GET", "POST", "DELETE"]),
    Route("/_mock/scenarios/{rule_id}", scenario, methods=["DELETE"]),
    Route("/_mock/accounts", accounts, methods=["GET"]),
    Route("/_mock/accounts/{key}/credits", credits, methods=["POST"]),
    *dashboard.ROUTES,
]

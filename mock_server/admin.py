"""The fake's own routes under `/_mock/`: its controls over HTTP for clients in any language, and the output files."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.responses import VIDEO_CONTENT_TYPE
from contracts.spec import is_number
from mock_server import admin_query, dashboard, media, wire
from mock_server.accounts import LARGEST_AMOUNT
from mock_server.jobs import State
from mock_server.payload import read_json_object
from mock_server.responses import JSONResponse
from mock_server.service import Service

# Open without the admin token: liveness, the output files clients download (like a CDN's), and
# the dashboard's own static files (no state in them).
TOKEN_FREE_PATHS = ("/_mock/health", "/_mock/outputs/", "/_mock/static/")
DASHBOARD_PATH = "/_mock/"
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
        await JSONResponse(wire.error_body(TOKEN_NEEDED), 401, headers)(scope, receive, send)


def _allowed(scope: Scope, token: str) -> bool:
    path: str = scope["path"]
    if path.startswith(TOKEN_FREE_PATHS):
        return True
    for name, raw in scope["headers"]:
        value = raw.decode("latin-1")
        if name == b"authorization":
            scheme, _, credential = value.partition(" ")
            if scheme.lower() == "bearer" and _same(credential.strip(), token):
                return True
        elif name == b"cookie" and _same(cookie_parser(value).get(dashboard.ADMIN_COOKIE, ""), token):
            return True
    if path == DASHBOARD_PATH and scope["method"] == "GET":
        query = Request(scope).query_params
        return _same(query.get("token", ""), token)
    return False


def _same(given: str, token: str) -> bool:
    # In constant time: how long a refusal takes says nothing about how much of the token matched.
    return hmac.compare_digest(given.encode(), token.encode())


Result = TypeVar("Result")


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _in_store(request: Request, work: Callable[[Service], Result]) -> Result:
    """`work` on the service, then its queued writes sent, where a stalled store cannot hold the event loop."""
    service = _service(request)

    def work_then_send() -> Result:
        result = work(service)
        service.flush()
        return result

    return await service.store_calls(work_then_send)


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, _service(request).settings.max_body_bytes)


def _seconds(body: dict[str, Any], name: str) -> float:
    value: Any = body.get(name)
    if not is_number(value) or not 0 <= value < LARGEST_AMOUNT:
        raise wire.ApiError(400, f"{name} must be a number, 0 or more (got {value!r})")
    return float(value)


def _clock_view(service: Service) -> dict[str, Any]:
    clock = service.clock
    return {"now": clock.now(), "speed": clock.speed, "virtual": clock.virtual}


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
        **_clock_view(service),
        "worker": os.getpid(),
        # Exchanges this worker could not journal while the store was unavailable.
        "journal_dropped": service.journal_dropped,
    }


async def reset(request: Request) -> Response:
    """`POST /_mock/reset`: forget jobs, journal and scenarios; the clock returns to the time of day."""
    await _in_store(request, Service.reset)
    return JSONResponse({"status": "reset"})


async def clock(request: Request) -> Response:
    """`GET /_mock/clock` shows the clock; `POST` with `{"speed": S}` changes its speed."""
    speed = _seconds(await _body(request), "speed") if request.method == "POST" else None

    def view(service: Service) -> dict[str, Any]:
        if speed is not None:
            service.clock.set_speed(speed)
        return _clock_view(service)

    return JSONResponse(await _in_store(request, view))


async def advance(request: Request) -> Response:
    """`POST /_mock/clock/advance` with `{"seconds": N}`: move simulated time forward."""
    seconds = _seconds(await _body(request), "seconds")

    def advanced(service: Service) -> dict[str, Any]:
        service.clock.advance(seconds)
        return _clock_view(service)

    return JSONResponse(await _in_store(request, advanced))


async def requests(request: Request) -> Response:
    """`GET /_mock/requests`: the journal, oldest first, filtered and paged by the query; `DELETE` empties it."""
    page = admin_query.page_of(request.query_params)
    passes = admin_query.journal_filter(request.query_params)
    clear = request.method == "DELETE"

    def journal(service: Service) -> list[dict[str, Any]]:
        if clear:
            service.journal.clear()
        return service.requests()

    entries = [entry for entry in await _in_store(request, journal) if passes(entry)]
    return JSONResponse(page.of(entries), headers=admin_query.total_header(len(entries)))


async def jobs(request: Request) -> Response:
    """`GET /_mock/jobs`: the retained jobs with their derived state, oldest first, filtered by state and paged."""
    page = admin_query.page_of(request.query_params)
    wanted = request.query_params.get("state")
    if wanted is not None and wanted not in State.__members__:
        raise wire.ApiError(400, f"state must be one of {', '.join(State.__members__)} (got {wanted!r})")

    def listed(service: Service) -> tuple[list[dict[str, Any]], int]:
        now = service.clock.now()
        found = [job for job in service.retained(now) if wanted is None or job.state_at(now).value == wanted]
        return [service.describe(job, now) for job in page.of(found)], len(found)

    shown, total = await _in_store(request, listed)
    return JSONResponse(shown, headers=admin_query.total_header(total))


async def job(request: Request) -> Response:
    """`GET /_mock/jobs/{id}`: one retained job."""
    request_id = request.path_params["request_id"]
    view = await _in_store(request, lambda service: service.job_view(request_id))
    if view is None:
        raise wire.not_found(request_id)
    return JSONResponse(view)


async def scenarios(request: Request) -> Response:
    """`GET /_mock/scenarios` lists rules, `POST` adds one, `DELETE` removes them all."""
    if request.method == "POST":
        data = await _body(request)
        try:
            rule = await _in_store(request, lambda service: service.add_scenario(data))
        except ValueError as error:
            raise wire.ApiError(400, f"Invalid scenario: {error}") from None
        return JSONResponse(rule.to_dict(), 201)
    clear = request.method == "DELETE"

    def listed(service: Service) -> list[dict[str, Any]]:
        if clear:
            service.rules.clear()
        return [rule.to_dict() for rule in service.rules.rules()]

    return JSONResponse(await _in_store(request, listed))


async def scenario(request: Request) -> Response:
    """`DELETE /_mock/scenarios/{id}`: remove one rule."""
    rule_id = request.path_params["rule_id"]
    if not await _in_store(request, lambda service: service.rules.remove(rule_id)):
        raise wire.ApiError(404, f"Scenario {rule_id} not found")
    return Response(status_code=204)


async def accounts(request: Request) -> Response:
    """`GET /_mock/accounts`: every known key with its credits, balance, allowed models and rate use."""
    return JSONResponse(await _in_store(request, lambda service: service.accounts.view(service.clock.now())))


async def credits(request: Request) -> Response:
    """`POST /_mock/accounts/{key}/credits` with `{"add": N}`: top a declared key up (or drain it, N < 0)."""
    add: Any = (await _body(request)).get("add")
    if not is_number(add) or not abs(add) < LARGEST_AMOUNT:
        raise wire.ApiError(400, f'add must be a number of credits, e.g. {{"add": 10}} (got {add!r})')
    key = request.path_params["key"]
    return JSONResponse(
        await _in_store(request, lambda service: service.accounts.top_up(key, float(add), service.clock.now()))
    )


async def output(request: Request) -> Response:
    """`GET`/`HEAD /_mock/outputs/{id}.mp4`: a completed job's video, public like a CDN link, with ranges."""
    request_id = request.path_params["request_id"]
    job = await _in_store(request, lambda service: service.output(request_id))
    return media.ranged_response(request, await _service(request).video(job), VIDEO_CONTENT_TYPE)


ROUTES = [
    Route("/_mock/outputs/{request_id}.mp4", output, methods=["GET"]),
    Route("/_mock/health", health, methods=["GET"]),
    Route("/_mock/reset", reset, methods=["POST"]),
    Route("/_mock/clock", clock, methods=["GET", "POST"]),
    Route("/_mock/clock/advance", advance, methods=["POST"]),
    Route("/_mock/requests", requests, methods=["GET", "DELETE"]),
    Route("/_mock/jobs", jobs, methods=["GET"]),
    Route("/_mock/jobs/{request_id}", job, methods=["GET"]),
    Route("/_mock/scenarios", scenarios, methods=["GET", "POST", "DELETE"]),
    Route("/_mock/scenarios/{rule_id}", scenario, methods=["DELETE"]),
    Route("/_mock/accounts", accounts, methods=["GET"]),
    Route("/_mock/accounts/{key}/credits", credits, methods=["POST"]),
    *dashboard.ROUTES,
]

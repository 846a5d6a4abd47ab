"""The dashboard at `/_mock/`: one page and its static files; the page reads and drives the admin API.

A browser (`Accept: text/html`) gets the page; any other client gets the 404 it always got. The
page is plain HTML, CSS and JavaScript shipped in the package (mock_server/static/): no build step,
nothing fetched from elsewhere, so it works offline. See docs/dashboard.md.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mock_server import api_errors
from mock_server.admin_token import ADMIN_COOKIE

STATIC_DIR = Path(__file__).with_name("static")
# The page loads nothing but its own files and the fake's own videos.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}


def wants_html(request: Request) -> bool:
    """Tell whether the client asked for a page (a browser) rather than JSON."""
    return "text/html" in request.headers.get("accept", "")


async def page(request: Request) -> Response:
    """`GET /_mock/` from a browser: the dashboard; `?token=T` goes into an HttpOnly cookie, out of the URL."""
    if not wants_html(request):
        raise api_errors.no_route(request.method, request.url.path)
    token = request.query_params.get("token")
    if token is not None:
        # Redirected at once, so the token leaves the address bar and the history.
        rest = request.url.remove_query_params("token")
        response: Response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), 303)
        secure = request.url.scheme == "https"
        response.set_cookie(ADMIN_COOKIE, token, path="/_mock/", httponly=True, samesite="strict", secure=secure)
        return response
    return FileResponse(STATIC_DIR / "dashboard.html", headers=PAGE_HEADERS)


ROUTES: list[BaseRoute] = [
    Route("/_mock/", page, methods=["GET"]),
    Mount("/_mock/static", StaticFiles(directory=STATIC_DIR)),
]

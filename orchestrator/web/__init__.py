"""The web UI: a static single-page app (plain ES modules, no build step, nothing
fetched from elsewhere) served beside the HTTP API.

- ``/`` is ``static/index.html``;
- ``/static/<path>`` serves the files of ``static/`` that this package ships, and
  nothing else (a name not in that list, ``..`` included, is a 404). It takes over
  the ``static`` endpoint Quart made for the app (an API folder that does not exist);
- any other GET of a path that is not the API's (``/api/...``), not a file name and
  not found falls back to ``index.html``, so a client-side route can be reloaded.
  Everything else keeps the API's own 404 (the handler registered before this one).

Pages carry a strict Content-Security-Policy: scripts, styles and requests only from
this origin. The page holds no server secret: it works with the session and room
tokens the API hands to whoever created or joined them, kept in the browser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from quart import Quart, Response, request
from werkzeug.exceptions import NotFound

__all__ = ["CONTENT_TYPES", "STATIC_DIR", "add_web_routes", "static_files"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def static_files(root: Path = STATIC_DIR) -> dict[str, Path]:
    """The files the UI may serve, by their path under ``root`` (POSIX form)."""
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in CONTENT_TYPES
    }


def _json_not_found() -> Response:
    body = json.dumps({"error": "Not found"}, separators=(",", ":"))
    return Response(body, status=404, content_type="application/json")


def _client_route(path: str) -> bool:
    """A path the single-page app may own: not the API's, not a static file's, and
    not a file name (``/favicon.ico`` is a 404, not the page)."""
    if path == "/api" or path.startswith(("/api/", "/static/")):
        return False
    return "." not in path.rsplit("/", 1)[-1]


def add_web_routes(app: Quart) -> None:
    """Serve the UI from ``app``: ``/``, ``/static/<path>`` and the fallback to the
    page for client-side routes. Call it after the API's routes and error handlers."""
    files = static_files()

    async def send(name: str) -> Response:
        path = files.get(name)
        if path is None:
            return _json_not_found()
        data = await trio.Path(path).read_bytes()
        response = Response(data, content_type=CONTENT_TYPES[path.suffix])
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if path.suffix == ".html":
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.get("/")
    async def web_index() -> Response:
        return await send("index.html")

    async def web_static(filename: str) -> Response:
        return await send(filename)

    # Quart made its own ``/static/<filename>`` rule (for a folder of the API's that
    # does not exist): this package's files are served under it instead.
    if "static" in app.view_functions:
        app.view_functions["static"] = web_static
    app.add_url_rule("/static/<path:filename>", "web_static", web_static, methods=["GET"])

    # The fallback wraps the 404 handler registered so far (the API's JSON one).
    previous = app.error_handler_spec[None][404].get(NotFound)

    @app.errorhandler(404)
    async def web_fallback(exc: Any) -> Any:
        if request.method in ("GET", "HEAD") and _client_route(request.path):
            return await send("index.html")
        if previous is not None:
            return await app.ensure_async(previous)(exc)
        return _json_not_found()

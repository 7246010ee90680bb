"""``GET /openapi.json``: an OpenAPI 3.0 document of every route, generated from the
route table the routes validate with (:mod:`._schemas`): paths, methods, path, query and
header parameters, request bodies, who may call each route and what it answers."""

from __future__ import annotations

import copy
from typing import Any

from ._schemas import KEY, ROUTES, SHORT, TEXT, Route, openapi_path

__all__ = ["SECURITY_SCHEMES", "openapi_document"]

_TOKEN_NOTE = " (or `?token=`)"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "session": {
        "type": "http",
        "scheme": "bearer",
        "description": "The session's token, as handed out when it was made"
        + _TOKEN_NOTE
        + ". For a route with a `{session_id}` it is that session's.",
    },
    "hook": {
        "type": "http",
        "scheme": "bearer",
        "description": "The session's hook token (for its Claude Code hooks)" + _TOKEN_NOTE,
    },
    "room": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Room-Token",
        "description": "The room's token (from its creation or an invite code)" + _TOKEN_NOTE,
    },
    "globalHook": {
        "type": "http",
        "scheme": "bearer",
        "description": "The server's global hook secret (from `GET /api/hooks/setup`)"
        + _TOKEN_NOTE,
    },
    "admin": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's token (the `admin-token` file of the data dir)"
        + _TOKEN_NOTE,
    },
    "git": {
        "type": "http",
        "scheme": "bearer",
        "description": "The session's git token: what the git credential helper in its "
        "sandbox holds; good for the session's GitHub tokens only" + _TOKEN_NOTE,
    },
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "details": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["error"],
}
_CONTENT_TYPES = {
    "json": "application/json",
    "sse": "text/event-stream",
    "text": "text/plain",
    "html": "text/html",
    "static": "*/*",
}
_STANDARD = {
    400: "Bad input",
    401: "A token is missing or wrong",
    404: "Not found",
    413: "The body is too large",
    429: "Too many requests from this client (see `Retry-After`)",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(route: Route, path_params: list[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.endpoint,
        "summary": route.summary,
        "tags": [route.tag],
        "x-rate-limit-class": route.limit,
    }
    if route.description:
        operation["description"] = route.description
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_params
    ]
    for name, schema in route.query.items():
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in route.required_query,
                "schema": copy.deepcopy(schema),
            }
        )
    for name, schema in route.headers.items():
        parameters.append(
            {"name": name, "in": "header", "required": False, "schema": copy.deepcopy(schema)}
        )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": copy.deepcopy(route.body)}},
        }
    # Security: every listed scheme together; none = public.
    operation["security"] = [{name: [] for name in route.auth}] if route.auth else []
    ok = min((s for s in route.responses if s < 300), default=200)
    responses: dict[str, Any] = {
        str(ok): {
            "description": route.responses.get(ok, "OK"),
            "content": {_CONTENT_TYPES[route.content]: {}},
        }
    }
    if route.content == "json":
        responses[str(ok)]["content"]["application/json"] = {"schema": {"type": "object"}}
    codes = dict(_STANDARD)
    if not route.auth:
        codes.pop(401)
    if route.body is None and route.method in ("GET", "DELETE"):
        codes.pop(413)
    codes.update({s: d for s, d in route.responses.items() if s >= 300})
    for status, description in sorted(codes.items()):
        responses[str(status)] = _error(description)
    operation["responses"] = responses
    return operation


def openapi_document() -> dict[str, Any]:
    """The document (no ``servers``: the routes are at the root of wherever it was
    fetched from)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        path, params = openapi_path(route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, params)
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "agent-orchestrator",
            "version": "0.1.0",
            "description": (
                "Sessions of AI coding agents in sandboxes, rooms of agents, gates. "
                f"Strings are limited (names {SHORT} characters, texts {TEXT}, keys {KEY}); "
                "keys a body schema does not list are dropped, and an optional key sent "
                "as null counts as absent. Every route is rate limited per client (429 "
                "with Retry-After); the `create` class (`x-rate-limit-class`: sessions, "
                "rooms, agents, sandboxes) more strictly. Tokens go in the headers of "
                "their security scheme or as `?token=`."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": copy.deepcopy(SECURITY_SCHEMES),
            "schemas": {"Error": copy.deepcopy(ERROR_SCHEMA)},
        },
    }
    return document

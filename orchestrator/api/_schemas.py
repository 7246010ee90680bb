"""Every route of the HTTP API as data: method, path, who may call it, what its body and
query hold, what it answers. One source of truth: the routes validate their input with
these schemas (:func:`validate`) and ``GET /openapi.json`` is generated from them
(:mod:`.openapi`); the rate limiter reads each route's class from here too.

The schemas are plain dicts in the JSON Schema subset of OpenAPI 3.0 that
:func:`validate` implements (so that the document shows exactly what is checked):

- ``type``: ``string``, ``integer``, ``number``, ``boolean``, ``object``, ``array``;
  ``nullable``; ``enum``;
- strings: ``minLength``, ``maxLength`` (characters), ``pattern`` (searched, Python
  ``re``; only patterns that mean the same in ECMA-262), ``format: uuid``;
- numbers: ``minimum``, ``maximum``, ``exclusiveMinimum`` (the 3.0 boolean); always
  finite; an integer is a JSON integer (not ``true``, not ``1.0``);
- objects: ``properties``, ``required``, ``additionalProperties``: absent, a key not in
  ``properties`` is dropped (the reference's plain object schemas); ``true``, kept;
  ``false``, refused; an optional key whose value is ``null`` (and whose schema is not
  ``nullable``) counts as absent;
- arrays: ``items``, ``maxItems``.

A failure is a list of ``"<path>: <message>"`` lines (the reference's ``details``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "KEY",
    "ROUTES",
    "SHORT",
    "TEXT",
    "Route",
    "RouteClass",
    "find_route",
    "openapi_path",
    "validate",
]

TEXT = 10_000  # a description, a prompt, a message
SHORT = 500  # a name
KEY = 1_000  # a credential, a URL
PATH = 4_096  # a file path in a sandbox

Schema = dict[str, Any]
RouteClass = Literal["create", "default"]
#: the security schemes of :mod:`.openapi`: each route lists the ones it needs, all of them
Auth = Literal["session", "hook", "room", "globalHook", "admin", "git"]
Content = Literal["json", "sse", "text", "html", "static"]

_NOT_BLANK = r"\S"  # "required" strings: something other than white space


def text(limit: int, *, required: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", "maxLength": limit}
    if required:
        schema["minLength"] = 1
        schema["pattern"] = _NOT_BLANK
    schema.update(extra)
    return schema


def obj(properties: dict[str, Schema], *required: str, additional: bool | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if additional is not None:
        schema["additionalProperties"] = additional
    return schema


BOOL: Schema = {"type": "boolean"}
UUID: Schema = {"type": "string", "format": "uuid", "maxLength": 36}
AGENT: Schema = {"type": "string", "enum": ["claude", "codex"]}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}

# -- bodies ----------------------------------------------------------------------------

CREATE_SESSION = obj(
    {
        "description": text(TEXT, required=True),
        "name": text(SHORT),
        "freeform": BOOL,
        "askTools": BOOL,
        "agent": AGENT,
        "apiKey": text(KEY),
    },
    "description",
)
ITERATE = obj({"request": text(TEXT, required=True)}, "request")
GATES = ["ask_user_question", "outbound_message_gate", "tool_permission", "infra_config"]
#: a participant's name (what others write after ``@``); blank: a name is made up
PARTICIPANT = r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?\s*$"
_GATE_ANSWER: dict[str, Schema] = {
    "gate": {"type": "string", "enum": GATES},
    "_summary": text(SHORT),
    # ask_user_question
    "toolUseId": text(SHORT),
    "answers": {"type": "object", "additionalProperties": True},
    "answer": text(TEXT),
    "question": text(TEXT),
    # outbound_message_gate
    "gateId": text(SHORT),
    "action": text(SHORT),
    "editedBody": text(TEXT),
    # tool_permission
    "decision": {"type": "string", "enum": ["allow", "deny"]},
    # infra_config
    "mode": text(SHORT),
    "databaseUrl": text(KEY),
    "electricUrl": text(KEY),
    "sourceId": text(KEY),
    "secret": text(KEY),
    "claimId": text(KEY),
    "repoAccount": text(SHORT),
    "repoName": text(SHORT),
    "repoVisibility": text(SHORT),
}
RESPOND = obj(_GATE_ANSWER, "gate")
ROOM_RESPOND = obj({"sessionId": text(SHORT, required=True), **_GATE_ANSWER}, "sessionId", "gate")
LOCAL_SESSION = obj({"description": text(TEXT)})
# Claude Code hook payloads: passed on whole to the hook mapping (its own parser).
_HOOK_FIELDS: dict[str, Schema] = {
    "hook_event_name": text(SHORT),
    "session_id": text(SHORT),
    "cwd": text(KEY),
    "transcript_path": text(KEY),
}
HOOK_EVENT = obj(_HOOK_FIELDS, additional=True)
AUTO_SESSION = obj(
    {**_HOOK_FIELDS, "hook_event_name": {"type": "string", "enum": ["SessionStart"]}},
    "hook_event_name",
    additional=True,
)
GLOBAL_HOOK = obj(
    {**_HOOK_FIELDS, "transcript_path": text(KEY, required=True)},
    "transcript_path",
    additional=True,
)
STREAM_APPEND = ANY_OBJECT
PROVISION = obj({"sessionId": text(SHORT, required=True)}, "sessionId")
CREATE_SANDBOX = obj({"sessionId": UUID, "projectName": text(SHORT)})
_STUCK = {
    **obj(
        {
            "repeat": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            "pingpong": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            "staleRounds": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            "action": {"type": "string", "enum": ["close", "gate"]},
        },
        additional=False,
    ),
    "nullable": True,
}
CREATE_ROOM = obj(
    {
        "name": text(SHORT, required=True),
        "maxRounds": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "maxCostUsd": {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1_000_000,
            "nullable": True,
        },
        "idleTimeoutSeconds": {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 7 * 86_400,
            "nullable": True,
        },
        "autoIterate": BOOL,
        "gateMessages": BOOL,
        "turnTaking": BOOL,
        "stuck": _STUCK,
    },
    "name",
)
CREATE_APP_ROOM = obj(
    {"description": text(TEXT, required=True), "name": text(SHORT), "apiKey": text(KEY)},
    "description",
)
ADD_AGENT = obj(
    {
        "name": text(SHORT, pattern=PARTICIPANT),
        "role": text(SHORT),
        "initialPrompt": text(TEXT),
        "customSkill": text(TEXT),
        "apiKey": text(KEY),
        "agent": AGENT,
    }
)
ADD_SESSION = obj(
    {
        "sessionId": text(SHORT, required=True),
        "name": text(SHORT, required=True, pattern=PARTICIPANT),
        "initialPrompt": text(TEXT),
    },
    "sessionId",
    "name",
)
MESSAGE = obj(
    {"from": text(SHORT, required=True), "body": text(TEXT, required=True), "to": text(SHORT)},
    "from",
    "body",
)
AUTO_ITERATE = obj({"enabled": BOOL}, "enabled")

# -- query and header parameters --------------------------------------------------------

OFFSET = text(SHORT)
SSE_QUERY = {"offset": OFFSET}
SSE_HEADERS = {"Last-Event-ID": OFFSET}
PARTICIPANT_HEADERS = {"X-Participant-Id": text(SHORT), "X-Participant-Name": text(SHORT)}
GH_HEADERS = {"X-GH-Token": text(KEY)}  # the caller's GitHub token (none: empty lists)


@attrs.frozen
class Route:
    """One route: ``path`` as Quart writes it (``/api/sessions/<session_id>``)."""

    method: str
    path: str
    endpoint: str
    summary: str
    auth: tuple[Auth, ...] = ()  # all of them; () = public
    body: Schema | None = None
    #: the body is read by the route's own code (a hook payload, a stream record):
    #: the schema documents it, the route checks it
    body_checked_by_route: bool = False
    query: dict[str, Schema] = attrs.field(factory=dict)
    required_query: tuple[str, ...] = ()
    headers: dict[str, Schema] = attrs.field(factory=dict)
    responses: dict[int, str] = attrs.field(factory=dict)
    content: Content = "json"
    limit: RouteClass = "default"
    tag: str = "sessions"
    description: str = ""


def _r(method: str, path: str, endpoint: str, summary: str, **kw: Any) -> Route:
    return Route(method, path, endpoint, summary, **kw)


S = "/api/sessions/<session_id>"
R = "/api/rooms/<room_id>"
SESSION: tuple[Auth, ...] = ("session",)
ROOM: tuple[Auth, ...] = ("room",)
ADMIN: tuple[Auth, ...] = ("admin",)

RESUME_SESSION = obj(
    {
        "repoUrl": text(KEY, required=True),
        "branch": text(SHORT),
        "apiKey": text(KEY),
        "oauthToken": text(KEY),
        "ghToken": text(KEY),
    },
    "repoUrl",
)

ROUTES: tuple[Route, ...] = (
    # -- server
    _r("GET", "/api/health", "health", "Health of the streams and the sandbox runtime",
       responses={200: "Healthy", 503: "The stream store does not answer"}, tag="server"),
    _r("GET", "/api/config", "config", "Public settings of the server", tag="server"),
    _r("GET", "/openapi.json", "openapi", "This document", tag="server"),
    _r("POST", "/api/provision-electric", "provision_electric",
       "A claimable Electric Cloud database for a session's setup choice",
       auth=SESSION, body=PROVISION, tag="server",
       description="The session token of the body's `sessionId`.",
       responses={200: "The database", 401: "Not the session's token",
                  404: "Unknown session", 500: "The claim API failed"}),
    # -- hooks
    _r("GET", "/api/hooks/setup", "hooks_setup",
       "Installer script for local Claude Code hooks (embeds the global hook secret)",
       auth=ADMIN, content="text", tag="hooks"),
    _r("POST", "/api/hook", "hook", "A local Claude Code hook (global hook secret)",
       auth=("globalHook",), body=GLOBAL_HOOK, body_checked_by_route=True, tag="hooks"),
    _r("POST", "/api/sessions/local", "local_session", "A session fed by hooks",
       auth=ADMIN, body=LOCAL_SESSION, limit="create", tag="hooks",
       responses={201: "Created"}),
    _r("POST", "/api/sessions/auto", "auto_session", "A session started by a SessionStart hook",
       auth=("globalHook",), body=AUTO_SESSION, body_checked_by_route=True, limit="create",
       tag="hooks", responses={201: "Created"}),
    _r("POST", f"{S}/hook-event", "hook_event", "A hook event of a session (its hook token)",
       auth=("hook",), body=HOOK_EVENT, body_checked_by_route=True, tag="hooks"),
    # -- sessions
    _r("POST", "/api/sessions", "create_session", "Start a session", body=CREATE_SESSION,
       limit="create", responses={201: "Created", 403: "Freeform sessions are off",
                                  503: "At capacity (sessions, sandboxes or memory)"}),
    _r("GET", S, "get_session", "A session's record", auth=SESSION),
    _r("DELETE", S, "delete_session", "End a session and forget it", auth=SESSION),
    _r("POST", f"{S}/iterate", "iterate", "A new prompt", auth=SESSION, body=ITERATE),
    _r("POST", f"{S}/respond", "respond", "Answer one of the session's gates", auth=SESSION,
       body=RESPOND, headers=PARTICIPANT_HEADERS,
       responses={409: "Already answered or ended"}),
    _r("POST", f"{S}/interrupt", "interrupt", "Stop the agent's turn", auth=SESSION),
    _r("POST", f"{S}/cancel", "cancel", "End the session", auth=SESSION),
    _r("GET", f"{S}/events", "events", "The session's events (SSE, resumable)", auth=SESSION,
       query=SSE_QUERY, headers=SSE_HEADERS, content="sse"),
    _r("POST", f"{S}/stream/append", "stream_append", "Append one JSON record to the stream",
       auth=SESSION, body=STREAM_APPEND, body_checked_by_route=True,
       responses={413: "Over 65536 bytes", 415: "Not JSON"}),
    _r("GET", f"{S}/app-status", "app_status", "The app's dev server", auth=SESSION),
    _r("POST", f"{S}/start-app", "start_app", "Start the app's dev server", auth=SESSION,
       responses={409: "No app to start"}),
    _r("POST", f"{S}/stop-app", "stop_app", "Stop the app's dev server", auth=SESSION),
    _r("GET", f"{S}/files", "files", "The files of the project", auth=SESSION),
    _r("GET", f"{S}/file-content", "file_content", "One file of the project", auth=SESSION,
       query={"path": text(PATH, required=True)}, required_query=("path",),
       responses={403: "Outside the project directory"}),
    _r("GET", f"{S}/git-status", "git_status", "The project's git state", auth=SESSION),
    # -- sandboxes (the operator)
    _r("GET", "/api/sandboxes", "sandboxes", "Every sandbox of this server", auth=ADMIN,
       tag="sandboxes"),
    _r("POST", "/api/sandboxes", "create_sandbox", "A sandbox with no agent", auth=ADMIN,
       body=CREATE_SANDBOX, limit="create", tag="sandboxes",
       responses={201: "Created", 409: "It exists", 503: "At capacity"}),
    _r("GET", "/api/sandboxes/<session_id>", "sandbox", "One sandbox", auth=ADMIN,
       tag="sandboxes"),
    _r("DELETE", "/api/sandboxes/<session_id>", "remove_sandbox", "Remove a sandbox",
       auth=ADMIN, tag="sandboxes"),
    # -- rooms
    _r("POST", "/api/rooms", "create_room", "A room", body=CREATE_ROOM, limit="create",
       tag="rooms", responses={201: "Created"}),
    _r("POST", "/api/rooms/create-app", "create_app_room", "A room with a coder that builds an app",
       body=CREATE_APP_ROOM, limit="create", tag="rooms",
       responses={201: "Created", 503: "At capacity"}),
    _r("GET", "/api/join-room/<room_id>/<code>", "join_room", "The room token for an invite code",
       tag="rooms", responses={410: "Revoked"}),
    _r("POST", f"{R}/revoke", "revoke_room", "New invite code and room token", auth=ROOM,
       tag="rooms"),
    _r("GET", R, "room_state", "The room's state", auth=ROOM, tag="rooms"),
    _r("POST", f"{R}/agents", "add_agent", "A new agent in the room", auth=ROOM, body=ADD_AGENT,
       limit="create", tag="rooms",
       responses={201: "Created", 409: "Closed, or the name is taken", 503: "At capacity"}),
    _r("POST", f"{R}/sessions", "add_session",
       "An existing session joins (its session token as the Bearer)",
       auth=("room", "session"), body=ADD_SESSION, tag="rooms", responses={201: "Joined"}),
    _r("POST", f"{R}/sessions/<session_id>/iterate", "iterate_participant",
       "A new prompt to a participant", auth=ROOM, body=ITERATE, tag="rooms"),
    _r("GET", f"{R}/sessions/<session_id>/events", "participant_events",
       "A participant's events, read-only (SSE)", auth=ROOM, query=SSE_QUERY,
       headers=SSE_HEADERS, content="sse", tag="rooms"),
    _r("POST", f"{R}/messages", "post_message", "A person's message to the room", auth=ROOM,
       body=MESSAGE, tag="rooms", responses={409: "The room is closed"}),
    _r("POST", f"{R}/deliver", "room_deliver",
       "Deliver a message to its recipients without recording it", auth=ROOM, body=MESSAGE,
       tag="rooms"),
    _r("GET", f"{R}/events", "room_events", "The room's events (SSE, resumable)", auth=ROOM,
       query=SSE_QUERY, headers=SSE_HEADERS, content="sse", tag="rooms"),
    _r("POST", f"{R}/close", "close_room", "Close the room", auth=ROOM, tag="rooms"),
    _r("POST", f"{R}/auto-iterate", "room_auto_iterate", "Turn automatic delivery on or off",
       auth=ROOM, body=AUTO_ITERATE, tag="rooms"),
    _r("POST", f"{R}/respond", "room_respond", "Answer a participant's gate", auth=ROOM,
       body=ROOM_RESPOND, headers=PARTICIPANT_HEADERS, tag="rooms",
       responses={403: "Not a participant", 409: "Already answered or ended"}),
    # -- GitHub (the tests fuzz these against a fake GitHub, not github.com)
    _r("GET", "/api/github/accounts", "github_accounts", "The caller's GitHub accounts",
       headers=GH_HEADERS, tag="github", responses={403: "Production mode"}),
    _r("GET", "/api/github/repos", "github_repos", "The caller's repositories (50)",
       headers=GH_HEADERS, tag="github", responses={403: "Production mode"}),
    _r("GET", "/api/github/repos/<owner>/<repo>/branches", "github_branches",
       "A repository's branches", headers=GH_HEADERS, tag="github",
       responses={403: "Production mode"}),
    _r("POST", f"{S}/github-token", "github_token",
       "A GitHub token scoped to the session's repository", auth=("git",), tag="github",
       responses={404: "No repository or no GitHub App", 409: "The session ended",
                  429: "Too many tokens"}),
    _r("POST", "/api/sessions/resume", "resume_session",
       "A session on a clone of a repository (dev mode)", body=RESUME_SESSION,
       body_checked_by_route=True, limit="create", tag="github",
       responses={201: "Created", 403: "Production mode"}),
    # -- the web UI
    _r("GET", "/", "web_index", "The web UI", content="html", tag="web"),
    _r("GET", "/static/<path:filename>", "web_static", "A file of the web UI", content="static",
       tag="web", responses={200: "The file", 404: "No such file"}),
)  # fmt: skip

_BY_KEY = {(route.method, route.path): route for route in ROUTES}


def find_route(method: str, rule: str | None) -> Route | None:
    """The route of a request (``rule``: the matched URL rule's text)."""
    if rule is None:
        return None
    return _BY_KEY.get(("GET" if method == "HEAD" else method, rule))


_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


def openapi_path(rule: str) -> tuple[str, list[str]]:
    """``/api/sessions/<session_id>`` as ``/api/sessions/{session_id}``, and its
    parameters."""
    names = _PARAM.findall(rule)
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", rule), names


# -- the validator --------------------------------------------------------------------


def validate(schema: Schema, value: Any, path: str = "body") -> tuple[Any, list[str]]:
    """``value`` checked against ``schema``: the cleaned value (unknown keys dropped)
    and the failures (``"<path>: <message>"``), empty when it is valid."""
    errors: list[str] = []
    cleaned = _check(schema, value, path, errors)
    return cleaned, errors


_TYPES = {"string", "integer", "number", "boolean", "object", "array"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _check(schema: Schema, value: Any, path: str, errors: list[str]) -> Any:
    if value is None:
        if schema.get("nullable") or "type" not in schema:
            return None
        errors.append(f"{path}: expected {schema['type']}, got null")
        return None
    kind = schema.get("type")
    if kind is not None:
        assert kind in _TYPES, kind
        actual = _type_name(value)
        if not (actual == kind or (kind == "number" and actual == "integer")):
            errors.append(f"{path}: expected {kind}, got {actual}")
            return value
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(repr(option) for option in schema["enum"])
        errors.append(f"{path}: must be one of {options}")
        return value
    if isinstance(value, str):
        _check_string(schema, value, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(schema, value, path, errors)
    elif isinstance(value, list):
        return _check_array(schema, value, path, errors)
    elif isinstance(value, Mapping):
        return _check_object(schema, value, path, errors)
    return value


def _check_string(schema: Schema, value: str, path: str, errors: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            f"{path}: must not be empty"
            if schema["minLength"] == 1
            else f"{path}: at least {schema['minLength']} characters"
        )
        return
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: at most {schema['maxLength']} characters")
        return
    if "pattern" in schema and not re.search(schema["pattern"], value):
        if schema["pattern"] == _NOT_BLANK:
            errors.append(f"{path}: must not be blank")
        else:
            errors.append(f"{path}: does not match {schema['pattern']}")
        return
    if schema.get("format") == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            errors.append(f"{path}: expected a uuid")


def _check_number(schema: Schema, value: float, path: str, errors: list[str]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{path}: must be a finite number")
        return
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and not value > low:
            errors.append(f"{path}: must be greater than {low}")
            return
        if value < low:
            errors.append(f"{path}: must be at least {low}")
            return
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: must be at most {schema['maximum']}")


def _check_array(schema: Schema, value: list[Any], path: str, errors: list[str]) -> list[Any]:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: at most {schema['maxItems']} items")
        return value
    items = schema.get("items")
    if items is None:
        return value
    return [_check(items, item, f"{path}[{i}]", errors) for i, item in enumerate(value)]


def _check_object(
    schema: Schema, value: Mapping[str, Any], path: str, errors: list[str]
) -> dict[str, Any]:
    properties: dict[str, Schema] = schema.get("properties", {})
    required = schema.get("required", ())
    for name in required:
        if name not in value:
            errors.append(f"{path}.{name}: required")
    additional = schema.get("additionalProperties")
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        if key in properties:
            if item is None and not properties[key].get("nullable") and key not in required:
                continue  # an optional key sent as null: as if absent
            cleaned[key] = _check(properties[key], item, f"{path}.{key}", errors)
        elif additional is True:
            cleaned[key] = item
        elif additional is False:
            errors.append(f"{path}.{key}: unknown key")
        elif isinstance(additional, dict):
            cleaned[key] = _check(additional, item, f"{path}.{key}", errors)
        # else: dropped
    return cleaned

"""What every route uses: JSON responses and errors, tokens from headers, bodies and
their fields, SSE framing and the answer to a gate (``/respond``)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from quart import Response, request

from transport import parse_offset

from ..core import EventItem, Orchestrator, OrchestratorError, split_position
from ..gates import GateClosed, GateNotFound, InvalidAnswer
from . import _schemas

KEY_LIMIT = 1_000
SHORT_LIMIT = 500
HIDDEN_TYPES = frozenset({"command", "gate_response"})


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")), status=status, content_type="application/json"
    )


def _error(message: str, status: int, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.args.get("token")


class ValidationFailed(OrchestratorError):
    """A body or query against its schema: 400 with the reference's ``details``."""

    def __init__(self, details: list[str]) -> None:
        super().__init__("Validation failed", 400)
        self.details = details


async def _body() -> dict[str, Any]:
    """The JSON object of the body (an empty body is ``{}``), not yet validated."""
    raw = await request.get_data(cache=True)
    assert isinstance(raw, bytes)
    try:
        value = json.loads(raw or b"{}", parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise OrchestratorError("Invalid JSON body") from None
    if not isinstance(value, dict):
        raise ValidationFailed([f"body: expected object, got {_schemas._type_name(value)}"])
    return value


def _route() -> _schemas.Route:
    rule = request.url_rule
    route = _schemas.find_route(request.method, rule.rule if rule is not None else None)
    assert route is not None, f"{request.method} {rule} is not in the route table"
    return route


async def _validated() -> dict[str, Any]:
    """The body of this request, checked against its route's schema (``_schemas``):
    the keys the schema does not list are dropped. 400 ``Validation failed`` with
    details, or ``Invalid JSON body``."""
    schema = _route().body
    assert schema is not None, "this route takes no body"
    cleaned, errors = _schemas.validate(schema, await _body())
    if errors:
        raise ValidationFailed(errors)
    assert isinstance(cleaned, dict)
    return cleaned


def _query() -> dict[str, str]:
    """The query parameters of this request its route declares, checked."""
    route = _route()
    errors: list[str] = []
    found: dict[str, str] = {}
    for name in route.required_query:
        if name not in request.args:
            errors.append(f"query.{name}: required")
    for name, schema in route.query.items():
        if name in request.args:
            value, problems = _schemas.validate(schema, request.args[name], f"query.{name}")
            errors.extend(problems)
            found[name] = value
    if errors:
        raise ValidationFailed(errors)
    return found


def _field(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise OrchestratorError(f"Validation failed: {name}: required")
        return None
    if not isinstance(value, str):
        raise OrchestratorError(f"Validation failed: {name}: expected a string")
    if required and not value.strip():
        raise OrchestratorError(f"Validation failed: {name}: must not be empty")
    if len(value) > limit:
        raise OrchestratorError(f"Validation failed: {name}: at most {limit} characters")
    return value


def _resolved_by() -> dict[str, str] | None:
    participant = request.headers.get("X-Participant-Id")
    name = request.headers.get("X-Participant-Name")
    if participant and name:
        return {"id": participant[:SHORT_LIMIT], "displayName": name[:SHORT_LIMIT]}
    return None


def _infra_answer(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The infra_config value and its details, as reference 7.3 step 5 builds them (the
    database URL is kept out of the details: it is a secret, §17.8)."""
    mode = body.get("mode")
    value: dict[str, Any] = {"mode": "local"}
    details = {"Infrastructure": "Local (Docker)"}
    if mode in ("cloud", "claim"):
        value = {"mode": mode}
        for key in ("databaseUrl", "electricUrl", "sourceId", "secret", "claimId"):
            field = body.get(key)
            if field is not None:
                value[key] = field
        details = {
            "Infrastructure": "Provisioned (Cloud)" if mode == "claim" else "Electric Cloud (BYO)"
        }
        if "sourceId" in value:
            details["Source ID"] = value["sourceId"]
    account = body.get("repoAccount")
    name = body.get("repoName")
    if account and name and name.strip():
        visibility = body.get("repoVisibility")
        value["repoAccount"], value["repoName"] = account, name
        value["repoVisibility"] = visibility if visibility in ("public", "private") else "private"
        details["Repository"] = f"{account}/{name}"
        details["Visibility"] = value["repoVisibility"]
    return value, details


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _valid_offset(position: str) -> bool:
    """A store offset, ``now``, or a record's position (``offset~n``)."""
    try:
        offset, _ = split_position(position)
    except ValueError:
        return False
    return offset in ("now", "-1") or parse_offset(offset) is not None


def event_offset() -> str:
    """Where an SSE reader resumes: ``Last-Event-ID``, else ``?offset=``, else the start."""
    offset = request.headers.get("Last-Event-ID") or request.args.get("offset") or "-1"
    if offset != "-1" and not _valid_offset(offset):
        raise OrchestratorError("Invalid offset", 400)
    return offset


def sse_response(items: AsyncGenerator[EventItem, None]) -> Response:
    """Server-sent events, one per stream record, each with its exact offset as id."""

    async def stream() -> AsyncIterator[bytes]:
        async with aclosing(items) as events:
            async for item in events:
                if item.raw.get("type") in HIDDEN_TYPES:
                    continue
                data = json.dumps(item.raw, separators=(",", ":"))
                yield f"id: {item.offset}\ndata: {data}\n\n".encode()

    response = Response(stream(), content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.timeout = None
    return response


async def answer_gate(
    orch: Orchestrator,
    session_id: str,
    gate_id: str,
    value: Any,
    *,
    summary: str | None = None,
    details: dict[str, str] | None = None,
) -> Response:
    try:
        await orch.gates.resolve(
            session_id,
            gate_id,
            value,
            resolved_by=_resolved_by(),
            summary=summary,
            details=details,
        )
    except GateNotFound:
        return _error("No pending gate found", 404)
    except GateClosed:
        return _error("The gate was already answered or has ended", 409)
    except InvalidAnswer as exc:
        return _error(str(exc), 400)
    return _json({"ok": True})


async def respond_to_gate(orch: Orchestrator, session_id: str, body: dict[str, Any]) -> Response:
    """Answer one of the session's gates from a ``/respond`` body (reference §7.3),
    validated with its route's schema (``_schemas.RESPOND``)."""
    gate = body.get("gate")
    if not isinstance(gate, str) or not gate:
        return _error("gate is required", 400)
    summary = body.get("_summary")
    if gate == "ask_user_question":
        tool_use_id = body.get("toolUseId")
        if not tool_use_id:
            return _error("toolUseId is required", 400)
        answers = body.get("answers")
        if not isinstance(answers, dict):
            answer = body.get("answer")
            question = body.get("question")
            key = question if isinstance(question, str) and question else "answer"
            answers = {key: answer} if isinstance(answer, str) else {}
        return await answer_gate(
            orch,
            session_id,
            f"ask_user_question:{tool_use_id}",
            {"answers": answers},
            summary=summary,
        )
    if gate == "outbound_message_gate":
        gate_id = body.get("gateId")
        action = body.get("action")
        if not gate_id or not isinstance(action, str):
            return _error("gateId and action are required", 400)
        value = {"action": action}
        if "editedBody" in body:
            value["editedBody"] = body["editedBody"]
        return await answer_gate(orch, session_id, gate_id, value, summary=summary)
    if gate == "tool_permission":
        tool_use_id = body.get("toolUseId")
        decision = body.get("decision")
        if not tool_use_id or decision not in ("allow", "deny"):
            return _error("toolUseId and decision (allow or deny) are required", 400)
        return await answer_gate(
            orch, session_id, f"tool_permission:{tool_use_id}", decision, summary=summary
        )
    if gate == "infra_config":
        value, details = _infra_answer(body)
        return await answer_gate(
            orch, session_id, "infra_config", value, summary=summary, details=details
        )
    return _error(f"Unknown gate: {gate[:SHORT_LIMIT]}", 400)

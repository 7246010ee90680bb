"""The room routes (reference §3.4), with the same paths, fields and codes, and these
differences:

- no route hands out an agent's session token except the one that made the agent
  (``POST /api/rooms/{id}/agents``, ``/create-app``): a room token lets its holder
  watch (``GET /api/rooms/{id}/sessions/{sid}/events``, read-only), talk to the room
  and answer its agents' gates, not control their sessions (§17.5);
- ``from`` on ``/messages`` and ``/deliver`` may not be an agent's name (§17.5);
- ``POST /api/rooms/{id}/revoke`` gives a new invite code and room token: the old ones
  stop working;
- ``room_closed`` carries its reason; closing ends the agents the room made.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

from quart import Quart, Response, request

from ..core import TEXT_LIMIT, Orchestrator, OrchestratorError
from ..rooms.stuck import StuckPolicy
from ..tokens import Purpose
from ._http import (
    KEY_LIMIT,
    SHORT_LIMIT,
    _bearer,
    _body,
    _error,
    _field,
    _json,
    event_offset,
    respond_to_gate,
    sse_response,
)

__all__ = ["add_room_routes"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _room_token() -> str | None:
    return request.headers.get("X-Room-Token") or request.args.get("token")


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OrchestratorError(f"Validation failed: {name}: expected a number")
    return float(value)


def add_room_routes(app: Quart, orch: Orchestrator) -> None:
    def room_auth(handler: F) -> F:
        @wraps(handler)
        async def checked(room_id: str, *args: Any, **kwargs: Any) -> Any:
            if not await orch.check_room_token(room_id, _room_token()):
                return _error("Invalid or missing room token", 401)
            return await handler(room_id, *args, **kwargs)

        return cast(F, checked)

    @app.post("/api/rooms")
    async def create_room() -> Response:
        body = await _body()
        name = _field(body, "name", SHORT_LIMIT, required=True)
        assert name is not None
        max_rounds = body.get("maxRounds", 20)
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise OrchestratorError("Validation failed: maxRounds: expected a positive integer")
        idle = body.get("idleTimeoutSeconds", 600.0)
        if idle is not None:
            idle = _number(body, "idleTimeoutSeconds")
        auto = body.get("autoIterate", True)
        gated = body.get("gateMessages", False)
        turns = body.get("turnTaking", False)
        if not all(isinstance(flag, bool) for flag in (auto, gated, turns)):
            raise OrchestratorError(
                "Validation failed: autoIterate, gateMessages and turnTaking are booleans"
            )
        try:
            stuck = StuckPolicy.from_json(body.get("stuck"))
        except ValueError as exc:
            raise OrchestratorError(f"Validation failed: stuck: {exc}") from None
        room = await orch.create_room(
            name,
            max_rounds=max_rounds,
            max_cost_usd=_number(body, "maxCostUsd"),
            stuck=stuck,
            gate_messages=gated,
            idle_timeout=idle,
            auto_iterate=auto,
            turn_taking=turns,
        )
        info = await orch.room_info(room.id)
        assert info is not None
        return _json(
            {"roomId": room.id, "code": info["code"], "roomToken": await room.token()}, 201
        )

    @app.post("/api/rooms/create-app")
    async def create_app_room() -> Response:
        body = await _body()
        description = _field(body, "description", TEXT_LIMIT, required=True)
        assert description is not None
        name = _field(body, "name", SHORT_LIMIT)
        api_key = _field(body, "apiKey", KEY_LIMIT)
        room, coder = await orch.create_app_room(description, name=name, api_key=api_key)
        info = await orch.room_info(room.id)
        assert info is not None
        sessions = [
            {
                "sessionId": coder.id,
                "name": entry["name"],
                "role": entry["role"],
                "sessionToken": coder.token,
            }
            for entry in info.get("sessions", [])
            if entry["sessionId"] == coder.id
        ]
        return _json(
            {
                "roomId": room.id,
                "code": info["code"],
                "name": info["name"],
                "roomToken": await room.token(),
                "sessions": sessions,
            },
            201,
        )

    @app.get("/api/join-room/<room_id>/<code>")
    async def join_room(room_id: str, code: str) -> Response:
        return _json(await orch.join_room(room_id, code[:SHORT_LIMIT]))

    @app.post("/api/rooms/<room_id>/revoke")
    @room_auth
    async def revoke_room(room_id: str) -> Response:
        return _json({"ok": True, **(await orch.revoke_room(room_id))})

    @app.get("/api/rooms/<room_id>")
    @room_auth
    async def room_state(room_id: str) -> Response:
        return _json(await orch.room_state(room_id))

    @app.post("/api/rooms/<room_id>/agents")
    @room_auth
    async def add_agent(room_id: str) -> Response:
        body = await _body()
        session = await orch.add_room_agent(
            room_id,
            _field(body, "name", SHORT_LIMIT),
            role=_field(body, "role", SHORT_LIMIT),
            initial_prompt=_field(body, "initialPrompt", TEXT_LIMIT),
            custom_skill=_field(body, "customSkill", TEXT_LIMIT),
            api_key=_field(body, "apiKey", KEY_LIMIT),
            agent=_field(body, "agent", SHORT_LIMIT) or "claude",
        )
        info = await session.info()
        return _json(
            {
                "sessionId": session.id,
                "participantName": info.get("participantName"),
                "sessionToken": session.token,
            },
            201,
        )

    @app.post("/api/rooms/<room_id>/sessions")
    @room_auth
    async def add_session(room_id: str) -> Response:
        body = await _body()
        session_id = _field(body, "sessionId", SHORT_LIMIT, required=True)
        name = _field(body, "name", SHORT_LIMIT, required=True)
        assert session_id is not None
        assert name is not None
        if not orch.signer.check(Purpose.SESSION, session_id, _bearer()):
            return _error("Invalid or missing session token", 401)
        await orch.add_session_to_room(
            room_id, session_id, name, initial_prompt=_field(body, "initialPrompt", TEXT_LIMIT)
        )
        return _json({"sessionId": session_id, "participantName": name.strip()}, 201)

    @app.post("/api/rooms/<room_id>/sessions/<session_id>/iterate")
    @room_auth
    async def iterate_participant(room_id: str, session_id: str) -> Response:
        body = await _body()
        text = _field(body, "request", TEXT_LIMIT, required=True)
        assert text is not None
        await orch.room(room_id).iterate(session_id, text)
        return _json({"ok": True})

    @app.get("/api/rooms/<room_id>/sessions/<session_id>/events")
    @room_auth
    async def participant_events(room_id: str, session_id: str) -> Response:
        """A participant's session events, read-only, for whoever holds the room token."""
        await orch._room_participant(room_id, session_id)
        return sse_response(orch.session(session_id).events(event_offset()))

    @app.post("/api/rooms/<room_id>/messages")
    @room_auth
    async def post_message(room_id: str) -> Response:
        body = await _body()
        sender = _field(body, "from", SHORT_LIMIT, required=True)
        text = _field(body, "body", TEXT_LIMIT, required=True)
        to = _field(body, "to", SHORT_LIMIT)
        assert sender is not None
        assert text is not None
        await orch.room(room_id).post(sender, text, to=to or None)
        return _json({"ok": True})

    @app.post("/api/rooms/<room_id>/deliver")
    @room_auth
    async def room_deliver(room_id: str) -> Response:
        body = await _body()
        sender = body.get("from")
        text = body.get("body")
        if not isinstance(sender, str) or not sender or not isinstance(text, str) or not text:
            return _error("from and body are required", 400)
        to = _field(body, "to", SHORT_LIMIT)
        await orch.room(room_id).deliver(sender, text, to=to or None)
        return _json({"ok": True})

    @app.get("/api/rooms/<room_id>/events")
    @room_auth
    async def room_events(room_id: str) -> Response:
        return sse_response(orch.room(room_id).events(event_offset()))

    @app.post("/api/rooms/<room_id>/close")
    @room_auth
    async def close_room(room_id: str) -> Response:
        await orch.room(room_id).close()
        return _json({"ok": True})

    @app.post("/api/rooms/<room_id>/auto-iterate")
    @room_auth
    async def room_auto_iterate(room_id: str) -> Response:
        body = await _body()
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            return _error("enabled must be true or false", 400)
        value = await orch.room(room_id).set_auto_iterate(enabled)
        return _json({"ok": True, "autoIterate": value})

    @app.post("/api/rooms/<room_id>/respond")
    @room_auth
    async def room_respond(room_id: str) -> Response:
        """Answer a participant's gate (its question, a tool call, a held message)."""
        body = await _body()
        session_id = body.get("sessionId")
        if not isinstance(session_id, str) or not session_id or not body.get("gate"):
            return _error("sessionId and gate are required", 400)
        try:
            await orch._room_participant(room_id, session_id[:SHORT_LIMIT])
        except OrchestratorError as exc:
            if exc.status == 404 and exc.message == "Session not found in this room":
                return _error("The session is not a participant of this room", 403)
            raise
        return await respond_to_gate(orch, session_id, body)

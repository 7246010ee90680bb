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

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

from quart import Quart, Response, request

from ..core import Orchestrator, OrchestratorError
from ..rooms.stuck import StuckPolicy
from ..tokens import Purpose
from ._http import (
    SHORT_LIMIT,
    ValidationFailed,
    _bearer,
    _error,
    _json,
    _query,
    _validated,
    event_offset,
    respond_to_gate,
    sse_response,
)
from ._limits import admission_refusal

__all__ = ["add_room_routes"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _room_token() -> str | None:
    return request.headers.get("X-Room-Token") or request.args.get("token")


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
        body = await _validated()
        idle = body.get("idleTimeoutSeconds", 600.0)  # null: never closed for idleness
        cost = body.get("maxCostUsd")
        try:
            stuck = StuckPolicy.from_json(body.get("stuck"))
        except ValueError as exc:
            raise ValidationFailed([f"body.stuck: {exc}"]) from None
        room = await orch.create_room(
            body["name"],
            max_rounds=body.get("maxRounds", 20),
            max_cost_usd=None if cost is None else float(cost),
            stuck=stuck,
            gate_messages=body.get("gateMessages", False),
            idle_timeout=None if idle is None else float(idle),
            auto_iterate=body.get("autoIterate", True),
            turn_taking=body.get("turnTaking", False),
        )
        info = await orch.room_info(room.id)
        assert info is not None
        return _json(
            {"roomId": room.id, "code": info["code"], "roomToken": await room.token()}, 201
        )

    @app.post("/api/rooms/create-app")
    async def create_app_room() -> Response:
        body = await _validated()
        # checked before the room is made: a refused coder must leave no room behind
        refusal = await admission_refusal(orch)
        if refusal is not None:
            return _error(refusal, 503)
        room, coder = await orch.create_app_room(
            body["description"], name=body.get("name"), api_key=body.get("apiKey")
        )
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
        body = await _validated()
        session = await orch.add_room_agent(
            room_id,
            body.get("name"),
            role=body.get("role"),
            initial_prompt=body.get("initialPrompt"),
            custom_skill=body.get("customSkill"),
            api_key=body.get("apiKey"),
            agent=body.get("agent") or "claude",
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
        body = await _validated()
        session_id, name = body["sessionId"], body["name"]
        if not orch.signer.check(Purpose.SESSION, session_id, _bearer()):
            return _error("Invalid or missing session token", 401)
        await orch.add_session_to_room(
            room_id, session_id, name, initial_prompt=body.get("initialPrompt")
        )
        return _json({"sessionId": session_id, "participantName": name.strip()}, 201)

    @app.post("/api/rooms/<room_id>/sessions/<session_id>/iterate")
    @room_auth
    async def iterate_participant(room_id: str, session_id: str) -> Response:
        text = (await _validated())["request"]
        await orch.room(room_id).iterate(session_id, text)
        return _json({"ok": True})

    @app.get("/api/rooms/<room_id>/sessions/<session_id>/events")
    @room_auth
    async def participant_events(room_id: str, session_id: str) -> Response:
        """A participant's session events, read-only, for whoever holds the room token."""
        await orch._room_participant(room_id, session_id)
        _query()
        return sse_response(orch.session(session_id).events(event_offset()))

    @app.post("/api/rooms/<room_id>/messages")
    @room_auth
    async def post_message(room_id: str) -> Response:
        body = await _validated()
        await orch.room(room_id).post(body["from"], body["body"], to=body.get("to") or None)
        return _json({"ok": True})

    @app.post("/api/rooms/<room_id>/deliver")
    @room_auth
    async def room_deliver(room_id: str) -> Response:
        body = await _validated()
        await orch.room(room_id).deliver(body["from"], body["body"], to=body.get("to") or None)
        return _json({"ok": True})

    @app.get("/api/rooms/<room_id>/events")
    @room_auth
    async def room_events(room_id: str) -> Response:
        _query()
        return sse_response(orch.room(room_id).events(event_offset()))

    @app.post("/api/rooms/<room_id>/close")
    @room_auth
    async def close_room(room_id: str) -> Response:
        await orch.room(room_id).close()
        return _json({"ok": True})

    @app.post("/api/rooms/<room_id>/auto-iterate")
    @room_auth
    async def room_auto_iterate(room_id: str) -> Response:
        enabled = (await _validated())["enabled"]
        value = await orch.room(room_id).set_auto_iterate(enabled)
        return _json({"ok": True, "autoIterate": value})

    @app.post("/api/rooms/<room_id>/respond")
    @room_auth
    async def room_respond(room_id: str) -> Response:
        """Answer a participant's gate (its question, a tool call, a held message)."""
        body = await _validated()
        session_id = body["sessionId"]
        try:
            await orch._room_participant(room_id, session_id)
        except OrchestratorError as exc:
            if exc.status == 404 and exc.message == "Session not found in this room":
                return _error("The session is not a participant of this room", 403)
            raise
        return await respond_to_gate(orch, session_id, body)

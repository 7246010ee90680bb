"""HostedSessionActor: a session with no sandbox and no agent process of ours.

Its events come from outside: a developer's own Claude Code posting its hooks
(``/api/hook``), or a caller appending through the API. The actor appends each event to
the session's stream before anyone is told, and keeps the session's info current
(status, cost) in the registry.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from actors import Actor, ActorRef, Refused
from transport import AppendRequest, CreateRequest, Store

from .. import events as ev
from ..errors import answers_store_errors
from .actor import Cancel, Delete, GetSandbox, Interrupt, Iterate, session_stream
from .registry import UpdateSession

__all__ = ["HookEvent", "HostedSessionActor"]

JSON = "application/json"


@attrs.frozen
class HookEvent:
    event: ev.Event


@attrs.define(eq=False)
class HostedSessionActor(Actor):
    session_id: str
    store: Store
    registry: ActorRef
    total_cost: float = 0.0
    status: str = "running"

    @property
    def path(self) -> str:
        return session_stream(self.session_id)

    async def on_start(self) -> None:
        await self.store.create(self.path, CreateRequest(content_type=JSON))

    @answers_store_errors
    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, GetSandbox):
            return None  # it has none
        if isinstance(msg, Interrupt):
            return None  # the agent is not ours to stop
        if isinstance(msg, Cancel | Delete):
            if self.status == "running":
                await self._append(ev.SessionEnd(success=False), "server")
            self.status = "cancelled"
            await self.registry.ask(UpdateSession(self.session_id, {"status": "cancelled"}))
            return None
        if isinstance(msg, Iterate):
            raise Refused("this session's agent runs elsewhere: it cannot be sent a prompt")
        if not isinstance(msg, HookEvent):
            raise Refused(f"a hosted session does not understand {type(msg).__name__}")
        event = msg.event
        await self._append(event, "agent")
        update: dict[str, Any] = {}
        if isinstance(event, ev.SessionStart) and self.status != "running":
            update["status"] = self.status = "running"
            if event.session_id:
                update["claudeSessionId"] = event.session_id
        elif isinstance(event, ev.SessionEnd):
            self.total_cost += event.cost_usd or 0.0
            update["status"] = self.status = "complete"
            update["totalCostUsd"] = round(self.total_cost, 6)
        await self.registry.ask(UpdateSession(self.session_id, update))
        return None

    async def _append(self, event: ev.Event, source: ev.Source) -> None:
        body = json.dumps([event.to_json(source)], separators=(",", ":")).encode()
        await self.store.append(self.path, AppendRequest(body=body, content_type=JSON))

"""Rooms under test: a scripted model server that plays each agent by its API key, an
Orchestrator on it (no server key, so each agent's own key reaches the model), and
helpers to read a room's stream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import trio

from orchestrator.config import Settings
from orchestrator.core import EventItem, Orchestrator, Room, Session
from orchestrator.models import AgentScript, ModelServer, Script, Turn, open_model_server
from orchestrator.sandboxes.base import SandboxProvider

from ..sessions.support import wait_status

__all__ = [
    "READY",
    "closed",
    "ended",
    "messages",
    "prompts_of",
    "room_script",
    "room_until",
    "scripted_room",
    "wait_status",
]

READY = "Ready."


def room_script(agents: Mapping[str, Sequence[Turn | str]]) -> Script:
    return Script(agents={name: AgentScript.of(*turns) for name, turns in agents.items()})


@contextlib.asynccontextmanager
async def scripted_room(
    agents: Mapping[str, Sequence[Turn | str]],
    data_dir: Path,
    provider: SandboxProvider | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[ModelServer, Orchestrator]]:
    async with open_model_server(room_script(agents)) as models:
        config = Settings(
            data_dir=data_dir,
            anthropic_base_url=models.base_url,
            openai_base_url=models.openai_base_url,
            **settings,
        )
        async with Orchestrator(config, provider=provider) as orch:
            yield models, orch


async def room_until(
    room: Room, predicate: Any, *, offset: str = "-1", timeout: float = 90
) -> list[EventItem]:
    """The room's records from ``offset`` up to the first that ``predicate`` accepts."""
    seen: list[EventItem] = []
    with trio.fail_after(timeout):
        async with aclosing(room.events(offset)) as items:
            async for item in items:
                seen.append(item)
                if predicate(item):
                    return seen
    raise AssertionError(f"the room's stream ended: {[i.raw for i in seen]}")


def closed(item: EventItem) -> bool:
    return item.event.type == "room_closed"


def messages(items: Sequence[EventItem]) -> list[tuple[str, str | None, str]]:
    """(from, to, body) of the agent_message records, system notices left out."""
    return [
        (i.raw["from"], i.raw.get("to"), i.raw["body"])
        for i in items
        if i.event.type == "agent_message" and i.raw["from"] != "system"
    ]


async def ended(session: Session, timeout: float = 60) -> dict[str, Any]:
    """The session's info once it has ended (agent stopped, sandbox removed)."""
    with trio.fail_after(timeout):
        while True:
            info = await session.info()
            if info.get("ended"):
                return info
            await trio.sleep(0.05)


async def prompts_of(session: Session) -> list[tuple[str | None, str]]:
    """(sender, message) of the user_prompt records of a session, so far."""
    found = []
    async with aclosing(session.events(follow=False)) as items:
        async for item in items:
            if item.event.type == "user_prompt":
                found.append((item.raw.get("sender"), item.raw["message"]))
    return found

"""Sessions under test: a scripted model server, an Orchestrator on it, and helpers to
read a session's events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import trio

from orchestrator.config import Settings
from orchestrator.core import EventItem, Orchestrator, Session
from orchestrator.models import (
    AgentScript,
    ModelServer,
    Script,
    Text,
    ToolCall,
    Turn,
    Usage,
    open_model_server,
)
from orchestrator.sandboxes.base import SandboxProvider

AGENT_KEY = "agent-under-test"

WRITE_FILE = Turn(
    blocks=(
        Text("I will write it."),
        ToolCall("Bash", {"command": "echo hello > f.txt && cat f.txt"}),
    ),
    usage=Usage(input_tokens=1000, output_tokens=50),
)
DONE = "Done: f.txt says hello."
# the input of an AskUserQuestion call (the CLI wants two to four options)
COLOR_QUESTION = {
    "questions": [
        {
            "question": "Which color?",
            "header": "Color",
            "options": [
                {"label": "red", "description": "warm"},
                {"label": "blue", "description": "cold"},
            ],
            "multiSelect": False,
        }
    ]
}


def script(*turns: Turn | str) -> Script:
    return Script(agents={AGENT_KEY: AgentScript.of(*turns)})


@contextlib.asynccontextmanager
async def orchestrator_on(
    models: ModelServer,
    data_dir: Path,
    provider: SandboxProvider | None = None,
    **settings: Any,
) -> AsyncIterator[Orchestrator]:
    config = Settings(
        data_dir=data_dir,
        anthropic_base_url=models.base_url,
        anthropic_api_key=AGENT_KEY,
        **settings,
    )
    async with Orchestrator(config, provider=provider) as orch:
        yield orch


@contextlib.asynccontextmanager
async def scripted(
    turns: Sequence[Turn | str],
    data_dir: Path,
    provider: SandboxProvider | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[ModelServer, Orchestrator]]:
    async with (
        open_model_server(script(*turns)) as models,
        orchestrator_on(models, data_dir, provider, **settings) as orch,
    ):
        yield models, orch


async def collect_until(
    session: Session, *types: str, offset: str = "-1", timeout: float = 60
) -> list[EventItem]:
    """Events from ``offset`` up to and including the first of ``types``."""
    seen: list[EventItem] = []
    with trio.fail_after(timeout):
        async with aclosing(session.events(offset)) as items:
            async for item in items:
                seen.append(item)
                if item.event.type in types:
                    return seen
    raise AssertionError(f"the stream ended before {types}: {[i.event.type for i in seen]}")


async def wait_status(session: Session, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            info = await session.info()
            if info["status"] in statuses:
                return info
            await trio.sleep(0.05)


def types_of(items: Sequence[EventItem]) -> list[str]:
    return [item.event.type for item in items]

"""One agent session from Python: create it, watch it work, ask a follow-up, delete it.

    ANTHROPIC_API_KEY=... python examples/hello_session.py "write hello.py that prints hi"

Settings come from the environment (see orchestrator.config): ORCHESTRATOR_SANDBOX,
ORCHESTRATOR_DATA_DIR, ANTHROPIC_BASE_URL, MAX_SESSION_COST_USD, ...
"""

from __future__ import annotations

import os
import sys
from contextlib import aclosing

import trio

from orchestrator import events as ev
from orchestrator.config import Settings
from orchestrator.core import Orchestrator, Session


async def follow_turn(session: Session, offset: str = "-1") -> tuple[bool, str]:
    """Print the session's events until its turn ends; (success, offset after it)."""
    async with aclosing(session.events(offset)) as events:
        async for item in events:
            event = item.event
            if isinstance(event, ev.AssistantMessage):
                print(f"agent: {event.text}")
            elif isinstance(event, ev.PreToolUse):
                print(f"tool:  {event.tool_name} {event.tool_input}")
            elif isinstance(event, ev.PostToolUse):
                print(f"  ->   {event.tool_response[:120]}")
            elif isinstance(event, ev.SessionEnd):
                print(f"turn over: success={event.success} cost=${event.cost_usd or 0:.4f}")
                return event.success, item.offset
            elif (
                isinstance(event, ev.BudgetExceeded | ev.Log)
                and getattr(event, "level", "error") == "error"
            ):
                print(f"stopped: {event}")
                return False, item.offset
    return False, offset


async def main(description: str) -> int:
    async with Orchestrator(Settings.from_env(os.environ)) as orch:
        session = await orch.create_session(description, freeform=True)
        print(f"session {session.id}")
        ok, offset = await follow_turn(session)
        if ok:
            await session.send("Thanks. Now say in one line what you did.")
            ok, offset = await follow_turn(session, offset)
        info = await session.info()
        print(f"total cost: ${info['totalCostUsd']:.4f}")
        await session.delete()
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "say hello"))

"""hypothesis over what an agent says, through a real ``SessionActor`` (issue 9, section
4: no actor death): its Claude Code process says any lines (bytes, JSON of any shape,
messages of any type the SDK knows) in its first turn. The actor stays alive and
answering, nothing crashes, every event it records is well-formed, and the session
answers its next message; a line that stops the agent gets the agent started again. (A
fuzzed ``result`` ends the first turn early: the fake's own result then ends a turn of
its own.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import events as ev
from orchestrator.gates import GateRegistry, open_gate_supervisor
from orchestrator.sandboxes.base import SandboxProvider
from orchestrator.sessions.actor import Busy, Iterate, SessionActor, SessionConfig, session_stream
from orchestrator.sessions.registry import RegisterSession, RegistryActor

from ..bridges.test_codex import FakeProcess, FakeSandbox
from .test_parsers import SLOW, actor_system, check_event, claude_messages, lines, records

RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 1,
    "duration_api_ms": 1,
    "num_turns": 1,
    "session_id": "fuzzed",
    "total_cost_usd": 0.0,
    "usage": {},
}


class FakeClaude(FakeProcess):
    """Claude Code as the SDK sees it: its control requests answered; its first user
    message answered with ``said`` (raw lines) and a result, the others with a result."""

    def __init__(self, said: Sequence[bytes]) -> None:
        super().__init__()
        self.said = list(said)
        self.on_message = self._answer
        self.on_stdin_closed = self._closed

    async def _answer(self, message: dict[str, Any]) -> None:
        if message.get("type") == "control_request":
            response = {"subtype": "success", "request_id": message["request_id"], "response": {}}
            self.say({"type": "control_response", "response": response})
        elif message.get("type") == "user":
            said, self.said = self.said, []
            for line in said:
                self.say(line + b"\n")
            self.say(RESULT)

    async def _closed(self) -> None:
        self.exit(0)


async def idle(ref: Any) -> None:
    with trio.fail_after(20):
        while await ref.ask(Busy(), timeout=10):  # noqa: ASYNC110 - no event to wait on
            await trio.sleep(0.01)


said = st.lists(st.one_of(lines, claude_messages.map(lambda m: json.dumps(m).encode())), max_size=8)


# (an example's repr can be large: a message with a long text)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(said)
async def test_a_session_actor_takes_anything_its_agent_says(said: list[bytes]) -> None:
    async with actor_system() as (system, store, crashes):
        registry = await system.spawn(RegistryActor(store), name="registry")
        gates = GateRegistry(await open_gate_supervisor(system), store, session_stream)
        session_id = str(uuid.uuid4())
        await registry.ask(RegisterSession({"id": session_id, "status": "complete"}))
        config = SessionConfig(
            session_id=session_id, description="fuzz", project_name="fuzz", restored=True
        )
        # the first agent process says the odd lines; one started again says nothing odd
        sandbox = FakeSandbox([FakeClaude(said), FakeClaude([]), FakeClaude([])])
        provider = cast(SandboxProvider, None)  # a re-attached sandbox: none is made
        actor = SessionActor(config, store, provider, registry, gates, reattach=sandbox)
        ref = await system.spawn(actor, name=f"session:{session_id}")
        path = session_stream(session_id)

        await ref.ask(Iterate("go"), timeout=10)
        await idle(ref)
        # The session answers a next message: the first or, when the odd lines stopped
        # the agent while that message was on its way, the one after (then its turn
        # ended failed, saying so).
        answered = False
        for attempt in range(3):
            mark = len(await records(store, path))
            await ref.ask(Iterate(f"again {attempt}"), timeout=10)
            await idle(ref)
            found = await records(store, path)
            ends = [r["success"] for r in found[mark:] if r.get("type") == "session_end"]
            assert ends, found[mark:]
            if True in ends:
                answered = True
                break
        assert answered
        if any(r.get("level") == "error" for r in found):
            restarted = [r for r in found if r.get("type") == "log" and r["level"] == "error"]
            assert all("Trio nursery" not in r["message"] for r in restarted), restarted

        assert ref.alive
        assert registry.alive
        assert not crashes
        assert len(sandbox.spawned) <= 2  # started again at most once, for the odd lines
        for record in found:
            event, source = ev.event_from_json(record)
            assert source is not None
            check_event(event, source)

"""Three Claude Code agents in real containers, talking through a room: the scripted
model makes them send ``@name`` and ``@room`` messages; delivery keeps the room's
order, a person edits a gated message and the edit is what arrives, a ping-pong loop
closes the room as ``stuck``, a round limit closes it as ``max_rounds``, and a closed
room leaves no container behind."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import docker
import pytest
import trio

from orchestrator.core import Session
from orchestrator.rooms.stuck import StuckPolicy
from orchestrator.sandboxes import DockerProvider

from ..sessions.test_docker_sessions import gone, leftovers
from .support import READY, closed, ended, messages, prompts_of, room_until, scripted_room

pytestmark = pytest.mark.docker


async def gate_of(session: Session) -> dict[str, str]:
    with trio.fail_after(120):
        async with aclosing(session.events()) as items:
            async for item in items:
                if item.event.type == "outbound_message_gate":
                    return item.raw
    raise AssertionError("no gate")


async def test_three_agents_in_containers(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    # Each message is what one agent's turn says; every turn is caused by one message,
    # so each agent's turns come in a fixed order.
    agents = {
        "alice": [READY, "@room hello all", "@bob ping", "@bob ping"],
        "bob": [READY, "@carol bob to carol", "@alice pong", "@alice pong"],
        "carol": [READY, "Noted.", "I need a person here.\n@alice GATE: may I ship?"],
    }
    async with scripted_room(agents, tmp_path, provider) as (_models, orch):
        room = await orch.create_room(
            "trio", idle_timeout=None, stuck=StuckPolicy(repeat=0, stale_rounds=0)
        )
        carol = await room.add_agent("carol", api_key="carol")
        bob = await room.add_agent("bob", api_key="bob")
        alice = await room.add_agent("alice", api_key="alice", initial_prompt="Greet the room.")
        gate = await gate_of(carol)
        sandbox = await orch.sandbox_of(carol.id)
        assert sandbox is not None
        assert sandbox.workdir == "/workspace"  # a container, not a local directory
        assert gate["body"] == "GATE: may I ship?"
        await orch.gates.resolve(
            carol.id, gate["gateId"], {"action": "edit", "editedBody": "ship it tomorrow"}
        )
        items = await room_until(room, closed, timeout=180)
        assert messages(items) == [
            ("alice", None, "hello all"),
            ("bob", "carol", "bob to carol"),
            ("carol", "alice", "ship it tomorrow"),
            ("alice", "bob", "ping"),
            ("bob", "alice", "pong"),
            ("alice", "bob", "ping"),
        ]
        assert items[-1].raw["reason"] == "stuck"
        # what each agent was told, in the room's order (the edit, not the original)
        told = {
            name: [(s, m) for s, m in await prompts_of(session) if s not in (None, "system")]
            for name, session in (("alice", alice), ("bob", bob), ("carol", carol))
        }
        assert told["carol"] == [("alice", "hello all"), ("bob", "bob to carol")]
        assert told["alice"] == [("carol", "ship it tomorrow"), ("bob", "pong")]
        assert told["bob"] == [("alice", "hello all"), ("alice", "ping"), ("alice", "ping")]
        for session in (alice, bob, carol):
            assert (await ended(session))["status"] == "complete"
        await gone(provider)
    assert await leftovers(docker_client, docker_limiter, provider) == []


async def test_the_round_limit_closes_a_room_in_containers(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    agents = {"alice": [READY, "@bob one", "@bob three"], "bob": [READY, "@alice two"]}
    async with scripted_room(agents, tmp_path, provider) as (_models, orch):
        room = await orch.create_room("limit", max_rounds=3, idle_timeout=None)
        bob = await room.add_agent("bob", api_key="bob")
        alice = await room.add_agent("alice", api_key="alice", initial_prompt="Go.")
        items = await room_until(room, closed, timeout=180)
        assert [m[2] for m in messages(items)] == ["one", "two", "three"]
        assert items[-1].raw["reason"] == "max_rounds"
        for session in (alice, bob):
            await ended(session)
        await gone(provider)
    assert await leftovers(docker_client, docker_limiter, provider) == []

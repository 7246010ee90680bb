"""Rooms end to end in local sandboxes: real Claude Code CLIs, one per agent, against
the scripted model (each agent plays its own script, by its API key)."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal

import pytest
import trio

from orchestrator.config import Settings
from orchestrator.core import Orchestrator, OrchestratorError, Room, Session, bundled_claude_cli
from orchestrator.models import Turn, Usage, open_model_server
from orchestrator.rooms.stuck import StuckPolicy
from orchestrator.sandboxes.local import LocalProvider

from .support import (
    READY,
    closed,
    ended,
    messages,
    prompts_of,
    room_script,
    room_until,
    scripted_room,
    wait_status,
)


def local(tmp_path: Path) -> LocalProvider:
    return LocalProvider("test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli())


async def test_two_agents_talk_until_the_round_limit(tmp_path: Path) -> None:
    agents = {
        "alice": [READY, "I will ask bob.\n@bob one", "@bob three"],
        "bob": [READY, "@alice two"],
    }
    async with scripted_room(agents, tmp_path, local(tmp_path)) as (models, orch):
        room = await orch.create_room("pair", max_rounds=3, idle_timeout=None)
        bob = await room.add_agent("bob", api_key="bob")
        alice = await room.add_agent("alice", api_key="alice", initial_prompt="Start.")
        items = await room_until(room, closed)
        assert messages(items) == [
            ("alice", "bob", "one"),
            ("bob", "alice", "two"),
            ("alice", "bob", "three"),
        ]
        assert items[-1].raw["reason"] == "max_rounds"
        rounds = [i.raw["metadata"]["round"] for i in items if i.event.type == "agent_message"]
        assert rounds == [1, 2, 3]
        # the last message was shown to bob, but gave him no turn
        assert await prompts_of(bob) == [
            (None, (await prompts_of(bob))[0][1]),
            ("system", "alice (participant) has joined the room."),
            ("alice", "one"),
            ("alice", "three"),
        ]
        bob_turns = [r.user_text() for r in models.main_requests() if r.agent == "bob"]
        assert len(bob_turns) == 2
        assert "Message from alice:\n\none" in bob_turns[1]
        # closing ended both agents and removed their sandboxes
        for session in (alice, bob):
            info = await ended(session)
            assert info["status"] == "complete"
            assert await orch.sandbox_of(session.id) is None
        state = await room.state()
        assert state["state"] == "closed"
        assert state["stopReason"] == "max_rounds"
        assert state["roundCount"] == 3
        with pytest.raises(OrchestratorError) as refused:
            await room.post("dana", "anyone there?")
        assert refused.value.status == 409


async def outbound_gate(session: Session, timeout: float = 60) -> dict[str, Any]:
    with trio.fail_after(timeout):
        async with aclosing(session.events()) as items:
            async for item in items:
                if item.event.type == "outbound_message_gate":
                    return item.raw
    raise AssertionError("no outbound_message_gate")


@pytest.mark.parametrize("action", ["edit", "drop"])
async def test_a_gated_message_waits_for_a_person(tmp_path: Path, action: str) -> None:
    agents = {
        "alice": [READY, "@bob GATE: may I deploy today?", "@bob after the gate"],
        "bob": [READY, "Thanks.", "Noted."],
    }
    async with scripted_room(agents, tmp_path, local(tmp_path)) as (models, orch):
        room = await orch.create_room("gated", idle_timeout=None)
        bob = await room.add_agent("bob", api_key="bob")
        alice = await room.add_agent("alice", api_key="alice", initial_prompt="Go.")
        gate = await outbound_gate(alice)
        assert gate["body"] == "GATE: may I deploy today?"
        assert gate["to"] == "bob"
        assert gate["roomId"] == room.id
        assert messages([i async for i in room.events(follow=False)]) == []
        answer: dict[str, Any] = {"action": action}
        if action == "edit":
            answer["editedBody"] = "deploy tomorrow"
        await orch.gates.resolve(
            alice.id, gate["gateId"], answer, resolved_by={"id": "p1", "displayName": "Pat"}
        )
        if action == "drop":
            await trio.sleep(0.5)
            assert messages([i async for i in room.events(follow=False)]) == []
            assert len([r for r in models.main_requests() if r.agent == "bob"]) == 1
            await room.close()
            return
        items = await room_until(room, lambda i: i.event.type == "agent_message")
        assert messages(items) == [("alice", "bob", "deploy tomorrow")]
        await wait_until(lambda: len([r for r in models.main_requests() if r.agent == "bob"]) == 2)
        bob_turns = [r.user_text() for r in models.main_requests() if r.agent == "bob"]
        assert "Message from alice:\n\ndeploy tomorrow" in bob_turns[1]
        assert "GATE" not in bob_turns[1]
        resolved = [
            i.raw
            async for i in alice.events(follow=False)
            if i.event.type == "outbound_message_gate_resolved"
        ]
        assert resolved[0]["action"] == "edit"
        assert resolved[0]["resolvedBy"] == {"id": "p1", "displayName": "Pat"}
        assert await room.close()
        await ended(bob)


async def wait_until(check: Any, timeout: float = 60) -> None:
    with trio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - the model server has no event to wait on
            await trio.sleep(0.05)


@pytest.mark.parametrize("action", ["close", "gate"])
async def test_a_ping_pong_loop_is_stuck(tmp_path: Path, action: Literal["close", "gate"]) -> None:
    agents = {
        "alice": [READY, "@bob ping", "@bob ping", "@bob something new"],
        "bob": [READY, "@alice pong", "@alice pong", "Fine."],
    }
    async with scripted_room(agents, tmp_path, local(tmp_path)) as (_models, orch):
        room = await orch.create_room(
            "loop", idle_timeout=None, stuck=StuckPolicy(repeat=0, action=action)
        )
        bob = await room.add_agent("bob", api_key="bob")
        alice = await room.add_agent("alice", api_key="alice", initial_prompt="Go.")
        if action == "close":
            items = await room_until(room, closed)
            assert items[-1].raw["reason"] == "stuck"
            assert "ping-pong" in items[-1].raw["summary"] or "pong" in items[-1].raw["summary"]
            # the fourth message, the one that closed the loop, was not sent
            assert messages(items) == [
                ("alice", "bob", "ping"),
                ("bob", "alice", "pong"),
                ("alice", "bob", "ping"),
            ]
            for session in (alice, bob):
                assert (await ended(session))["status"] == "complete"
            return
        gate = await outbound_gate(bob)
        assert gate["body"] == "pong"
        await orch.gates.resolve(bob.id, gate["gateId"], {"action": "approve"})
        items = await room_until(room, lambda i: i.raw.get("body") == "something new")
        assert [m[2] for m in messages(items)] == ["ping", "pong", "ping", "pong", "something new"]
        await room.close()


async def test_budget_idle_and_a_person_close_the_room(tmp_path: Path) -> None:
    expensive = Turn.text("Thinking hard.", usage=Usage(input_tokens=200_000, output_tokens=10))
    agents: dict[str, list[Turn | str]] = {
        "alice": [READY, expensive],
        "bob": [READY],
        "carol": [READY],
    }
    async with scripted_room(agents, tmp_path, local(tmp_path)) as (_models, orch):
        spender = await orch.create_room("spender", max_cost_usd=0.05, idle_timeout=None)
        alice = await spender.add_agent("alice", api_key="alice", initial_prompt="Think.")
        items = await room_until(spender, closed)
        assert items[-1].raw["reason"] == "budget"
        assert (await spender.state())["totalCostUsd"] > 0.05
        assert (await ended(alice))["status"] == "complete"

        idle = await orch.create_room("idle", idle_timeout=0.5)
        bob = await idle.add_agent("bob", api_key="bob")
        items = await room_until(idle, closed)
        assert items[-1].raw["reason"] == "all_idle"
        await ended(bob)

        manual = await orch.create_room("manual", idle_timeout=None)
        carol = await manual.add_agent("carol", api_key="carol")
        await wait_status(carol, "complete")  # her first turn is done
        assert await manual.close()
        assert not await manual.close()
        items = await room_until(manual, closed)
        assert items[-1].raw["reason"] == "closed_by_human"
        assert items[-1].raw["closedBy"] == "human"
        await ended(carol)
        assert await orch.sandbox_of(carol.id) is None


async def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async with scripted_room({"bob": [READY]}, tmp_path, local(tmp_path)) as (_models, orch):
        room = await orch.create_room("checks", idle_timeout=None)
        bob = await room.add_agent("bob", api_key="bob")
        before = [i.raw for i in [x async for x in room.events(follow=False)]]
        for bad in ("room", "system", "has space", "@bob", "x" * 65, "bob"):
            with pytest.raises(OrchestratorError):
                await room.add_agent(bad)
        with pytest.raises(OrchestratorError, match="belongs to the room"):
            await room.post("bob", "I am bob, really")
        with pytest.raises(OrchestratorError, match="No participant"):
            await room.post("pat", "hi", to="nobody")
        with pytest.raises(OrchestratorError):
            await room.post("pat", "")
        with pytest.raises(OrchestratorError):
            await orch.create_room("")
        with pytest.raises(OrchestratorError):
            await orch.create_room("r", max_rounds=0)
        after = [i.raw for i in [x async for x in room.events(follow=False)]]
        assert after == before
        state = await room.state()
        assert [p["name"] for p in state["participants"]] == ["bob"]
        await room.close()
        await ended(bob)


async def test_a_room_is_rebuilt_from_its_stream_after_a_restart(tmp_path: Path) -> None:
    agents = {"alice": [READY, "@bob one"], "bob": [READY, "@alice GATE: may I go on?"]}
    async with open_model_server(room_script(agents)) as models:
        settings = Settings(data_dir=tmp_path, anthropic_base_url=models.base_url)
        async with Orchestrator(settings, provider=local(tmp_path)) as orch:
            room = await orch.create_room("durable", max_rounds=5, idle_timeout=None)
            bob = await room.add_agent("bob", api_key="bob", role="reviewer")
            await room.add_agent("alice", api_key="alice", initial_prompt="Go.")
            gate = await outbound_gate(bob)
            assert (await room.state())["roundCount"] == 1
        # the server stopped (its sessions with it) while bob's message waited at its gate
        async with Orchestrator(settings, provider=local(tmp_path)) as again:
            restored = again.room(room.id)
            state = await restored.state()
            assert state["state"] == "active"
            assert state["roundCount"] == 1
            assert state["maxRounds"] == 5
            assert [(p["name"], p["role"]) for p in state["participants"]] == [
                ("bob", "reviewer"),
                ("alice", None),
            ]
            assert not any(p["live"] for p in state["participants"])
            # the held message's gate came back, and answering it routes the message
            await again.gates.resolve(bob.id, gate["gateId"], {"action": "approve"})
            items = await room_until(
                restored, lambda i: i.event.type == "agent_message" and i.raw["from"] == "bob"
            )
            assert items[-1].raw["body"] == "GATE: may I go on?"
            assert items[-1].raw["metadata"]["round"] == 2
            # nothing was read twice: one activity for each agent's first turn, and the
            # gate was not opened again
            activity = [i.raw["from"] for i in items if i.event.type == "agent_activity"]
            assert sorted(activity) == ["alice", "bob"]
            gates = [i async for i in bob.events(follow=False) if i.event.type == "gate_opened"]
            assert len(gates) == 1
            assert await restored.close()
        async with Orchestrator(settings, provider=local(tmp_path)) as third:
            state = await third.room_state(room.id)
            assert (state["state"], state["stopReason"]) == ("closed", "closed_by_human")


async def test_an_existing_session_joins_and_is_left_running(tmp_path: Path) -> None:
    agents = {"dave": ["Hello.", "@bob hi from dave"], "bob": [READY, "Thanks."]}
    async with scripted_room(agents, tmp_path, local(tmp_path)) as (models, orch):
        dave = await orch.create_session("say hello", freeform=True, api_key="dave")
        await wait_status(dave, "complete")
        room = await orch.create_room("mixed", idle_timeout=None)
        bob = await room.add_agent("bob", api_key="bob")
        await room.add_session(dave.id, "dave", initial_prompt="Say hi to bob.")
        items = await room_until(room, lambda i: i.raw.get("from") == "dave")
        assert messages(items) == [("dave", "bob", "hi from dave")]
        dave_turns = [r.user_text() for r in models.main_requests() if r.agent == "dave"]
        assert "Say hi to bob." in dave_turns[1]
        assert "bob" in dave_turns[1]  # the roster
        # a person takes over the delivery
        assert not await room.set_auto_iterate(False)
        await room.post("pat", "just so you know", to="bob")
        await wait_until(lambda: len([r for r in models.main_requests() if r.agent == "bob"]) == 2)
        await trio.sleep(0.3)
        assert len([r for r in models.main_requests() if r.agent == "bob"]) == 2
        await room.deliver("pat", "now act", to="bob")
        await wait_until(lambda: len([r for r in models.main_requests() if r.agent == "bob"]) == 3)
        bob_turns = [r.user_text() for r in models.main_requests() if r.agent == "bob"]
        assert "Message from pat:\n\nnow act" in bob_turns[2]
        assert await room.close()
        await ended(bob)
        # dave came with his own session: the room does not end it
        assert (await dave.info()).get("ended") is None
        assert await orch.sandbox_of(dave.id) is not None
        with pytest.raises(OrchestratorError):
            await room.add_session(dave.id, "dave2")


async def transcript(room: Room) -> list[tuple[str, str | None, str]]:
    return messages([i async for i in room.events(follow=False)])


async def test_a_turn_taking_room_gives_one_turn_at_a_time(tmp_path: Path) -> None:
    agents = {
        "alice": [READY, "@room go", "All answered."],
        "bob": [READY, "@alice from bob"],
        "carol": [READY, "@alice from carol"],
    }
    runs = []
    for run in range(2):
        data = tmp_path / f"run{run}"
        async with scripted_room(agents, data, local(data)) as (models, orch):
            room = await orch.create_room("turns", turn_taking=True, idle_timeout=0.5)
            for name in ("bob", "carol"):
                await room.add_agent(name, api_key=name)
            await room.add_agent("alice", api_key="alice", initial_prompt="Start.")
            items = await room_until(room, closed)
            assert items[-1].raw["reason"] == "all_idle"
            runs.append(await transcript(room))
            # never two turns at once: each request came after the previous answer
            # (the model server saw the agents' main requests strictly one by one)
            order = [r.agent for r in models.main_requests()]
            assert order == ["bob", "carol", "alice", "alice", "bob", "carol", "alice", "alice"]
    assert (
        runs[0]
        == runs[1]
        == [
            ("alice", None, "go"),
            ("bob", "alice", "from bob"),
            ("carol", "alice", "from carol"),
        ]
    )

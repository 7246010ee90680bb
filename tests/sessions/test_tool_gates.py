"""Tool calls at gates, with the real Claude Code CLI in a local sandbox: one approved
over HTTP runs, one denied does not, one left alone expires and the agent is told no;
a second answer is 409."""

from __future__ import annotations

from pathlib import Path

import trio

from orchestrator.core import bundled_claude_cli
from orchestrator.gates import Gate, ToolPolicy
from orchestrator.models import ToolCall, Turn
from orchestrator.sandboxes.local import LocalProvider

from .support import COLOR_QUESTION, scripted
from .test_api import api_server


def bash(command: str) -> Turn:
    return Turn(blocks=(ToolCall("Bash", {"command": command}),))


async def next_gate(orch: object, session_id: str, seen: set[str]) -> Gate:
    from orchestrator.core import Orchestrator

    assert isinstance(orch, Orchestrator)
    with trio.fail_after(60):
        while True:
            for gate in orch.gates.pending(session_id):
                if gate.gate_id not in seen:
                    seen.add(gate.gate_id)
                    return gate
            await trio.sleep(0.02)


async def test_tool_calls_wait_for_a_person(tmp_path: Path) -> None:
    provider = LocalProvider("test-server", tmp_path / "sb", claude_binary=bundled_claude_cli())
    turns: list[Turn | str] = [
        bash("echo a > a.txt"),
        bash("echo b > b.txt"),
        bash("echo c > c.txt"),
        "Done.",
    ]
    async with scripted(turns, tmp_path, provider) as (models, orch), api_server(orch) as client:
        session = await orch.create_session(
            "three files",
            freeform=True,
            tool_policy=ToolPolicy(allow=frozenset({"Read"})),
            tool_timeout=4.0,
        )
        auth = {"Authorization": f"Bearer {session.token}"}
        seen: set[str] = set()

        async def answer(gate: Gate, decision: str) -> int:
            tool_use_id = gate.gate_id.split(":", 1)[1]
            response = await client.post(
                f"/api/sessions/{session.id}/respond",
                json={"gate": "tool_permission", "toolUseId": tool_use_id, "decision": decision},
                headers=auth,
            )
            return response.status_code

        first = await next_gate(orch, session.id, seen)
        assert first.request["tool_name"] == "Bash"
        assert await answer(first, "allow") == 200
        assert await answer(first, "deny") == 409  # a second answer
        second = await next_gate(orch, session.id, seen)
        assert await answer(second, "deny") == 200
        third = await next_gate(orch, session.id, seen)  # left alone: it expires
        outcome = await third.wait()
        assert outcome.status == "expired"
        assert outcome.decision == "deny"
        done = await session.wait_for("session_end")
        assert done.event.type == "session_end"
        sandbox = await orch.sandbox_of(session.id)
        assert sandbox is not None
        files = {path.rsplit("/", 1)[1] for path in await sandbox.list_files(sandbox.workdir)}
        assert "a.txt" in files
        assert "b.txt" not in files
        assert "c.txt" not in files
        results = [r.tool_results() for r in models.main_requests()[1:4]]
        texts = [str(block) for blocks in results for block in blocks]
        assert any("a person denied it" in text for text in texts), texts
        assert any("expired" in text for text in texts), texts
        await session.delete()
    assert await provider.list_owned() == []


async def test_an_agents_question_is_answered_over_http(tmp_path: Path) -> None:
    provider = LocalProvider("test-server", tmp_path / "sb", claude_binary=bundled_claude_cli())
    turns: list[Turn | str] = [
        Turn(blocks=(ToolCall("AskUserQuestion", COLOR_QUESTION),)),
        "Blue it is.",
    ]
    async with scripted(turns, tmp_path, provider) as (models, orch), api_server(orch) as client:
        # the default session (no policy given): every tool runs, questions still wait
        session = await orch.create_session("ask me", freeform=True)
        asked = await session.wait_for("ask_user_question")
        assert asked.raw["question"] == "Which color?"
        gate = await next_gate(orch, session.id, set())
        assert gate.kind == "ask_user_question"
        response = await client.post(
            f"/api/sessions/{session.id}/respond",
            json={
                "gate": "ask_user_question",
                "toolUseId": asked.raw["tool_use_id"],
                "answers": {"Which color?": "blue"},
            },
            headers={"Authorization": f"Bearer {session.token}"},
        )
        assert response.json() == {"ok": True}
        await session.wait_for("session_end")
        # the answer reached the agent as the tool's result: no call-back from the sandbox
        result = str(models.main_requests()[1].tool_results())
        assert '"Which color?"="blue"' in result
        await session.delete()
    assert await provider.list_owned() == []

"""Claude Code and Codex in one room: a Claude agent and a Codex agent (the real
``codex app-server``) talk through the router, in local sandboxes and in containers,
against the one scripted model server (Anthropic Messages for Claude, OpenAI Responses
for Codex)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import trio

from orchestrator.core import bundled_claude_cli
from orchestrator.models import ToolCall, Turn, Usage
from orchestrator.sandboxes import DockerProvider, LocalProvider, SandboxProvider

from ..docker_support import codex_cli
from .support import READY, closed, ended, messages, prompts_of, room_until, scripted_room


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> SandboxProvider:
    codex = codex_cli()
    if request.param == "local":
        return LocalProvider(
            "test-server",
            tmp_path / "sandboxes",
            claude_binary=bundled_claude_cli(),
            codex_binary=codex,
        )
    client = request.getfixturevalue("docker_client")
    limiter: trio.CapacityLimiter = request.getfixturevalue("docker_limiter")
    return DockerProvider(
        f"test-{uuid.uuid4().hex[:12]}",
        client=client,
        limiter=limiter,
        network="host",
        claude_binary=bundled_claude_cli(),
        codex_binary=codex,
    )


async def test_claude_and_codex_share_a_room(tmp_path: Path, provider: SandboxProvider) -> None:
    agents: dict[str, list[Turn | str]] = {
        "alice": [READY, "@bob please make notes.txt", "Thanks, bob."],
        "bob": [
            READY,
            Turn(
                blocks=(ToolCall("exec_command", {"cmd": "echo from codex > notes.txt"}),),
                usage=Usage(input_tokens=3_000, output_tokens=100),
            ),
            "@alice notes.txt is written",
        ],
    }
    async with scripted_room(agents, tmp_path, provider) as (models, orch):
        room = await orch.create_room("mixed", turn_taking=True, idle_timeout=1.0)
        bob = await room.add_agent("bob", api_key="bob", agent="codex")
        alice = await room.add_agent("alice", api_key="alice", initial_prompt="Ask bob.")
        items = await room_until(room, closed, timeout=120)
        assert messages(items) == [
            ("alice", "bob", "please make notes.txt"),
            ("bob", "alice", "notes.txt is written"),
        ]
        assert items[-1].raw["reason"] == "all_idle"
        # Codex ran the command in its sandbox, and its events look like Claude's
        kinds = [i.event.type async for i in bob.events(follow=False)]
        for kind in ("session_start", "pre_tool_use", "post_tool_use", "assistant_message"):
            assert kind in kinds
        tool = [i.raw async for i in bob.events(follow=False) if i.event.type == "pre_tool_use"]
        assert tool[0]["tool_name"] == "Bash"
        assert "notes.txt" in tool[0]["tool_input"]["command"]
        state = await room.state()
        costs = {p["name"]: p["costUsd"] for p in state["participants"]}
        assert costs["bob"] > 0  # priced from Codex's tokens
        assert costs["alice"] > 0
        assert ("bob", "notes.txt is written") in await prompts_of(alice)
        apis = {r.agent: r.api for r in models.requests if r.agent in ("alice", "bob")}
        assert apis == {"alice": "anthropic", "bob": "openai"}
        info = await bob.info()
        assert info["agent"] == "codex"
        assert info["lastCoderSessionId"]  # the Codex thread, for a resume
        for session in (alice, bob):
            await ended(session)

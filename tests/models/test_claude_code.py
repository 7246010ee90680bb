"""The real Claude Code CLI (2.1.332, bundled in claude-agent-sdk) against the scripted
model server, as a local subprocess: a tool call it runs, side requests that take no
turn, a subagent, and the SDK's own transport under trio."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import cast

import pytest
import trio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    Message,
    ResultMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from orchestrator.models import (
    AgentScript,
    RequestKind,
    Script,
    Text,
    ToolCall,
    Turn,
    Usage,
    open_model_server,
)

from .claude_cli import CLI, blocks, claude_env, run_claude

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"no bundled Claude Code at {CLI}")

WRITE = Turn(
    blocks=(
        Text("I will write the file."),
        ToolCall("Bash", {"command": "echo hello > f.txt && cat f.txt", "description": "write"}),
    ),
    usage=Usage(input_tokens=1000, output_tokens=50),
)
WROTE = Turn.text("Wrote f.txt.", usage=Usage(input_tokens=2000, output_tokens=10))


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    return home, cwd


async def test_the_cli_runs_a_scripted_tool_call(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    script = Script(agents={"agent-a": AgentScript.of(WRITE, WROTE)})
    async with open_model_server(script) as models:
        lines = await run_claude(
            models, "agent-a", "make f.txt", "--allowedTools", "Bash", cwd=cwd, home=home
        )
    assert (cwd / "f.txt").read_text() == "hello\n"
    assert (lines[0]["type"], lines[0]["subtype"]) == ("system", "init")
    assert lines[0]["apiKeySource"] == "ANTHROPIC_API_KEY"
    [call] = blocks(lines, "assistant", "tool_use")
    assert call["name"] == "Bash"
    assert call["input"]["command"] == "echo hello > f.txt && cat f.txt"
    [result] = blocks(lines, "user", "tool_result")
    assert result["tool_use_id"] == call["id"]
    assert result["content"] == "hello"
    assert result["is_error"] is False
    said = [b["text"] for b in blocks(lines, "assistant", "text")]
    assert said == ["I will write the file.", "Wrote f.txt."]
    final = lines[-1]
    assert final["type"] == "result"
    assert final["subtype"] == "success"
    assert final["result"] == "Wrote f.txt."
    assert final["num_turns"] == 2
    # The cost is the CLI's price of the usage the script reported.
    assert final["usage"]["input_tokens"] == 3000
    assert final["usage"]["output_tokens"] == 60
    assert final["total_cost_usd"] > 0
    [model_usage] = final["modelUsage"].values()
    assert model_usage["costUSD"] == final["total_cost_usd"]

    # The server saw two main turns, no side request; the second carries the result.
    assert [(r.path, r.query, r.kind, r.turn) for r in models.requests] == [
        ("/v1/messages", "beta=true", RequestKind.MAIN, 0),
        ("/v1/messages", "beta=true", RequestKind.MAIN, 1),
    ]
    first, second = models.requests
    assert first.body["stream"] is True
    assert first.user_text().endswith("make f.txt")
    # Newer CLIs put a system message after the user's.
    assert first.messages[-1]["role"] == "system"
    [sent_back] = second.tool_results()
    assert sent_back["tool_use_id"] == call["id"]
    assert sent_back["content"] == "hello"


async def test_compaction_and_naming_take_no_turn(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    session = "11111111-2222-4333-8444-555555555555"
    script = Script(agents={"agent-a": AgentScript.of("first answer")}, side_text="All quiet.")
    async with open_model_server(script) as models:
        await run_claude(models, "agent-a", "hi", "--session-id", session, cwd=cwd, home=home)
        compacted = await run_claude(
            models, "agent-a", "/compact", "--resume", session, cwd=cwd, home=home
        )
        await run_claude(models, "agent-a", "/rename", "--resume", session, cwd=cwd, home=home)
    assert [(r.kind, r.turn, r.side_reason) for r in models.requests] == [
        (RequestKind.MAIN, 0, None),
        (RequestKind.SIDE, None, "compaction"),
        (RequestKind.SIDE, None, "structured_output"),
    ]
    assert models.turns_taken("agent-a") == 1
    boundary = [line for line in compacted if line.get("subtype") == "compact_boundary"]
    assert len(boundary) == 1
    summaries = [
        line["message"]["content"]
        for line in compacted
        if line["type"] == "user" and isinstance(line["message"]["content"], str)
    ]
    assert any("All quiet." in text for text in summaries)


async def test_a_subagent_plays_the_subagent_script(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    spawn = Turn.tool(
        "Agent", {"description": "greet", "prompt": "say hi", "subagent_type": "general-purpose"}
    )
    script = Script(
        agents={"agent-a": AgentScript.of(spawn, "waiting", subagents=AgentScript.of("sub: hi"))}
    )
    async with open_model_server(script) as models:
        await run_claude(models, "agent-a", "delegate", cwd=cwd, home=home)
    [sub] = [r for r in models.requests if r.subagent is not None]
    assert (sub.agent, sub.kind, sub.turn) == ("agent-a", RequestKind.MAIN, 0)
    assert sub.user_text().endswith("say hi")
    main = models.main_requests("agent-a")
    assert [r.turn for r in main if r.subagent is None][:2] == [0, 1]
    # The subagent's answer comes back to the main conversation.
    assert any("sub: hi" in r.user_text() for r in main if r.subagent is None)


async def until_result(messages: trio.MemoryReceiveChannel[Message]) -> list[Message]:
    out = []
    async for message in messages:
        out.append(message)
        if isinstance(message, ResultMessage):
            return out
    raise AssertionError(f"no result: {out}")


async def test_the_sdk_client_under_trio(dirs: tuple[Path, Path]) -> None:
    """Two turns on one CLI process through the SDK's own subprocess transport.

    One ``receive_messages()`` is drained for the client's lifetime, closed with
    ``aclosing``: ``receive_response()`` returns at the result without closing the SDK's
    inner generators, which trio then reports (ResourceWarning) when they are collected.
    """
    home, cwd = dirs
    script = Script(agents={"agent-sdk": AgentScript.of(WRITE, WROTE, "Second answer.")})
    async with open_model_server(script) as models:
        options = ClaudeAgentOptions(
            cli_path=CLI,
            cwd=cwd,
            env=claude_env(models, "agent-sdk", home),
            allowed_tools=["Bash"],
        )
        send, messages = trio.open_memory_channel[Message](64)

        async def pump(client: ClaudeSDKClient) -> None:
            # Typed an AsyncIterator, it is an async generator.
            received = cast(AsyncGenerator[Message, None], client.receive_messages())
            async with send, aclosing(received) as stream:
                async for message in stream:
                    await send.send(message)

        with trio.fail_after(20):
            async with ClaudeSDKClient(options) as client, trio.open_nursery() as nursery:
                nursery.start_soon(pump, client)
                await client.query("make f.txt")
                first = await until_result(messages)
                await client.query("and now?")
                second = await until_result(messages)
                await client.disconnect()
    assert (cwd / "f.txt").read_text() == "hello\n"
    calls = [
        b
        for m in first
        if isinstance(m, AssistantMessage)
        for b in m.content
        if isinstance(b, ToolUseBlock)
    ]
    assert [c.name for c in calls] == ["Bash"]
    results = [
        b
        for m in first
        if isinstance(m, UserMessage) and isinstance(m.content, list)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    ]
    assert [(r.tool_use_id, r.content) for r in results] == [(calls[0].id, "hello")]
    done = first[-1]
    assert isinstance(done, ResultMessage)
    assert done.result == "Wrote f.txt."
    assert done.total_cost_usd is not None
    assert done.total_cost_usd > 0
    again = second[-1]
    assert isinstance(again, ResultMessage)
    assert again.result == "Second answer."
    said = [
        b.text
        for m in second
        if isinstance(m, AssistantMessage)
        for b in m.content
        if isinstance(b, TextBlock)
    ]
    assert said == ["Second answer."]
    assert [r.turn for r in models.main_requests("agent-sdk")] == [0, 1, 2]
    assert models.requests[0].headers["user-agent"].startswith("claude-cli/")

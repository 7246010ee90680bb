"""Sessions end to end in local sandboxes: the real Claude Code CLI (bundled with the
pinned claude-agent-sdk) against the scripted model server, through the library.

Each path that ends a session is checked to leave no sandbox behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import trio

from orchestrator import events as ev
from orchestrator.core import OrchestratorError, Session, bundled_claude_cli
from orchestrator.models import ModelServer, Turn, Usage, open_model_server
from orchestrator.sandboxes.base import Sandbox, SandboxError, SandboxSpec
from orchestrator.sandboxes.local import LocalProvider

from ..docker_support import codex_cli
from .support import (
    AGENT_KEY,
    DONE,
    WRITE_FILE,
    collect_until,
    orchestrator_on,
    script,
    scripted,
    types_of,
    wait_status,
)


def local(tmp_path: Path) -> LocalProvider:
    return LocalProvider("test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli())


async def test_a_freeform_session_runs_a_tool_and_answers(tmp_path: Path) -> None:
    provider = local(tmp_path)
    async with scripted([WRITE_FILE, DONE, "Second answer."], tmp_path, provider) as (
        models,
        orch,
    ):
        session = await orch.create_session("make f.txt", freeform=True)
        items = await collect_until(session, "session_end")
        kinds = types_of(items)
        assert kinds[0] == "user_prompt"
        for kind in ("session_start", "pre_tool_use", "post_tool_use", "assistant_message"):
            assert kind in kinds
        post = next(i.event for i in items if isinstance(i.event, ev.PostToolUse))
        assert post.tool_response == "hello"
        end = items[-1].event
        assert isinstance(end, ev.SessionEnd)
        assert end.success
        assert end.cost_usd is not None
        assert end.cost_usd > 0
        assert any(isinstance(i.event, ev.CostUpdate) for i in items)
        info = await wait_status(session, "complete")
        assert info["totalCostUsd"] == pytest.approx(end.cost_usd)
        assert info["lastCoderSessionId"]
        # the tool really ran in the sandbox
        sandbox = await orch.sandbox_of(session.id)
        assert sandbox is not None
        assert await sandbox.read_file(f"{sandbox.workdir}/f.txt") == b"hello\n"

        # another turn, on the same process
        await session.send("and now?")
        more = await collect_until(session, "session_end", offset=items[-1].offset)
        assert types_of(more)[0] == "user_prompt"
        texts = [i.event.text for i in more if isinstance(i.event, ev.AssistantMessage)]
        assert texts == ["Second answer."]
        assert len(models.main_requests()) == 3

        await session.delete()
        assert await orch.session_info(session.id) is None
    assert await provider.list_owned() == []


async def test_a_non_freeform_session_gets_its_workspace_as_files(tmp_path: Path) -> None:
    provider = local(tmp_path)
    description = "a todo app\nCLAUDEMD_EOF\n$(touch /tmp/pwned) `id` 'quotes'"
    async with scripted(["Building."], tmp_path, provider) as (models, orch):
        session = await orch.create_session(description)
        await collect_until(session, "session_end")
        sandbox = await orch.sandbox_of(session.id)
        assert sandbox is not None
        claude_md = (await sandbox.read_file(f"{sandbox.workdir}/CLAUDE.md")).decode()
        assert description in claude_md
        skill = f"{sandbox.workdir}/.claude/skills/create-app/SKILL.md"
        assert b"create-app" in await sandbox.read_file(skill)
        assert b'"name"' in await sandbox.read_file(f"{sandbox.workdir}/package.json")
        first = models.main_requests()[0]
        # the CLI expands the /create-app skill; the description reaches the model intact
        assert json.dumps(description)[1:-1] in json.dumps(first.body)
        assert not await trio.Path("/tmp/pwned").exists()
        await session.delete()
    assert await provider.list_owned() == []


async def test_a_spent_budget_tears_the_session_down(tmp_path: Path) -> None:
    provider = local(tmp_path)
    turn = Turn(
        blocks=(WRITE_FILE.blocks[0],), usage=Usage(input_tokens=2_000_000, output_tokens=10)
    )
    async with scripted([turn, DONE], tmp_path, provider, max_session_cost_usd=0.5) as (
        _models,
        orch,
    ):
        session = await orch.create_session("spend", freeform=True)
        items = await collect_until(session, "budget_exceeded")
        exceeded = items[-1].event
        assert isinstance(exceeded, ev.BudgetExceeded)
        assert exceeded.budget_usd == 0.5
        assert exceeded.spent_usd > 0.5
        await wait_status(session, "error")
        assert await provider.list_owned() == []
        with pytest.raises(OrchestratorError, match="Container is not running"):
            await session.send("more")


def slow(tmp_path: Path, *, delay: float = 0.0, fail: bool = False) -> LocalProvider:
    provider = LocalProvider(
        "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
    )
    original = provider.create

    async def create(spec: SandboxSpec) -> Sandbox:
        await trio.sleep(delay)
        if fail:
            raise SandboxError("the engine said no")
        return await original(spec)

    provider.create = create  # type: ignore[method-assign,assignment]
    return provider


async def test_a_failing_sandbox_creation_ends_the_session_with_a_clear_error(
    tmp_path: Path,
) -> None:
    provider = slow(tmp_path, fail=True)
    async with scripted([DONE], tmp_path, provider) as (_models, orch):
        session = await orch.create_session("x", freeform=True)
        items = await collect_until(session, "log", timeout=30)
        while not (isinstance(items[-1].event, ev.Log) and items[-1].event.level == "error"):
            items += await collect_until(session, "log", offset=items[-1].offset)
        last = items[-1].event
        assert isinstance(last, ev.Log)
        assert last.message == "Session failed: the engine said no"
        await wait_status(session, "error")
    assert await provider.list_owned() == []


async def test_cancel_during_creation_leaves_nothing(tmp_path: Path) -> None:
    provider = slow(tmp_path, delay=0.5)
    async with scripted([DONE], tmp_path, provider) as (models, orch):
        session = await orch.create_session("x", freeform=True)
        await session.cancel()
        info = await wait_status(session, "cancelled")
        assert info["status"] == "cancelled"
        await trio.sleep(1.0)  # the creation finishes in its shield, then is removed
        assert await provider.list_owned() == []
        assert models.main_requests() == []
        items = await collect_until(session, "session_end")
        end = items[-1].event
        assert isinstance(end, ev.SessionEnd)
        assert not end.success


def agent_pids(session_id: str, program: bytes = b"/claude") -> list[int]:
    """The session's Claude Code (or ``program``) processes, seen from the host (each
    exec of a local sandbox has a PID namespace of its own: a pkill inside one sees
    only itself)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if argv[0].endswith(program) and session_id.encode() in environ:
            found.append(int(name))
    return found


async def kill_agent(
    session: Session, models: ModelServer, turns: int, program: bytes = b"/claude"
) -> None:
    """Wait until the agent asked the model for its turn ``turns`` (so that the turn is
    taken), then kill -9 its process."""
    with trio.fail_after(30):
        while len(models.main_requests()) < turns:  # noqa: ASYNC110 - no event to wait on
            await trio.sleep(0.05)
        while not (pids := agent_pids(session.id, program)):  # noqa: ASYNC110 - no event
            await trio.sleep(0.05)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


async def test_a_killed_agent_is_started_again_and_resumes(tmp_path: Path) -> None:
    provider = local(tmp_path)
    slow_turn = Turn(blocks=(WRITE_FILE.blocks[0],), delay=60.0)
    async with scripted(["First.", slow_turn, "After the restart."], tmp_path, provider) as (
        models,
        orch,
    ):
        session = await orch.create_session("x", freeform=True)
        first = await collect_until(session, "session_end")
        await session.send("take your time")
        await collect_until(session, "session_start", offset=first[-1].offset)
        await kill_agent(session, models, 2)
        lost = await collect_until(session, "log", offset=first[-1].offset)
        ends = [i.event for i in lost if isinstance(i.event, ev.SessionEnd)]
        assert [e.success for e in ends] == [False]  # the turn in progress is lost
        assert "started again" in lost[-1].raw["message"]
        info = await wait_status(session, "complete")
        assert info["status"] == "complete"
        assert len(await provider.list_owned()) == 1  # the sandbox lives on
        await session.send("and now?")
        after = await collect_until(session, "session_end", offset=lost[-1].offset)
        texts = [i.event.text for i in after if isinstance(i.event, ev.AssistantMessage)]
        assert texts == ["After the restart."]
        # a new process, resuming the conversation: the first exchange came with it
        assert "First." in json.dumps(models.main_requests()[-1].messages)


async def test_a_killed_codex_agent_is_started_again_and_resumes_its_thread(
    tmp_path: Path,
) -> None:
    codex = codex_cli()
    provider = LocalProvider(
        "test-server",
        tmp_path / "sandboxes",
        claude_binary=bundled_claude_cli(),
        codex_binary=codex,
    )
    slow_turn = Turn.text("Never said.", delay=60.0)
    async with (
        open_model_server(script("First.", slow_turn, "After the restart.")) as models,
        orchestrator_on(
            models,
            tmp_path / "data",
            provider,
            openai_base_url=models.openai_base_url,
            openai_api_key=AGENT_KEY,
        ) as orch,
    ):
        session = await orch.create_session("x", freeform=True, agent="codex")
        first = await collect_until(session, "session_end")
        await session.send("take your time")
        await kill_agent(session, models, 2, program=b"/codex")
        lost = await collect_until(session, "log", offset=first[-1].offset)
        ends = [i.event for i in lost if isinstance(i.event, ev.SessionEnd)]
        assert [e.success for e in ends] == [False]  # the turn in progress is lost
        assert "started again" in lost[-1].raw["message"]
        await wait_status(session, "complete")
        await session.send("and now?")
        after = await collect_until(session, "session_end", offset=lost[-1].offset)
        texts = [i.event.text for i in after if isinstance(i.event, ev.AssistantMessage)]
        assert texts == ["After the restart."]
        # a new process on the same thread: the first exchange came with it
        assert "First." in json.dumps(models.main_requests()[-1].body)


async def test_an_agent_killed_too_often_fails_the_session(tmp_path: Path) -> None:
    provider = local(tmp_path)
    slow_turn = Turn(blocks=(WRITE_FILE.blocks[0],), delay=60.0)
    async with scripted(["First."] + [slow_turn] * 5, tmp_path, provider) as (models, orch):
        session = await orch.create_session("x", freeform=True)
        offset = (await collect_until(session, "session_end"))[-1].offset
        for attempt in range(4):
            await session.send(f"attempt {attempt}")
            offset = (await collect_until(session, "session_start", offset=offset))[-1].offset
            await kill_agent(session, models, attempt + 2)
            if attempt < 3:
                offset = (await collect_until(session, "log", offset=offset))[-1].offset
        info = await wait_status(session, "error", timeout=30)
        assert info["status"] == "error"
        failed = await collect_until(session, "log", offset=offset)
        assert "4 times within 60s" in failed[-1].raw["message"]
        assert await provider.list_owned() == []


async def test_leaving_the_orchestrator_removes_live_sandboxes(tmp_path: Path) -> None:
    provider = local(tmp_path)
    async with scripted([WRITE_FILE, DONE], tmp_path, provider) as (_models, orch):
        session = await orch.create_session("x", freeform=True)
        await collect_until(session, "session_end")
        assert len(await provider.list_owned()) == 1
    assert await provider.list_owned() == []


async def test_a_gate_pending_at_a_restart_is_restored(tmp_path: Path) -> None:
    provider = local(tmp_path)
    async with scripted([DONE], tmp_path, provider) as (_models, orch):
        session = await orch.create_session("an app", ask_infra=True)
        await collect_until(session, "infra_config_prompt")
        assert [g.gate_id for g in orch.gates.pending(session.id)] == ["infra_config"]
    async with scripted([DONE], tmp_path, provider) as (_models, again):
        [gate] = again.gates.pending(session.id)
        assert gate.kind == "infra_config"
        outcome = await again.gates.resolve(session.id, "infra_config", {"mode": "local"})
        assert outcome.status == "resolved"
    assert await provider.list_owned() == []

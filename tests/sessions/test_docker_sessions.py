"""Sessions in real containers: the pinned Claude Code CLI bind-mounted into a Docker
sandbox (network host, to reach the scripted model on 127.0.0.1), driven over the
SDK's control protocol through ``docker exec`` with stdin attached."""

from __future__ import annotations

import os
import signal
import uuid
from functools import partial
from pathlib import Path

import docker
import pytest
import trio

from orchestrator import events as ev
from orchestrator.core import bundled_claude_cli
from orchestrator.models import Turn, Usage
from orchestrator.sandboxes import DockerProvider

from ..docker_support import off_loop
from ..sandboxes.conftest import docker_leftovers, remove_docker_leftovers
from .support import DONE, WRITE_FILE, collect_until, scripted, types_of, wait_status

pytestmark = pytest.mark.docker


@pytest.fixture
def provider(
    docker_client: docker.DockerClient, docker_limiter: trio.CapacityLimiter
) -> DockerProvider:
    return DockerProvider(
        f"test-{uuid.uuid4().hex[:12]}",
        client=docker_client,
        limiter=docker_limiter,
        network="host",
        claude_binary=bundled_claude_cli(),
    )


async def leftovers(
    client: docker.DockerClient, limiter: trio.CapacityLimiter, provider: DockerProvider
) -> list[str]:
    found = await off_loop(limiter, partial(docker_leftovers, client, provider.server_id))
    await off_loop(limiter, partial(remove_docker_leftovers, client, provider.server_id))
    return found


async def gone(provider: DockerProvider, timeout: float = 30) -> None:
    """Until the provider owns no sandbox (polling the engine: there is no event)."""
    with trio.fail_after(timeout):
        while await provider.list_owned():  # noqa: ASYNC110
            await trio.sleep(0.1)


async def test_a_session_in_a_container(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    async with scripted([WRITE_FILE, DONE, "Again."], tmp_path, provider) as (_models, orch):
        session = await orch.create_session("make f.txt", freeform=True)
        items = await collect_until(session, "session_end", timeout=90)
        kinds = types_of(items)
        assert "pre_tool_use" in kinds
        post = next(i.event for i in items if isinstance(i.event, ev.PostToolUse))
        assert post.tool_response == "hello"
        end = items[-1].event
        assert isinstance(end, ev.SessionEnd)
        assert end.success
        sandbox = await orch.sandbox_of(session.id)
        assert sandbox is not None
        who = await sandbox.exec(["stat", "-c", "%U", f"{sandbox.workdir}/f.txt"])
        assert who.stdout.strip() == b"agent"  # the agent ran as the non-root user
        await session.send("again")
        more = await collect_until(session, "session_end", offset=items[-1].offset, timeout=60)
        assert [i.event.text for i in more if isinstance(i.event, ev.AssistantMessage)] == [
            "Again."
        ]
        await session.delete()
    assert await leftovers(docker_client, docker_limiter, provider) == []


async def test_a_spent_budget_removes_the_container(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    turn = Turn(blocks=(WRITE_FILE.blocks[0],), usage=Usage(input_tokens=2_000_000))
    async with scripted([turn, DONE], tmp_path, provider, max_session_cost_usd=0.5) as (
        _models,
        orch,
    ):
        session = await orch.create_session("spend", freeform=True)
        await collect_until(session, "budget_exceeded", timeout=90)
        await wait_status(session, "error")
        assert await leftovers(docker_client, docker_limiter, provider) == []


async def test_server_shutdown_removes_the_container(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    async with scripted([WRITE_FILE, DONE], tmp_path, provider) as (_models, orch):
        session = await orch.create_session("x", freeform=True)
        await collect_until(session, "session_end", timeout=90)
        assert len(await provider.list_owned()) == 1
    assert await leftovers(docker_client, docker_limiter, provider) == []


async def test_a_failing_container_creation_fails_the_session(
    tmp_path: Path, docker_client: docker.DockerClient, docker_limiter: trio.CapacityLimiter
) -> None:
    provider = DockerProvider(
        f"test-{uuid.uuid4().hex[:12]}",
        image="agent-orchestrator/no-such-image:0",
        client=docker_client,
        limiter=docker_limiter,
        network="host",
    )
    async with scripted([DONE], tmp_path, provider) as (_models, orch):
        session = await orch.create_session("x", freeform=True)
        info = await wait_status(session, "error", timeout=60)
        assert info["status"] == "error"
        items = await collect_until(session, "log", offset="-1")
        while not (isinstance(items[-1].event, ev.Log) and items[-1].event.level == "error"):
            items += await collect_until(session, "log", offset=items[-1].offset)
        failed = items[-1].event
        assert isinstance(failed, ev.Log)
        assert failed.message.startswith("Session failed:")
    assert await leftovers(docker_client, docker_limiter, provider) == []


async def test_cancel_during_container_creation_leaves_nothing(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    async with scripted([DONE], tmp_path, provider) as (models, orch):
        session = await orch.create_session("x", freeform=True)
        await collect_until(session, "log")  # "Creating docker sandbox..."
        await session.cancel()
        await wait_status(session, "cancelled")
        await gone(provider)
        assert models.main_requests() == []
    assert await leftovers(docker_client, docker_limiter, provider) == []


async def test_a_killed_agent_is_started_again_in_its_container(
    tmp_path: Path,
    provider: DockerProvider,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    slow_turn = Turn(blocks=(WRITE_FILE.blocks[0],), delay=60.0)
    async with scripted([slow_turn, "Back."], tmp_path, provider) as (models, orch):
        session = await orch.create_session("x", freeform=True)
        start = await collect_until(session, "session_start", timeout=90)
        with trio.fail_after(60):  # the slow turn is being answered: kill it then
            while not models.main_requests():  # noqa: ASYNC110 - no event to wait on
                await trio.sleep(0.05)
        sandbox = await orch.sandbox_of(session.id)
        assert sandbox is not None
        # the image has no pkill: find the CLI among the container's processes (host
        # pids, from the engine) and kill it from here
        top = await off_loop(docker_limiter, partial(docker_client.api.top, sandbox.sandbox_id))
        pid_at = top["Titles"].index("PID")
        pids = [int(row[pid_at]) for row in top["Processes"] if "/opt/claude/claude" in row[-1]]
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        items = await collect_until(session, "log", offset=start[-1].offset, timeout=60)
        assert "started again" in items[-1].raw["message"]
        assert [i.raw["success"] for i in items if i.event.type == "session_end"] == [False]
        assert len(await provider.list_owned()) == 1  # the container lives on
        await session.send("again")
        after = await collect_until(session, "session_end", offset=items[-1].offset, timeout=90)
        assert [i.event.text for i in after if isinstance(i.event, ev.AssistantMessage)] == [
            "Back."
        ]
        await session.delete()
        await gone(provider)
    assert await leftovers(docker_client, docker_limiter, provider) == []

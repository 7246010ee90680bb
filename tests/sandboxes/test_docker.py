"""What only the Docker provider does, on the real engine: labels, limits and the
container's shape, the bundled Claude Code CLI inside, cleanup after failed or
cancelled creates, and ownership by server."""

from __future__ import annotations

import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import claude_agent_sdk
import docker
import pytest
import trio

from orchestrator.sandboxes import (
    DockerProvider,
    DockerSandbox,
    SandboxError,
    SandboxSpec,
)
from orchestrator.sandboxes._common import LABEL_PROJECT, LABEL_SERVER, LABEL_SESSION

from ..docker_support import BUSYBOX_IMAGE, TEST_LABEL, off_loop
from .conftest import docker_leftovers, open_docker_provider
from .helpers import command_lines

pytestmark = pytest.mark.docker

CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


def inspect(client: docker.DockerClient, container_id: str) -> dict[str, Any]:
    info: dict[str, Any] = client.api.inspect_container(container_id)
    return info


async def test_the_container_is_labelled_limited_and_runs_as_agent(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    docker_provider: DockerProvider,
    session_id: str,
    server_id: str,
) -> None:
    spec = SandboxSpec(
        session_id=session_id,
        project_name="limits",
        network="host",
        memory_bytes=256 * 1024**2,
        pids_limit=64,
        cpus=0.5,
    )
    sandbox = await docker_provider.create(spec)
    try:
        info = await off_loop(docker_limiter, partial(inspect, docker_client, sandbox.sandbox_id))
        labels = info["Config"]["Labels"]
        assert (labels[LABEL_SERVER], labels[LABEL_SESSION], labels[LABEL_PROJECT]) == (
            server_id,
            session_id,
            "limits",
        )
        host = info["HostConfig"]
        assert host["Memory"] == 256 * 1024**2
        assert host["PidsLimit"] == 64
        assert host["NanoCpus"] == 500_000_000
        assert host["NetworkMode"] == "host"
        assert host["Init"] is True
        assert host["CapDrop"] == ["ALL"]
        assert info["Config"]["User"] == "agent"
        [mount] = [m for m in info["Mounts"] if m["Destination"] == "/workspace"]
        assert mount["Type"] == "volume"
        volume = await off_loop(
            docker_limiter, partial(docker_client.api.inspect_volume, mount["Name"])
        )
        assert volume["Labels"][LABEL_SESSION] == session_id
        whoami = await sandbox.exec(["id", "-un"])
        assert whoami.stdout == b"agent\n"
        root = await sandbox.exec(["id", "-u"], user="root")
        assert root.stdout == b"0\n"
        owner = await sandbox.exec(["stat", "-c", "%U:%G", sandbox.workdir])
        assert owner.stdout == b"agent:agent\n"
        # PID 1 is docker's init, the idle command its child.
        processes = await command_lines(sandbox)
        assert any(line.startswith("sleep infinity") for line in processes)
    finally:
        await sandbox.destroy()


async def test_the_bundled_claude_cli_runs_inside_as_agent(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    server_id: str,
    session_id: str,
) -> None:
    assert CLAUDE.is_file()
    provider = DockerProvider(
        server_id, client=docker_client, limiter=docker_limiter, claude_binary=CLAUDE
    )
    async with provider:
        sandbox = await provider.create(SandboxSpec(session_id=session_id, project_name="p"))
        try:
            version = await sandbox.exec(["/opt/claude/claude", "--version"], timeout=60)
            assert version.ok, version
            assert b"Claude Code" in version.stdout
            expected = (CLAUDE.parent / "claude.version").read_text().strip()
            assert expected in version.stdout.decode()
            readonly = await sandbox.exec(["touch", "/opt/claude/claude"])
            assert not readonly.ok
        finally:
            await sandbox.destroy()
    assert await off_loop(docker_limiter, partial(docker_leftovers, docker_client, server_id)) == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"image": "agent-orchestrator/no-such-image:0"}, "No such image"),
        ({"claude_binary": Path("/nonexistent/claude")}, "/nonexistent/claude"),
    ],
    ids=["missing-image", "missing-bind-source"],
)
async def test_a_failed_create_leaves_nothing(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    server_id: str,
    session_id: str,
    options: dict[str, Any],
    error: str,
) -> None:
    provider = DockerProvider(server_id, client=docker_client, limiter=docker_limiter, **options)
    async with provider:
        with pytest.raises(SandboxError, match=error):
            await provider.create(SandboxSpec(session_id=session_id, project_name="p"))
        assert await provider.list_owned() == []
    assert await off_loop(docker_limiter, partial(docker_leftovers, docker_client, server_id)) == []


async def test_a_second_sandbox_of_a_session_is_refused_and_the_first_kept(
    docker_provider: DockerProvider, session_id: str
) -> None:
    sandbox = await docker_provider.create(SandboxSpec(session_id=session_id, project_name="p"))
    try:
        with pytest.raises(SandboxError, match="exists"):
            await docker_provider.create(SandboxSpec(session_id=session_id, project_name="q"))
        assert await sandbox.is_alive()
        assert len(await docker_provider.list_owned()) == 1
    finally:
        await sandbox.destroy()


async def test_cpus_are_capped_at_the_engines(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    docker_provider: DockerProvider,
    session_id: str,
) -> None:
    spec = SandboxSpec(session_id=session_id, project_name="p", cpus=1000.0)
    sandbox = await docker_provider.create(spec)
    try:
        engine = await off_loop(docker_limiter, docker_client.info)
        info = await off_loop(docker_limiter, partial(inspect, docker_client, sandbox.sandbox_id))
        assert info["HostConfig"]["NanoCpus"] == engine["NCPU"] * 10**9
    finally:
        await sandbox.destroy()


@pytest.mark.parametrize("after", [0.0, 0.05, 0.15, 0.3])
async def test_a_cancelled_create_leaves_nothing(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    docker_provider: DockerProvider,
    server_id: str,
    session_id: str,
    after: float,
) -> None:
    made: list[DockerSandbox] = []
    with trio.move_on_after(after):
        made.append(
            await docker_provider.create(SandboxSpec(session_id=session_id, project_name="p"))
        )
    for sandbox in made:  # it was quicker than the cancellation
        await sandbox.destroy()
    assert await off_loop(docker_limiter, partial(docker_leftovers, docker_client, server_id)) == []


async def test_a_volume_left_by_a_crash_is_listed_and_removed(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    docker_provider: DockerProvider,
    server_id: str,
    session_id: str,
) -> None:
    name = f"ao-{session_id}-crashed"
    labels = {LABEL_SERVER: server_id, LABEL_SESSION: session_id}
    await off_loop(docker_limiter, partial(docker_client.api.create_volume, name, labels=labels))
    [info] = await docker_provider.list_owned()
    assert (info.sandbox_id, info.session_id, info.alive) == (name, session_id, False)
    await docker_provider.remove(name)
    assert await docker_provider.list_owned() == []


async def test_another_servers_containers_are_neither_listed_nor_removed(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    server_id: str,
    session_id: str,
) -> None:
    other_id = f"{server_id}-other"
    async with (
        open_docker_provider(docker_client, docker_limiter, server_id) as ours,
        open_docker_provider(docker_client, docker_limiter, other_id) as theirs,
    ):
        sandbox = await theirs.create(SandboxSpec(session_id=session_id, project_name="p"))
        try:
            assert await ours.list_owned() == []
            assert await ours.attach(session_id) is None
            with pytest.raises(SandboxError, match="not this server's"):
                await ours.remove(sandbox.sandbox_id)
            assert await sandbox.is_alive()
            # A container that is no sandbox at all is refused too.
            stranger = await off_loop(
                docker_limiter,
                partial(
                    docker_client.api.create_container,
                    BUSYBOX_IMAGE,
                    ["true"],
                    labels={TEST_LABEL: uuid.uuid4().hex},
                ),
            )
            try:
                with pytest.raises(SandboxError, match="not this server's"):
                    await ours.remove(stranger["Id"])
            finally:
                await off_loop(
                    docker_limiter,
                    partial(docker_client.api.remove_container, stranger["Id"], force=True),
                )
        finally:
            await sandbox.destroy()


async def test_output_written_at_once_is_not_lost(
    docker_provider: DockerProvider, session_id: str
) -> None:
    """Output written before anyone reads it arrives, whether with the 101 response
    (in docker-py's buffer: see test_docker_stream) or after it."""
    sandbox = await docker_provider.create(SandboxSpec(session_id=session_id, project_name="p"))
    try:
        for _ in range(20):
            result = await sandbox.exec(["echo", "at once"])
            assert result.stdout == b"at once\n"
        process = await sandbox.spawn(
            ["python3", "-c", "print('early', flush=True); import sys; sys.stdin.read()"]
        )
        async with process:
            await trio.sleep(0.2)
            first = await process.stdout().__anext__()
            assert first == b"early\n"
    finally:
        await sandbox.destroy()


async def test_latency(docker_provider: DockerProvider, session_id: str) -> None:
    """Create, exec and destroy stay well inside a second each on a local engine
    (printed with -s)."""
    began = time.perf_counter()
    sandbox = await docker_provider.create(SandboxSpec(session_id=session_id, project_name="p"))
    created = time.perf_counter()
    try:
        for _ in range(5):
            assert (await sandbox.exec(["true"])).ok
        executed = time.perf_counter()
        process = await sandbox.spawn(["cat"])
        await process.kill()
        killed = time.perf_counter()
    finally:
        await sandbox.destroy()
    destroyed = time.perf_counter()
    timings = {
        "create": created - began,
        "exec": (executed - created) / 5,
        "spawn+kill": killed - executed,
        "destroy": destroyed - killed,
    }
    print(" ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings.items()))
    assert all(seconds < 5 for seconds in timings.values()), timings

"""Providers for the sandbox tests: Docker on the real engine, local with bubblewrap,
local without. Every test gets a server id of its own; whatever carries it is removed
after the test, and a Docker test that left a container or volume behind fails."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import docker
import pytest
import trio

from orchestrator.sandboxes import (
    DockerProvider,
    LocalProvider,
    Sandbox,
    SandboxProvider,
    SandboxSpec,
)
from orchestrator.sandboxes._common import LABEL_SERVER

from ..docker_support import in_ci, off_loop

# The app of the app tests: a real server in the project directory.
APP_COMMAND = ("python3", "-m", "http.server", "--bind", "127.0.0.1", "0")


def docker_leftovers(client: docker.DockerClient, server_id: str) -> list[str]:
    """Containers and volumes labelled with ``server_id``."""
    filters = {"label": f"{LABEL_SERVER}={server_id}"}
    containers = client.api.containers(all=True, filters=filters)
    volumes = client.api.volumes(filters=filters).get("Volumes") or []
    return [f"container {c['Id'][:12]}" for c in containers] + [
        f"volume {v['Name']}" for v in volumes
    ]


def remove_docker_leftovers(client: docker.DockerClient, server_id: str) -> list[str]:
    found = docker_leftovers(client, server_id)
    filters = {"label": f"{LABEL_SERVER}={server_id}"}
    for container in client.api.containers(all=True, filters=filters):
        client.api.remove_container(container["Id"], force=True, v=True)
    for volume in client.api.volumes(filters=filters).get("Volumes") or []:
        client.api.remove_volume(volume["Name"], force=True)
    return found


@pytest.fixture
def server_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def session_id() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def open_docker_provider(
    client: docker.DockerClient, limiter: trio.CapacityLimiter, server_id: str
) -> AsyncIterator[DockerProvider]:
    """A provider on the test engine; afterwards, nothing labelled with its server id
    may be left (what is, is removed and fails the test)."""
    provider = DockerProvider(server_id, client=client, limiter=limiter, app_command=APP_COMMAND)
    try:
        yield provider
    finally:
        await provider.aclose()
        left = await off_loop(limiter, partial(remove_docker_leftovers, client, server_id))
        assert left == [], f"the test left {left} behind"


@pytest.fixture
async def docker_provider(
    docker_client: docker.DockerClient, docker_limiter: trio.CapacityLimiter, server_id: str
) -> AsyncIterator[DockerProvider]:
    async with open_docker_provider(docker_client, docker_limiter, server_id) as provider:
        yield provider


def bwrap_or_skip() -> None:
    if shutil.which("bwrap") is None:
        reason = "bubblewrap is not installed (apt-get install bubblewrap)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        "local-bwrap",
        "local-plain",
    ]
)
def provider_kind(request: pytest.FixtureRequest) -> str:
    kind = str(request.param)
    if kind == "local-bwrap":
        bwrap_or_skip()
    return kind


@pytest.fixture
def engine(provider_kind: str, request: pytest.FixtureRequest) -> docker.DockerClient | None:
    """The Docker client when the provider is Docker (the fixture skips or fails
    without an engine), else None."""
    if provider_kind != "docker":
        return None
    client: docker.DockerClient = request.getfixturevalue("docker_client")
    return client


@pytest.fixture
async def provider(
    provider_kind: str,
    engine: docker.DockerClient | None,
    docker_limiter: trio.CapacityLimiter,
    tmp_path: Path,
    server_id: str,
) -> AsyncIterator[SandboxProvider]:
    if engine is not None:
        async with open_docker_provider(engine, docker_limiter, server_id) as made:
            yield made
        return
    local = LocalProvider(
        server_id,
        tmp_path / "sandboxes",
        bwrap=provider_kind == "local-bwrap",
        app_command=APP_COMMAND,
    )
    async with local:
        yield local


@pytest.fixture
async def sandbox(provider: SandboxProvider, session_id: str) -> AsyncIterator[Sandbox]:
    made = await provider.create(
        SandboxSpec(session_id=session_id, project_name="demo.app", env={"SPEC_VAR": "from spec"})
    )
    try:
        yield made
    finally:
        await made.destroy()

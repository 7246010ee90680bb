"""make_provider: docker, local, or auto (Docker when an engine answers)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from orchestrator.sandboxes import (
    DockerProvider,
    LocalProvider,
    SandboxError,
    SandboxSpec,
    make_provider,
)


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


async def test_local(tmp_path: Path, server_id: str) -> None:
    provider = await make_provider("local", server_id, root=tmp_path)
    async with provider:
        assert isinstance(provider, LocalProvider)
        assert provider.root == tmp_path


@pytest.mark.usefixtures("no_engine")
async def test_auto_without_an_engine_is_local(tmp_path: Path, server_id: str) -> None:
    provider = await make_provider("auto", server_id, root=tmp_path)
    async with provider:
        assert isinstance(provider, LocalProvider)


@pytest.mark.usefixtures("no_engine")
async def test_docker_without_an_engine_is_an_error(server_id: str) -> None:
    with pytest.raises(SandboxError, match="no Docker engine"):
        await make_provider("docker", server_id)


@pytest.mark.docker
@pytest.mark.usefixtures("docker_client")
async def test_auto_with_an_engine_is_docker(tmp_path: Path, server_id: str) -> None:
    provider = await make_provider("auto", server_id, root=tmp_path)
    async with provider:
        assert isinstance(provider, DockerProvider)
        assert await provider.list_owned() == []


@pytest.mark.docker
async def test_docker_with_a_given_client(
    docker_client: docker.DockerClient, server_id: str
) -> None:
    provider = await make_provider("docker", server_id, client=docker_client)
    async with provider:
        assert isinstance(provider, DockerProvider)
        assert await provider.list_owned() == []
    docker_client.ping()  # the caller's client stays open


async def test_bad_arguments(server_id: str) -> None:
    with pytest.raises(ValueError, match="unknown sandbox provider"):
        await make_provider("podman", server_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="root"):
        await make_provider("local", server_id)
    with pytest.raises(SandboxError, match="server id"):
        await make_provider("local", "a b", root=Path("/nonexistent"))
    with pytest.raises(ValueError, match="project name"):
        SandboxSpec(session_id="s", project_name="")

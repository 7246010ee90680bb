"""Sandbox providers: Docker (one engine or several) and local.

:func:`make_provider` picks one: ``docker``, ``local``, or ``auto`` (Docker when an
engine answers, local otherwise). Given a list of Docker hosts, Docker means
:class:`MultiDockerProvider`: sandboxes placed across those engines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import docker
import trio

from .base import (
    AppStatus,
    ExecResult,
    Network,
    Process,
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxProvider,
    SandboxSpec,
    validate_name,
)
from .docker import DEFAULT_IMAGE, DockerProcess, DockerProvider, DockerSandbox, connect_engine
from .local import LocalProcess, LocalProvider, LocalSandbox
from .multi import HostStatus, MultiDockerProvider

__all__ = [
    "DEFAULT_IMAGE",
    "AppStatus",
    "DockerProcess",
    "DockerProvider",
    "DockerSandbox",
    "ExecResult",
    "HostStatus",
    "LocalProcess",
    "LocalProvider",
    "LocalSandbox",
    "MultiDockerProvider",
    "Network",
    "Process",
    "ProviderKind",
    "Sandbox",
    "SandboxError",
    "SandboxInfo",
    "SandboxProvider",
    "SandboxSpec",
    "connect_engine",
    "make_provider",
    "validate_name",
]

logger = logging.getLogger(__name__)

ProviderKind = Literal["docker", "local", "auto"]


async def make_provider(
    kind: ProviderKind,
    server_id: str,
    *,
    root: Path | None = None,
    image: str = DEFAULT_IMAGE,
    network: Network | None = None,
    claude_binary: Path | None = None,
    codex_binary: Path | None = None,
    limiter: trio.CapacityLimiter | None = None,
    client: docker.DockerClient | None = None,
    hosts: Sequence[str] = (),
    max_per_host: int | None = None,
) -> SandboxProvider:
    """A provider of ``kind``. ``auto``: Docker when an engine answers (``client``, or
    the one the environment names), else local sandboxes under ``root``. ``root`` is
    needed whenever the answer may be local; the Docker options are ignored there.

    ``hosts`` (``DOCKER_HOST`` values): Docker is a :class:`MultiDockerProvider` over
    those engines, which answers when one of them does (the others are retried on use),
    with at most ``max_per_host`` running sandboxes on one engine.

    Raises SandboxError for ``docker`` without an engine, ValueError for a bad kind or a
    missing root."""
    if kind not in ("docker", "local", "auto"):
        raise ValueError(f"unknown sandbox provider {kind!r}: docker, local or auto")
    if hosts and kind != "local":
        if client is not None:
            raise ValueError("give a Docker client or a list of Docker hosts, not both")
        multi = MultiDockerProvider(
            server_id,
            hosts,
            image=image,
            network=network,
            claude_binary=claude_binary,
            codex_binary=codex_binary,
            limiter=limiter,
            max_per_host=max_per_host,
        )
        try:
            await multi.connect()
            return multi
        except SandboxError as exc:
            await multi.aclose()
            if kind == "docker":
                raise
            logger.warning("no Docker engine (%s): local sandboxes", exc)
        except BaseException:
            await multi.aclose()
            raise
        kind = "local"
    owned = False
    if kind != "local" and client is None:
        try:
            client = await trio.to_thread.run_sync(connect_engine, limiter=limiter)
            owned = True
        except SandboxError as exc:
            if kind == "docker":
                raise
            logger.info("no Docker engine (%s): local sandboxes", exc)
    if kind != "local" and client is not None:
        return DockerProvider(
            server_id,
            image=image,
            network=network,
            claude_binary=claude_binary,
            codex_binary=codex_binary,
            limiter=limiter,
            client=client,
            close_client=owned,
        )
    if root is None:
        raise ValueError("local sandboxes need a root directory")
    return LocalProvider(server_id, root, claude_binary=claude_binary, codex_binary=codex_binary)

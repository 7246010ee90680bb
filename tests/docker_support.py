"""Docker for the tests: a client when an engine answers, and the base image tags
built by ``scripts/docker-engine``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import docker
import pytest
import trio

from orchestrator.bridges.codex_cli import CODEX_VERSION, codex_binary
from orchestrator.sandboxes import SandboxError, connect_engine

BUSYBOX_IMAGE = "agent-orchestrator/busybox:1"
DEBIAN_IMAGE = "agent-orchestrator/debian:bookworm-1"
TEST_LABEL = "agent-orchestrator.test"

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def codex_cli() -> Path:
    """The pinned Codex binary; skips the test when it is not installed (fails in CI,
    where a missing part is a failure)."""
    path = codex_binary()
    if path is None:
        reason = (
            f"the Codex CLI {CODEX_VERSION} is not installed in vendor/codex "
            "(bash scripts/setup installs it when npm is present)"
        )
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def connect() -> tuple[docker.DockerClient | None, str]:
    """A client whose engine answered a ping, or None and the reason."""
    try:
        return connect_engine(), ""
    except SandboxError as exc:
        return None, f"{exc}; run: bash scripts/docker-engine"


async def off_loop(limiter: trio.CapacityLimiter, fn: Callable[[], T]) -> T:
    """Run a blocking docker SDK call in a worker thread, within the limiter."""
    return await trio.to_thread.run_sync(fn, limiter=limiter)

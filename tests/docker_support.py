"""Docker for the tests: a client when an engine answers, and the base image tags
built by ``scripts/docker-engine``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import docker
import trio

from orchestrator.sandboxes import SandboxError, connect_engine

BUSYBOX_IMAGE = "agent-orchestrator/busybox:1"
DEBIAN_IMAGE = "agent-orchestrator/debian:bookworm-1"
TEST_LABEL = "agent-orchestrator.test"

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def connect() -> tuple[docker.DockerClient | None, str]:
    """A client whose engine answered a ping, or None and the reason."""
    try:
        return connect_engine(), ""
    except SandboxError as exc:
        return None, f"{exc}; run: bash scripts/docker-engine"


async def off_loop(limiter: trio.CapacityLimiter, fn: Callable[[], T]) -> T:
    """Run a blocking docker SDK call in a worker thread, within the limiter."""
    return await trio.to_thread.run_sync(fn, limiter=limiter)

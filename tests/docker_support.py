"""Docker for the tests: a client when an engine answers, and the base image tags
built by ``scripts/docker-engine``."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable
from typing import TypeVar

import docker
import docker.errors
import trio

BUSYBOX_IMAGE = "agent-orchestrator/busybox:1"
DEBIAN_IMAGE = "agent-orchestrator/debian:bookworm-1"
TEST_LABEL = "agent-orchestrator.test"

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def connect() -> tuple[docker.DockerClient | None, str]:
    """A client whose engine answered a ping, or None and the reason."""
    # Ask with the oldest API version first, so a failed probe leaves no socket open,
    # then speak the engine's own version.
    probe = docker.from_env(version="1.24", timeout=30)
    version = reason = ""
    try:
        version = str(probe.version()["ApiVersion"])
    except (docker.errors.DockerException, OSError, KeyError) as exc:
        reason = f"no Docker engine answers ({exc}); run: bash scripts/docker-engine"
    finally:
        probe.close()
    if reason:
        # docker-py leaves the socket of a failed connect open: collect it here (once
        # the traceback holding it is gone) rather than let its ResourceWarning fail
        # an unrelated test later.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        return None, reason
    return docker.from_env(version=version, timeout=30), ""


async def off_loop(limiter: trio.CapacityLimiter, fn: Callable[[], T]) -> T:
    """Run a blocking docker SDK call in a worker thread, within the limiter."""
    return await trio.to_thread.run_sync(fn, limiter=limiter)

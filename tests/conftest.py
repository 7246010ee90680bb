"""Shared fixtures. Tests marked ``docker`` get a real engine: in CI (``CI=true``) a
missing engine fails them; elsewhere they skip with the reason."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
import trio

from .docker_support import connect, in_ci
from .node_support import ds_reference_url  # noqa: F401


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client, reason = connect()
    if client is None:
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def docker_limiter() -> trio.CapacityLimiter:
    """Bounds the worker threads that blocking docker SDK calls run in."""
    return trio.CapacityLimiter(4)

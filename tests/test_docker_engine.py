"""The real Docker engine, driven from trio through the docker SDK off the event loop."""

from __future__ import annotations

import uuid
from functools import partial
from typing import cast

import docker
import pytest
import trio

from .docker_support import BUSYBOX_IMAGE, DEBIAN_IMAGE, TEST_LABEL, off_loop

pytestmark = pytest.mark.docker


def labelled(client: docker.DockerClient, run_id: str) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={run_id}"})
    return [str(c.id) for c in found]


@pytest.mark.parametrize("image", [BUSYBOX_IMAGE, DEBIAN_IMAGE])
async def test_a_labelled_container_runs_an_argument_list_and_is_removed(
    docker_client: docker.DockerClient, docker_limiter: trio.CapacityLimiter, image: str
) -> None:
    run_id = uuid.uuid4().hex
    run = partial(off_loop, docker_limiter)
    container = await run(
        partial(
            docker_client.containers.create,
            image,
            command=["sleep", "300"],
            labels={TEST_LABEL: run_id},
            network_mode="none",
            user="agent",
        )
    )
    try:
        await run(container.start)
        # An argument list: the text reaches echo as it is, no shell expands it.
        result = await run(
            partial(container.exec_run, ["echo", "hello", "$(id)", "a;b"], demux=True)
        )
        assert result.exit_code == 0
        stdout, stderr = cast(tuple[bytes | None, bytes | None], result.output)
        assert stdout == b"hello $(id) a;b\n"
        assert stderr is None
        whoami = await run(partial(container.exec_run, ["id", "-u"]))
        assert cast(bytes, whoami.output) == b"1000\n"
        assert await run(partial(labelled, docker_client, run_id)) == [str(container.id)]
    finally:
        await run(partial(container.remove, force=True))
    assert await run(partial(labelled, docker_client, run_id)) == []

"""Sandboxes across several Docker engines: the placement rule, the settings, and two
real engines on this machine: the first (``scripts/docker-engine``) on its unix socket,
a second (``scripts/docker-engine-extra``, started here and stopped by its PID at the
end) on a TCP port on 127.0.0.1. The second is stopped and started again mid-test: calls
on its sandboxes fail fast and name it, the first carries on, and what it left is reaped
when it is back. Nothing labelled with a test's server id may be left on either."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import docker
import pytest
import trio

from orchestrator.config import ConfigError, Settings
from orchestrator.sandboxes import (
    HostStatus,
    LocalProvider,
    MultiDockerProvider,
    SandboxError,
    SandboxSpec,
    connect_engine,
    make_provider,
)
from orchestrator.sandboxes._common import poll_until
from orchestrator.sandboxes.multi import LABEL_HOST, place

from ..docker_support import BUSYBOX_IMAGE, in_ci, off_loop
from .conftest import docker_leftovers, remove_docker_leftovers

EXTRA = Path(__file__).resolve().parents[2] / "scripts" / "docker-engine-extra"
EXTRA_NAME = os.environ.get("DOCKER_EXTRA_NAME", "agent-orchestrator-docker2")
EXTRA_PIDFILE = Path(f"/run/{EXTRA_NAME}.pid")
FIRST = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
SECOND = f"tcp://127.0.0.1:{os.environ.get('DOCKER_EXTRA_PORT', '23750')}"
MiB = 1024**2
GiB = 1024**3


# -- the rule and the settings, without an engine ----------------------------------------


def test_placement_takes_the_most_free_memory_then_the_fewest_then_the_first() -> None:
    def host(url: str, sandboxes: int, reserved: int, *, up: bool = True) -> HostStatus:
        return HostStatus(
            url, up=up, sandboxes=sandboxes, memory_total=8 * GiB, memory_reserved=reserved
        )

    assert place([host("a", 0, 0), host("b", 0, 0)]) == 0  # a tie: the first
    assert place([host("a", 1, 2 * GiB), host("b", 3, 1 * GiB)]) == 1  # more free
    assert place([host("a", 2, GiB), host("b", 1, GiB)]) == 1  # as free: fewer
    assert place([host("a", 0, 0, up=False), host("b", 5, 7 * GiB)]) == 1  # a is down
    # At the count limit an engine is out, however free it is.
    assert place([host("a", 3, 0), host("b", 2, 6 * GiB)], max_per_host=3) == 1
    assert place([host("a", 3, 0), host("b", 3, 0)], max_per_host=3) is None
    assert place([]) is None
    # Memory ranks; with nothing needed, over-committed is last, not out.
    assert place([host("a", 9, 20 * GiB), host("b", 9, 30 * GiB)]) == 0
    # A sandbox's memory limit must fit what is free, where the engine's memory is known.
    assert place([host("a", 0, 7 * GiB), host("b", 0, 7 * GiB)], need=2 * GiB) is None
    assert place([host("a", 0, 7 * GiB), host("b", 4, 6 * GiB)], need=2 * GiB) == 1
    unknown = HostStatus("c", up=True, sandboxes=0, memory_total=0)
    assert place([unknown], need=2 * GiB) == 0


def test_the_docker_hosts_setting() -> None:
    env = {"ORCHESTRATOR_DOCKER_HOSTS": f" {FIRST}, {SECOND} ,"}
    assert Settings.from_env(env).docker_hosts == (FIRST, SECOND)
    assert Settings.from_env({}).docker_hosts == ()
    with pytest.raises(ConfigError, match="no DOCKER_HOST value"):
        Settings.from_env({"ORCHESTRATOR_DOCKER_HOSTS": "localhost:2375"})
    with pytest.raises(ConfigError, match="twice"):
        Settings.from_env({"ORCHESTRATOR_DOCKER_HOSTS": f"{SECOND},{SECOND}"})


async def test_no_engine_answers(tmp_path: Path, server_id: str) -> None:
    hosts = [f"unix://{tmp_path}/a.sock", f"unix://{tmp_path}/b.sock"]
    with pytest.raises(SandboxError, match=r"a\.sock .*b\.sock") as raised:
        await make_provider("docker", server_id, hosts=hosts)
    assert "no Docker engine answers" in str(raised.value)
    provider = await make_provider("auto", server_id, hosts=hosts, root=tmp_path)
    async with provider:
        assert isinstance(provider, LocalProvider)
    with pytest.raises(ValueError, match="twice"):
        MultiDockerProvider(server_id, [SECOND, SECOND])


# -- the second engine -----------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"  # a zombie has exited


class SecondEngine:
    """The engine of ``scripts/docker-engine-extra``: started by the script, stopped by
    the PID in its pidfile."""

    url = SECOND

    def start(self) -> None:
        subprocess.run(
            ["bash", str(EXTRA), "start"],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "DOCKER_ENGINE_SKIP_DEBIAN": "1"},
        )

    def answers(self) -> bool:
        return subprocess.run(["bash", str(EXTRA), "status"], timeout=60).returncode == 0

    def stop(self) -> None:
        try:
            pid = int(EXTRA_PIDFILE.read_text().strip())
        except (OSError, ValueError):
            return
        if _gone(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while not _gone(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.1)

    def client(self) -> docker.DockerClient:
        return connect_engine(base_url=self.url)


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def second_engine(docker_client: docker.DockerClient) -> Iterator[SecondEngine]:
    """Starts the second engine (unless it runs already) and stops it at the end."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        _unavailable("a second Docker engine needs root and dockerd")
    engine = SecondEngine()
    running = engine.answers()
    try:
        engine.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        engine.stop()
        output = getattr(exc, "stderr", "") or ""
        _unavailable(f"scripts/docker-engine-extra failed: {exc}\n{output}")
    try:
        yield engine
    finally:
        if not running:
            engine.stop()


def leftovers_on_both(
    first: docker.DockerClient, engine: SecondEngine, server_id: str
) -> dict[str, list[str]]:
    """Removes what carries ``server_id`` on both engines (the second started again if
    a test left it stopped); what there was."""
    if not engine.answers():
        engine.start()
    second = engine.client()
    try:
        return {
            FIRST: remove_docker_leftovers(first, server_id),
            SECOND: remove_docker_leftovers(second, server_id),
        }
    finally:
        second.close()


@asynccontextmanager
async def open_multi(
    first: docker.DockerClient,
    engine: SecondEngine,
    limiter: trio.CapacityLimiter,
    server_id: str,
    **options: object,
) -> AsyncIterator[MultiDockerProvider]:
    provider = MultiDockerProvider(
        server_id,
        [FIRST, SECOND],
        image=BUSYBOX_IMAGE,
        destroy_timeout=20,
        **options,  # type: ignore[arg-type]
    )
    try:
        await provider.connect()
        yield provider
    finally:
        await provider.aclose()
        left = await off_loop(limiter, partial(leftovers_on_both, first, engine, server_id))
        assert left == {FIRST: [], SECOND: []}, f"the test left {left} behind"


def spec(session_id: str, memory: int) -> SandboxSpec:
    return SandboxSpec(session_id=session_id, project_name="multi", memory_bytes=memory)


def engine_labels(client: docker.DockerClient, container_id: str) -> dict[str, str]:
    labels: dict[str, str] = client.api.inspect_container(container_id)["Config"]["Labels"]
    return labels


# -- two engines -----------------------------------------------------------------------


@pytest.mark.docker
async def test_make_provider_with_two_hosts(
    docker_client: docker.DockerClient, second_engine: SecondEngine, server_id: str
) -> None:
    provider = await make_provider("docker", server_id, hosts=[FIRST, SECOND])
    async with provider:
        assert isinstance(provider, MultiDockerProvider)
        assert provider.hosts == [FIRST, SECOND]
        assert await provider.list_owned() == []
        statuses = await provider.status()
        assert [(s.url, s.up, s.sandboxes) for s in statuses] == [
            (FIRST, True, 0),
            (SECOND, True, 0),
        ]
        assert all(s.memory_total > 0 for s in statuses)


@pytest.mark.docker
async def test_sandboxes_spread_across_both_engines_by_the_rule(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    second_engine: SecondEngine,
    server_id: str,
) -> None:
    async with open_multi(docker_client, second_engine, docker_limiter, server_id) as provider:
        # Equal engines: the first takes the big one; the small ones go to the second
        # while it has more free memory; at a tie the one with fewer sandboxes wins.
        made = []
        for index, memory in enumerate([300 * MiB, 100 * MiB, 100 * MiB, 100 * MiB, 64 * MiB]):
            made.append(await provider.create(spec(f"s{index}-{server_id}", memory)))
        where = [provider.host_of(sandbox.sandbox_id) for sandbox in made]
        assert where == [FIRST, SECOND, SECOND, SECOND, FIRST]
        statuses = await provider.status()
        assert [(s.sandboxes, s.memory_reserved) for s in statuses] == [
            (2, 364 * MiB),
            (3, 300 * MiB),
        ]

        # Each runs on its own engine, labelled with it.
        second = await off_loop(docker_limiter, second_engine.client)
        try:
            for sandbox, url in ((made[0], FIRST), (made[1], SECOND)):
                client = docker_client if url == FIRST else second
                labels = await off_loop(
                    docker_limiter, partial(engine_labels, client, sandbox.sandbox_id)
                )
                assert labels[LABEL_HOST] == url
                result = await sandbox.exec(["sh", "-c", 'echo "hello from $0"', url])
                assert result.ok
                assert result.stdout == f"hello from {url}\n".encode()
                await sandbox.write_file("note.txt", url.encode())
                assert await sandbox.read_file("note.txt") == url.encode()
        finally:
            await off_loop(docker_limiter, second.close)

        # Listed, attached and removed across both.
        owned = await provider.list_owned()
        assert sorted(info.sandbox_id for info in owned) == sorted(s.sandbox_id for s in made)
        assert all(info.alive and info.runtime == "docker" for info in owned)
        again = await provider.attach(made[2].session_id)
        assert again is not None
        assert again.sandbox_id == made[2].sandbox_id
        assert (await again.exec(["true"])).ok
        assert await provider.attach("no-such-session") is None
        with pytest.raises(SandboxError, match="exists"):
            await provider.create(spec(made[3].session_id, MiB))

        # The count limit: the second engine (more free memory) is full at 3.
        async with MultiDockerProvider(
            server_id, [FIRST, SECOND], image=BUSYBOX_IMAGE, max_per_host=3
        ) as limited:
            extra = await limited.create(spec(f"s5-{server_id}", 8 * MiB))
            assert limited.host_of(extra.sandbox_id) == FIRST
            with pytest.raises(SandboxError, match="no Docker engine can take") as refused:
                await limited.create(spec(f"s6-{server_id}", 8 * MiB))
            assert f"{SECOND} runs 3 (at most 3)" in str(refused.value)
            await extra.destroy()

        await provider.remove(made[0].sandbox_id)
        await provider.remove(made[1].sandbox_id)
        for sandbox in made[2:]:
            await sandbox.destroy()
        assert await provider.list_owned() == []


@pytest.mark.docker
async def test_an_engine_that_goes_away_fails_fast_and_is_reaped_when_back(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    second_engine: SecondEngine,
    server_id: str,
) -> None:
    live: set[str] = set()
    async with open_multi(
        docker_client, second_engine, docker_limiter, server_id, keep=live.__contains__
    ) as provider:
        first = await provider.create(spec(f"a-{server_id}", 64 * MiB))
        gone = await provider.create(spec(f"b-{server_id}", 64 * MiB))
        live |= {first.session_id, gone.session_id}
        assert [provider.host_of(s.sandbox_id) for s in (first, gone)] == [FIRST, SECOND]
        process = await gone.spawn(["cat"])
        try:
            # Mid-run, the second engine stops (its containers with it).
            await trio.to_thread.run_sync(second_engine.stop)

            started = trio.current_time()
            with pytest.raises(SandboxError, match=f"Docker host {SECOND} does not answer"):
                await gone.exec(["echo", "hi"])
            with pytest.raises(SandboxError, match=f"Docker host {SECOND} is down"):
                await gone.is_alive()
            with pytest.raises(SandboxError, match=f"Docker host {SECOND} is down"):
                await process.kill()
            assert trio.current_time() - started < 5
            assert not provider.is_up(SECOND)
        finally:
            with trio.move_on_after(15):
                try:
                    await process.kill()
                except SandboxError:
                    pass  # its engine is down: the connection is closed all the same

        # The first engine carries on: its sandbox works, lists answer with it.
        assert (await first.exec(["echo", "still here"])).stdout == b"still here\n"
        assert [info.sandbox_id for info in await provider.list_owned()] == [first.sandbox_id]
        assert await provider.attach(gone.session_id) is None
        statuses = await provider.status()
        assert [s.up for s in statuses] == [True, False]
        assert statuses[1].reason
        # New sandboxes go to the engine that answers.
        other = await provider.create(spec(f"c-{server_id}", 64 * MiB))
        assert provider.host_of(other.sandbox_id) == FIRST
        await other.destroy()

        # Its session has failed meanwhile; the engine comes back; on the next call
        # after the back-off its leftover is reaped.
        live.discard(gone.session_id)
        await trio.to_thread.run_sync(second_engine.start)

        async def second_is_back() -> bool:
            await provider.list_owned()  # a call: the engine is probed when due
            return provider.is_up(SECOND)

        with trio.fail_after(60):
            await poll_until(second_is_back)
        assert [info.sandbox_id for info in await provider.list_owned()] == [first.sandbox_id]
        second = await off_loop(docker_limiter, second_engine.client)
        try:
            left = await off_loop(
                docker_limiter, partial(remove_docker_leftovers, second, server_id)
            )
        finally:
            await off_loop(docker_limiter, second.close)
        assert left == []
        assert await provider.reap() == []  # keep keeps the first

        # The engine is usable again.
        back = await provider.create(spec(f"d-{server_id}", 64 * MiB))
        assert provider.host_of(back.sandbox_id) == SECOND
        assert (await back.exec(["echo", "back"])).stdout == b"back\n"
        live.add(back.session_id)
        live.discard(first.session_id)
        removed = await provider.reap()
        assert [info.sandbox_id for info in removed] == [first.sandbox_id]
        await back.destroy()


@pytest.mark.docker
async def test_watch_notices_an_engine_that_goes_and_reaps_it_when_back(
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
    second_engine: SecondEngine,
    server_id: str,
) -> None:
    live: set[str] = set()
    async with open_multi(
        docker_client, second_engine, docker_limiter, server_id, keep=live.__contains__
    ) as provider:
        kept = await provider.create(spec(f"a-{server_id}", 64 * MiB))
        lost = await provider.create(spec(f"b-{server_id}", 64 * MiB))
        live |= {kept.session_id, lost.session_id}  # both live: only the engine decides
        assert provider.host_of(lost.sandbox_id) == SECOND

        async def second_is_down() -> bool:
            return not provider.is_up(SECOND)

        async def second_is_back_and_reaped() -> bool:
            if not provider.is_up(SECOND):
                return False
            second = await off_loop(docker_limiter, second_engine.client)
            try:
                found = await off_loop(docker_limiter, partial(docker_leftovers, second, server_id))
            finally:
                await off_loop(docker_limiter, second.close)
            return found == []

        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(provider.watch, interval=0.2))
            await trio.to_thread.run_sync(second_engine.stop)
            with trio.fail_after(10):  # no call of ours: the watch finds it down
                await poll_until(second_is_down)
            await trio.to_thread.run_sync(second_engine.start)
            with trio.fail_after(60):  # back: its stopped container is reaped
                await poll_until(second_is_back_and_reaped)
            nursery.cancel_scope.cancel()
        assert [info.sandbox_id for info in await provider.list_owned()] == [kept.sandbox_id]
        await kept.destroy()

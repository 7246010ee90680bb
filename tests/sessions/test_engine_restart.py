"""The Docker engine restarted under a running session (a second engine of this
machine, started for the test): the session reports it with a clear error event and
ends, nothing hangs, and the orchestrator goes on with new sessions once the engine is
back; nothing is left on it. With two engines, one that goes away fails the sessions
it held, idle ones too, and is reaped when it is back."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import docker
import pytest
import trio

from orchestrator.core import bundled_claude_cli
from orchestrator.models import Turn
from orchestrator.sandboxes import DockerProvider, MultiDockerProvider
from orchestrator.sandboxes._common import LABEL_SERVER, poll_until

from ..docker_support import off_loop
from ..sandboxes.conftest import remove_docker_leftovers
from ..sandboxes.test_multi_host import EXTRA, FIRST, SECOND, SecondEngine, _unavailable
from .support import DONE, WRITE_FILE, collect_until, scripted, wait_status

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def engine(docker_client: docker.DockerClient) -> Iterator[SecondEngine]:
    """The second engine, with the Debian image the agents run in."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        _unavailable("a second Docker engine needs root and dockerd")
    engine = SecondEngine()
    try:
        subprocess.run(
            ["bash", str(EXTRA), "start"], check=True, capture_output=True, text=True, timeout=600
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        engine.stop()
        _unavailable(f"scripts/docker-engine-extra failed: {exc}\n{getattr(exc, 'stderr', '')}")
    try:
        yield engine
    finally:
        engine.stop()


async def test_an_engine_restart_is_reported_and_nothing_hangs(
    tmp_path: Path, engine: SecondEngine, docker_limiter: trio.CapacityLimiter
) -> None:
    server_id = f"test-{uuid.uuid4().hex[:12]}"
    client = engine.client()
    provider = DockerProvider(
        server_id,
        client=client,
        limiter=docker_limiter,
        network="host",
        claude_binary=bundled_claude_cli(),
    )
    slow = Turn(blocks=(WRITE_FILE.blocks[0],), delay=60.0)
    try:
        async with scripted([slow, DONE], tmp_path, provider) as (models, orch):
            session = await orch.create_session("x", freeform=True)
            await collect_until(session, "session_start", timeout=120)
            with trio.fail_after(60):
                while not models.main_requests():  # noqa: ASYNC110 - no event to wait on
                    await trio.sleep(0.05)
            await trio.to_thread.run_sync(engine.stop)  # the engine goes away mid-turn
            with trio.fail_after(90):
                info = await wait_status(session, "error", timeout=90)
            assert info["status"] == "error"
            items = [i.raw async for i in session.events(follow=False)]
            errors = [r["message"] for r in items if r.get("level") == "error"]
            assert errors, items
            assert "Session failed" in errors[-1]
            await trio.to_thread.run_sync(engine.start)  # back: new sessions work
            again = await orch.create_session("y", freeform=True)
            await collect_until(again, "session_end", timeout=120)
            await again.delete()
    finally:
        if not engine.answers():
            await trio.to_thread.run_sync(engine.start)
        second = engine.client()
        try:
            await off_loop(docker_limiter, partial(remove_docker_leftovers, second, server_id))
            left = second.api.containers(all=True, filters={"label": f"{LABEL_SERVER}={server_id}"})
        finally:
            second.close()
        client.close()
    assert left == []


async def test_a_host_that_goes_away_fails_its_sessions_and_is_reaped_when_back(
    tmp_path: Path,
    engine: SecondEngine,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    # two engines (the second listed first, so that it gets the first sandbox); both
    # sessions idle when the second stops: the one there fails within seconds, saying
    # why, with no call of ours; the other goes on; when the engine is back, the
    # failed session's container is reaped
    server_id = f"test-{uuid.uuid4().hex[:12]}"
    provider = MultiDockerProvider(
        server_id,
        [SECOND, FIRST],
        limiter=docker_limiter,
        network="host",
        claude_binary=bundled_claude_cli(),
        probe_timeout=2,
        max_backoff=2,
    )
    try:
        async with scripted([DONE, DONE, DONE], tmp_path, provider, docker_watch_seconds=0.5) as (
            _models,
            orch,
        ):
            lost = await orch.create_session("on the second engine", freeform=True)
            await collect_until(lost, "session_end", timeout=120)
            kept = await orch.create_session("on the first engine", freeform=True)
            first_turn = await collect_until(kept, "session_end", timeout=120)
            where: dict[str, str | None] = {}
            for session in (lost, kept):
                sandbox = await orch.sandbox_of(session.id)
                assert sandbox is not None
                where[session.id] = provider.host_of(sandbox.sandbox_id)
            assert where == {lost.id: SECOND, kept.id: FIRST}

            await trio.to_thread.run_sync(engine.stop)  # both sessions idle
            info = await wait_status(lost, "error", timeout=30)
            assert info["ended"] is True
            items = [i.raw async for i in lost.events(follow=False)]
            errors = [r["message"] for r in items if r.get("level") == "error"]
            assert len(errors) == 1, errors
            assert errors[0].startswith(
                f"Session failed: its Docker host {SECOND} stopped answering ("
            ), errors
            assert (await kept.info())["status"] == "complete"

            await trio.to_thread.run_sync(engine.start)

            def ours_on_second() -> list[object]:
                second = engine.client()
                try:
                    return list(
                        second.api.containers(
                            all=True, filters={"label": f"{LABEL_SERVER}={server_id}"}
                        )
                    )
                finally:
                    second.close()

            async def second_is_clean() -> bool:
                return provider.is_up(SECOND) and not await off_loop(docker_limiter, ours_on_second)

            with trio.fail_after(60):  # reaped by the orchestrator's watch, no call of ours
                await poll_until(second_is_clean)
            await kept.send("still there?")
            await collect_until(kept, "session_end", offset=first_turn[-1].offset, timeout=120)
            await kept.delete()
    finally:
        if not engine.answers():
            await trio.to_thread.run_sync(engine.start)
        await off_loop(docker_limiter, partial(remove_docker_leftovers, docker_client, server_id))
        second = engine.client()
        try:
            await off_loop(docker_limiter, partial(remove_docker_leftovers, second, server_id))
        finally:
            second.close()

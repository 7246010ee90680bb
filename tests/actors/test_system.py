"""The guarantees of ActorSystem: leaving the block stops everything in reverse start
order and leaves no task behind; the registry follows live actors; the system is
single use; the orderly stop survives outer cancellation and is bounded."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from actors import Actor, ActorStopped, ActorSystem

from .helpers import Block, Recorder, all_tasks


@attrs.define(eq=False)
class Spawner(Actor):
    """Runs background tasks and children of its own, to leave tasks lying around."""

    events: list[str]

    async def on_start(self) -> None:
        self.ctx.nursery.start_soon(trio.sleep_forever)
        self.ctx.nursery.start_soon(trio.sleep_forever)

    async def handle(self, msg: Any) -> Any:
        return msg

    async def on_stop(self) -> None:
        self.events.append("stop:spawner")


async def test_leaving_the_block_stops_everything_and_leaves_no_task() -> None:
    before = all_tasks()
    events: list[str] = []
    release = trio.Event()
    async with ActorSystem() as system:
        refs = [await system.spawn(Recorder(events=events, tag=f"a{i}")) for i in range(5)]
        refs.append(await system.spawn(Spawner(events)))
        # One actor busy inside a handler, one with queued messages.
        refs[0].try_send(Block(release))
        for i in range(10):
            refs[1].try_send(i)
        assert len(all_tasks()) > len(before)
    assert all(not ref.alive for ref in refs)
    assert all_tasks() == before
    assert system.registry.names() == []


async def test_actors_stop_in_reverse_start_order_at_exit() -> None:
    events: list[str] = []
    async with ActorSystem() as system:
        for tag in ("first", "second", "third"):
            await system.spawn(Recorder(events=events, tag=tag))
    assert events == [
        "start:first",
        "start:second",
        "start:third",
        "stop:third",
        "stop:second",
        "stop:first",
    ]


async def test_an_error_in_the_body_still_stops_everything_and_propagates() -> None:
    before = all_tasks()
    events: list[str] = []

    async def body() -> None:
        async with ActorSystem() as system:
            await system.spawn(Recorder(events=events, tag="x"))
            raise KeyError("body")

    with pytest.raises(KeyError, match="body"):  # the body's own error, not a group
        await body()
    assert events == ["start:x", "stop:x"]
    assert all_tasks() == before


async def test_outer_cancellation_runs_the_orderly_stop() -> None:
    before = all_tasks()
    events: list[str] = []

    @attrs.define(eq=False)
    class SlowStop(Actor):
        async def on_stop(self) -> None:
            await trio.sleep(0.01)  # would be cancelled at once without the shield
            events.append("stop:slow")

    with trio.move_on_after(0.05) as scope:
        async with ActorSystem() as system:
            await system.spawn(Recorder(events=events, tag="x"))
            await system.spawn(SlowStop())
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert events == ["start:x", "stop:slow", "stop:x"]
    assert all_tasks() == before


async def test_registry_entries_vanish_when_the_system_stops() -> None:
    seen_during_stop: list[list[str]] = []

    @attrs.define(eq=False)
    class Watcher(Actor):
        async def on_stop(self) -> None:
            seen_during_stop.append(self.ctx.registry.names())

    async with ActorSystem() as system:
        await system.spawn(Recorder(tag="a"), name="a")
        await system.spawn(Watcher(), name="watcher")
        await system.spawn(Recorder(tag="b"), name="b")
        assert sorted(system.registry.names()) == ["a", "b", "watcher"]
    # "b" stopped first; the watcher had already left the registry in its own on_stop.
    assert seen_during_stop == [["a"]]
    assert system.registry.names() == []


async def test_a_system_is_single_use() -> None:
    system = ActorSystem()
    with pytest.raises(RuntimeError, match="not open"):
        _ = system.root
    async with system:
        with pytest.raises(RuntimeError, match="single use"):
            await system.__aenter__()
    with pytest.raises(RuntimeError, match="closed"):
        await system.spawn(Recorder())
    with pytest.raises(RuntimeError, match="single use"):
        async with system:
            pass


async def test_refs_kept_after_exit_refuse_with_a_clear_error() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="kept")
    with pytest.raises(ActorStopped, match="kept"):
        await ref.send("late")
    with pytest.raises(ActorStopped, match="kept"):
        await ref.ask("late")


def test_a_bad_shutdown_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ActorSystem(shutdown_timeout=-1)
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ActorSystem(shutdown_timeout=float("nan"))


async def test_past_the_shutdown_timeout_what_is_left_is_forced(
    autojump_clock: trio.abc.Clock,
) -> None:
    before = all_tasks()
    events: list[str] = []

    @attrs.define(eq=False)
    class Stubborn(Actor):
        """Its cleanup would take an hour, and it allows itself that long."""

        def cleanup_timeout(self) -> float:
            return 3600.0

        async def on_stop(self) -> None:
            events.append("stop:begin")
            await trio.sleep(3600)
            events.append("stop:end")

    start = trio.current_time()
    async with ActorSystem(shutdown_timeout=2.0) as system:
        await system.spawn(Stubborn())
    assert trio.current_time() - start == pytest.approx(2.0)
    assert events == ["stop:begin"]
    assert all_tasks() == before


async def test_the_system_can_be_left_while_a_spawn_is_blocked_in_on_start(
    autojump_clock: trio.abc.Clock,
) -> None:
    before = all_tasks()
    release = trio.Event()

    @attrs.define(eq=False)
    class NeverReady(Actor):
        async def on_start(self) -> None:
            await release.wait()

    async with ActorSystem(shutdown_timeout=1.0) as system:
        with trio.move_on_after(5):
            await system.spawn(NeverReady())
    assert all_tasks() == before

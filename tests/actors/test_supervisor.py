"""The guarantees of Supervisor: the ready handshake, strategies, restart policies,
restart intensity, crash reports and ordered stop."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    ChildSpec,
    CrashReport,
    NameTaken,
    Refused,
    Restart,
    RestartIntensity,
    RestartIntensityExceeded,
    SpawnError,
    Strategy,
    Supervisor,
    start_child,
    stop_child,
    which_children,
)

from .helpers import Crash, Recorder


def recorder(tag: str, events: list[str], log: list[Any] | None = None) -> ChildSpec:
    return ChildSpec(
        factory=lambda: Recorder(log=[] if log is None else log, events=events, tag=tag),
        name=tag,
    )


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


def live(system: ActorSystem, name: str) -> ActorRef:
    ref = system.registry.lookup(name)
    assert ref is not None, f"{name} is not registered"
    return ref


async def test_the_ref_comes_back_only_after_on_start_has_run() -> None:
    @attrs.define(eq=False)
    class SlowStart(Actor):
        ready: bool = False

        async def on_start(self) -> None:
            await trio.sleep(0.01)
            self.ready = True

        async def handle(self, msg: Any) -> bool:
            return self.ready

    async with ActorSystem() as system:
        ref = await system.spawn(SlowStart)
        assert await ref.ask("ready?") is True


async def test_one_for_one_restarts_only_the_crashed_child() -> None:
    events: list[str] = []
    sup = Supervisor(children=[recorder("a", events), recorder("b", events)])
    async with ActorSystem() as system:
        await system.spawn(sup, name="sup")
        a, b = live(system, "a"), live(system, "b")
        await a.send(Crash())
        await settle()
        assert not a.alive
        assert live(system, "a") is not a  # a new incarnation under the same name
        assert live(system, "b") is b
        assert b.alive
        assert await live(system, "a").ask("hi") == "hi"
        children = await which_children(live(system, "sup"))
        assert [(c.name, c.restarts) for c in children] == [("a", 1), ("b", 0)]
        assert live(system, "a").statistics().restarts == 1
    assert events == ["start:a", "start:b", "stop:a", "start:a", "stop:b", "stop:a"]


async def test_one_for_all_stops_the_others_in_reverse_order_and_restarts_all() -> None:
    events: list[str] = []
    temp = ChildSpec(
        factory=lambda: Recorder(events=events, tag="t"), name="t", restart=Restart.TEMPORARY
    )
    sup = Supervisor(
        children=[recorder("a", events), recorder("b", events), temp, recorder("c", events)],
        strategy=Strategy.ONE_FOR_ALL,
    )
    async with ActorSystem() as system:
        await system.spawn(sup, name="sup")
        old = {name: live(system, name) for name in "abct"}
        events.clear()
        await old["b"].send(Crash())
        await settle()
        assert events == ["stop:b", "stop:c", "stop:t", "stop:a", "start:a", "start:b", "start:c"]
        assert not any(ref.alive for ref in old.values())
        assert "t" not in system.registry  # temporary children are not restarted
        assert all(live(system, name).alive for name in "abc")


async def test_restart_policies_after_a_normal_exit_and_after_a_crash() -> None:
    events: list[str] = []

    def spec(tag: str, restart: Restart) -> ChildSpec:
        return ChildSpec(
            factory=lambda: Recorder(events=events, tag=tag), name=tag, restart=restart
        )

    sup = Supervisor(
        children=[
            spec("perm", Restart.PERMANENT),
            spec("trans", Restart.TRANSIENT),
            spec("temp", Restart.TEMPORARY),
        ],
        max_restarts=10,
    )
    async with ActorSystem() as system:
        await system.spawn(sup, name="sup")
        for name in ("perm", "trans", "temp"):
            await live(system, name).ask("stop-self")
        await settle()
        assert "perm" in system.registry  # permanent: restarted after a normal exit
        assert "trans" not in system.registry
        assert "temp" not in system.registry
        await start_child(live(system, "sup"), spec("trans", Restart.TRANSIENT))
        await start_child(live(system, "sup"), spec("temp", Restart.TEMPORARY))
        for name in ("perm", "trans", "temp"):
            await live(system, name).send(Crash())
        await settle()
        assert "perm" in system.registry
        assert "trans" in system.registry  # transient: restarted after a crash
        assert "temp" not in system.registry
        actions = {r.child: r.action for r in system.crash_reports}
        assert actions == {"perm": "restart", "trans": "restart", "temp": "remove"}


async def test_restart_intensity_escalates_to_the_parent(autojump_clock: trio.abc.Clock) -> None:
    events: list[str] = []
    inner_starts: list[int] = []

    def inner() -> Supervisor:
        inner_starts.append(1)
        return Supervisor(children=[recorder("worker", events)], max_restarts=2, within=10.0)

    outer = Supervisor(
        children=[ChildSpec(factory=inner, name="inner", restart=Restart.PERMANENT)],
        max_restarts=5,
        within=60.0,
    )
    async with ActorSystem() as system:
        await system.spawn(outer, name="outer")
        first_inner = live(system, "inner")
        # two crashes within 10 s: restarted
        for _ in range(2):
            await live(system, "worker").send(Crash())
            await settle()
            await trio.sleep(1)
        assert live(system, "inner") is first_inner
        # a third within the window: the inner supervisor gives up ...
        await live(system, "worker").send(Crash())
        await settle()
        assert not first_inner.alive
        error = first_inner.error
        assert isinstance(error, RestartIntensityExceeded)
        assert str(error) == (
            "supervisor 'inner' restarted children more than 2 times within 10s; giving up"
        )
        # ... and its parent restarts it, with a fresh worker
        assert len(inner_starts) == 2
        assert live(system, "inner") is not first_inner
        assert await live(system, "worker").ask("ok") == "ok"
        actions = [(r.supervisor, r.child, r.action) for r in system.crash_reports]
        assert actions == [
            ("inner", "worker", "restart"),
            ("inner", "worker", "restart"),
            ("inner", "worker", "escalate"),
            ("outer", "inner", "restart"),
        ]


async def test_crashes_spread_over_time_stay_within_intensity(
    autojump_clock: trio.abc.Clock,
) -> None:
    events: list[str] = []
    sup = Supervisor(children=[recorder("w", events)], max_restarts=2, within=10.0)
    async with ActorSystem() as system:
        sup_ref = await system.spawn(sup, name="sup")
        for _ in range(6):
            await live(system, "w").send(Crash())
            await settle()
            await trio.sleep(6)  # at most two restarts in any 10 s window
        assert sup_ref.alive
        assert [r.action for r in system.crash_reports] == ["restart"] * 6


async def test_a_restart_that_fails_to_start_counts_as_a_crash(
    autojump_clock: trio.abc.Clock,
) -> None:
    attempts: list[int] = []

    @attrs.define(eq=False)
    class StartsOnce(Actor):
        async def on_start(self) -> None:
            attempts.append(1)
            if len(attempts) > 1:
                raise OSError("cannot come back")

        async def handle(self, msg: Any) -> None:
            raise ValueError("crash")

    sup = Supervisor(children=[ChildSpec(factory=StartsOnce, name="w")], max_restarts=3)
    async with ActorSystem() as system:
        sup_ref = await system.spawn(sup, name="sup")
        await live(system, "w").send("go")
        await sup_ref.wait_stopped()
        await settle()  # the root hears of it
        assert isinstance(sup_ref.error, RestartIntensityExceeded)
        assert len(attempts) == 1 + 3  # the first start, then three failed restarts
        assert [r.action for r in system.crash_reports] == [
            "restart",
            "restart",
            "restart",
            "escalate",
            "remove",  # the root forgets the temporary supervisor
        ]
        assert isinstance(system.crash_reports[1].error, OSError)


async def test_every_crash_is_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[CrashReport] = []
    system_seen: list[CrashReport] = []
    events: list[str] = []
    sup = Supervisor(children=[recorder("w", events)], on_crash=seen.append)
    async with ActorSystem(on_crash=system_seen.append) as system:
        await system.spawn(sup, name="sup")
        await live(system, "w").send(Crash("disk on fire"))
        await settle()
    assert len(seen) == 1
    assert seen == system_seen == system.crash_reports
    report = seen[0]
    assert (report.supervisor, report.child, report.action, report.restarts) == (
        "sup",
        "w",
        "restart",
        0,
    )
    assert str(report.error) == "disk on fire"
    record = next(r for r in caplog.records if r.name == "actors" and r.levelno == logging.ERROR)
    assert record.getMessage() == "actor w crashed (supervisor sup: restart)"
    assert record.exc_info is not None
    assert record.exc_info[1] is report.error


async def test_a_failing_crash_listener_does_not_take_the_supervisor_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_listener(report: CrashReport) -> None:
        raise RuntimeError("listener bug")

    events: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(
            Supervisor(children=[recorder("w", events)], on_crash=bad_listener), name="sup"
        )
        await live(system, "w").send(Crash())
        await settle()
        assert sup.alive
        assert "w" in system.registry
    assert "crash listener" in caplog.text


async def test_stopping_a_supervisor_stops_children_in_reverse_start_order() -> None:
    events: list[str] = []
    sup = Supervisor(children=[recorder(tag, events) for tag in "abc"])
    async with ActorSystem() as system:
        ref = await system.spawn(sup, name="sup")
        await start_child(ref, recorder("d", events))
        await ref.stop()
        assert events == [
            "start:a",
            "start:b",
            "start:c",
            "start:d",
            "stop:d",
            "stop:c",
            "stop:b",
            "stop:a",
        ]
        assert not any(name in system.registry for name in "abcd")


async def test_start_and_stop_child_requests() -> None:
    events: list[str] = []
    async with ActorSystem() as system:
        sup = await system.spawn(Supervisor(), name="sup")
        child = await start_child(sup, recorder("x", events))
        with pytest.raises(NameTaken, match=r"^supervisor 'sup' already has a child named 'x'$"):
            await start_child(sup, recorder("x", events))
        other = await system.spawn(Supervisor(), name="other")
        with pytest.raises(NameTaken, match=r"^an actor named 'x' is already running$"):
            await start_child(other, recorder("x", events))
        await stop_child(sup, "x")
        assert not child.alive
        await settle()
        assert "x" not in system.registry  # stopped for good, not restarted
        with pytest.raises(Refused, match=r"^supervisor 'sup' has no child named 'x'$"):
            await stop_child(sup, "x")
        with pytest.raises(Refused, match=r"^supervisor 'sup' does not understand str$"):
            await sup.ask("what?")
        with pytest.raises(SpawnError, match=r"^actor 'child' failed to start: TypeError"):
            await start_child(sup, ChildSpec(factory=lambda: "not an actor"))  # type: ignore[arg-type,return-value]
        assert sup.alive


def test_child_spec_needs_a_factory_for_restartable_children() -> None:
    with pytest.raises(ValueError, match=r"^a permanent child needs a factory"):
        ChildSpec.of(Recorder())
    assert ChildSpec.of(Recorder(), restart=Restart.TEMPORARY).restart is Restart.TEMPORARY
    with pytest.raises(ValueError, match=r"^mailbox_size must be an int >= 1, not 0$"):
        ChildSpec(factory=Recorder, mailbox_size=0)


async def test_restart_intensity_counts_restarts_in_a_sliding_window(
    autojump_clock: trio.abc.Clock,
) -> None:
    intensity = RestartIntensity(max_restarts=2, within=10.0)
    assert not intensity.exceeded()
    await trio.sleep(4)
    assert not intensity.exceeded()
    await trio.sleep(4)
    assert intensity.exceeded()  # a third within 10 s
    await trio.sleep(6.5)  # the first two have left the window
    assert not intensity.exceeded()
    assert RestartIntensity(max_restarts=0, within=1.0).exceeded()

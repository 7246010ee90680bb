"""The guarantees of Actor and ActorRef: ordering, back-pressure, try_send, ask, stop."""

from __future__ import annotations

import logging
import math
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

from actors import (
    Actor,
    ActorCrashed,
    ActorState,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    MailboxFull,
    Refused,
    SpawnError,
)

from .helpers import Block, Crash, Recorder


async def test_messages_are_handled_one_at_a_time_in_order() -> None:
    @attrs.define(eq=False)
    class Slow(Actor):
        active: int = 0
        most: int = 0
        seen: list[int] = attrs.field(factory=list)

        async def handle(self, msg: Any) -> None:
            self.active += 1
            self.most = max(self.most, self.active)
            await trio.lowlevel.checkpoint()  # a checkpoint inside the handler
            await trio.lowlevel.checkpoint()
            self.seen.append(msg)
            self.active -= 1

    slow = Slow()
    async with ActorSystem() as system:
        ref = await system.spawn(slow)
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(ref.send, i)
                await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()
    assert slow.most == 1
    assert slow.seen == list(range(50))


async def test_send_waits_when_the_mailbox_is_full() -> None:
    release = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), mailbox_size=2)
        await ref.send(Block(release))  # taken off the mailbox, handler blocks
        await trio.testing.wait_all_tasks_blocked()
        await ref.send("a")
        await ref.send("b")
        assert ref.statistics().queued == 2
        sent = []

        async def third() -> None:
            await ref.send("c")
            sent.append("c")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(third)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == []
            assert ref.statistics().senders_waiting == 1
            release.set()
        assert sent == ["c"]
        assert await ref.ask("d") == "d"
        assert ref.statistics().processed == 5


async def test_try_send_raises_mailbox_full_and_queues_nothing() -> None:
    release = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="full", mailbox_size=1)
        ref.try_send(Block(release))
        await trio.testing.wait_all_tasks_blocked()
        ref.try_send("queued")
        with pytest.raises(
            MailboxFull,
            match=r"^the mailbox of actor 'full' is full \(1 messages\); "
            r"use 'await ref.send\(msg\)' to wait for room$",
        ) as info:
            ref.try_send("overflow")
        assert info.value.capacity == 1
        assert info.value.actor == "full"
        assert ref.statistics().queued == 1
        release.set()
        assert await ref.ask("last") == "last"
        assert "overflow" not in system.registry.lookup("full").__repr__()
    stats = ref.statistics()
    assert stats.processed == 3
    assert stats.state is ActorState.STOPPED


async def test_ask_returns_the_handlers_value() -> None:
    recorder = Recorder()
    async with ActorSystem() as system:
        ref = await system.spawn(recorder)
        assert await ref.ask({"x": 1}) == {"x": 1}
        assert ref.statistics().pending_asks == 0
    assert recorder.log == [{"x": 1}]


async def test_ask_times_out_and_forgets_its_reply_slot(autojump_clock: trio.abc.Clock) -> None:
    release = trio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="slow")
        start = trio.current_time()
        with pytest.raises(AskTimeout, match=r"^actor 'slow' did not reply within 2.5s$") as info:
            await ref.ask(Block(release), timeout=2.5)
        assert trio.current_time() - start == pytest.approx(2.5)
        assert isinstance(info.value, TimeoutError)
        assert ref.statistics().pending_asks == 0
        release.set()
        assert await ref.ask("after") == "after"  # still alive


async def test_ask_rejects_a_bad_timeout() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder())
        for bad in (-1.0, math.nan):
            with pytest.raises(ValueError, match=r"^timeout must be a number >= 0"):
                await ref.ask("x", timeout=bad)


async def test_pending_asks_fail_at_once_when_the_actor_stops(
    autojump_clock: trio.abc.Clock,
) -> None:
    never = trio.Event()
    outcomes: list[str] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="doomed")

        async def asker(msg: object) -> None:
            try:
                await ref.ask(msg, timeout=math.inf)
            except ActorStopped as exc:
                outcomes.append(str(exc))

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(asker, Block(never))  # being handled
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(asker, "queued")  # still in the mailbox
            await trio.testing.wait_all_tasks_blocked()
            assert ref.statistics().pending_asks == 2
            await ref.stop()
        assert trio.current_time() == start  # nobody waited for a timeout
    assert outcomes == ["actor 'doomed' stopped before replying"] * 2


async def test_a_crash_fails_the_asker_with_the_cause_and_the_others_at_once() -> None:
    never = trio.Event()
    results: dict[str, BaseException] = {}
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="fragile")

        async def asker(key: str, msg: object) -> None:
            try:
                await ref.ask(msg, timeout=math.inf)
            except ActorStopped as exc:
                results[key] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(asker, "crasher", Crash("kaput"))
            await trio.testing.wait_all_tasks_blocked()
            # the crash already happened: these are refused right away
            nursery.start_soon(asker, "late", Block(never))
        await ref.wait_stopped()
    crashed = results["crasher"]
    assert type(crashed) is ActorCrashed
    assert str(crashed) == "actor 'fragile' crashed handling this message: ValueError('kaput')"
    assert isinstance(crashed.__cause__, ValueError)
    late = results["late"]
    assert type(late) is ActorStopped
    assert str(late) == (
        "actor 'fragile' is not running; nothing was asked (it crashed: ValueError('kaput'))"
    )
    assert isinstance(ref.error, ValueError)


async def test_queued_asks_fail_when_the_actor_crashes() -> None:
    results: list[BaseException] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="fragile")
        release = trio.Event()

        async def asker(msg: object) -> None:
            try:
                await ref.ask(msg, timeout=math.inf)
            except ActorStopped as exc:
                results.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(asker, Block(release))
            await trio.testing.wait_all_tasks_blocked()
            ref.try_send(Crash())  # next in line: crashes the actor after the block
            nursery.start_soon(asker, "behind the crash")
            await trio.testing.wait_all_tasks_blocked()
            release.set()
    assert len(results) == 1
    assert str(results[0]) == (
        "actor 'fragile' stopped before replying (it crashed: ValueError('boom'))"
    )


async def test_refused_goes_back_to_the_asker_and_the_actor_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder())
        with pytest.raises(Refused, match=r"^no, thank you$"):
            await ref.ask("refuse")
        with caplog.at_level(logging.INFO, logger="actors"):
            await ref.send("refuse")  # told: logged and dropped
            assert await ref.ask("still here") == "still here"
        assert ref.alive
    assert any("refused a message: no, thank you" in r.getMessage() for r in caplog.records)


async def test_sending_to_a_stopped_actor_raises() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="gone")
        await ref.stop()
        await ref.stop()  # idempotent
        expected = r"^actor 'gone' is not running; the message was not delivered$"
        with pytest.raises(ActorStopped, match=expected):
            await ref.send("x")
        with pytest.raises(ActorStopped, match=expected):
            ref.try_send("x")
        with pytest.raises(ActorStopped, match=r"^actor 'gone' is not running; nothing was asked$"):
            await ref.ask("x")
        assert not ref.alive
        assert ref.state is ActorState.STOPPED
        assert ref.error is None


async def test_a_sender_blocked_on_a_full_mailbox_is_released_when_the_actor_stops() -> None:
    never = trio.Event()
    raised: list[BaseException] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), mailbox_size=1)
        await ref.send(Block(never))
        await trio.testing.wait_all_tasks_blocked()
        await ref.send("fills the mailbox")

        async def blocked_sender() -> None:
            try:
                await ref.send("waits")
            except ActorStopped as exc:
                raised.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_sender)
            await trio.testing.wait_all_tasks_blocked()
            assert ref.statistics().senders_waiting == 1
            await ref.stop()
    assert len(raised) == 1


async def test_on_start_failure_is_a_spawn_error_and_on_stop_still_runs() -> None:
    @attrs.define(eq=False)
    class BadStart(Actor):
        stopped: bool = False

        async def on_start(self) -> None:
            raise OSError("no sandbox today")

        async def on_stop(self) -> None:
            self.stopped = True

    actor = BadStart()
    async with ActorSystem() as system:
        with pytest.raises(
            SpawnError, match=r"^actor 'bad' failed to start: OSError\('no sandbox today'\)$"
        ) as info:
            await system.spawn(actor, name="bad")
        assert isinstance(info.value.__cause__, OSError)
        assert "bad" not in system.registry
        assert actor.stopped
        # the failed spawn crashed nothing: the system still works
        assert await (await system.spawn(Recorder(), name="bad")).ask(1) == 1


async def test_an_actor_instance_runs_once() -> None:
    recorder = Recorder()
    async with ActorSystem() as system:
        await system.spawn(recorder)
        with pytest.raises(
            SpawnError,
            match=r"^actor 'again' failed to start: RuntimeError\('this Recorder instance has "
            r"already run",
        ):
            await system.spawn(recorder, name="again")


async def test_on_stop_is_cut_short_at_its_deadline(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    class Stubborn(Actor):
        stop_timeout = 3.0
        finished = False

        async def handle(self, msg: Any) -> None:
            pass

        async def on_stop(self) -> None:
            await trio.sleep(3600)
            Stubborn.finished = True

    async with ActorSystem() as system:
        ref = await system.spawn(Stubborn(), name="stubborn")
        start = trio.current_time()
        await ref.stop()
        assert trio.current_time() - start == pytest.approx(3.0)
    assert not Stubborn.finished
    assert "actor stubborn: on_stop did not finish within 3s and was cut short" in caplog.text


async def test_on_stop_runs_shielded_when_the_caller_is_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    done: list[str] = []

    class Careful(Actor):
        async def handle(self, msg: Any) -> None:
            pass

        async def on_stop(self) -> None:
            await trio.sleep(1.0)  # would be cancelled at once if it were not shielded
            done.append("cleaned")

    with trio.move_on_after(5):
        async with ActorSystem() as system:
            await system.spawn(Careful())
            await trio.sleep_forever()
    assert done == ["cleaned"]


async def test_ctx_stop_lets_the_current_message_finish() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder())
        ref.try_send("before")
        assert await ref.ask("stop-self") == "stopping"
        await ref.wait_stopped()
        with pytest.raises(ActorStopped):
            await ref.send("after")


async def test_background_tasks_end_before_on_stop_and_their_crash_crashes_the_actor() -> None:
    order: list[str] = []

    @attrs.define(eq=False)
    class WithWorker(Actor):
        async def on_start(self) -> None:
            self.ctx.nursery.start_soon(self.worker)

        async def worker(self) -> None:
            try:
                await trio.sleep_forever()
            finally:
                order.append("worker ended")

        async def handle(self, msg: Any) -> None:
            if msg == "fail in background":
                self.ctx.nursery.start_soon(self.fail)

        async def fail(self) -> None:
            raise KeyError("bridge died")

        async def on_stop(self) -> None:
            order.append("on_stop")

    async with ActorSystem() as system:
        ref = await system.spawn(WithWorker())
        await ref.stop()
        assert order == ["worker ended", "on_stop"]
        order.clear()
        crashing = await system.spawn(WithWorker())
        await crashing.send("fail in background")
        await crashing.wait_stopped()
        await trio.testing.wait_all_tasks_blocked()  # the supervisor hears of it
        assert isinstance(crashing.error, KeyError)
        assert order == ["worker ended", "on_stop"]
        assert [type(r.error) for r in system.crash_reports] == [KeyError]


async def test_statistics_is_a_frozen_snapshot() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Recorder(), name="s", mailbox_size=7)
        await ref.ask(1)
        stats = ref.statistics()
        assert (stats.name, stats.capacity, stats.processed, stats.queued) == ("s", 7, 1, 0)
        assert (stats.state, stats.restarts, stats.pending_asks) == (ActorState.RUNNING, 0, 0)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            stats.queued = 3  # type: ignore[misc]


async def test_actor_context_outside_a_run_is_an_error() -> None:
    with pytest.raises(RuntimeError, match=r"^Recorder is not running: spawn it first$"):
        _ = Recorder().ctx


def test_refs_have_no_public_constructor() -> None:
    from actors import ActorContext, ActorRef

    with pytest.raises(TypeError, match=r"^ActorRef has no public constructor"):
        ActorRef()
    with pytest.raises(TypeError, match=r"^ActorContext has no public constructor"):
        ActorContext()

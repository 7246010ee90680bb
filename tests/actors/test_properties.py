"""Random spawn / tell / ask / crash / stop sequences from several concurrent senders,
checked against the runtime's guarantees:

- per sender, each incarnation handles messages in the order they were sent, with no
  gap (FIFO), and an incarnation still alive at the end has handled every message
  its mailbox accepted: nothing lost while the actor lives;
- every ask is answered (with its own message) or fails with an ActorError; none hangs;
- restart intensity: the supervisor survives exactly as long as crashes <= max_restarts
  (all within its window), and gives up with RestartIntensityExceeded on the next;
- no task is left once the system has exited.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs
import trio
import trio.lowlevel
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import (
    Actor,
    ActorCrashed,
    ActorRef,
    ActorStopped,
    ActorSystem,
    ChildSpec,
    NameTaken,
    Refused,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    start_child,
    stop_child,
)

from .helpers import all_tasks

NAMES = ("w0", "w1", "w2")

OpKind = Literal["spawn", "tell", "ask", "crash-tell", "crash-ask", "stop", "yield"]
Op = tuple[OpKind, int]

ops = st.tuples(
    st.sampled_from(["spawn", "tell", "ask", "crash-tell", "crash-ask", "stop", "yield"]),
    st.integers(0, len(NAMES) - 1),
)


@attrs.frozen
class Msg:
    sender: int
    seq: int
    crash: bool = False


@attrs.define(eq=False)
class Incarnation:
    name: str
    handled: list[tuple[int, int]] = attrs.field(factory=list)
    crashed: bool = False


@attrs.define(eq=False)
class World:
    incarnations: dict[ActorRef, Incarnation] = attrs.field(factory=dict)
    # per sender, per incarnation: seqs of tells the mailbox accepted, in order
    accepted: dict[tuple[int, ActorRef], list[int]] = attrs.field(factory=dict)
    # per sender, per incarnation: seqs of asks that were answered
    answered: dict[tuple[int, ActorRef], list[int]] = attrs.field(factory=dict)
    asks: int = 0
    ask_outcomes: int = 0


@attrs.define(eq=False)
class Probe(Actor):
    name: str
    world: World
    record: Incarnation = attrs.field(init=False)

    async def on_start(self) -> None:
        self.record = Incarnation(self.name)
        self.world.incarnations[self.ctx.ref] = self.record

    async def handle(self, msg: Any) -> Any:
        assert isinstance(msg, Msg)
        self.record.handled.append((msg.sender, msg.seq))
        if msg.crash:
            self.record.crashed = True
            raise ValueError(f"crash asked by sender {msg.sender}")
        await trio.lowlevel.checkpoint()  # let other tasks run in the middle of a message
        return msg


def spec(name: str, world: World, mailbox_size: int) -> ChildSpec:
    return ChildSpec(
        factory=lambda: Probe(name, world),
        name=name,
        restart=Restart.PERMANENT,
        mailbox_size=mailbox_size,
    )


async def run_sender(
    sender: int,
    script: list[Op],
    system: ActorSystem,
    sup: ActorRef,
    world: World,
    mailbox_size: int,
) -> None:
    for seq, (kind, index) in enumerate(script):
        name = NAMES[index]
        if kind == "yield":
            await trio.lowlevel.checkpoint()
            continue
        if kind == "spawn":
            try:
                await start_child(sup, spec(name, world, mailbox_size))
            except (NameTaken, ActorStopped):
                pass
            continue
        if kind == "stop":
            try:
                await stop_child(sup, name)
            except (Refused, ActorStopped):
                pass
            continue
        ref = system.registry.lookup(name)
        if ref is None:
            continue
        msg = Msg(sender, seq, crash=kind.startswith("crash"))
        key = (sender, ref)
        if kind in ("tell", "crash-tell"):
            try:
                await ref.send(msg)
            except ActorStopped:
                continue
            world.accepted.setdefault(key, []).append(seq)
            continue
        world.asks += 1
        try:
            reply = await ref.ask(msg, timeout=math.inf)
        except ActorCrashed:
            assert msg.crash, "only a crash message may crash the actor"
        except ActorStopped:
            pass  # failed at once: the incarnation stopped or crashed on another message
        else:
            assert reply == msg
            assert not msg.crash
            world.answered.setdefault(key, []).append(seq)
        world.ask_outcomes += 1


def check_messages(world: World, senders: int) -> None:
    for ref, inc in world.incarnations.items():
        for sender in range(senders):
            handled = [seq for s, seq in inc.handled if s == sender]
            assert handled == sorted(set(handled)), "order kept, no duplicates"
            accepted = world.accepted.get((sender, ref), [])
            answered = world.answered.get((sender, ref), [])
            assert set(answered) <= set(handled), "an answered ask was handled"
            if handled:
                # FIFO: every tell accepted before the last handled message was handled.
                last = handled[-1]
                missing = [seq for seq in accepted if seq < last and seq not in handled]
                assert not missing, f"{inc.name}: tells {missing} skipped"
            if ref.alive:
                missing = [seq for seq in accepted if seq not in handled]
                assert not missing, f"{inc.name} is alive and lost tells {missing}"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    scripts=st.lists(st.lists(ops, max_size=20), min_size=1, max_size=3),
    max_restarts=st.integers(0, 3),
    strategy=st.sampled_from(Strategy),
    mailbox_size=st.integers(1, 4),
)
async def test_random_runs_keep_the_guarantees(
    scripts: list[list[Op]], max_restarts: int, strategy: Strategy, mailbox_size: int
) -> None:
    before = all_tasks()
    world = World()
    with trio.fail_after(30):  # an ask that hangs fails the test instead
        async with ActorSystem(shutdown_timeout=10) as system:
            sup_actor = Supervisor(
                children=[spec(NAMES[0], world, mailbox_size)],
                strategy=strategy,
                max_restarts=max_restarts,
                within=3600,  # every crash of a run falls within one window
            )
            sup = await system.spawn(sup_actor, name="sup")
            async with trio.open_nursery() as nursery:
                for sender, script in enumerate(scripts):
                    nursery.start_soon(run_sender, sender, script, system, sup, world, mailbox_size)
            await trio.testing.wait_all_tasks_blocked()

            assert world.ask_outcomes == world.asks, "every ask answered or failed"
            check_messages(world, len(scripts))

            crashes = sum(inc.crashed for inc in world.incarnations.values())
            reports = [r for r in system.crash_reports if r.supervisor == "sup"]
            actions = [r.action for r in reports]
            assert len(reports) == crashes, "every crash reported, once"
            assert actions.count("restart") <= max_restarts
            if crashes <= max_restarts:
                assert sup.alive, "gave up within its restart intensity"
            if sup.alive:
                assert "escalate" not in actions
            else:
                assert isinstance(sup.error, RestartIntensityExceeded)
                assert actions.count("restart") == max_restarts
                assert actions.count("escalate") == 1
                assert all(not ref.alive for ref in world.incarnations)
    assert all_tasks() == before
    assert all(not ref.alive for ref in world.incarnations)

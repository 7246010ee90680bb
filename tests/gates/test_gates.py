"""GateActor and GateRegistry: answered once, expiring closed, cancelled, never leaving
a waiter hanging, and restored from the stream after a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from actors import ActorCrashed, ActorSystem
from orchestrator import events as ev
from orchestrator.gates import (
    Gate,
    GateClosed,
    GateExists,
    GateNotFound,
    GateOutcome,
    GateRegistry,
    InvalidAnswer,
    open_gate_supervisor,
    pending_gates,
)
from orchestrator.sessions.actor import session_stream
from transport import DiskStore, MemoryStore, Store

SID = "s1"


@attrs.define
class WallClock:
    """A settable wall clock (the one ``expiresAt`` is written in)."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def gates_over(store: Store, wall: WallClock | None = None) -> AsyncIterator[GateRegistry]:
    async with ActorSystem() as system:
        supervisor = await open_gate_supervisor(system)
        yield GateRegistry(
            supervisor=supervisor,
            store=store,
            stream_path=session_stream,
            wall_clock=wall or WallClock(),
        )


async def records(store: Store, session_id: str = SID) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = "-1"
    while True:
        page = await store.read(session_stream(session_id), offset)
        if page.chunks:
            found.extend(json.loads(page.body()))
        offset = page.next_offset
        if page.up_to_date:
            return found


def of_type(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [record for record in found if record["type"] == kind]


async def open_bash(gates: GateRegistry, *, use: str = "t1", timeout: float = 60.0) -> Gate:
    return await gates.open_tool_permission(
        SID, "Bash", {"command": "ls"}, tool_use_id=use, timeout=timeout
    )


async def test_opening_is_recorded_with_its_announcement() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await open_bash(gates)
        found = await records(store)
        assert [r["type"] for r in found] == ["gate_opened", "tool_permission_request"]
        opened, announced = found
        assert opened["gateId"] == announced["gateId"] == "tool_permission:t1"
        assert opened["gate"] == "tool_permission"
        assert opened["request"]["tool_name"] == "Bash"
        assert opened["expiresAt"] == announced["expiresAt"] == "2027-01-15T08:01:00.000Z"
        assert announced["tool_input"] == {"command": "ls"}
        assert announced["source"] == "server"
        assert gate.pending
        assert gates.pending(SID) == [gate]
        assert gate.to_json()["status"] == "pending"
        assert gate.name == "gate:s1:tool_permission:t1"
        assert gate.ref is not None
        assert gate.ref.name == gate.name


async def test_resolved_once_and_the_waiter_hears_after_the_stream() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await open_bash(gates)
        heard: list[tuple[GateOutcome, list[dict[str, Any]]]] = []

        async def waiter() -> None:
            outcome = await gate.wait()
            heard.append((outcome, await records(store)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            outcome = await gates.resolve(
                SID, gate.gate_id, "allow", resolved_by={"id": "u1", "displayName": "Ann"}
            )
        assert outcome.status == "resolved"
        assert outcome.allowed
        assert outcome.decision == "allow"
        assert outcome.value == {"behavior": "allow"}
        [(told, seen)] = heard
        assert told == outcome
        assert of_type(seen, "gate_ended"), "the waiter was told before the stream had it"

        with pytest.raises(GateClosed) as closed:
            await gates.resolve(SID, gate.gate_id, "deny")
        assert closed.value.outcome == outcome
        with pytest.raises(GateClosed):
            await gate.cancel()

        found = await records(store)
        [resolved] = of_type(found, "gate_resolved")
        assert resolved == {
            "type": "gate_resolved",
            "source": "server",
            "ts": resolved["ts"],
            "gate": "tool_permission",
            "summary": "Allowed Bash",
            "details": {"Tool": "Bash", "Decision": "allow"},
            "resolvedBy": {"id": "u1", "displayName": "Ann"},
        }
        [ended] = of_type(found, "gate_ended")
        assert ended["outcome"] == "resolved"
        assert ended["decision"] == "allow"
        assert gates.pending(SID) == []
        assert gates.get(SID, gate.gate_id) is gate
        assert gate.to_json()["status"] == "resolved"


async def test_concurrent_answers_exactly_one_wins() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await gates.open(
            SID, "ask_user_question", "ask_user_question:q1", request={"question": "Which?"}
        )
        wins: list[int] = []
        refused: list[int] = []

        async def answer(i: int) -> None:
            try:
                await gates.resolve(SID, gate.gate_id, {"answers": {"Which?": str(i)}})
            except GateClosed:
                refused.append(i)
            else:
                wins.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(answer, i)
        assert len(wins) == 1
        assert len(refused) == 49
        outcome = await gate.wait()
        assert outcome.value == {"answers": {"Which?": str(wins[0])}}
        found = await records(store)
        assert len(of_type(found, "gate_resolved")) == 1
        assert len(of_type(found, "gate_ended")) == 1


async def test_expiry_fails_closed(autojump_clock: trio.abc.Clock) -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        start = trio.current_time()
        gate = await open_bash(gates, timeout=10.0)
        outcome = await gate.wait()
        assert trio.current_time() - start == pytest.approx(10.0)
        assert outcome.status == "expired"
        assert outcome.recorded
        assert not outcome.allowed
        assert outcome.decision == "deny"
        with pytest.raises(GateClosed) as late:
            await gates.resolve(SID, gate.gate_id, "allow")
        assert late.value.outcome.status == "expired"
        found = await records(store)
        assert of_type(found, "gate_resolved") == []
        [ended] = of_type(found, "gate_ended")
        assert ended["outcome"] == "expired"
        assert ended["decision"] == "deny"


async def test_answer_before_the_deadline_wins(autojump_clock: trio.abc.Clock) -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await open_bash(gates, timeout=10.0)
        await trio.sleep(9.0)
        outcome = await gate.resolve("deny")
        assert outcome.status == "resolved"
        assert outcome.decision == "deny"
        await trio.sleep(5.0)  # the timer is gone with the actor
        assert len(of_type(await records(store), "gate_ended")) == 1


async def test_cancel_and_cancel_session() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        one = await open_bash(gates, use="a")
        two = await gates.open(SID, "infra_config", "infra_config", request={"projectName": "p"})
        other = await gates.open("s2", "infra_config", "infra_config")
        outcome = await one.cancel("not needed")
        assert outcome == GateOutcome(status="cancelled", reason="not needed")
        assert not outcome.allowed
        with pytest.raises(GateClosed):
            await one.resolve("allow")

        assert await gates.cancel_session(SID) == 1
        assert (await two.wait()).reason == "Session cancelled"
        assert gates.pending(SID) == []
        assert gates.pending("s2") == [other]
        ended = of_type(await records(store), "gate_ended")
        assert [(e["gateId"], e["outcome"]) for e in ended] == [
            ("tool_permission:a", "cancelled"),
            ("infra_config", "cancelled"),
        ]
        assert ended[0]["decision"] == "deny"
        assert "decision" not in ended[1]
        assert await pending_gates(store, session_stream(SID)) == []
        gates.forget(SID)
        assert gates.get(SID, "infra_config") is None
        with pytest.raises(GateNotFound):
            await gates.resolve(SID, "infra_config", {"mode": "local"})


async def test_waiters_never_hang_when_the_actor_stops() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await open_bash(gates)
        told: list[GateOutcome] = []

        async def waiter() -> None:
            told.append(await gate.wait())

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert gate.ref is not None
            await gate.ref.stop()
        assert len(told) == 3
        assert all(o.status == "cancelled" and not o.recorded for o in told)
        assert not told[0].allowed
        with pytest.raises(GateClosed):
            await gate.resolve("allow")
        # Not recorded as ended: the stream still shows it pending, for a restart.
        [record] = await pending_gates(store, session_stream(SID))
        assert record.gate_id == gate.gate_id

    # Shutting the whole system down also tells the waiters.
    async with gates_over(store) as gates:
        gate = await open_bash(gates, use="t2")
    assert gate.outcome is not None
    assert gate.outcome.status == "cancelled"
    assert not gate.outcome.recorded


async def test_duplicates_and_invalid_answers_are_refused() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await open_bash(gates)
        with pytest.raises(GateExists):
            await open_bash(gates)
        with pytest.raises(InvalidAnswer):
            await gate.resolve("maybe")
        with pytest.raises(InvalidAnswer):
            await gate.resolve({"behavior": "allow", "message": 3})
        assert gate.pending
        outcome = await gate.resolve({"behavior": "deny", "message": "not now"})
        assert outcome.value == {"behavior": "deny", "message": "not now"}
        infra = await gates.open(SID, "infra_config", "infra_config")
        with pytest.raises(InvalidAnswer):
            await infra.resolve("local")
        with pytest.raises(ValueError, match="unknown gate kind"):
            await gates.open(SID, "nope", "x")  # type: ignore[arg-type]


async def test_outbound_message_gate_uses_the_reference_shapes() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        announce = ev.OutboundMessageGate(gateId="room-msg-1", roomId="r1", body="hi", to="bob")
        gate = await gates.open(
            SID, "outbound_message", "room-msg-1", request={"roomId": "r1"}, announce=announce
        )
        with pytest.raises(InvalidAnswer):
            await gate.resolve({"action": "edit"})
        outcome = await gate.resolve(
            {"action": "edit", "editedBody": "hello"}, resolved_by={"id": "u1"}
        )
        assert outcome.value == {"action": "edit", "editedBody": "hello"}
        found = await records(store)
        assert [r["type"] for r in found] == [
            "gate_opened",
            "outbound_message_gate",
            "outbound_message_gate_resolved",
            "gate_ended",
        ]
        assert found[1]["roomId"] == "r1"
        assert found[2]["editedBody"] == "hello"
        assert found[2]["resolvedBy"] == {"id": "u1"}
        parsed = [ev.event_from_json(r)[0] for r in found]
        assert not any(isinstance(e, ev.Unknown) for e in parsed)


async def test_restore_after_restart(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    # Time moves only when told (autojump would jump while the store fsyncs in a thread).
    wall = WallClock()
    async with DiskStore(tmp_path) as store, gates_over(store, wall) as gates:
        long = await gates.open(
            SID, "infra_config", "infra_config", request={"projectName": "p"}, timeout=60.0
        )
        short = await open_bash(gates, use="short", timeout=10.0)
        done = await open_bash(gates, use="done")
        await done.resolve("allow")
        forever = await gates.open(
            SID, "ask_user_question", "ask_user_question:q", timeout=float("inf")
        )
        assert forever.expires_at is None
    # The server went away: the waiters were told, the stream still has them pending.
    assert long.outcome is not None
    assert not long.outcome.recorded
    assert short.outcome is not None

    wall.now += 30.0
    async with DiskStore(tmp_path) as store, gates_over(store, wall) as gates:
        records_before = await pending_gates(store, session_stream(SID))
        assert [r.gate_id for r in records_before] == [
            "infra_config",
            "tool_permission:short",
            "ask_user_question:q",
        ]
        start = trio.current_time()
        restored = await gates.restore(SID)
        assert [g.gate_id for g in restored] == [r.gate_id for r in records_before]
        again, expired, still = restored
        assert again.kind == "infra_config"
        assert again.request == {"projectName": "p"}
        assert again.expires_at == long.expires_at
        # The deadline that passed while the server was down expires at once.
        assert (await expired.wait()).status == "expired"
        assert trio.current_time() == start
        assert await gates.restore(SID) == []  # the live ones are not spawned twice
        assert [g.gate_id for g in gates.pending(SID)] == ["infra_config", "ask_user_question:q"]
        # The other keeps what was left of its deadline: 30 of 60 seconds.
        mock_clock.jump(29.0)
        await trio.testing.wait_all_tasks_blocked()
        assert again.pending
        mock_clock.jump(1.0)
        assert (await again.wait()).status == "expired"
        await still.resolve({"answers": {"q": "a"}})
        assert await pending_gates(store, session_stream(SID)) == []
        found = await records(store)
        assert len(of_type(found, "gate_opened")) == 4  # restoring writes no new opening
        assert len(of_type(found, "gate_resolved")) == 2


async def test_no_stream_has_no_pending_gates() -> None:
    assert await pending_gates(MemoryStore(), session_stream("nobody")) == []


async def test_an_answer_past_the_deadline_is_refused_even_before_the_timer(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    wall = WallClock()
    async with DiskStore(tmp_path) as store:
        async with gates_over(store, wall) as gates:
            await open_bash(gates, timeout=10.0)
        wall.now += 11.0
        async with gates_over(store, wall) as gates:
            [gate] = await gates.restore(SID)
            with pytest.raises(GateClosed) as late:
                await gate.resolve("allow")
            assert late.value.outcome.status == "expired"
            assert late.value.outcome.decision == "deny"
        [ended] = of_type(await records(store), "gate_ended")
        assert ended["outcome"] == "expired"


async def test_a_failed_record_crashes_the_gate_and_tells_the_waiter() -> None:
    store = MemoryStore()
    async with gates_over(store) as gates:
        gate = await open_bash(gates)
        await store.delete(session_stream(SID))
        with pytest.raises(ActorCrashed):
            await gate.resolve("allow")
        outcome = await gate.wait()
        assert outcome.status == "cancelled"
        assert not outcome.recorded
        assert not outcome.allowed
        with pytest.raises(GateClosed):
            await gate.resolve("allow")

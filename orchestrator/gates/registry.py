"""GateRegistry: open, find, list, cancel and restore the gates of sessions.

Gate actors run under one supervisor (``TEMPORARY`` children: a gate that ended is not
restarted), each registered as ``gate:<session id>:<gate id>``. The registry keeps the
:class:`Gate` handles, including those that ended recently, so that a late answer is
told :class:`GateClosed` (409) rather than :class:`GateNotFound` (404).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from actors import ActorRef, ActorSystem, ChildSpec, NameTaken, Restart, Supervisor, start_child
from transport import Store, StreamNotFound

from .. import events as ev
from .actor import (
    GATE_KINDS,
    Gate,
    GateActor,
    GateClosed,
    GateExists,
    GateKind,
    GateNotFound,
    GateOutcome,
)

__all__ = [
    "DEFAULT_TIMEOUTS",
    "GateRecord",
    "GateRegistry",
    "open_gate_supervisor",
    "pending_gates",
]

#: Seconds a gate waits for a person before it expires (fails closed).
DEFAULT_TIMEOUTS: dict[GateKind, float] = {
    "infra_config": 24 * 3600.0,
    "ask_user_question": 300.0,
    "tool_permission": 300.0,
    "outbound_message": 3600.0,
}
KEEP_ENDED = 4096  # ended handles kept for late answers


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@attrs.frozen(kw_only=True)
class GateRecord:
    """A gate the stream shows opened and not ended."""

    gate_id: str
    kind: GateKind
    request: dict[str, Any]
    expires_at: str | None


async def pending_gates(store: Store, path: str) -> list[GateRecord]:
    """The gates of the stream at ``path`` that were opened and never ended, in the
    order they opened. A missing stream has none."""
    pending: dict[str, GateRecord] = {}
    offset = "-1"
    while True:
        try:
            page = await store.read(path, offset)
        except StreamNotFound:
            return []
        if page.chunks:
            for record in json.loads(page.body()):
                event, _ = ev.event_from_json(record)
                if isinstance(event, ev.GateOpened) and event.gate in GATE_KINDS:
                    pending.pop(event.gate_id, None)
                    pending[event.gate_id] = GateRecord(
                        gate_id=event.gate_id,
                        kind=event.gate,
                        request=event.request,
                        expires_at=event.expires_at,
                    )
                elif isinstance(event, ev.GateEnded):
                    pending.pop(event.gate_id, None)
        offset = page.next_offset
        if page.up_to_date:
            return list(pending.values())


async def open_gate_supervisor(system: ActorSystem, *, name: str = "gates") -> ActorRef:
    """A supervisor for gate actors, under the system's root."""
    return await system.spawn(Supervisor, name=name, restart=Restart.PERMANENT)


@attrs.define(eq=False)
class GateRegistry:
    """The gates of every session. ``stream_path`` maps a session id to its stream
    (``orchestrator.sessions.actor.session_stream``); ``wall_clock`` gives the epoch
    seconds that ``expiresAt`` is written in (the deadlines themselves run on trio's
    clock)."""

    supervisor: ActorRef
    store: Store
    stream_path: Callable[[str], str]
    wall_clock: Callable[[], float] = time.time
    _gates: dict[tuple[str, str], Gate] = attrs.field(factory=dict, init=False)

    async def open(
        self,
        session_id: str,
        kind: GateKind,
        gate_id: str,
        *,
        request: dict[str, Any] | None = None,
        announce: ev.Event | None = None,
        timeout: float | None = None,
    ) -> Gate:
        """Open a gate: its ``gate_opened`` (and ``announce``) are in the stream when
        this returns. ``timeout`` defaults to :data:`DEFAULT_TIMEOUTS`.

        Raises:
            GateExists: a gate with this id is pending for the session.
            ValueError: an unknown kind.
        """
        if kind not in GATE_KINDS:
            raise ValueError(f"unknown gate kind {kind!r}")
        seconds, expires = self._deadline(kind, timeout)
        gate = Gate(session_id, gate_id, kind, request=dict(request or {}), expires_at=expires)
        return await self._spawn(gate, seconds, announce=announce, restored=False)

    async def open_tool_permission(
        self,
        session_id: str,
        tool_name: str,
        tool_input: dict[str, Any],
        *,
        tool_use_id: str,
        agent: str | None = None,
        timeout: float | None = None,
    ) -> Gate:
        """A ``tool_permission`` gate for one tool call, announced as
        ``tool_permission_request``; its id is ``tool_permission:<tool use id>``."""
        gate_id = f"tool_permission:{tool_use_id}"
        seconds, expires = self._deadline("tool_permission", timeout)
        request = {"tool_name": tool_name, "tool_input": tool_input, "tool_use_id": tool_use_id}
        announce = ev.ToolPermissionRequest(
            gateId=gate_id,
            tool_name=tool_name,
            tool_input=tool_input,
            tool_use_id=tool_use_id,
            agent=agent,
            expiresAt=expires,
        )
        gate = Gate(session_id, gate_id, "tool_permission", request=request, expires_at=expires)
        return await self._spawn(gate, seconds, announce=announce, restored=False)

    def _deadline(self, kind: GateKind, timeout: float | None) -> tuple[float, str | None]:
        """Seconds to wait, and the wall-clock ``expiresAt`` (None: never)."""
        seconds = DEFAULT_TIMEOUTS[kind] if timeout is None else timeout
        return seconds, None if math.isinf(seconds) else _iso(self.wall_clock() + seconds)

    def get(self, session_id: str, gate_id: str) -> Gate | None:
        """The gate, pending or recently ended, or None."""
        return self._gates.get((session_id, gate_id))

    def pending(self, session_id: str) -> list[Gate]:
        """The session's pending gates, in the order they opened."""
        return [
            gate for (sid, _), gate in self._gates.items() if sid == session_id and gate.pending
        ]

    async def resolve(
        self,
        session_id: str,
        gate_id: str,
        value: Any,
        *,
        resolved_by: dict[str, str] | None = None,
        summary: str | None = None,
        details: dict[str, str] | None = None,
    ) -> GateOutcome:
        """Answer a gate. Raises :class:`GateNotFound` (404), :class:`GateClosed`
        (409) or :class:`~orchestrator.gates.InvalidAnswer` (400)."""
        gate = self.get(session_id, gate_id)
        if gate is None:
            raise GateNotFound(f"No pending gate found: {gate_id!r} of session {session_id}")
        return await gate.resolve(value, resolved_by=resolved_by, summary=summary, details=details)

    async def cancel_session(self, session_id: str, reason: str = "Session cancelled") -> int:
        """Cancel every pending gate of the session (recorded); how many were."""
        cancelled = 0
        for gate in self.pending(session_id):
            try:
                await gate.cancel(reason)
            except GateClosed:
                continue
            cancelled += 1
        return cancelled

    def forget(self, session_id: str) -> None:
        """Drop the handles of a session's ended gates (a deleted session)."""
        for key in [k for k, g in self._gates.items() if k[0] == session_id and not g.pending]:
            del self._gates[key]

    async def restore(self, session_id: str) -> list[Gate]:
        """Re-issue the gates the session's stream shows pending (after a restart):
        each is spawned again with what is left of its deadline, and expires at once
        if none is. Gates already running are left alone."""
        restored = []
        for record in await pending_gates(self.store, self.stream_path(session_id)):
            current = self.get(session_id, record.gate_id)
            if current is not None and current.pending:
                continue
            seconds = math.inf
            if record.expires_at is not None:
                seconds = max(0.0, _epoch(record.expires_at) - self.wall_clock())
            gate = Gate(
                session_id,
                record.gate_id,
                record.kind,
                request=record.request,
                expires_at=record.expires_at,
            )
            restored.append(await self._spawn(gate, seconds, announce=None, restored=True))
        return restored

    async def _spawn(
        self, gate: Gate, timeout: float, *, announce: ev.Event | None, restored: bool
    ) -> Gate:
        key = (gate.session_id, gate.gate_id)
        current = self._gates.get(key)
        if current is not None and current.pending:
            raise GateExists(f"gate {gate.gate_id!r} of session {gate.session_id} is pending")
        actor = GateActor(
            gate=gate,
            store=self.store,
            path=self.stream_path(gate.session_id),
            timeout=timeout,
            announce=announce,
            restored=restored,
        )
        self._gates[key] = gate  # before the await: a racing open sees it pending
        try:
            await start_child(
                self.supervisor, ChildSpec.of(actor, name=gate.name, restart=Restart.TEMPORARY)
            )
        except NameTaken:
            self._drop(key, gate)
            raise GateExists(
                f"gate {gate.gate_id!r} of session {gate.session_id} is pending"
            ) from None
        except BaseException:
            self._drop(key, gate)
            raise
        self._prune()
        return gate

    def _drop(self, key: tuple[str, str], gate: Gate) -> None:
        if self._gates.get(key) is gate:
            del self._gates[key]
        gate._settle(
            GateOutcome(status="cancelled", reason="the gate did not open", recorded=False)
        )

    def _prune(self) -> None:
        ended = [key for key, gate in self._gates.items() if not gate.pending]
        for key in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self._gates[key]

"""GateActor: one pending decision by a person, answered once.

A gate goes pending → resolved | expired | cancelled, exactly once. Every change is
appended to the session's stream *before* anyone waiting on the gate hears of it:

- opening: ``gate_opened`` (the durable record a restart restores) plus the kind's
  reference-shaped announcement, in one append;
- resolving: ``gate_resolved`` (``outbound_message_gate_resolved`` for room messages)
  plus ``gate_ended {outcome: "resolved"}``, in one append;
- expiry / cancellation: ``gate_ended {outcome: "expired" | "cancelled"}``.

The party that opened the gate awaits :meth:`Gate.wait`. It never hangs: when the actor
stops for any reason before the gate ended (a crash, the system shutting down) the
waiter gets a ``cancelled`` outcome with ``recorded=False``: the stream still shows the
gate pending, so a restart restores it. Expiry fails closed: a tool permission that
expires (or is cancelled) is a ``deny``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs
import trio

from actors import Actor, ActorCrashed, ActorRef, ActorStopped, Refused, shielded
from transport import AppendRequest, CreateRequest, Store

from .. import events as ev

__all__ = [
    "APPEND_TIMEOUT",
    "GATE_KINDS",
    "Cancel",
    "Gate",
    "GateActor",
    "GateClosed",
    "GateError",
    "GateExists",
    "GateKind",
    "GateNotFound",
    "GateOutcome",
    "InvalidAnswer",
    "Resolve",
    "gate_name",
    "normalize_answer",
]

GateKind = Literal["infra_config", "ask_user_question", "tool_permission", "outbound_message"]
GATE_KINDS: tuple[GateKind, ...] = (
    "infra_config",
    "ask_user_question",
    "tool_permission",
    "outbound_message",
)
Status = Literal["resolved", "expired", "cancelled"]

JSON = "application/json"
APPEND_TIMEOUT = 15.0


def gate_name(session_id: str, gate_id: str) -> str:
    """The registry name of a gate's actor."""
    return f"gate:{session_id}:{gate_id}"


# -- errors (all refusals: the actor keeps running, the asker gets the error) ------------


class GateError(Refused):
    """Base of the gate errors."""


class GateClosed(GateError):
    """The gate has ended already: a second or late answer (HTTP 409)."""

    def __init__(self, message: str, *, actor: str | None = None, outcome: GateOutcome) -> None:
        super().__init__(message, actor=actor)
        self.outcome = outcome


class GateNotFound(GateError):
    """No such gate (HTTP 404)."""


class GateExists(GateError):
    """A gate with this id is pending already (HTTP 409)."""


class InvalidAnswer(GateError):
    """The answer does not fit the gate's kind (HTTP 400)."""


# -- outcomes and messages --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GateOutcome:
    """How a gate ended. ``recorded`` is False only when the actor stopped before the
    gate ended: then the stream still shows it pending."""

    status: Status
    value: Any = None  # the normalized answer when resolved
    resolved_by: dict[str, str] | None = None
    reason: str | None = None
    recorded: bool = True

    @property
    def allowed(self) -> bool:
        """For a tool permission: True only if a person allowed it (fails closed)."""
        return (
            self.status == "resolved"
            and isinstance(self.value, Mapping)
            and self.value.get("behavior") == "allow"
        )

    @property
    def decision(self) -> Literal["allow", "deny"]:
        return "allow" if self.allowed else "deny"


@attrs.frozen
class Resolve:
    """Answer the gate. The first answer wins; any later one gets :class:`GateClosed`."""

    value: Any
    resolved_by: dict[str, str] | None = attrs.field(default=None, kw_only=True)
    #: for gate_resolved (the reference's ``_summary``)
    summary: str | None = attrs.field(default=None, kw_only=True)
    details: dict[str, str] | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Cancel:
    reason: str = "cancelled"


@attrs.frozen
class _Expire:
    pass


def normalize_answer(kind: GateKind, value: Any) -> Any:
    """The answer in its canonical form for ``kind``, or :class:`InvalidAnswer`.

    - ``tool_permission``: ``"allow"`` / ``"deny"`` or ``{behavior, message?}`` →
      ``{"behavior": ..., "message"?: ...}``;
    - ``outbound_message``: ``{action: approve|edit|drop, editedBody?}`` (edit needs
      ``editedBody``);
    - ``infra_config`` and ``ask_user_question``: a JSON object, kept as given.
    """
    if kind == "tool_permission":
        if isinstance(value, str):
            value = {"behavior": value}
        if not isinstance(value, Mapping) or value.get("behavior") not in ("allow", "deny"):
            raise InvalidAnswer("a tool permission is answered with 'allow' or 'deny'")
        answer: dict[str, Any] = {"behavior": value["behavior"]}
        message = value.get("message")
        if message is not None:
            if not isinstance(message, str):
                raise InvalidAnswer("message must be a string")
            answer["message"] = message
        return answer
    if not isinstance(value, Mapping):
        raise InvalidAnswer(f"a {kind} gate is answered with a JSON object")
    if kind == "outbound_message":
        action = value.get("action")
        if action not in ("approve", "edit", "drop"):
            raise InvalidAnswer("action must be approve, edit or drop")
        edited = value.get("editedBody")
        if action == "edit" and not isinstance(edited, str):
            raise InvalidAnswer("an edit needs editedBody")
        return {"action": action, **({"editedBody": edited} if action == "edit" else {})}
    return dict(value)


# -- the handle shared by the actor and its waiters -------------------------------------


@attrs.define(eq=False)
class Gate:
    """A gate as its opener and its answerers see it: what is asked, the outcome once
    it is known, and the operations (each goes through the gate's actor)."""

    session_id: str
    gate_id: str
    kind: GateKind
    request: dict[str, Any] = attrs.field(factory=dict)
    expires_at: str | None = None  # wall clock, ISO-8601
    _done: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)
    _outcome: GateOutcome | None = attrs.field(default=None, init=False)
    _ref: ActorRef | None = attrs.field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return gate_name(self.session_id, self.gate_id)

    @property
    def pending(self) -> bool:
        return self._outcome is None

    @property
    def outcome(self) -> GateOutcome | None:
        return self._outcome

    @property
    def ref(self) -> ActorRef | None:
        return self._ref

    def to_json(self) -> dict[str, Any]:
        """For listings: ``{gateId, gate, request, expiresAt?, status}``."""
        data: dict[str, Any] = {"gateId": self.gate_id, "gate": self.kind, "request": self.request}
        if self.expires_at is not None:
            data["expiresAt"] = self.expires_at
        data["status"] = "pending" if self._outcome is None else self._outcome.status
        return data

    async def wait(self) -> GateOutcome:
        """The outcome, once the gate has ended (or its actor stopped)."""
        await self._done.wait()
        assert self._outcome is not None
        return self._outcome

    async def resolve(
        self,
        value: Any,
        *,
        resolved_by: dict[str, str] | None = None,
        summary: str | None = None,
        details: dict[str, str] | None = None,
    ) -> GateOutcome:
        """Answer the gate; returns the outcome once it is recorded.

        Raises:
            GateClosed: it ended already (a second or late answer).
            InvalidAnswer: ``value`` does not fit the gate's kind.
            ActorCrashed: recording the answer failed.
        """
        return await self._ask(
            Resolve(value, resolved_by=resolved_by, summary=summary, details=details)
        )

    async def cancel(self, reason: str = "cancelled") -> GateOutcome:
        """Cancel the gate (recorded). Raises :class:`GateClosed` if it ended already."""
        return await self._ask(Cancel(reason))

    async def _ask(self, msg: Resolve | Cancel) -> GateOutcome:
        ref = self._ref
        if self._outcome is not None or ref is None:
            raise self._closed()
        try:
            outcome: GateOutcome = await ref.ask(msg, timeout=math.inf)
        except ActorCrashed:
            raise
        except ActorStopped:
            # It ended (or stopped) between our look and our ask: its on_stop settles us.
            await ref.wait_stopped()
            raise self._closed() from None
        return outcome

    def _closed(self) -> GateClosed:
        outcome = self._outcome or GateOutcome(
            status="cancelled", reason="the gate is not running", recorded=False
        )
        return GateClosed(
            f"gate {self.gate_id!r} of session {self.session_id} is {outcome.status} already",
            actor=self.name,
            outcome=outcome,
        )

    def _settle(self, outcome: GateOutcome) -> bool:
        if self._outcome is not None:
            return False
        self._outcome = outcome
        self._done.set()
        return True


# -- the actor --------------------------------------------------------------------------


@attrs.define(eq=False)
class GateActor(Actor):
    """One pending gate. Spawn it through :class:`~orchestrator.gates.GateRegistry`."""

    gate: Gate
    store: Store
    path: str  # the session's stream
    timeout: float = math.inf  # seconds from start until it expires
    announce: ev.Event | None = None  # the reference-shaped event written on opening
    restored: bool = False  # already recorded as opened: do not write it again

    _deadline: float = attrs.field(default=math.inf, init=False)

    refusals = (Refused,)
    mailbox_size = 256

    def cleanup_timeout(self) -> float:
        return APPEND_TIMEOUT + 5.0

    async def on_start(self) -> None:
        if math.isnan(self.timeout):
            raise ValueError("a gate's timeout must be a number")
        self._deadline = trio.current_time() + self.timeout
        self.gate._ref = self.ctx.ref
        if not self.restored:
            await self.store.create(self.path, CreateRequest(content_type=JSON))
            opened = ev.GateOpened(
                gateId=self.gate.gate_id,
                gate=self.gate.kind,
                request=self.gate.request,
                expiresAt=self.gate.expires_at,
            )
            records: list[ev.Event] = [opened]
            if self.announce is not None:
                records.append(self.announce)
            await self._append(records)
        if self._deadline < math.inf:
            self.ctx.nursery.start_soon(self._timer)

    async def on_stop(self) -> None:
        self.gate._settle(
            GateOutcome(
                status="cancelled",
                reason="the gate stopped before it was answered",
                recorded=False,
            )
        )

    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, _Expire):
            if self.gate.pending:
                await self._expire()
            return None
        if isinstance(msg, Resolve):
            await self._check_open()
            value = normalize_answer(self.gate.kind, msg.value)
            outcome = GateOutcome(status="resolved", value=value, resolved_by=msg.resolved_by)
            await self._end(outcome, self._resolution(msg, outcome))
            return outcome
        if isinstance(msg, Cancel):
            await self._check_open()
            outcome = GateOutcome(status="cancelled", reason=msg.reason)
            await self._end(outcome, [self._ended(outcome)])
            return outcome
        raise Refused(f"a gate does not understand {type(msg).__name__}", actor=self.ctx.name)

    # -- internals -------------------------------------------------------------------

    async def _timer(self) -> None:
        await trio.sleep_until(self._deadline)
        try:
            await self.ctx.ref.send(_Expire())
        except ActorStopped:
            pass

    async def _check_open(self) -> None:
        """Refuse an answer to a gate that ended, or whose deadline has passed even if
        its timer has not fired yet (then it expires first)."""
        if self.gate.pending and trio.current_time() >= self._deadline:
            await self._expire()
        if not self.gate.pending:
            raise self.gate._closed()

    async def _expire(self) -> None:
        outcome = GateOutcome(
            status="expired", reason=f"no answer within the gate's deadline ({self.timeout:g}s)"
        )
        await self._end(outcome, [self._ended(outcome)])

    def _ended(self, outcome: GateOutcome) -> ev.GateEnded:
        return ev.GateEnded(
            gateId=self.gate.gate_id,
            gate=self.gate.kind,
            outcome=outcome.status,
            decision=outcome.decision if self.gate.kind == "tool_permission" else None,
            reason=outcome.reason,
            resolvedBy=outcome.resolved_by,
        )

    def _resolution(self, msg: Resolve, outcome: GateOutcome) -> list[ev.Event]:
        gate = self.gate
        first: ev.Event
        if gate.kind == "outbound_message":
            first = ev.OutboundMessageGateResolved(
                gateId=gate.gate_id,
                action=outcome.value["action"],
                editedBody=outcome.value.get("editedBody"),
                resolvedBy=msg.resolved_by,
            )
        else:
            summary, details = msg.summary, msg.details
            if gate.kind == "tool_permission":
                tool = str(gate.request.get("tool_name", "tool"))
                verb = "Allowed" if outcome.allowed else "Denied"
                summary = summary or f"{verb} {tool}"
                details = details or {"Tool": tool, "Decision": outcome.decision}
            first = ev.GateResolved(
                gate=gate.kind, summary=summary, details=details, resolvedBy=msg.resolved_by
            )
        return [first, self._ended(outcome)]

    async def _end(self, outcome: GateOutcome, records: list[ev.Event]) -> None:
        """Record the end, then tell the waiters, then stop. The append is shielded:
        an end decided is an end recorded (or the actor crashes and nothing is told
        but 'cancelled, not recorded')."""
        await self._append(records)
        self.gate._settle(outcome)
        self.ctx.stop()

    async def _append(self, records: list[ev.Event]) -> None:
        body = json.dumps([record.to_json("server") for record in records], separators=(",", ":"))
        with shielded(APPEND_TIMEOUT) as scope:
            await self.store.append(self.path, AppendRequest(body=body.encode(), content_type=JSON))
        if scope.cancelled_caught:
            raise TimeoutError(f"recording gate {self.gate.gate_id!r} took over {APPEND_TIMEOUT}s")

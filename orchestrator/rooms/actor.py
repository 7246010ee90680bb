"""RoomRouterActor: one per room; routes ``@room`` and ``@name`` messages between its
participants' sessions.

The router reads each participant's session stream (from the store, like any reader)
and hears every turn of its agent. At the end of a turn it parses the turn's text for
a directive (reference §9.2; one message per turn, the last directive wins), and then:

- a body starting ``GATE:`` (or every message, when the room gates messages, or a
  message the stuck detector stopped with ``action="gate"``) waits at an
  ``outbound_message`` gate on the sender's session: approve, edit or drop;
- otherwise the message is appended to the room's stream as ``agent_message`` (with its
  round, its session and the offset of the sender's stream it came from), then each
  recipient's session is told (a ``user_prompt`` from the sender, and a turn).

Messages of one sender keep their order, also behind a pending gate. The room closes,
always with a ``room_closed`` that says why: ``max_rounds`` (the last message is still
shown to its recipients), ``closed_by_human``, ``all_idle`` (no agent busy and nothing
happening for ``idle_timeout`` seconds), ``stuck`` or ``budget`` (the sum of its
sessions' costs over the room's cap). Closing ends the agents the room made (their
sandboxes are removed) and cancels its pending message gates.

Everything the router decides is in the room's stream first; on a restart
(``restore=True``) its state is rebuilt from that stream alone.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import attrs
import trio

from actors import Actor, ActorRef, ActorStopped, Refused
from transport import AppendRequest, CreateRequest, Store

from .. import events as ev
from ..errors import answers_store_errors
from ..gates import Gate, GateClosed, GateExists, GateRegistry
from ..sessions.actor import Busy, Deliver, Finish, Iterate, Release, session_stream
from ..sessions.registry import UpdateRoom
from ..streams import read_events
from .parser import RoomMessage, parse_room_message
from .stuck import StuckDetector, StuckPolicy

__all__ = [
    "AddParticipant",
    "Close",
    "DeliverOnly",
    "GetContext",
    "GetState",
    "IterateParticipant",
    "Notice",
    "PostMessage",
    "RemoveParticipant",
    "ResumeFork",
    "RoomConfig",
    "RoomRouterActor",
    "SetAutoIterate",
    "StopReason",
    "room_stream",
]

logger = logging.getLogger(__name__)

JSON = "application/json"
SYSTEM = "system"
ASK_TIMEOUT = 60.0
FINISH_TIMEOUT = 90.0
TAIL_WAIT = 20.0
RECENT = 10
STOP_REASONS = ("max_rounds", "closed_by_human", "all_idle", "stuck", "budget")
StopReason = str


def room_stream(room_id: str) -> str:
    return f"/v1/stream/room/{room_id}"


@attrs.frozen(kw_only=True)
class RoomConfig:
    """A room's settings (kept in its ``room_created`` record)."""

    max_rounds: int = 20
    max_cost_usd: float = math.inf
    stuck: StuckPolicy = attrs.field(factory=StuckPolicy)
    gate_messages: bool = False  # every agent message waits at an outbound gate
    idle_timeout: float | None = 600.0  # seconds of all-idle before all_idle; None: never
    auto_iterate: bool = True
    # One agent's turn at a time, in the order the router scheduled them: with
    # deterministic agents (a scripted model), every run gives the same transcript.
    turn_taking: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "maxRounds": self.max_rounds,
            "maxCostUsd": None if math.isinf(self.max_cost_usd) else self.max_cost_usd,
            "stuck": self.stuck.to_json(),
            "gateMessages": self.gate_messages,
            "idleTimeoutSeconds": self.idle_timeout,
            "autoIterate": self.auto_iterate,
            "turnTaking": self.turn_taking,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoomConfig:
        cost = data.get("maxCostUsd")
        idle = data.get("idleTimeoutSeconds", 600.0)
        return cls(
            max_rounds=int(data.get("maxRounds", 20)),
            max_cost_usd=math.inf if cost is None else float(cost),
            stuck=StuckPolicy.from_json(data.get("stuck")),
            gate_messages=bool(data.get("gateMessages", False)),
            idle_timeout=None if idle is None else float(idle),
            auto_iterate=bool(data.get("autoIterate", True)),
            turn_taking=bool(data.get("turnTaking", False)),
        )


@attrs.define(eq=False)
class Participant:
    session_id: str
    name: str
    role: str | None
    owned: bool  # made by the room: ended when it closes
    offset: str = "-1"  # how far the router has read the session's stream
    cost: float = 0.0
    texts: list[str] = attrs.field(factory=list)  # the running turn's text blocks
    tail: trio.CancelScope | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.session_id, "displayName": self.name}
        if self.role:
            data["role"] = self.role
        data["owned"] = self.owned
        return data


@attrs.frozen
class _Outgoing:
    session_id: str
    name: str
    message: RoomMessage
    offset: str
    stuck: str | None = None  # why the stuck detector held it


# -- messages ---------------------------------------------------------------------------


@attrs.frozen
class AddParticipant:
    session_id: str
    name: str
    role: str | None = None
    owned: bool = True
    offset: str = "-1"  # where to start reading its stream
    held: bool = False  # its first turn waits for the router (turn-taking rooms)
    initial_prompt: str | None = None  # a turn of its own after the first


@attrs.frozen
class RemoveParticipant:
    session_id: str
    reason: str = "removed"


@attrs.frozen
class PostMessage:
    """A person's message to the room (``to``: one participant, else everyone)."""

    sender: str
    body: str
    to: str | None = None


@attrs.frozen
class Notice:
    """A system notice in the room's stream (told to no agent)."""

    body: str


@attrs.frozen
class DeliverOnly:
    """Tell the recipients without writing to the room's stream (reference /deliver)."""

    sender: str
    body: str
    to: str | None = None


@attrs.frozen
class IterateParticipant:
    session_id: str
    request: str


@attrs.frozen
class SetAutoIterate:
    enabled: bool


@attrs.frozen
class Close:
    reason: StopReason
    closed_by: str = "human"
    summary: str | None = None


@attrs.frozen
class GetState:
    pass


@attrs.frozen
class GetContext:
    """What a new participant is told: the roster (name, role) and the recent
    conversation (sender, body)."""


@attrs.frozen
class ResumeFork:
    """Continue a forked room: the last message of its history is given again to its
    recipients (now that they are in the room)."""


@attrs.frozen
class _Scheduled:
    """A turn a turn-taking room gives when no other turn runs."""

    session_id: str
    kind: str  # "release" | "prompt" | "deliver"
    body: str = ""
    sender: str = ""


@attrs.frozen
class _Output:
    session_id: str
    record: dict[str, Any]
    offset: str


@attrs.frozen
class _GateDone:
    outgoing: _Outgoing
    gate: Gate


@attrs.frozen
class _Tick:
    pass


@attrs.define(eq=False)
class RoomRouterActor(Actor):
    room_id: str
    name: str
    store: Store
    gates: GateRegistry
    registry: ActorRef
    lookup: Callable[[str], ActorRef | None]  # a session's actor by id
    config: RoomConfig = attrs.field(factory=RoomConfig)
    restore: bool = False
    created_by: str = "human"
    clock: Callable[[], float] = trio.current_time
    history: tuple[ev.AgentMessage, ...] = ()  # a fork's conversation so far

    state: str = "active"
    stop_reason: str | None = None
    round_count: int = 0
    auto_iterate: bool = True
    participants: dict[str, Participant] = attrs.field(factory=dict)
    recent: deque[tuple[str, str]] = attrs.field(factory=lambda: deque(maxlen=RECENT))
    _detector: StuckDetector = attrs.field(init=False)
    _outbox: dict[str, deque[_Outgoing]] = attrs.field(factory=dict)  # sender -> held
    _gated: set[str] = attrs.field(factory=set)  # senders with a message at a gate
    _last_activity: float = 0.0
    _schedule: deque[_Scheduled] = attrs.field(factory=deque)  # turn-taking rooms
    _in_flight: str | None = None  # the session whose scheduled turn runs

    mailbox_size = 1024

    def __attrs_post_init__(self) -> None:
        self._detector = StuckDetector(self.config.stuck)
        self.auto_iterate = self.config.auto_iterate

    @property
    def path(self) -> str:
        return room_stream(self.room_id)

    # -- lifecycle ---------------------------------------------------------------------

    async def on_start(self) -> None:
        self._last_activity = self.clock()
        if self.restore:
            await self._replay()
        else:
            await self.store.create(self.path, CreateRequest(content_type=JSON))
            await self._append(
                ev.RoomCreated(
                    name=self.name, createdBy=self.created_by, settings=self.config.to_json()
                )
            )
            for message in self.history:
                await self._append(message)
                self._apply(message)
        if self.state == "active":
            await self._adopt_gates()
            for participant in self.participants.values():
                self._start_tail(participant)
        self.ctx.nursery.start_soon(self._ticker)

    async def _replay(self) -> None:
        """Rebuild the room from its stream: settings, participants (and how far each
        one's stream was routed), rounds, the stuck detector, closed or not."""
        offset = "-1"
        while True:
            page = await self.store.read(self.path, offset)
            if page.chunks:
                for record in json.loads(page.body()):
                    self._apply(ev.event_from_json(record)[0])
            offset = page.next_offset
            if page.up_to_date:
                return

    def _apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.RoomCreated):
            self.name = event.name
            self.config = RoomConfig.from_json(event.settings)
            self._detector = StuckDetector(self.config.stuck)
            self.auto_iterate = self.config.auto_iterate
        elif isinstance(event, ev.ParticipantJoined):
            data = event.participant
            sid, name = str(data.get("id")), str(data.get("displayName"))
            role = data.get("role")
            self.participants[sid] = Participant(
                sid,
                name,
                role if isinstance(role, str) else None,
                bool(data.get("owned", True)),
                offset=str(data.get("offset", "-1")),
            )
        elif isinstance(event, ev.ParticipantLeft):
            self.participants.pop(event.participant_id, None)
        elif isinstance(event, ev.AgentActivity):
            self._read_to(event.metadata)
        elif isinstance(event, ev.AgentMessage):
            meta = event.metadata or {}
            if event.sender != SYSTEM:
                self.recent.append((event.sender, event.body))
            if isinstance(meta.get("round"), int):
                self.round_count = max(self.round_count, meta["round"])
                self._detector.observe(event.sender, event.to, event.body)
                self._read_to(meta)
        elif isinstance(event, ev.RoomSettings):
            self.auto_iterate = event.auto_iterate
        elif isinstance(event, ev.RoomClosed):
            self.state = "closed"
            self.stop_reason = event.reason

    def _read_to(self, metadata: dict[str, Any] | None) -> None:
        """A record says how far a participant's stream was read."""
        meta = metadata or {}
        found = self.participants.get(str(meta.get("sessionId")))
        if found is not None and isinstance(meta.get("offset"), str):
            found.offset = meta["offset"]

    async def _adopt_gates(self) -> None:
        """Wait again on this room's message gates that a restart re-issued."""
        for participant in self.participants.values():
            for gate in self.gates.pending(participant.session_id):
                request = gate.request
                if gate.kind != "outbound_message" or request.get("roomId") != self.room_id:
                    continue
                to = request.get("to")
                outgoing = _Outgoing(
                    participant.session_id,
                    participant.name,
                    RoomMessage(to=to if isinstance(to, str) else None, body=str(request["body"])),
                    str(request.get("offset", participant.offset)),
                    request.get("stuck"),
                )
                participant.offset = outgoing.offset  # what came after it is read again
                self._gated.add(participant.session_id)
                self.ctx.nursery.start_soon(self._await_gate, outgoing, gate)

    # -- messages ----------------------------------------------------------------------

    @answers_store_errors
    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, _Output):
            await self._output(msg)
        elif isinstance(msg, _GateDone):
            await self._gate_done(msg)
        elif isinstance(msg, _Tick):
            await self._tick()
        elif isinstance(msg, GetState):
            return await self._state()
        elif isinstance(msg, GetContext):
            roster = [(p.name, p.role) for p in self.participants.values()]
            return roster, list(self.recent)
        elif isinstance(msg, AddParticipant):
            await self._add(msg)
        elif isinstance(msg, RemoveParticipant):
            await self._remove(msg.session_id, msg.reason)
        elif isinstance(msg, PostMessage):
            self._check_active()
            self._check_sender(msg.sender)
            recipients = self._recipients(msg.sender, msg.to)
            await self._append(ev.AgentMessage(sender=msg.sender, body=msg.body, to=msg.to))
            self.recent.append((msg.sender, msg.body))
            self._touch()
            await self._deliver(recipients, msg.sender, msg.body, iterate=self.auto_iterate)
        elif isinstance(msg, Notice):
            await self._append(ev.AgentMessage(sender=SYSTEM, body=msg.body))
        elif isinstance(msg, DeliverOnly):
            self._check_active()
            self._check_sender(msg.sender)
            recipients = self._recipients(msg.sender, msg.to)
            self._touch()
            await self._deliver(recipients, msg.sender, msg.body, iterate=True, show=False)
        elif isinstance(msg, IterateParticipant):
            self._check_active()
            ref = self._ref(msg.session_id)
            if ref is None:
                raise Refused("the session is not running")
            self._touch()
            if self.config.turn_taking:
                self._schedule.append(_Scheduled(msg.session_id, "prompt", msg.request))
                await self._pump()
            else:
                await ref.ask(Iterate(msg.request), timeout=ASK_TIMEOUT)
        elif isinstance(msg, ResumeFork):
            self._check_active()
            last = self.history[-1] if self.history else None
            if last is not None:
                recipients = self._recipients(last.sender, last.to)
                await self._deliver(recipients, last.sender, last.body, iterate=True)
        elif isinstance(msg, SetAutoIterate):
            if msg.enabled != self.auto_iterate:
                await self._append(ev.RoomSettings(autoIterate=msg.enabled))
                self.auto_iterate = msg.enabled
            return self.auto_iterate
        elif isinstance(msg, Close):
            return await self._close(msg.reason, msg.closed_by, msg.summary)
        else:
            raise Refused(f"a room does not understand {type(msg).__name__}")
        return None

    def _check_active(self) -> None:
        if self.state != "active":
            raise Refused("The room is closed")

    def _check_sender(self, sender: str) -> None:
        """A person may not speak as an agent of the room (reference §17.5)."""
        if sender in ("room", SYSTEM) or self._by_name(sender) is not None:
            raise Refused(f"from may not be {sender!r}: that name belongs to the room")

    def _touch(self) -> None:
        self._last_activity = self.clock()

    def _ref(self, session_id: str) -> ActorRef | None:
        return self.lookup(session_id)

    def _by_name(self, name: str) -> Participant | None:
        for participant in self.participants.values():
            if participant.name == name:
                return participant
        return None

    def _recipients(self, sender: str, to: str | None) -> list[Participant]:
        if to is not None:
            found = self._by_name(to)
            if found is None:
                raise Refused(f"No participant named {to!r} in this room")
            return [found]
        return [p for p in self.participants.values() if p.name != sender]

    # -- participants ------------------------------------------------------------------

    async def _add(self, msg: AddParticipant) -> None:
        self._check_active()
        if msg.session_id in self.participants:
            raise Refused("The session is already in this room")
        if self._by_name(msg.name) is not None or msg.name in ("room", SYSTEM):
            raise Refused(f"The name {msg.name!r} is taken in this room")
        participant = Participant(msg.session_id, msg.name, msg.role, msg.owned, msg.offset)
        await self._append(
            ev.ParticipantJoined(participant={**participant.to_json(), "offset": msg.offset})
        )
        self.participants[msg.session_id] = participant
        await self._save_roster()
        notice = f"{msg.name} ({msg.role or 'participant'}) has joined the room."
        others = [p for p in self.participants.values() if p.session_id != msg.session_id]
        await self._deliver(others, SYSTEM, notice, iterate=False)
        self._start_tail(participant)
        self._touch()
        if msg.held:
            self._schedule.append(_Scheduled(msg.session_id, "release"))
        if msg.initial_prompt:
            self._schedule.append(_Scheduled(msg.session_id, "prompt", msg.initial_prompt))
        await self._pump()

    async def _remove(self, session_id: str, reason: str) -> None:
        participant = self.participants.pop(session_id, None)
        if participant is None:
            raise Refused("Session not found in this room")
        if participant.tail is not None:
            participant.tail.cancel()
        await self._append(ev.ParticipantLeft(participantId=session_id, reason=reason))
        self._outbox.pop(session_id, None)
        await self._save_roster()

    async def _save_roster(self) -> None:
        roster = [
            {"sessionId": p.session_id, "name": p.name, "role": p.role}
            for p in self.participants.values()
        ]
        await self.registry.ask(UpdateRoom(self.room_id, {"sessions": roster}))

    def _start_tail(self, participant: Participant) -> None:
        scope = participant.tail = trio.CancelScope()
        self.ctx.nursery.start_soon(self._tail, participant.session_id, participant.offset, scope)

    async def _tail(self, session_id: str, offset: str, scope: trio.CancelScope) -> None:
        """Read the participant's session stream and hand the router what matters,
        each record with its own position (what a restart resumes from)."""
        path = session_stream(session_id)
        with scope:
            async with aclosing(read_events(self.store, path, offset, wait=TAIL_WAIT)) as items:
                async for item in items:
                    if item.raw.get("type") in _WATCHED:
                        await self.ctx.ref.send(_Output(session_id, item.raw, item.offset))

    # -- what the agents say -----------------------------------------------------------

    async def _output(self, msg: _Output) -> None:
        participant = self.participants.get(msg.session_id)
        if participant is None or self.state != "active":
            return
        self._touch()
        record = msg.record
        kind = record.get("type")
        if kind == "assistant_message" and record.get("source") == "agent":
            participant.texts.append(str(record.get("text", "")))
        elif kind == "ask_user_question":
            await self._append(
                ev.AgentActivity(
                    sender=participant.name,
                    eventType="ask_user_question",
                    text=str(record.get("question", "")),
                    gateData={
                        "sessionId": participant.session_id,
                        "toolUseId": record.get("tool_use_id"),
                        "questions": record.get("questions") or [],
                    },
                )
            )
        elif kind == "cost_update":
            total = record.get("total_usd")
            if isinstance(total, int | float):
                participant.cost = float(total)
            if self._total_cost() > self.config.max_cost_usd:
                spent = round(self._total_cost(), 6)
                await self._close(
                    "budget",
                    SYSTEM,
                    f"The room spent ${spent} of its ${self.config.max_cost_usd} budget",
                )
        elif kind == "session_end" or _failed(record):
            texts, participant.texts = participant.texts, []
            await self._turn_ended(participant, texts, msg.offset)
            if self._in_flight == participant.session_id:
                self._in_flight = None
            await self._pump()

    async def _turn_ended(self, participant: Participant, texts: list[str], offset: str) -> None:
        """One message per turn: the last directive of the turn's text blocks. The
        other blocks are activity for observers. The last record the turn makes says
        how far the participant's stream was read (what a restart resumes from),
        unless a message of the sender is held: then the held one says it."""
        others = [p.name for p in self.participants.values() if p is not participant]
        found: RoomMessage | None = None
        chatter = []
        for text in texts:
            parsed = parse_room_message(text, others)
            if parsed is None:
                chatter.append(text)
            else:
                found = parsed
        held = participant.session_id in self._gated
        for index, text in enumerate(chatter):
            mark = found is None and not held and index == len(chatter) - 1
            await self._append(
                ev.AgentActivity(
                    sender=participant.name,
                    eventType="assistant_message",
                    text=text,
                    metadata={"sessionId": participant.session_id, "offset": offset}
                    if mark
                    else None,
                )
            )
        if found is None:
            return
        outgoing = _Outgoing(participant.session_id, participant.name, found, offset)
        if held:
            self._outbox.setdefault(participant.session_id, deque()).append(outgoing)
            return
        await self._route(outgoing)

    async def _route(self, outgoing: _Outgoing) -> None:
        if self.state != "active":
            return
        message = outgoing.message
        if outgoing.stuck is None:
            stuck = self._detector.observe(outgoing.name, message.to, message.body)
            if stuck is not None:
                if self.config.stuck.action == "close":
                    await self._close("stuck", SYSTEM, stuck)
                    return
                await self._open_gate(attrs.evolve(outgoing, stuck=stuck))
                return
        if message.is_gate_request or (self.config.gate_messages and outgoing.stuck is None):
            await self._open_gate(outgoing)
            return
        await self._send(outgoing.session_id, outgoing.name, message, outgoing.offset)

    async def _open_gate(self, outgoing: _Outgoing) -> None:
        message = outgoing.message
        gate_id = f"room-msg-{uuid.uuid4()}"
        request: dict[str, Any] = {
            "roomId": self.room_id,
            "body": message.body,
            "from": outgoing.name,
            "offset": outgoing.offset,
        }
        if message.to is not None:
            request["to"] = message.to
        if outgoing.stuck is not None:
            request["stuck"] = outgoing.stuck
        try:
            gate = await self.gates.open(
                outgoing.session_id,
                "outbound_message",
                gate_id,
                request=request,
                announce=ev.OutboundMessageGate(
                    gateId=gate_id, roomId=self.room_id, body=message.body, to=message.to
                ),
            )
        except GateExists:  # pragma: no cover - ids are unique
            return
        self._gated.add(outgoing.session_id)
        self.ctx.nursery.start_soon(self._await_gate, outgoing, gate)

    async def _await_gate(self, outgoing: _Outgoing, gate: Gate) -> None:
        await gate.wait()
        try:
            await self.ctx.ref.send(_GateDone(outgoing, gate))
        except ActorStopped:
            pass

    async def _gate_done(self, msg: _GateDone) -> None:
        outgoing = msg.outgoing
        self._gated.discard(outgoing.session_id)
        outcome = msg.gate.outcome
        if self.state == "active" and outcome is not None and outcome.status == "resolved":
            value = outcome.value if isinstance(outcome.value, dict) else {}
            action = value.get("action")
            message = outgoing.message
            if action == "edit" and str(value.get("editedBody", "")).strip():
                message = RoomMessage(to=message.to, body=str(value["editedBody"]).strip())
            if action in ("approve", "edit"):
                if outgoing.stuck is not None:
                    self._detector.reset()  # a person said go on
                self._touch()
                await self._send(outgoing.session_id, outgoing.name, message, outgoing.offset)
            else:
                await self._append(
                    ev.AgentActivity(
                        sender=outgoing.name,
                        eventType="message_dropped",
                        text=message.body,
                        metadata={"sessionId": outgoing.session_id, "offset": outgoing.offset},
                    )
                )
        # the sender's messages held behind the gate go on, in order
        held = self._outbox.get(outgoing.session_id)
        while held and outgoing.session_id not in self._gated and self.state == "active":
            await self._route(held.popleft())
        if not held:
            self._outbox.pop(outgoing.session_id, None)

    async def _send(self, session_id: str, name: str, message: RoomMessage, offset: str) -> None:
        """Append the message to the room (a round), then tell its recipients."""
        if self.state != "active":
            return
        try:
            recipients = self._recipients(name, message.to)
        except Refused:  # its recipient left meanwhile
            recipients = []
        self.round_count += 1
        await self._append(
            ev.AgentMessage(
                sender=name,
                body=message.body,
                to=message.to,
                metadata={"round": self.round_count, "sessionId": session_id, "offset": offset},
            )
        )
        self.recent.append((name, message.body))
        last = self.round_count >= self.config.max_rounds
        iterate = self.auto_iterate and not last
        if iterate and message.is_review_request:
            for recipient in recipients:
                verb = {"reviewer": "starting review", "ui-designer": "starting UI audit"}.get(
                    recipient.role or "", "picking up task"
                )
                await self._append(
                    ev.AgentMessage(sender=SYSTEM, body=f"{recipient.name} is {verb}")
                )
        await self._deliver(recipients, name, message.body, iterate=iterate)
        if last:
            await self._close(
                "max_rounds",
                SYSTEM,
                f"The room reached its limit of {self.config.max_rounds} rounds",
            )

    async def _deliver(
        self,
        recipients: list[Participant],
        sender: str,
        body: str,
        *,
        iterate: bool,
        show: bool = True,
    ) -> None:
        for recipient in recipients:
            if iterate and self.config.turn_taking:
                kind = "deliver" if show else "prompt"
                body_ = body if show else f"Message from {sender}:\n\n{body}"
                self._schedule.append(_Scheduled(recipient.session_id, kind, body_, sender))
                continue
            ref = self._ref(recipient.session_id)
            if ref is None:
                continue
            try:
                if show:
                    await ref.ask(Deliver(sender, body, iterate=iterate), timeout=ASK_TIMEOUT)
                else:
                    await ref.ask(Iterate(f"Message from {sender}:\n\n{body}"), timeout=ASK_TIMEOUT)
            except (Refused, ActorStopped, TimeoutError) as exc:
                logger.info("room %s: %s was not told: %s", self.room_id, recipient.name, exc)

    async def _pump(self) -> None:
        """Turn-taking: give the next scheduled turn when none runs."""
        while self.state == "active" and self._in_flight is None and self._schedule:
            turn = self._schedule.popleft()
            ref = self._ref(turn.session_id)
            if ref is None or turn.session_id not in self.participants:
                continue
            msg: object
            if turn.kind == "release":
                msg = Release()
            elif turn.kind == "deliver":
                msg = Deliver(turn.sender, turn.body, iterate=True)
            else:
                msg = Iterate(turn.body)
            try:
                await ref.ask(msg, timeout=ASK_TIMEOUT)
            except (Refused, ActorStopped, TimeoutError) as exc:
                logger.info("room %s: a turn was not given: %s", self.room_id, exc)
                continue
            self._in_flight = turn.session_id

    # -- closing -----------------------------------------------------------------------

    def _total_cost(self) -> float:
        return sum(p.cost for p in self.participants.values())

    async def _tick(self) -> None:
        timeout = self.config.idle_timeout
        if self.state != "active" or timeout is None or not self.participants:
            return
        if self._in_flight is not None and self._ref(self._in_flight) is None:
            self._in_flight = None  # its session is gone
            await self._pump()
        if self._gated or self._outbox or self.clock() - self._last_activity < timeout:
            return
        if self.config.turn_taking and (self._in_flight is not None or self._schedule):
            return
        for participant in self.participants.values():
            ref = self._ref(participant.session_id)
            if ref is None:
                continue
            try:
                if await ref.ask(Busy(), timeout=ASK_TIMEOUT):
                    return
            except (ActorStopped, TimeoutError):
                continue
        await self._close("all_idle", SYSTEM, f"No agent was busy for {timeout:g}s")

    async def _ticker(self) -> None:
        period = 1.0
        if self.config.idle_timeout is not None:
            period = min(1.0, max(0.05, self.config.idle_timeout / 4))
        while self.state == "active":
            await trio.sleep(period)
            try:
                self.ctx.ref.try_send(_Tick())
            except Exception:  # a full mailbox: the next tick will do
                continue

    async def _close(self, reason: StopReason, closed_by: str, summary: str | None) -> bool:
        """Close once: record why, stop reading, cancel the room's message gates and
        end the agents the room made (their sandboxes go with them)."""
        if self.state != "active":
            return False
        self.state = "closed"
        self.stop_reason = reason
        await self._append(ev.RoomClosed(reason=reason, closedBy=closed_by, summary=summary))
        await self.registry.ask(UpdateRoom(self.room_id, {"state": "closed", "stopReason": reason}))
        for participant in self.participants.values():
            if participant.tail is not None:
                participant.tail.cancel()
            for gate in self.gates.pending(participant.session_id):
                if gate.kind == "outbound_message" and gate.request.get("roomId") == self.room_id:
                    try:
                        await gate.cancel("The room closed")
                    except GateClosed:
                        pass
        self._outbox.clear()
        self._schedule.clear()
        owned = [p for p in self.participants.values() if p.owned]
        why = f"The room closed ({reason})" + (f": {summary}" if summary else "")
        async with trio.open_nursery() as nursery:
            for participant in owned:
                nursery.start_soon(self._finish, participant, why)
        return True

    async def _finish(self, participant: Participant, why: str) -> None:
        ref = self._ref(participant.session_id)
        if ref is None:
            return
        try:
            await ref.ask(Finish(why), timeout=FINISH_TIMEOUT)
        except (ActorStopped, TimeoutError, Refused) as exc:
            logger.warning("room %s: ending %s: %s", self.room_id, participant.name, exc)

    # -- state -------------------------------------------------------------------------

    async def _state(self) -> dict[str, Any]:
        participants = []
        for p in self.participants.values():
            ref = self._ref(p.session_id)
            running = False
            if ref is not None:
                try:
                    running = bool(await ref.ask(Busy(), timeout=ASK_TIMEOUT))
                except (ActorStopped, TimeoutError):
                    running = False
            participants.append(
                {
                    "sessionId": p.session_id,
                    "name": p.name,
                    "role": p.role,
                    "running": running,
                    "live": ref is not None,
                    "needsInput": bool(self.gates.pending(p.session_id)),
                    "costUsd": round(p.cost, 6),
                }
            )
        return {
            "roomId": self.room_id,
            "name": self.name,
            "state": self.state,
            "stopReason": self.stop_reason,
            "roundCount": self.round_count,
            "maxRounds": self.config.max_rounds,
            "autoIterate": self.auto_iterate,
            "totalCostUsd": round(self._total_cost(), 6),
            "settings": self.config.to_json(),
            "participants": participants,
        }

    async def _append(self, event: ev.Event) -> None:
        body = json.dumps([event.to_json("server")], separators=(",", ":")).encode()
        await self.store.append(self.path, AppendRequest(body=body, content_type=JSON))


_WATCHED = frozenset(
    {"assistant_message", "session_end", "cost_update", "ask_user_question", "log"}
)


def _failed(record: dict[str, Any]) -> bool:
    """A session's run ended without a ``session_end`` (it failed)."""
    return record.get("type") == "log" and record.get("level") == "error"

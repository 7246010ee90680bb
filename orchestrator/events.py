"""The events of a session's stream, in one place (reference protocol 1.9.0, §5.2).

Every event is a frozen attrs class with a ``type`` and a ``ts`` (ISO-8601 UTC with
milliseconds, like JavaScript's ``toISOString()``). On the stream each event is one
JSON object: the event's fields (``None`` fields left out) plus ``source``: ``server``
(written by the orchestrator) or ``agent`` (what the agent did).

``to_json`` / :func:`event_from_json` convert both ways; unknown types read back as
:class:`Unknown` so that a newer stream never breaks an older reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import attrs

__all__ = [
    "AgentActivity",
    "AgentMessage",
    "AppStatus",
    "AskUserQuestion",
    "AssistantMessage",
    "BudgetExceeded",
    "CostUpdate",
    "Event",
    "GateEnded",
    "GateOpened",
    "GateResolved",
    "InfraConfigPrompt",
    "Log",
    "OutboundMessageGate",
    "OutboundMessageGateResolved",
    "ParticipantJoined",
    "ParticipantLeft",
    "PostToolUse",
    "PreToolUse",
    "RoomClosed",
    "RoomCreated",
    "RoomSettings",
    "SessionEnd",
    "SessionStart",
    "Source",
    "TodoWrite",
    "ToolPermissionRequest",
    "Unknown",
    "UserPrompt",
    "event_from_json",
    "now_ts",
]

Source = Literal["server", "agent"]
LogLevel = Literal["plan", "approve", "task", "build", "fix", "done", "system", "error", "verbose"]


def now_ts() -> str:
    """Now, as JavaScript's ``toISOString()`` writes it: ``2026-03-24T16:00:39.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_TYPES: dict[str, type[Event]] = {}


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event. Subclasses set ``type``."""

    type: ClassVar[str] = ""
    ts: str = attrs.field(factory=now_ts)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type:
            _TYPES[cls.type] = cls

    def to_json(self, source: Source) -> dict[str, Any]:
        """The stream form: fields without the ``None`` ones, plus type and source."""
        data: dict[str, Any] = {"type": self.type, "source": source}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if value is not None:
                data[_wire_key(field)] = value
        return data


def _wire_key(field: attrs.Attribute[Any]) -> str:
    """A field's JSON key: ``metadata["key"]`` (for names Python reserves, ``from``),
    else its alias, else its name."""
    key = field.metadata.get("key")
    return str(key) if key else (field.alias or field.name)


@attrs.frozen(kw_only=True)
class Log(Event):
    type: ClassVar[str] = "log"
    level: LogLevel
    message: str


@attrs.frozen(kw_only=True)
class UserPrompt(Event):
    type: ClassVar[str] = "user_prompt"
    message: str
    sender: str | None = None


@attrs.frozen(kw_only=True)
class PreToolUse(Event):
    type: ClassVar[str] = "pre_tool_use"
    tool_name: str
    tool_use_id: str
    tool_input: dict[str, Any]
    agent: str | None = None


@attrs.frozen(kw_only=True)
class PostToolUse(Event):
    type: ClassVar[str] = "post_tool_use"
    tool_use_id: str
    tool_response: str
    tool_name: str | None = None
    error: str | None = None
    agent: str | None = None


@attrs.frozen(kw_only=True)
class AssistantMessage(Event):
    type: ClassVar[str] = "assistant_message"
    text: str
    agent: str | None = None


@attrs.frozen(kw_only=True)
class SessionStart(Event):
    type: ClassVar[str] = "session_start"
    session_id: str
    cwd: str | None = None
    agent: str | None = None


@attrs.frozen(kw_only=True)
class SessionEnd(Event):
    type: ClassVar[str] = "session_end"
    success: bool
    cost_usd: float | None = None
    num_turns: int | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None


@attrs.frozen(kw_only=True)
class AppStatus(Event):
    type: ClassVar[str] = "app_status"
    status: Literal["running", "stopped"]
    port: int | None = None
    preview_url: str | None = attrs.field(default=None, alias="previewUrl")


@attrs.frozen(kw_only=True)
class TodoWrite(Event):
    type: ClassVar[str] = "todo_write"
    tool_use_id: str
    todos: list[dict[str, Any]]


@attrs.frozen(kw_only=True)
class AskUserQuestion(Event):
    type: ClassVar[str] = "ask_user_question"
    tool_use_id: str
    question: str
    options: list[dict[str, Any]] | None = None
    questions: list[dict[str, Any]] | None = None


@attrs.frozen(kw_only=True)
class BudgetExceeded(Event):
    type: ClassVar[str] = "budget_exceeded"
    budget_usd: float
    spent_usd: float


@attrs.frozen(kw_only=True)
class CostUpdate(Event):
    """Beyond the reference: the session's cost as metered live from usage."""

    type: ClassVar[str] = "cost_update"
    cost_usd: float  # this increment
    total_usd: float  # the session so far


@attrs.frozen(kw_only=True)
class InfraConfigPrompt(Event):
    type: ClassVar[str] = "infra_config_prompt"
    project_name: str = attrs.field(alias="projectName")
    gh_accounts: list[dict[str, Any]] = attrs.field(factory=list, alias="ghAccounts")
    runtime: str = "docker"


@attrs.frozen(kw_only=True)
class GateResolved(Event):
    type: ClassVar[str] = "gate_resolved"
    gate: str
    summary: str | None = None
    details: dict[str, str] | None = None
    resolved_by: dict[str, str] | None = attrs.field(default=None, alias="resolvedBy")


@attrs.frozen(kw_only=True)
class OutboundMessageGate(Event):
    """A room message waiting for a person's approval (reference §5.2)."""

    type: ClassVar[str] = "outbound_message_gate"
    gate_id: str = attrs.field(alias="gateId")
    room_id: str = attrs.field(alias="roomId")
    body: str
    to: str | None = None


@attrs.frozen(kw_only=True)
class OutboundMessageGateResolved(Event):
    type: ClassVar[str] = "outbound_message_gate_resolved"
    gate_id: str = attrs.field(alias="gateId")
    action: Literal["approve", "edit", "drop"]
    edited_body: str | None = attrs.field(default=None, alias="editedBody")
    resolved_by: dict[str, str] | None = attrs.field(default=None, alias="resolvedBy")


@attrs.frozen(kw_only=True)
class ToolPermissionRequest(Event):
    """Beyond the reference: a tool call waits for a person's approval."""

    type: ClassVar[str] = "tool_permission_request"
    gate_id: str = attrs.field(alias="gateId")
    tool_name: str
    tool_input: dict[str, Any]
    tool_use_id: str | None = None
    agent: str | None = None
    expires_at: str | None = attrs.field(default=None, alias="expiresAt")


@attrs.frozen(kw_only=True)
class GateOpened(Event):
    """Beyond the reference: the durable record that a gate is pending (what a restart
    restores). Written in the same append as the gate's reference-shaped announcement
    (``infra_config_prompt``, ``ask_user_question``, ``outbound_message_gate``,
    ``tool_permission_request``). ``expiresAt`` is wall-clock ISO-8601."""

    type: ClassVar[str] = "gate_opened"
    gate_id: str = attrs.field(alias="gateId")
    gate: str  # the kind: infra_config, ask_user_question, tool_permission, outbound_message
    request: dict[str, Any] = attrs.field(factory=dict)
    expires_at: str | None = attrs.field(default=None, alias="expiresAt")


@attrs.frozen(kw_only=True)
class GateEnded(Event):
    """Beyond the reference: a gate ended, once: ``resolved`` (after its
    ``gate_resolved``), ``expired`` or ``cancelled``. ``decision`` is the tool
    permission's ``allow`` / ``deny`` (``deny`` whenever it did not resolve)."""

    type: ClassVar[str] = "gate_ended"
    gate_id: str = attrs.field(alias="gateId")
    gate: str
    outcome: Literal["resolved", "expired", "cancelled"]
    decision: Literal["allow", "deny"] | None = None
    reason: str | None = None
    resolved_by: dict[str, str] | None = attrs.field(default=None, alias="resolvedBy")


# -- the room stream (reference §5.3), each record with ``source: "server"`` ----------


@attrs.frozen(kw_only=True)
class RoomCreated(Event):
    """The first record of a room's stream (the reference defined it and never wrote
    it): its name and settings, so that the room can be rebuilt from its stream."""

    type: ClassVar[str] = "room_created"
    name: str
    created_by: str = attrs.field(default="human", alias="createdBy")
    settings: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class AgentMessage(Event):
    """A message in the room. ``metadata`` of an agent's routed message carries its
    ``round``, its ``sessionId`` and the ``offset`` of the sender's stream it came from."""

    type: ClassVar[str] = "agent_message"
    sender: str = attrs.field(metadata={"key": "from"})
    body: str
    to: str | None = None
    metadata: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ParticipantJoined(Event):
    """``participant``: ``{id, displayName, role?, owned}`` (``owned``: the room made
    the agent, and ends it when it closes)."""

    type: ClassVar[str] = "participant_joined"
    participant: dict[str, Any]


@attrs.frozen(kw_only=True)
class ParticipantLeft(Event):
    type: ClassVar[str] = "participant_left"
    participant_id: str = attrs.field(alias="participantId")
    reason: str | None = None


@attrs.frozen(kw_only=True)
class AgentActivity(Event):
    """What an agent does, for people watching the room (never delivered to agents)."""

    type: ClassVar[str] = "agent_activity"
    sender: str = attrs.field(metadata={"key": "from"})
    event_type: str = attrs.field(alias="eventType")
    text: str
    gate_data: dict[str, Any] | None = attrs.field(default=None, alias="gateData")
    metadata: dict[str, Any] | None = None  # {sessionId, offset}: how far it was read


@attrs.frozen(kw_only=True)
class RoomSettings(Event):
    """Beyond the reference: a change of the room's settings (``autoIterate``)."""

    type: ClassVar[str] = "room_settings"
    auto_iterate: bool = attrs.field(alias="autoIterate")


@attrs.frozen(kw_only=True)
class RoomClosed(Event):
    """The room stopped. Beyond the reference, always with a ``reason``:
    ``max_rounds``, ``closed_by_human``, ``all_idle``, ``stuck`` or ``budget``."""

    type: ClassVar[str] = "room_closed"
    reason: str
    closed_by: str = attrs.field(alias="closedBy")
    summary: str | None = None


@attrs.frozen(kw_only=True)
class Unknown(Event):
    """An event of a type this version does not know; its fields are kept as read."""

    raw: dict[str, Any]

    def to_json(self, source: Source) -> dict[str, Any]:
        return {**self.raw, "source": self.raw.get("source", source)}


def event_from_json(data: dict[str, Any]) -> tuple[Event, Source | None]:
    """An event and its source from its stream form. Fields the class does not know
    are ignored; an unknown type, or fields that do not fit, give :class:`Unknown`."""
    cls = _TYPES.get(str(data.get("type", "")))
    source = data.get("source")
    checked: Source | None = source if source in ("server", "agent") else None
    if cls is None:
        return Unknown(raw=dict(data), ts=str(data.get("ts", now_ts()))), checked
    kwargs = {}
    for field in attrs.fields(cls):
        key = _wire_key(field)
        if key in data:
            kwargs[field.alias or field.name] = data[key]
    try:
        return cls(**kwargs), checked
    except TypeError:
        return Unknown(raw=dict(data), ts=str(data.get("ts", now_ts()))), checked

"""What the scripted model answers: turns of text and tool calls, per agent.

The script is provider-neutral: the Anthropic Messages and the OpenAI Responses dialects
render the same :class:`Turn` in their own wire format.

JSON form (``Script.from_json`` / ``Script.load``)::

    {
      "agents": {
        "agent-a": {"turns": [
          {"content": [{"type": "tool_use", "name": "Bash",
                        "input": {"command": "echo hello > f.txt"}}],
           "usage": {"input_tokens": 120, "output_tokens": 30}},
          "Wrote f.txt."
        ]}
      },
      "default": {"turns": ["Hello."]},
      "final_text": "Done.",
      "side_text": "OK."
    }

A turn is either a string (one text block) or an object with ``content`` (a list of
``{"type": "text", "text"}`` and ``{"type": "tool_use", "name", "input", "id"?}``),
and optionally ``usage``, ``stop_reason``, ``delay`` (seconds) and ``error``
(``{"status", "type", "message"}``: the request is answered with that HTTP error).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Self, TypeAlias

import attrs

__all__ = [
    "AgentScript",
    "ApiError",
    "Block",
    "Script",
    "ScriptError",
    "StopReason",
    "Text",
    "ToolCall",
    "Turn",
    "Usage",
]

StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal"]
_STOP_REASONS: frozenset[str] = frozenset(StopReason.__args__)  # type: ignore[attr-defined]


class ScriptError(ValueError):
    """A script (JSON or Python objects) is malformed; the message names the place."""


def _non_negative(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts the model reports; the CLI prices them (its ``total_cost_usd``)."""

    input_tokens: int = attrs.field(default=100, validator=_non_negative)
    output_tokens: int = attrs.field(default=20, validator=_non_negative)
    cache_creation_input_tokens: int = attrs.field(default=0, validator=_non_negative)
    cache_read_input_tokens: int = attrs.field(default=0, validator=_non_negative)

    def to_wire(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class Text:
    """A text block."""

    text: str = attrs.field(validator=attrs.validators.instance_of(str))


@attrs.frozen
class ToolCall:
    """A tool call: ``name`` and its ``input`` object. Without an ``id`` the server makes
    a deterministic one (unique per response)."""

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    input: Mapping[str, Any] = attrs.field(factory=dict)
    id: str | None = None


Block: TypeAlias = Text | ToolCall


def _blocks(blocks: Iterable[Block]) -> tuple[Block, ...]:
    return tuple(blocks)


@attrs.frozen(kw_only=True)
class ApiError:
    """Answer the request with an HTTP error instead of a message. Note that the CLI
    retries 429, 5xx and 529 (overloaded) with backoff, and each retry takes a turn;
    a 400 ``invalid_request_error`` is not retried. (Codex 0.169.0 likewise retries a
    500, and even a 404 five times, but not a 400.)"""

    status: int = attrs.field(validator=[attrs.validators.ge(400), attrs.validators.le(599)])
    type: str = "api_error"
    message: str = "scripted error"


@attrs.frozen(kw_only=True)
class Turn:
    """One model response.

    ``stop_reason`` defaults to ``"tool_use"`` when a block is a :class:`ToolCall`, else
    ``"end_turn"``. ``delay`` seconds pass after the response has started (the headers
    and ``message_start`` are out) and before the content: the model "thinks".
    """

    blocks: tuple[Block, ...] = attrs.field(converter=_blocks)
    usage: Usage = attrs.field(factory=Usage)
    stop_reason: StopReason | None = attrs.field(default=None)
    delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    error: ApiError | None = None

    @stop_reason.validator
    def _check_stop_reason(self, _attr: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and value not in _STOP_REASONS:
            raise ValueError(f"stop_reason must be one of {sorted(_STOP_REASONS)}, got {value!r}")

    @classmethod
    def text(cls, text: str, **kwargs: Any) -> Self:
        """A turn of one text block."""
        return cls(blocks=(Text(text),), **kwargs)

    @classmethod
    def tool(cls, name: str, input: Mapping[str, Any], **kwargs: Any) -> Self:
        """A turn of one tool call."""
        return cls(blocks=(ToolCall(name, dict(input)),), **kwargs)

    @classmethod
    def failure(cls, status: int, type: str, message: str = "scripted error") -> Self:
        """A turn answered with an HTTP error."""
        return cls(blocks=(), error=ApiError(status=status, type=type, message=message))

    @property
    def effective_stop_reason(self) -> StopReason:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolCall) for b in self.blocks) else "end_turn"

    # -- JSON ---------------------------------------------------------------------------

    @classmethod
    def from_json(cls, obj: object, where: str = "turn") -> Self:
        if isinstance(obj, str):
            return cls.text(obj)
        data = _object(obj, where)
        _only(data, {"content", "usage", "stop_reason", "delay", "error"}, where)
        content = data.get("content", [])
        if not isinstance(content, list):
            raise ScriptError(f"{where}.content: expected a list, got {type(content).__name__}")
        blocks = tuple(_block(b, f"{where}.content[{i}]") for i, b in enumerate(content))
        try:
            usage = Usage(**_object(data.get("usage", {}), f"{where}.usage"))
            error = None
            if "error" in data:
                error = ApiError(**_object(data["error"], f"{where}.error"))
            return cls(
                blocks=blocks,
                usage=usage,
                stop_reason=data.get("stop_reason"),
                delay=float(data.get("delay", 0.0)),
                error=error,
            )
        except (TypeError, ValueError) as e:
            raise ScriptError(f"{where}: {e}") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "content": [_block_json(b) for b in self.blocks],
            "usage": self.usage.to_wire(),
        }
        if self.stop_reason is not None:
            out["stop_reason"] = self.stop_reason
        if self.delay:
            out["delay"] = self.delay
        if self.error is not None:
            out["error"] = attrs.asdict(self.error)
        return out


def _object(obj: object, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ScriptError(f"{where}: expected an object, got {type(obj).__name__}")
    return obj


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScriptError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _block(obj: object, where: str) -> Block:
    data = _object(obj, where)
    kind = data.get("type")
    if kind == "text":
        _only(data, {"type", "text"}, where)
        if not isinstance(data.get("text"), str):
            raise ScriptError(f"{where}.text: expected a string")
        return Text(data["text"])
    if kind == "tool_use":
        _only(data, {"type", "name", "input", "id"}, where)
        name, input_, id_ = data.get("name"), data.get("input", {}), data.get("id")
        if not isinstance(name, str) or not name:
            raise ScriptError(f"{where}.name: expected a non-empty string")
        if id_ is not None and not isinstance(id_, str):
            raise ScriptError(f"{where}.id: expected a string")
        return ToolCall(name, _object(input_, f"{where}.input"), id_)
    raise ScriptError(f"{where}.type: expected 'text' or 'tool_use', got {kind!r}")


def _block_json(block: Block) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    out = {"type": "tool_use", "name": block.name, "input": dict(block.input)}
    if block.id is not None:
        out["id"] = block.id
    return out


def _turns(turns: Iterable[Turn]) -> tuple[Turn, ...]:
    return tuple(turns)


@attrs.frozen(kw_only=True)
class AgentScript:
    """The turns of one agent, played in order, one per main-conversation request.
    ``final`` answers every request after the last turn (default: the script's).

    ``subagents`` is what each subagent of this agent plays (Claude Code's ``Agent``
    tool; its requests carry ``x-claude-code-agent-id``), every subagent from the start
    with its own cursor: subagents run beside the main conversation, so one cursor for
    both would make the order of turns a race. Default: no turns, the final text.
    """

    turns: tuple[Turn, ...] = attrs.field(default=(), converter=_turns)
    final: Turn | None = None
    subagents: AgentScript | None = None

    @classmethod
    def of(
        cls,
        *turns: Turn | str,
        final: Turn | str | None = None,
        subagents: AgentScript | None = None,
    ) -> Self:
        """Turns given as :class:`Turn` or as text."""
        return cls(
            turns=tuple(_turn(t) for t in turns),
            final=None if final is None else _turn(final),
            subagents=subagents,
        )

    @classmethod
    def from_json(cls, obj: object, where: str = "agent") -> Self:
        if isinstance(obj, list):
            obj = {"turns": obj}
        data = _object(obj, where)
        _only(data, {"turns", "final", "subagents"}, where)
        turns = data.get("turns", [])
        if not isinstance(turns, list):
            raise ScriptError(f"{where}.turns: expected a list")
        final = Turn.from_json(data["final"], f"{where}.final") if "final" in data else None
        subagents = None
        if "subagents" in data:
            subagents = AgentScript.from_json(data["subagents"], f"{where}.subagents")
        return cls(
            turns=tuple(Turn.from_json(t, f"{where}.turns[{i}]") for i, t in enumerate(turns)),
            final=final,
            subagents=subagents,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"turns": [t.to_json() for t in self.turns]}
        if self.final is not None:
            out["final"] = self.final.to_json()
        if self.subagents is not None:
            out["subagents"] = self.subagents.to_json()
        return out

    def of_subagents(self) -> AgentScript:
        """What this agent's subagents play."""
        return self.subagents if self.subagents is not None else AgentScript()


def _turn(value: Turn | str) -> Turn:
    return Turn.text(value) if isinstance(value, str) else value


@attrs.frozen(kw_only=True)
class Script:
    """Every agent's turns.

    An agent is named by the credential it presents (``x-api-key``, or the bearer token
    of ``Authorization``): give each agent process its own key, e.g.
    ``ANTHROPIC_API_KEY=agent-a``. A credential not in ``agents`` (or none) plays
    ``default``, with a cursor of its own per credential.

    ``final_text`` answers main-conversation requests once an agent's turns are used up
    (unless its :attr:`AgentScript.final` says otherwise); ``side_text`` answers side
    requests (titles, summaries and other helper calls that take no turn).
    """

    agents: Mapping[str, AgentScript] = attrs.field(factory=dict)
    default: AgentScript = attrs.field(factory=AgentScript)
    final_text: str = "Done."
    side_text: str = "OK."

    @classmethod
    def single(cls, *turns: Turn | str, **kwargs: Any) -> Self:
        """One script that every agent plays (each its own cursor)."""
        return cls(default=AgentScript.of(*turns), **kwargs)

    def for_agent(self, agent: str | None, *, subagent: bool = False) -> AgentScript:
        """What ``agent`` plays (or its subagents, with ``subagent``)."""
        script = self.agents.get(agent, self.default) if agent is not None else self.default
        return script.of_subagents() if subagent else script

    def final_turn(self, agent: str | None, *, subagent: bool = False) -> Turn:
        """The answer once ``agent``'s (or its subagents') turns are used up."""
        final = self.for_agent(agent, subagent=subagent).final
        return final if final is not None else Turn.text(self.final_text)

    @classmethod
    def from_json(cls, obj: object) -> Self:
        data = _object(obj, "script")
        _only(data, {"agents", "default", "final_text", "side_text"}, "script")
        agents = _object(data.get("agents", {}), "script.agents")
        for key in ("final_text", "side_text"):
            if key in data and not isinstance(data[key], str):
                raise ScriptError(f"script.{key}: expected a string")
        return cls(
            agents={
                name: AgentScript.from_json(a, f"script.agents[{name!r}]")
                for name, a in agents.items()
            },
            default=AgentScript.from_json(data.get("default", {}), "script.default"),
            final_text=data.get("final_text", "Done."),
            side_text=data.get("side_text", "OK."),
        )

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a JSON script file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ScriptError(f"{path}: not JSON: {e}") from None
        return cls.from_json(data)

    def to_json(self) -> dict[str, Any]:
        return {
            "agents": {name: a.to_json() for name, a in self.agents.items()},
            "default": self.default.to_json(),
            "final_text": self.final_text,
            "side_text": self.side_text,
        }

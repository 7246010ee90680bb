"""Claude Code's messages (as typed by ``claude-agent-sdk``) -> session events, and the
live cost meter.

:class:`ClaudeEventMapper` follows reference §10.3: ``system/init`` -> ``session_start``;
each assistant text block -> ``assistant_message``; ``TodoWrite`` -> ``todo_write``;
``AskUserQuestion`` -> ``ask_user_question``; any other tool call -> ``pre_tool_use``;
each tool result -> ``post_tool_use`` (with ``error`` when it failed); ``result`` ->
``session_end``.

:class:`CostMeter` fixes reference §17.11: cost is metered live from each API call's
usage with a price table (so a budget can stop a run in the middle of a turn), then
reconciled with the CLI's own ``total_cost_usd`` when the turn ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from .. import events as ev
from .._values import as_dict, as_dicts, as_int, as_number, as_str, as_text

__all__ = ["ClaudeEventMapper", "CostMeter", "Price", "ask_user_question", "price_for"]

SILENT_RESULTS = frozenset({"TodoWrite", "AskUserQuestion"})
# Bounds of what a long session remembers: the message ids whose usage was counted (the
# CLI repeats a message's usage on each of its blocks, one after the other), and the
# names of the tool calls whose results have not come yet.
SEEN_MESSAGES = 256
OPEN_TOOL_CALLS = 1024


@attrs.frozen
class Price:
    """US dollars per million tokens."""

    input: float
    output: float

    @property
    def cache_write(self) -> float:
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        return self.input * 0.1

    def cost(self, usage: Mapping[str, Any]) -> float:
        def tokens(key: str) -> float:
            value = usage.get(key)
            return float(value) if isinstance(value, int | float) and value > 0 else 0.0

        return (
            tokens("input_tokens") * self.input
            + tokens("output_tokens") * self.output
            + tokens("cache_creation_input_tokens") * self.cache_write
            + tokens("cache_read_input_tokens") * self.cache_read
        ) / 1_000_000


# Matched in order against the model id; the first family that appears in it wins.
PRICE_TABLE: tuple[tuple[str, Price], ...] = (
    ("opus-4-1", Price(15.0, 75.0)),
    ("opus-4-0", Price(15.0, 75.0)),
    ("opus-4-2025", Price(15.0, 75.0)),
    ("3-opus", Price(15.0, 75.0)),
    ("opus", Price(5.0, 25.0)),
    ("sonnet", Price(3.0, 15.0)),
    ("3-5-haiku", Price(0.8, 4.0)),
    ("haiku", Price(1.0, 5.0)),
)
DEFAULT_PRICE = Price(3.0, 15.0)


def price_for(model: str) -> Price:
    lowered = model.lower()
    for family, price in PRICE_TABLE:
        if family in lowered:
            return price
    return DEFAULT_PRICE


class CostMeter:
    """A session's cost: metered live, reconciled at the end of every turn.

    The CLI's ``total_cost_usd`` is cumulative over its process; call
    :meth:`new_process` when a process (re)starts.
    """

    def __init__(self, total: float = 0.0) -> None:
        self.total = total
        self._turn_metered = 0.0
        self._process_reported = 0.0
        self._seen: dict[str, None] = {}  # the last SEEN_MESSAGES ids, oldest first

    def new_process(self) -> None:
        self._process_reported = 0.0
        self._seen.clear()

    def on_usage(self, message_id: str | None, model: str, usage: Mapping[str, Any]) -> float:
        """Add one API call's cost (once per message id: the CLI repeats the usage on
        every content block of a message). Returns the increment."""
        if message_id is not None:
            if message_id in self._seen:
                return 0.0
            self._seen[message_id] = None
            if len(self._seen) > SEEN_MESSAGES:
                del self._seen[next(iter(self._seen))]
        cost = price_for(model).cost(usage)
        self._turn_metered += cost
        self.total += cost
        return cost

    def on_result(self, total_cost_usd: float | None) -> float:
        """End of a turn: replace what was metered by what the CLI reports. Returns the
        turn's cost."""
        metered, self._turn_metered = self._turn_metered, 0.0
        if total_cost_usd is None or total_cost_usd < self._process_reported:
            return metered
        turn = total_cost_usd - self._process_reported
        self._process_reported = total_cost_usd
        self.total += turn - metered
        return turn


def _result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts = [as_str(item.get("text")) for item in as_dicts(content)]
    return "\n".join(part for part in parts if part is not None)


def ask_user_question(tool_use_id: str, data: dict[str, Any]) -> ev.AskUserQuestion:
    """The event of an ``AskUserQuestion`` call's input (from the CLI or a hook)."""
    questions = as_dicts(data.get("questions"))
    first = questions[0] if questions else {}
    question = first.get("question", data.get("question", ""))
    options = first.get("options")
    return ev.AskUserQuestion(
        tool_use_id=tool_use_id,
        question=as_text(question),
        options=as_dicts(options) if isinstance(options, list) else None,
        questions=questions or None,
    )


class ClaudeEventMapper:
    """Stateful per agent process: remembers tool names by id and the Claude session id.

    The SDK's ``parse_message`` checks a message's shape, not the types of its values:
    every value is read here with :mod:`orchestrator._values`, and a block whose ids or
    text are not strings is skipped, so no event has a field of the wrong type.
    """

    def __init__(self, *, agent: str | None = None) -> None:
        self.agent = agent
        self.claude_session_id: str | None = None
        self._tools: dict[str, str] = {}

    def map(self, message: object) -> list[ev.Event]:
        if isinstance(message, SystemMessage):
            if message.subtype != "init" or not isinstance(message.data, dict):
                return []
            session_id = as_str(message.data.get("session_id"))
            if session_id is None:
                return []
            self.claude_session_id = session_id
            return [ev.SessionStart(session_id=session_id, cwd=as_str(message.data.get("cwd")))]
        if isinstance(message, AssistantMessage):
            return self._assistant(message)
        if isinstance(message, UserMessage):
            return self._tool_results(message)
        if isinstance(message, ResultMessage):
            session_id = as_str(message.session_id)
            if session_id:
                self.claude_session_id = session_id
            return [
                ev.SessionEnd(
                    success=message.subtype == "success" and not message.is_error,
                    cost_usd=as_number(message.total_cost_usd),
                    num_turns=as_int(message.num_turns),
                    duration_ms=as_int(message.duration_ms),
                    duration_api_ms=as_int(message.duration_api_ms),
                )
            ]
        return []

    def _assistant(self, message: AssistantMessage) -> list[ev.Event]:
        out: list[ev.Event] = []
        for block in message.content if isinstance(message.content, list) else []:
            if isinstance(block, TextBlock):
                text = as_str(block.text)
                if text is not None and text.strip():
                    out.append(ev.AssistantMessage(text=text, agent=self.agent))
            elif isinstance(block, ToolUseBlock):
                tool_use_id, name = as_str(block.id), as_str(block.name)
                if tool_use_id is None or name is None:
                    continue
                self._tools[tool_use_id] = name
                if len(self._tools) > OPEN_TOOL_CALLS:  # results that never came
                    del self._tools[next(iter(self._tools))]
                tool_input = as_dict(block.input)
                if name == "TodoWrite":
                    todos = as_dicts(tool_input.get("todos"))
                    out.append(ev.TodoWrite(tool_use_id=tool_use_id, todos=todos))
                elif name == "AskUserQuestion":
                    out.append(ask_user_question(tool_use_id, tool_input))
                else:
                    out.append(
                        ev.PreToolUse(
                            tool_name=name,
                            tool_use_id=tool_use_id,
                            tool_input=tool_input,
                            agent=self.agent,
                        )
                    )
        return out

    def _tool_results(self, message: UserMessage) -> list[ev.Event]:
        if not isinstance(message.content, list):
            return []
        out: list[ev.Event] = []
        for block in message.content:
            if not isinstance(block, ToolResultBlock):
                continue
            tool_use_id = as_str(block.tool_use_id)
            if tool_use_id is None:
                continue
            name = self._tools.pop(tool_use_id, None)  # a call has one result
            if name in SILENT_RESULTS:
                continue
            text = _result_text(block.content)
            out.append(
                ev.PostToolUse(
                    tool_use_id=tool_use_id,
                    tool_name=name,
                    tool_response=text,
                    error=text if block.is_error is True else None,
                    agent=self.agent,
                )
            )
        return out

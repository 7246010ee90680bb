"""What ``codex app-server`` says -> session events.

:class:`CodexEventMapper` is pure: it is fed the decoded JSON-RPC notifications of one
app-server process (``{"method": ..., "params": ...}``), in order, and gives the events
Claude Code's bridge would give for the same work (reference §5.2):

- ``turn/started`` (of the agent's thread) -> ``session_start`` with the thread id (as
  Claude Code's ``system/init`` opens each of its turns; ``thread/started`` and a
  resumed thread only record the thread);
- ``item/started`` of a ``commandExecution`` -> ``pre_tool_use`` of tool ``Bash``
  (``{"command": ...}``, the script without Codex's ``/bin/bash -lc`` wrapper), of a
  ``fileChange`` -> tool ``Edit`` (``{"changes": [{"path", "kind", "diff"}]}``), of an
  ``mcpToolCall`` -> ``mcp__<server>__<tool>``, of a ``dynamicToolCall`` -> its tool,
  of a ``webSearch`` -> ``WebSearch``;
- ``item/completed`` of those -> ``post_tool_use`` (``error`` set when the command
  exited non-zero, failed or was declined; a completion never announced gets its
  ``pre_tool_use`` first), of an ``agentMessage`` -> ``assistant_message``, of a
  ``plan`` -> ``log`` (level ``plan``); ``reasoning`` is skipped;
- ``turn/plan/updated`` -> ``todo_write`` (steps as todos: ``pending``,
  ``in_progress``, ``completed``);
- ``error`` -> ``log`` (level ``error``), ``warning`` -> ``log`` (``verbose``),
  ``configWarning`` -> ``log`` (``system``);
- ``turn/completed`` (of the agent's thread) -> ``session_end`` (``success`` when the
  turn completed; ``num_turns`` 1; ``duration_ms``), after a failed ``post_tool_use``
  for each tool of the turn that never completed (an interrupt at its approval). The
  cost is the bridge's to fill in: Codex reports tokens, not dollars (see
  :mod:`.prices`).

Anything else, and anything malformed, gives nothing: the mapper never raises on
input and never makes an event with fields of the wrong type.
"""

from __future__ import annotations

import json
import shlex
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs

from .. import events as ev
from .._values import as_dict, as_int, as_str

__all__ = ["CodexEventMapper", "TurnOutcome", "unwrap_shell"]

MAX_TRACKED_ITEMS = 1024
_SHELLS = frozenset({"bash", "sh", "zsh", "dash"})
_SHELL_FLAGS = frozenset({"-c", "-lc", "-cl"})
_TODO_STATUS = {"pending": "pending", "inProgress": "in_progress", "completed": "completed"}
_TOOL_ITEMS = frozenset(
    {"commandExecution", "fileChange", "mcpToolCall", "dynamicToolCall", "webSearch"}
)


@attrs.frozen
class TurnOutcome:
    """How a turn of the agent's thread ended (``turn/completed``)."""

    turn_id: str | None
    status: str  # completed | interrupted | failed | ...
    error: str | None = None
    duration_ms: int | None = None

    @property
    def success(self) -> bool:
        return self.status == "completed"


def unwrap_shell(command: str) -> str:
    """The script of ``/bin/bash -lc '<script>'`` (how Codex reports every command);
    any other command as it is."""
    try:
        parts = shlex.split(command)
    except ValueError:
        return command
    if len(parts) == 3 and parts[0].rsplit("/", 1)[-1] in _SHELLS and parts[1] in _SHELL_FLAGS:
        return parts[2]
    return command


def _error_message(error: object) -> str | None:
    """The text of a ``TurnError`` (its message may itself be an API error's JSON)."""
    data = as_dict(error)
    message = as_str(data.get("message"))
    if message is None:
        return as_str(error)
    try:
        inner = json.loads(message)
    except ValueError:
        inner = None
    if isinstance(inner, dict):
        nested = as_str(as_dict(inner.get("error")).get("message")) or as_str(inner.get("message"))
        if nested:
            message = nested
    details = as_str(data.get("additionalDetails"))
    return f"{message} ({details})" if details else message


def _text_of(content: object) -> str:
    """Text parts of an MCP result's or a dynamic tool's content, newline-joined."""
    if not isinstance(content, list):
        return ""
    parts = [as_str(as_dict(part).get("text")) for part in content]
    return "\n".join(part for part in parts if part)


def _arguments(value: object) -> dict[str, Any]:
    """A tool's arguments as an object: an object as it is, anything else wrapped."""
    if isinstance(value, Mapping):
        return as_dict(value)
    return {} if value is None else {"arguments": value}


def _changes(value: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(value, list):
        return out
    for change in value:
        data = as_dict(change)
        path = as_str(data.get("path"))
        if path is None:
            continue
        kind = as_dict(data.get("kind"))
        entry: dict[str, Any] = {
            "path": path,
            "kind": as_str(kind.get("type")) or "update",
            "diff": as_str(data.get("diff")) or "",
        }
        move = as_str(kind.get("move_path"))
        if move:
            entry["move_path"] = move
        out.append(entry)
    return out


class CodexEventMapper:
    """Stateful per app-server process: the agent's thread and turn, and the tool
    items started and not yet completed (their inputs, for approval requests)."""

    def __init__(self, *, agent: str | None = None, cwd: str | None = None) -> None:
        self.agent = agent
        self.cwd = cwd
        self.thread_id: str | None = None
        self.turn_id: str | None = None
        self.outcome: TurnOutcome | None = None  # of the last turn/completed
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._item_turns: dict[str, str | None] = {}
        self._announced: set[str] = set()
        self._turn_errors: set[str] = set()

    # -- the thread ------------------------------------------------------------------

    def on_thread(self, thread: object) -> None:
        """Record the agent's thread (``thread/start`` or ``thread/resume`` result)."""
        data = as_dict(thread)
        thread_id = as_str(data.get("id"))
        if thread_id:
            self.thread_id = thread_id
            cwd = as_str(data.get("cwd"))
            if cwd:
                self.cwd = cwd

    def _ours(self, params: Mapping[str, Any]) -> bool:
        thread_id = as_str(params.get("threadId"))
        if self.thread_id is None and thread_id:
            self.thread_id = thread_id
        return thread_id is not None and thread_id == self.thread_id

    def item(self, item_id: str) -> dict[str, Any] | None:
        """A tool item started and not completed yet (as Codex described it)."""
        return self._items.get(item_id)

    def tool_input(self, item_id: str) -> tuple[str, dict[str, Any]] | None:
        """The tool name and input :meth:`map` gave (or would give) item ``item_id``."""
        item = self._items.get(item_id)
        return None if item is None else self._tool(item)

    # -- messages --------------------------------------------------------------------

    def map(self, message: object) -> list[ev.Event]:
        data = as_dict(message)
        method = as_str(data.get("method"))
        params = as_dict(data.get("params"))
        if method is None:
            return []
        handler = _HANDLERS.get(method)
        return handler(self, params) if handler is not None else []

    def _thread_started(self, params: dict[str, Any]) -> list[ev.Event]:
        thread = as_dict(params.get("thread"))
        if self.thread_id is None or as_str(thread.get("id")) == self.thread_id:
            self.on_thread(thread)
        return []

    def _turn_started(self, params: dict[str, Any]) -> list[ev.Event]:
        if not self._ours(params) or self.thread_id is None:
            return []
        self.turn_id = as_str(as_dict(params.get("turn")).get("id"))
        self.outcome = None
        return [ev.SessionStart(session_id=self.thread_id, cwd=self.cwd, agent=self.agent)]

    def _turn_completed(self, params: dict[str, Any]) -> list[ev.Event]:
        if not self._ours(params):
            return []
        turn = as_dict(params.get("turn"))
        turn_id = as_str(turn.get("id"))
        status = as_str(turn.get("status")) or "failed"
        error = _error_message(turn.get("error")) if turn.get("error") is not None else None
        duration = as_int(turn.get("durationMs"))
        self.outcome = TurnOutcome(turn_id, status, error, duration)
        out: list[ev.Event] = self._unfinished(turn_id, status) if turn_id else []
        if error and (turn_id is None or turn_id not in self._turn_errors):
            out.append(ev.Log(level="error", message=error))
        if turn_id is not None:
            self._turn_errors.discard(turn_id)
        out.append(
            ev.SessionEnd(
                success=self.outcome.success,
                num_turns=1,
                duration_ms=duration if duration is not None and duration >= 0 else None,
            )
        )
        return out

    def _plan_updated(self, params: dict[str, Any]) -> list[ev.Event]:
        plan = params.get("plan")
        if not isinstance(plan, list):
            return []
        todos: list[dict[str, Any]] = []
        for index, step in enumerate(plan):
            data = as_dict(step)
            text = as_str(data.get("step"))
            if text is None:
                continue
            status = _TODO_STATUS.get(as_str(data.get("status")) or "", "pending")
            todos.append({"id": str(index + 1), "content": text, "status": status})
        turn = as_str(params.get("turnId")) or self.turn_id or "turn"
        return [ev.TodoWrite(tool_use_id=f"plan-{turn}", todos=todos)]

    def _error(self, params: dict[str, Any]) -> list[ev.Event]:
        message = _error_message(params.get("error"))
        if not message:
            return []
        turn_id = as_str(params.get("turnId"))
        retry = params.get("willRetry") is True
        if turn_id and not retry:
            self._turn_errors.add(turn_id)
        return [ev.Log(level="error", message=f"{message} (retrying)" if retry else message)]

    def _warning(self, params: dict[str, Any]) -> list[ev.Event]:
        message = as_str(params.get("message"))
        return [ev.Log(level="verbose", message=message)] if message else []

    def _config_warning(self, params: dict[str, Any]) -> list[ev.Event]:
        summary = as_str(params.get("summary"))
        if not summary:
            return []
        details = as_str(params.get("details"))
        return [ev.Log(level="system", message=f"{summary}: {details}" if details else summary)]

    # -- items -----------------------------------------------------------------------

    def _item_started(self, params: dict[str, Any]) -> list[ev.Event]:
        item = as_dict(params.get("item"))
        item_id = as_str(item.get("id"))
        if item_id is None or as_str(item.get("type")) not in _TOOL_ITEMS:
            return []
        self._items[item_id] = item
        self._items.move_to_end(item_id)
        self._item_turns[item_id] = as_str(params.get("turnId"))
        while len(self._items) > MAX_TRACKED_ITEMS:
            old, _ = self._items.popitem(last=False)
            self._forget(old)
        return self._announce(item_id, item)

    def _announce(self, item_id: str, item: dict[str, Any]) -> list[ev.Event]:
        if item_id in self._announced:
            return []
        self._announced.add(item_id)
        name, tool_input = self._tool(item)
        return [
            ev.PreToolUse(
                tool_name=name, tool_use_id=item_id, tool_input=tool_input, agent=self.agent
            )
        ]

    def _forget(self, item_id: str) -> None:
        self._announced.discard(item_id)
        self._item_turns.pop(item_id, None)

    def _unfinished(self, turn_id: str | None, status: str) -> list[ev.Event]:
        """The tool items of a turn that ended before they completed (interrupted at
        an approval, say): each gets its ``post_tool_use``, failed."""
        out: list[ev.Event] = []
        for item_id in [i for i, turn in self._item_turns.items() if turn == turn_id]:
            item = self._items.pop(item_id, None)
            self._forget(item_id)
            if item is None:
                continue
            name, _ = self._tool(item)
            message = f"the turn ended ({status}) before the tool finished"
            out.append(
                ev.PostToolUse(
                    tool_use_id=item_id,
                    tool_name=name,
                    tool_response="",
                    error=message,
                    agent=self.agent,
                )
            )
        return out

    def _tool(self, item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kind = item.get("type")
        if kind == "commandExecution":
            command = as_str(item.get("command")) or ""
            return "Bash", {"command": unwrap_shell(command)}
        if kind == "fileChange":
            return "Edit", {"changes": _changes(item.get("changes"))}
        if kind == "mcpToolCall":
            server = as_str(item.get("server")) or "unknown"
            tool = as_str(item.get("tool")) or "unknown"
            return f"mcp__{server}__{tool}", _arguments(item.get("arguments"))
        if kind == "dynamicToolCall":
            return as_str(item.get("tool")) or "unknown", _arguments(item.get("arguments"))
        if kind == "webSearch":
            return "WebSearch", {"query": as_str(item.get("query")) or ""}
        return str(kind), {}

    def _item_completed(self, params: dict[str, Any]) -> list[ev.Event]:
        item = as_dict(params.get("item"))
        kind = as_str(item.get("type"))
        item_id = as_str(item.get("id"))
        if kind == "agentMessage":
            text = as_str(item.get("text"))
            if text and text.strip():
                return [ev.AssistantMessage(text=text, agent=self.agent)]
            return []
        if kind == "plan":
            text = as_str(item.get("text"))
            return [ev.Log(level="plan", message=text)] if text and text.strip() else []
        if item_id is None or kind not in _TOOL_ITEMS:
            return []
        out = self._announce(item_id, item)
        self._items.pop(item_id, None)
        self._forget(item_id)
        name, _ = self._tool(item)
        response, error = self._result(item)
        out.append(
            ev.PostToolUse(
                tool_use_id=item_id,
                tool_name=name,
                tool_response=response,
                error=error,
                agent=self.agent,
            )
        )
        return out

    def _result(self, item: dict[str, Any]) -> tuple[str, str | None]:
        """The tool's response text and its error (None when it succeeded)."""
        kind = item.get("type")
        status = as_str(item.get("status"))
        if kind == "commandExecution":
            output = as_str(item.get("aggregatedOutput")) or ""
            code = as_int(item.get("exitCode"))
            if status == "declined":
                return output, "the command was declined"
            if code is not None and code != 0:
                return output, output or f"exit code {code}"
            if status == "failed":
                return output, output or "the command failed"
            return output, None
        if kind == "fileChange":
            summary = "\n".join(
                f"{change['kind']} {change['path']}" for change in _changes(item.get("changes"))
            )
            if status == "declined":
                return summary, "the change was declined"
            if status == "failed":
                return summary, f"the change failed: {summary}" if summary else "the change failed"
            return summary, None
        if kind == "mcpToolCall":
            error = as_str(as_dict(item.get("error")).get("message"))
            text = _text_of(as_dict(item.get("result")).get("content"))
            if error or status == "failed":
                return text, error or text or "the tool call failed"
            return text, None
        if kind == "dynamicToolCall":
            text = _text_of(item.get("contentItems"))
            if item.get("success") is False or status == "failed":
                return text, text or "the tool call failed"
            return text, None
        return "", None


_HANDLERS = {
    "thread/started": CodexEventMapper._thread_started,
    "turn/started": CodexEventMapper._turn_started,
    "turn/completed": CodexEventMapper._turn_completed,
    "turn/plan/updated": CodexEventMapper._plan_updated,
    "item/started": CodexEventMapper._item_started,
    "item/completed": CodexEventMapper._item_completed,
    "error": CodexEventMapper._error,
    "warning": CodexEventMapper._warning,
    "configWarning": CodexEventMapper._config_warning,
}

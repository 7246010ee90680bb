"""Claude Code hook payloads -> session events (reference §11.4).

Hook payloads come from outside (a developer's own Claude Code, through the hook
forwarder): anything may arrive. :func:`hook_to_event` never raises on a dict; it
returns ``None`` for what it does not map.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from .. import events as ev

__all__ = ["hook_to_event"]


def _str(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else default


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        import json

        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _pre_tool_use(payload: Mapping[str, Any]) -> ev.Event:
    name = _str(payload, "tool_name", "unknown") or "unknown"
    tool_use_id = _str(payload, "tool_use_id") or f"hook_{int(time.time() * 1000)}"
    tool_input = _dict(payload.get("tool_input"))
    if name == "TodoWrite":
        todos = tool_input.get("todos")
        todo_list = (
            [dict(t) for t in todos if isinstance(t, Mapping)] if isinstance(todos, list) else []
        )
        return ev.TodoWrite(tool_use_id=tool_use_id, todos=todo_list)
    if name == "AskUserQuestion":
        questions = tool_input.get("questions")
        question_list = (
            [dict(q) for q in questions if isinstance(q, Mapping)]
            if isinstance(questions, list)
            else []
        )
        first = question_list[0] if question_list else {}
        question = first.get("question", tool_input.get("question", ""))
        options = first.get("options")
        return ev.AskUserQuestion(
            tool_use_id=tool_use_id,
            question=question if isinstance(question, str) else _text(question),
            options=[dict(o) for o in options if isinstance(o, Mapping)]
            if isinstance(options, list)
            else None,
            questions=question_list or None,
        )
    return ev.PreToolUse(tool_name=name, tool_use_id=tool_use_id, tool_input=tool_input)


def hook_to_event(payload: Mapping[str, Any]) -> ev.Event | None:
    """The session event for one hook payload, or ``None`` if it maps to nothing."""
    kind = payload.get("hook_event_name")
    if kind == "SessionStart":
        cwd = payload.get("cwd")
        return ev.SessionStart(
            session_id=_str(payload, "session_id"), cwd=cwd if isinstance(cwd, str) else None
        )
    if kind == "PreToolUse":
        return _pre_tool_use(payload)
    if kind == "PostToolUse":
        return ev.PostToolUse(
            tool_use_id=_str(payload, "tool_use_id"),
            tool_name=_str(payload, "tool_name") or None,
            tool_response=_text(payload.get("tool_response")),
        )
    if kind == "PostToolUseFailure":
        error = _str(payload, "error", "Unknown error") or "Unknown error"
        return ev.PostToolUse(
            tool_use_id=_str(payload, "tool_use_id"),
            tool_name=_str(payload, "tool_name", "unknown") or "unknown",
            tool_response=error,
            error=error,
        )
    if kind == "Stop":
        return ev.AssistantMessage(text=_str(payload, "last_assistant_message"))
    if kind == "SessionEnd":
        session = _dict(payload.get("session"))
        return ev.SessionEnd(
            success=True,
            cost_usd=_number(session.get("cost_usd")),
            num_turns=_int(session.get("num_turns")),
            duration_ms=_int(session.get("duration_ms")),
            duration_api_ms=_int(session.get("duration_api_ms")),
        )
    if kind == "UserPromptSubmit":
        return ev.UserPrompt(message=_str(payload, "prompt"))
    if kind in ("SubagentStart", "SubagentStop"):
        agent = _str(payload, "agent_type", "agent") or "agent"
        return ev.Log(level="task", message=f"{kind}: {agent}")
    return None

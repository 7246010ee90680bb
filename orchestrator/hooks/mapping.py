"""Claude Code hook payloads -> session events (reference §11.4).

Hook payloads come from outside (a developer's own Claude Code, through the hook
forwarder): anything may arrive. :func:`hook_to_event` never raises on a dict; it
returns ``None`` for what it does not map.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .. import events as ev
from .._values import as_dict, as_dicts, as_int, as_number, as_text
from ..bridges.claude_events import ask_user_question

__all__ = ["hook_to_event"]


def _str(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else default


def _pre_tool_use(payload: Mapping[str, Any]) -> ev.Event:
    name = _str(payload, "tool_name", "unknown") or "unknown"
    tool_use_id = _str(payload, "tool_use_id") or f"hook_{int(time.time() * 1000)}"
    tool_input = as_dict(payload.get("tool_input"))
    if name == "TodoWrite":
        return ev.TodoWrite(tool_use_id=tool_use_id, todos=as_dicts(tool_input.get("todos")))
    if name == "AskUserQuestion":
        return ask_user_question(tool_use_id, tool_input)
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
            tool_response=as_text(payload.get("tool_response")),
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
        session = as_dict(payload.get("session"))
        return ev.SessionEnd(
            success=True,
            cost_usd=as_number(session.get("cost_usd")),
            num_turns=as_int(session.get("num_turns")),
            duration_ms=as_int(session.get("duration_ms")),
            duration_api_ms=as_int(session.get("duration_api_ms")),
        )
    if kind == "UserPromptSubmit":
        return ev.UserPrompt(message=_str(payload, "prompt"))
    if kind in ("SubagentStart", "SubagentStop"):
        agent = _str(payload, "agent_type", "agent") or "agent"
        return ev.Log(level="task", message=f"{kind}: {agent}")
    return None

"""Plays a :class:`Script`: a cursor per agent, and a record of every request.

Provider-neutral: a dialect (Anthropic Messages, OpenAI Responses) decides which requests
are main-conversation ones and renders the turn; the player only hands out turns in
order and remembers what it was asked.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, final

import attrs

from ._script import Script, Turn

__all__ = [
    "RecordedRequest",
    "RequestKind",
    "ScriptPlayer",
    "content_text",
    "credential_of",
    "input_items",
    "subagent_of",
]

_MODEL_ITEMS = frozenset({"function_call", "custom_tool_call", "reasoning"})
"""Responses ``input`` items the model made (besides assistant messages)."""
_TOOL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})


class RequestKind(enum.Enum):
    """What a request was taken for."""

    MAIN = "main"
    """A turn of an agent's main conversation: it took the agent's next scripted turn
    (or the final answer once they are used up)."""
    SIDE = "side"
    """A model call beside the conversation (title, summary, compaction, ...): answered
    with a short default, no turn taken."""
    OTHER = "other"
    """Anything else: token counting, start-up probes, unknown paths."""


def subagent_of(headers: Mapping[str, str]) -> str | None:
    """The subagent id Claude Code sends with a subagent's requests, if any."""
    return headers.get("x-claude-code-agent-id") or None


def credential_of(headers: Mapping[str, str]) -> str | None:
    """The agent's name: its ``x-api-key``, else the bearer token of ``Authorization``.
    ``headers`` has lower-case keys."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as received. ``api`` is the dialect: ``"anthropic"`` (Messages) or
    ``"openai"`` (Responses). ``headers`` have lower-case keys; ``body`` is the parsed
    JSON (``None`` when there was no body or it was not JSON). ``subagent`` is the
    ``x-claude-code-agent-id`` of a subagent's request. ``turn`` is the index of
    the scripted turn that answered a MAIN request (``None`` once the script was used
    up, and for other kinds); ``side_reason`` says why a request was taken as SIDE."""

    seq: int
    api: str
    method: str
    path: str
    query: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: Any = attrs.field(repr=False)
    agent: str | None
    subagent: str | None = None
    kind: RequestKind
    turn: int | None = None
    side_reason: str | None = None
    status: int = 200

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` (Anthropic) or ``[]``."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return [m for m in self.body["messages"] if isinstance(m, dict)]
        return []

    @property
    def input_items(self) -> list[dict[str, Any]]:
        """The request's ``input`` items (OpenAI Responses; a string input is one user
        message) or ``[]``."""
        return input_items(self.body) if isinstance(self.body, dict) else []

    @property
    def last_user_message(self) -> dict[str, Any] | None:
        """The last message whose role is ``user`` (a Messages message, or a Responses
        ``message`` item): newer Claude Code versions append ``system`` messages after
        it, and Codex sends its environment context as a user message before the
        prompt."""
        if self.api == "openai":
            candidates = [
                m
                for m in self.input_items
                if m.get("type", "message") == "message" and m.get("role") == "user"
            ]
        else:
            candidates = [m for m in self.messages if m.get("role") == "user"]
        return candidates[-1] if candidates else None

    def tool_results(self) -> list[dict[str, Any]]:
        """What the client reports of the tools it ran since the model's last answer:
        the ``tool_result`` blocks of the last user message (Anthropic), or the
        ``function_call_output`` (and ``custom_tool_call_output``) items that follow
        the last run of model items in ``input`` (OpenAI: the input is the whole
        history, so the outputs of earlier steps are left out, and so are outputs before
        a later user message)."""
        if self.api == "openai":
            batch: list[dict[str, Any]] = []
            answered = False
            for item in self.input_items:
                kind = item.get("type", "message")
                if kind in _TOOL_OUTPUTS:
                    batch.append(item)
                    answered = True
                elif (kind in _MODEL_ITEMS or kind == "message") and (
                    answered or item.get("role") == "user"
                ):
                    batch, answered = [], False
            return batch
        message = self.last_user_message
        content = message.get("content") if message else None
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]

    def user_text(self) -> str:
        """The text of the last user message (its text blocks joined by newlines)."""
        message = self.last_user_message
        if message is None:
            return ""
        return content_text(message.get("content"))


def input_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``input`` of a Responses request as a list of items: a string is one user
    message; items that are not objects are left out."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        return []
    return [item for item in raw if isinstance(item, dict)]


_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def content_text(content: object) -> str:
    """The text of a message's ``content``: a string, or its text parts joined (``text``
    blocks of the Messages API, ``input_text`` / ``output_text`` parts of the Responses
    API)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(
        b["text"]
        for b in content
        if isinstance(b, dict) and b.get("type") in _TEXT_PARTS and isinstance(b.get("text"), str)
    )


@final
class ScriptPlayer:
    """Hands out each agent's turns in order and records requests. Not thread-safe; all
    calls come from the server's trio tasks, and each request takes its turn before its
    first checkpoint, so the order of turns is the order of arrival."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._cursors: dict[tuple[str | None, str | None], int] = {}
        self._records: list[RecordedRequest] = []

    def next_seq(self) -> int:
        return len(self._records) + 1

    def take_turn(self, agent: str | None, subagent: str | None = None) -> tuple[int | None, Turn]:
        """The next turn of ``agent`` (or of its subagent of that id) and its index;
        ``(None, final)`` once used up."""
        turns = self.script.for_agent(agent, subagent=subagent is not None).turns
        index = self._cursors.get((agent, subagent), 0)
        self._cursors[agent, subagent] = index + 1
        if index < len(turns):
            return index, turns[index]
        return None, self.script.final_turn(agent, subagent=subagent is not None)

    def turns_taken(self, agent: str | None, subagent: str | None = None) -> int:
        """How many main-conversation requests the agent (or its subagent) has made."""
        return self._cursors.get((agent, subagent), 0)

    def record(self, request: RecordedRequest) -> RecordedRequest:
        self._records.append(request)
        return request

    @property
    def records(self) -> tuple[RecordedRequest, ...]:
        return tuple(self._records)

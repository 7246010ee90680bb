"""Which tool calls need a person: a pure, per-session policy.

Tools in ``deny`` (and, when the session is restricted, tools outside its list) are
denied; tools in ``allow`` run; everything else asks a person through a
``tool_permission`` gate. Production sessions are restricted to the reference's tool
list (``orchestrator.sessions.actor.PRODUCTION_TOOLS``, passed in by the caller).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

__all__ = ["SAFE_TOOLS", "Decision", "ToolPolicy"]

Decision = Literal["allow", "deny", "ask"]

#: Tools that only read, or only talk to the person: allowed without asking.
#: (``AskUserQuestion`` is answered through its own gate, not a permission.)
SAFE_TOOLS: frozenset[str] = frozenset(
    {"Read", "Glob", "Grep", "TodoWrite", "AskUserQuestion", "Skill"}
)


@attrs.frozen(kw_only=True)
class ToolPolicy:
    """``deny`` wins over everything; then a tool outside ``only`` (when set) is
    denied; then ``allow``; the rest ask."""

    allow: frozenset[str] = SAFE_TOOLS
    deny: frozenset[str] = frozenset()
    only: frozenset[str] | None = None
    allow_all: bool = False  # nothing asks: every tool not denied runs

    def decide(self, tool_name: str) -> Decision:
        if tool_name in self.deny:
            return "deny"
        if self.only is not None and tool_name not in self.only:
            return "deny"
        if self.allow_all or tool_name in self.allow:
            return "allow"
        return "ask"

    def to_json(self) -> dict[str, Any]:
        return {
            "allow": sorted(self.allow),
            "deny": sorted(self.deny),
            "only": None if self.only is None else sorted(self.only),
            "allowAll": self.allow_all,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolPolicy:
        only = data.get("only")
        return cls(
            allow=frozenset(str(t) for t in data.get("allow", SAFE_TOOLS)),
            deny=frozenset(str(t) for t in data.get("deny", ())),
            only=None if only is None else frozenset(str(t) for t in only),
            allow_all=bool(data.get("allowAll", False)),
        )

    @classmethod
    def for_session(
        cls,
        *,
        production: bool,
        tools: Iterable[str],
        allow: Iterable[str] = SAFE_TOOLS,
        deny: Iterable[str] = (),
    ) -> ToolPolicy:
        """The policy of a session whose agent is given ``tools``: production
        sessions may use nothing else; development sessions are asked about the
        rest."""
        return cls(
            allow=frozenset(allow),
            deny=frozenset(deny),
            only=frozenset(tools) if production else None,
        )

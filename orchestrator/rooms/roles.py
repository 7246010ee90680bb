"""Room agents' roles and what their workspace and first prompt say (reference §9.6,
§13.2, §13.3).

A role is a name, the tools its agent may use and a skill file the agent reads. The
skill texts are package files under ``orchestrator/templates/roles/`` (so they ship with
the package, unlike the reference's, §17.26). :func:`room_files` gives the files a room
agent's workspace gets and :func:`build_room_context` the text of its first prompt.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from importlib import resources

import attrs

from ..sessions.actor import DEFAULT_TOOLS

__all__ = [
    "RECENT_MESSAGES",
    "REVIEWER_TOOLS",
    "ROLES",
    "ROLE_SKILL_PATH",
    "ROOM_MESSAGING_SKILL_PATH",
    "Role",
    "build_room_context",
    "resolve_role",
    "room_claude_md",
    "room_files",
    "room_messaging_skill",
]

ROLE_SKILL_PATH = ".claude/skills/role/SKILL.md"
ROOM_MESSAGING_SKILL_PATH = ".claude/skills/room-messaging/SKILL.md"
RECENT_MESSAGES = 10
REVIEWER_TOOLS = tuple(tool for tool in DEFAULT_TOOLS if tool not in ("Write", "Edit"))

_TEMPLATES = resources.files("orchestrator") / "templates" / "roles"


def _template(name: str) -> str:
    return (_TEMPLATES / f"{name}.md").read_text(encoding="utf-8")


@attrs.frozen
class Role:
    name: str
    tools: tuple[str, ...]
    skill: str


ROLES: Mapping[str, Role] = types.MappingProxyType(
    {
        "coder": Role("coder", DEFAULT_TOOLS, _template("coder")),
        "reviewer": Role("reviewer", REVIEWER_TOOLS, _template("reviewer")),
        "ui-designer": Role("ui-designer", DEFAULT_TOOLS, _template("ui-designer")),
    }
)

_ALIASES = {
    "coder": "coder",
    "developer": "coder",
    "programmer": "coder",
    "engineer": "coder",
    "reviewer": "reviewer",
    "code reviewer": "reviewer",
    "pr reviewer": "reviewer",
    "ui-designer": "ui-designer",
    "ui designer": "ui-designer",
    "frontend designer": "ui-designer",
}


def resolve_role(text: str | None) -> Role | None:
    """The role a free-text name stands for (case-insensitive, surrounding and repeated
    whitespace ignored: ``" Code  Reviewer "`` is the reviewer), or None when unknown."""
    if text is None:
        return None
    name = _ALIASES.get(" ".join(text.casefold().split()))
    return None if name is None else ROLES[name]


def room_messaging_skill() -> str:
    """The ``room-messaging`` skill: how to receive and send room messages."""
    return _template("room-messaging")


def room_claude_md(
    project_name: str,
    room_name: str,
    agent_name: str,
    role: Role | None,
    *,
    role_skill: bool | None = None,
) -> str:
    """A minimal CLAUDE.md for a room agent's workspace, with the Room Messaging quick
    reference. ``role_skill`` says whether a role skill file is in the workspace (by
    default: when there is a role)."""
    if role_skill is None:
        role_skill = role is not None
    who = f"`{agent_name}`" + (f", the {role.name}," if role is not None else "")
    lines = [
        f"# {project_name}",
        "",
        "## Room agent workspace",
        "",
        f"You are {who} in the room `{room_name}`, working with other agents and people.",
        "Work only inside this directory.",
    ]
    if role_skill:
        lines.append(f"Your role and how to act in it are in `{ROLE_SKILL_PATH}`: read it first.")
    lines += [
        "",
        "## Room Messaging",
        "",
        f"Full protocol: `{ROOM_MESSAGING_SKILL_PATH}`. In short:",
        "",
        "- Messages reach you as `Message from <name>:` followed by the text.",
        "- `@room <message>` sends to everyone; `@<name> <message>` to one participant.",
        "- Put the directive at the END of your reply, on its own line; only the last one"
        " counts. One message per turn.",
        "- No directive means silence: say nothing when there is nothing useful to add.",
        "- Prefixes: `REVIEW_REQUEST:`, `REVIEW_FEEDBACK:`, `APPROVED:` (final, never"
        " answered), `GATE:` (`@room GATE: <question>` asks a person).",
        "",
    ]
    return "\n".join(lines)


def room_files(
    *,
    project_name: str,
    room_name: str,
    agent_name: str,
    role: Role | None,
    custom_skill: str | None,
) -> dict[str, bytes]:
    """The files of a room agent's workspace, by path relative to it: ``CLAUDE.md``, the
    room-messaging skill and, when there is one, the role skill (the built-in role's,
    else ``custom_skill``)."""
    skill = role.skill if role is not None else custom_skill
    files = {
        "CLAUDE.md": room_claude_md(
            project_name, room_name, agent_name, role, role_skill=skill is not None
        ).encode(),
        ROOM_MESSAGING_SKILL_PATH: room_messaging_skill().encode(),
    }
    if skill is not None:
        files[ROLE_SKILL_PATH] = skill.encode()
    return files


def build_room_context(
    *,
    room_name: str,
    agent_name: str,
    role: Role | None,
    others: Sequence[tuple[str, str | None]],
    recent: Sequence[tuple[str, str]],
    repo: tuple[str, str] | None = None,
) -> str:
    """The first prompt of an agent joining a room: who it is, who else is there, the
    last messages and the protocol. ``others`` are (name, role or None), ``recent`` are
    (sender, body) oldest first (only the last ten are shown), ``repo`` is (url, branch)."""
    lines = [
        f'You have joined the room "{room_name}".',
        f"Your name in this room: {agent_name}",
    ]
    if role is not None:
        lines.append(f"Your role: {role.name}. Read {ROLE_SKILL_PATH} before you do anything.")
    if repo is not None:
        url, branch = repo
        lines.append(f"Repository: {url} (branch {branch})")
    lines.append("")
    if others:
        lines.append("Other participants:")
        lines += [
            f"- {name} ({other_role})" if other_role else f"- {name}" for name, other_role in others
        ]
    else:
        lines.append("No other participants yet.")
    lines += ["", "Recent conversation:"]
    conversation = [f"[{sender}]: {body}" for sender, body in recent[-RECENT_MESSAGES:]]
    lines += conversation or ["(no messages yet)"]
    lines += [
        "",
        "How to talk in this room:",
        "- To message everyone, end your reply with `@room <message>`.",
        "- To message one participant, end your reply with `@<name> <message>`.",
        "- Put the directive at the END of your reply, on its own line (the `@` first on the"
        " line); only the last directive counts, so send one message per turn.",
        "- A reply without a directive is silence: nothing is sent.",
        "- To ask a person for a decision, send `@room GATE: <question>` and wait.",
        "- No small talk: announce your presence once with `@room`, then wait until there is"
        " work for you.",
    ]
    return "\n".join(lines)

"""Roles, the room agent's workspace files and its first prompt."""

from __future__ import annotations

import pytest

from orchestrator.rooms.parser import parse_room_message
from orchestrator.rooms.roles import (
    ROLES,
    Role,
    build_room_context,
    resolve_role,
    room_claude_md,
    room_files,
    room_messaging_skill,
)
from orchestrator.sessions.actor import DEFAULT_TOOLS

TEN = ("Read", "Write", "Edit", "Bash", "Glob", "Grep", "WebSearch", "TodoWrite",
       "AskUserQuestion", "Skill")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("coder", "coder"),
        ("Developer", "coder"),
        ("  PROGRAMMER ", "coder"),
        ("engineer", "coder"),
        ("reviewer", "reviewer"),
        ("Code Reviewer", "reviewer"),
        ("pr  reviewer", "reviewer"),
        ("ui-designer", "ui-designer"),
        ("UI Designer", "ui-designer"),
        ("frontend designer\n", "ui-designer"),
    ],
)
def test_aliases(text: str, name: str) -> None:
    role = resolve_role(text)
    assert role is not None
    assert role.name == name
    assert role is ROLES[name]


@pytest.mark.parametrize("text", [None, "", "  ", "designer", "ui_designer", "code-reviewer", "qa"])
def test_unknown_roles(text: str | None) -> None:
    assert resolve_role(text) is None


def test_tools() -> None:
    assert DEFAULT_TOOLS == TEN
    assert ROLES["coder"].tools == TEN
    assert ROLES["ui-designer"].tools == TEN
    assert ROLES["reviewer"].tools == (
        "Read", "Bash", "Glob", "Grep", "WebSearch", "TodoWrite", "AskUserQuestion", "Skill"
    )  # fmt: skip
    assert set(ROLES) == {"coder", "reviewer", "ui-designer"}


def test_skills_are_packaged_and_describe_the_protocol() -> None:
    for role in ROLES.values():
        assert role.skill.startswith("---\nname: role\n")
        assert f"# Role: {role.name}" in role.skill
    assert "REVIEW_REQUEST:" in ROLES["coder"].skill
    assert "APPROVED:" in ROLES["coder"].skill
    assert "REVIEW_FEEDBACK:" in ROLES["reviewer"].skill
    assert "never modify" in ROLES["reviewer"].skill
    assert "AskUserQuestion" in ROLES["ui-designer"].skill
    skill = room_messaging_skill()
    assert skill.startswith("---\nname: room-messaging\n")
    for word in ("Message from <name>:", "`@room <message>`", "`@<name> <message>`",
                 "REVIEW_REQUEST:", "REVIEW_FEEDBACK:", "APPROVED:", "GATE:"):  # fmt: skip
        assert word in skill


def test_room_files_for_a_builtin_role() -> None:
    files = room_files(
        project_name="room-coder-fox-1234abcd",
        room_name="Team",
        agent_name="coder-fox",
        role=ROLES["coder"],
        custom_skill="ignored",
    )
    assert set(files) == {
        "CLAUDE.md",
        ".claude/skills/room-messaging/SKILL.md",
        ".claude/skills/role/SKILL.md",
    }
    assert files[".claude/skills/role/SKILL.md"] == ROLES["coder"].skill.encode()
    assert files[".claude/skills/room-messaging/SKILL.md"] == room_messaging_skill().encode()
    claude = files["CLAUDE.md"].decode()
    assert claude.startswith("# room-coder-fox-1234abcd\n")
    assert "## Room agent workspace" in claude
    assert "## Room Messaging" in claude
    assert "`coder-fox`, the coder," in claude
    assert "`Team`" in claude
    assert ".claude/skills/role/SKILL.md" in claude


def test_room_files_with_a_custom_skill_or_none() -> None:
    custom = room_files(
        project_name="p", room_name="r", agent_name="a", role=None, custom_skill="# Tester\n"
    )
    assert custom[".claude/skills/role/SKILL.md"] == b"# Tester\n"
    assert ".claude/skills/role/SKILL.md" in custom["CLAUDE.md"].decode()
    bare = room_files(project_name="p", room_name="r", agent_name="a", role=None, custom_skill=None)
    assert set(bare) == {"CLAUDE.md", ".claude/skills/room-messaging/SKILL.md"}
    assert ".claude/skills/role/SKILL.md" not in bare["CLAUDE.md"].decode()
    assert bare["CLAUDE.md"].decode() == room_claude_md("p", "r", "a", None)


def test_room_context() -> None:
    recent = [("alice", f"message {i}") for i in range(12)]
    text = build_room_context(
        room_name="Team",
        agent_name="reviewer-owl",
        role=ROLES["reviewer"],
        others=[("coder-fox", "coder"), ("alice", None)],
        recent=recent,
        repo=("https://github.com/acme/app", "main"),
    )
    lines = text.splitlines()
    assert lines[0] == 'You have joined the room "Team".'
    assert "Your name in this room: reviewer-owl" in lines
    assert "Your role: reviewer. Read .claude/skills/role/SKILL.md before you do anything." in lines
    assert "Repository: https://github.com/acme/app (branch main)" in lines
    assert lines[lines.index("Other participants:") + 1 :][:2] == ["- coder-fox (coder)", "- alice"]
    start = lines.index("Recent conversation:") + 1
    assert lines[start : start + 11] == [f"[alice]: message {i}" for i in range(2, 12)] + [""]
    assert "No other participants yet." not in text
    for reminder in ("`@room <message>`", "`@<name> <message>`", "END of your reply",
                     "own line", "without a directive is silence", "`@room GATE: <question>`",
                     "No small talk"):  # fmt: skip
        assert reminder in text
    # The reminders are not directives themselves: the prompt sends nothing if echoed.
    assert parse_room_message(text, ["coder-fox", "alice"]) is None


def test_room_context_alone_without_role_or_repo() -> None:
    text = build_room_context(room_name="R", agent_name="a", role=None, others=[], recent=[])
    assert "No other participants yet." in text
    assert "Your role" not in text
    assert "Repository" not in text
    assert "Recent conversation:\n(no messages yet)\n" in text


def test_role_is_frozen() -> None:
    role = Role("x", ("Read",), "skill")
    assert role == Role("x", ("Read",), "skill")
    assert hash(role) == hash(Role("x", ("Read",), "skill"))

"""ToolPolicy: deny wins, production keeps to its tool list, safe tools run, the rest ask."""

from __future__ import annotations

import pytest

from orchestrator.gates import SAFE_TOOLS, ToolPolicy
from orchestrator.sessions.actor import DEFAULT_TOOLS, PRODUCTION_TOOLS


@pytest.mark.parametrize(
    ("tool", "decision"),
    [
        ("Read", "allow"),
        ("Grep", "allow"),
        ("Glob", "allow"),
        ("TodoWrite", "allow"),
        ("AskUserQuestion", "allow"),
        ("Bash", "ask"),
        ("Write", "ask"),
        ("Edit", "ask"),
        ("WebSearch", "deny"),  # not in the reference's production list
        ("mcp__github__create_issue", "deny"),
    ],
)
def test_production(tool: str, decision: str) -> None:
    policy = ToolPolicy.for_session(production=True, tools=PRODUCTION_TOOLS)
    assert policy.decide(tool) == decision


def test_development_asks_about_the_unknown() -> None:
    policy = ToolPolicy.for_session(production=False, tools=DEFAULT_TOOLS)
    assert policy.decide("WebSearch") == "ask"
    assert policy.decide("mcp__x__y") == "ask"
    assert policy.decide("Read") == "allow"


def test_session_lists() -> None:
    policy = ToolPolicy.for_session(
        production=True, tools=PRODUCTION_TOOLS, allow={"Bash", "Read"}, deny={"Read"}
    )
    assert policy.decide("Read") == "deny"  # deny wins over allow
    assert policy.decide("Bash") == "allow"
    assert policy.decide("Grep") == "ask"  # no longer in the allowed set
    assert ToolPolicy(deny=frozenset({"Bash"})).decide("Bash") == "deny"
    assert ToolPolicy().decide("Bash") == "ask"
    assert "WebSearch" not in SAFE_TOOLS


def test_allow_all_still_honours_deny_and_only() -> None:
    policy = ToolPolicy(allow_all=True, deny=frozenset({"WebFetch"}))
    assert policy.decide("Bash") == "allow"
    assert policy.decide("Anything") == "allow"
    assert policy.decide("WebFetch") == "deny"
    assert ToolPolicy(allow_all=True, only=frozenset({"Read"})).decide("Bash") == "deny"

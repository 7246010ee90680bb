"""The stuck detector: each rule at its threshold, never on new content."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.rooms.stuck import StuckDetector, StuckPolicy, normalize_body

OFF = {"repeat": 0, "pingpong": 0, "stale_rounds": 0}


def detector(**policy: Any) -> StuckDetector:
    return StuckDetector(StuckPolicy(**{**OFF, **policy}))


def feed(found: StuckDetector, messages: list[tuple[str, str]]) -> list[str | None]:
    return [found.observe(sender, None, body) for sender, body in messages]


def test_repeat_triggers_at_its_threshold() -> None:
    found = detector(repeat=3)
    results = feed(found, [("alice", "fix it"), ("bob", "ok"), ("alice", " Fix  IT\n")])
    assert results == [None, None, None]
    assert found.observe("alice", "bob", "fix it") == "the same message repeated 3 times by alice"
    # Still stuck while it goes on; another sender's message does not count for alice.
    assert found.observe("alice", None, "fix it") is not None
    assert found.observe("bob", None, "fix it") is None


def test_repeat_needs_the_senders_last_messages_all_equal() -> None:
    found = detector(repeat=3)
    results = feed(found, [("alice", "a"), ("alice", "a"), ("alice", "b"), ("alice", "a")])
    assert results == [None, None, None, None]
    assert found.observe("alice", None, "a") is None
    assert found.observe("alice", None, "a") == "the same message repeated 3 times by alice"


def test_pingpong_triggers_at_its_threshold() -> None:
    found = detector(pingpong=2)
    results = feed(found, [("alice", "please fix"), ("bob", "done"), ("alice", "please fix")])
    assert results == [None, None, None]
    assert found.observe("bob", None, "done") == "alice and bob ping-pong the same two messages"


def test_pingpong_needs_two_alternating_senders_repeating_themselves() -> None:
    found = detector(pingpong=2)
    assert feed(found, [("alice", "x"), ("bob", "y"), ("alice", "x"), ("bob", "z")]) == [None] * 4
    found = detector(pingpong=2)
    assert feed(found, [("alice", "x"), ("bob", "y"), ("carol", "x"), ("bob", "y")]) == [None] * 4
    found = detector(pingpong=3)
    messages = [("alice", "x"), ("bob", "y")] * 3
    assert feed(found, messages) == [None] * 5 + ["alice and bob ping-pong the same two messages"]


def test_stale_triggers_at_its_threshold() -> None:
    found = detector(stale_rounds=3)
    assert feed(found, [("alice", "one"), ("bob", "two"), ("alice", "three")]) == [None] * 3
    assert feed(found, [("bob", "one"), ("alice", "TWO"), ("bob", "one")]) == [
        None,
        None,
        "no new content for 3 rounds",
    ]
    # New content starts the count again.
    assert found.observe("carol", None, "four") is None
    assert feed(found, [("a", "one"), ("b", "two")]) == [None, None]
    assert found.observe("c", None, "three") == "no new content for 3 rounds"


def test_the_default_policy() -> None:
    policy = StuckPolicy()
    assert (policy.repeat, policy.pingpong, policy.stale_rounds, policy.action) == (
        3,
        2,
        6,
        "close",
    )
    found = StuckDetector(policy)
    assert feed(found, [("alice", "a"), ("bob", "b"), ("alice", "a")]) == [None] * 3
    assert found.observe("bob", None, "b") == "alice and bob ping-pong the same two messages"


def test_varied_content_never_triggers() -> None:
    found = StuckDetector(StuckPolicy(repeat=2, pingpong=2, stale_rounds=1))
    senders = ["alice", "bob"]
    assert [found.observe(senders[i % 2], None, f"step {i}") for i in range(200)] == [None] * 200


def test_disabled_rules_never_trigger() -> None:
    found = detector()
    assert feed(found, [("alice", "same"), ("bob", "same")] * 20) == [None] * 40


def test_reset_forgets_the_windows_but_not_the_seen_bodies() -> None:
    found = detector(repeat=2, stale_rounds=2)
    assert feed(found, [("alice", "a"), ("bob", "b")]) == [None, None]
    assert found.observe("alice", None, "a") == "the same message repeated 2 times by alice"
    found.reset()
    # The repeat window is empty again: one "b" by bob is not yet a repeat, and the
    # stale count starts over, but "b" was seen before so it counts as stale.
    assert found.observe("bob", None, "b") is None
    assert found.observe("carol", None, "a") == "no new content for 2 rounds"


def test_normalize_body() -> None:
    assert normalize_body("  Hello\n\tWORLD  ") == "hello world"


def test_from_json() -> None:
    assert StuckPolicy.from_json(None) == StuckPolicy()
    assert StuckPolicy.from_json({}) == StuckPolicy()
    policy = StuckPolicy.from_json(
        {"repeat": 0, "pingpong": 4, "staleRounds": 10, "action": "gate"}
    )
    assert policy == StuckPolicy(repeat=0, pingpong=4, stale_rounds=10, action="gate")
    assert policy.to_json() == {"repeat": 0, "pingpong": 4, "staleRounds": 10, "action": "gate"}
    assert StuckPolicy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "the stuck policy must be a JSON object"),
        ("close", "the stuck policy must be a JSON object"),
        ({"repeat": "3"}, "repeat must be an integer"),
        ({"pingpong": 2.0}, "pingpong must be an integer"),
        ({"staleRounds": True}, "staleRounds must be an integer"),
        ({"repeat": -1}, "repeat must be between 0 and 1000"),
        ({"staleRounds": 1001}, "staleRounds must be between 0 and 1000"),
        ({"repeat": 1}, "repeat must be 0 (off) or at least 2"),
        ({"pingpong": 1}, "pingpong must be 0 (off) or at least 2"),
        ({"stale_rounds": 3}, "unknown stuck policy keys: stale_rounds"),
        ({"action": "stop"}, "action must be one of close, gate"),
        ({"action": None}, "action must be one of close, gate"),
    ],
)
def test_from_json_rejects_bad_input(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        StuckPolicy.from_json(value)


def test_the_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match="stale_rounds must be between 0 and 1000"):
        StuckPolicy(stale_rounds=5000)


def test_stale_rounds_of_one_flags_any_repeat_in_the_room() -> None:
    found = detector(stale_rounds=1)
    assert feed(found, [("alice", "a"), ("bob", "b"), ("carol", "a")]) == [
        None,
        None,
        "no new content for 1 round",
    ]


@given(
    st.lists(st.text(max_size=20), unique_by=normalize_body, max_size=60),
    st.lists(st.sampled_from(["alice", "bob", "carol"]), min_size=60, max_size=60),
    st.integers(min_value=2, max_value=4),
    st.integers(min_value=2, max_value=3),
    st.integers(min_value=1, max_value=6),
)
def test_all_distinct_bodies_are_never_stuck(
    bodies: list[str], senders: list[str], repeat: int, pingpong: int, stale: int
) -> None:
    found = StuckDetector(StuckPolicy(repeat=repeat, pingpong=pingpong, stale_rounds=stale))
    for sender, body in zip(senders, bodies, strict=False):
        assert found.observe(sender, None, body) is None

"""What a resumed agent is told of a gate it asked before the server restarted, once a
person answers it (the Docker test of a ``kill -9`` runs it end to end)."""

from __future__ import annotations

from orchestrator.sessions.actor import _input_key, carry_over

BASH = {"tool_name": "Bash", "tool_input": {"command": "echo hi"}, "tool_use_id": "t1"}


def test_an_allowed_call_is_made_again_once_without_asking() -> None:
    carried = carry_over("tool_permission", BASH, {"behavior": "allow"})
    assert carried is not None
    assert carried.allow == ("Bash", _input_key({"command": "echo hi"}))
    assert "A person has now allowed it" in carried.prompt
    assert '{"command": "echo hi"}' in carried.prompt


def test_a_denied_call_is_not_made_and_the_reason_is_told() -> None:
    carried = carry_over("tool_permission", BASH, {"behavior": "deny", "message": "not now"})
    assert carried is not None
    assert carried.allow is None
    assert "denied it (not now): do not make that call" in carried.prompt


def test_the_answers_to_questions_are_told() -> None:
    request = {"toolUseId": "q1", "questions": [{"question": "Which color?"}]}
    carried = carry_over("ask_user_question", request, {"answers": {"Which color?": "red"}})
    assert carried is not None
    assert carried.allow is None
    assert carried.prompt.endswith("- Which color?: red")


def test_odd_records_give_a_prompt_not_an_error() -> None:
    carried = carry_over("tool_permission", {"tool_input": [1]}, {"behavior": "allow"})
    assert carried is not None
    assert carried.allow == ("tool", "{}")
    carried = carry_over("tool_permission", BASH, "allow")  # not an answer: fails closed
    assert carried is not None
    assert carried.allow is None
    carried = carry_over("ask_user_question", {}, {"answers": 3})
    assert carried is not None
    assert carried.prompt.endswith("(no answer)")


def test_other_gates_are_not_carried_over() -> None:
    assert carry_over("infra_config", {}, {"mode": "local"}) is None
    assert carry_over("outbound_message", {}, {"action": "approve"}) is None


def test_the_input_key_does_not_depend_on_the_order_of_keys() -> None:
    assert _input_key({"a": 1, "b": [2]}) == _input_key({"b": [2], "a": 1})
    assert _input_key({"a": 1}) != _input_key({"a": "1"})

"""The Claude Code message -> event mapping and the cost meter, on the CLI's real output
(samples captured from Claude Code 2.1.331, parsed by claude-agent-sdk's own parser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from claude_agent_sdk import AssistantMessage, TextBlock, ToolUseBlock
from claude_agent_sdk._internal.message_parser import parse_message

from orchestrator import events as ev
from orchestrator.bridges.claude_events import ClaudeEventMapper, CostMeter, price_for

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"  # copies of real CLI output


def sample(name: str) -> list[object]:
    lines = (SAMPLES / name).read_text().splitlines()
    return [parse_message(json.loads(line)) for line in lines if line.strip()]


def mapped(name: str) -> list[ev.Event]:
    mapper = ClaudeEventMapper()
    return [event for message in sample(name) for event in mapper.map(message)]


def test_a_tool_use_run_becomes_the_reference_events() -> None:
    events = mapped("claude-code-2.1.331-tool-use.jsonl")
    kinds = [e.type for e in events]
    assert kinds[0] == "session_start"
    assert kinds[-1] == "session_end"
    pre = next(e for e in events if isinstance(e, ev.PreToolUse))
    post = next(e for e in events if isinstance(e, ev.PostToolUse))
    assert pre.tool_name == "Bash"
    assert post.tool_use_id == pre.tool_use_id
    assert post.tool_name == "Bash"
    end = events[-1]
    assert isinstance(end, ev.SessionEnd)
    assert end.success
    assert end.cost_usd is not None
    assert end.cost_usd > 0  # total_cost_usd, which the reference never read


def test_a_denied_tool_is_a_post_tool_use_with_an_error() -> None:
    events = mapped("claude-code-2.1.331-permission-denied.jsonl")
    failed = [e for e in events if isinstance(e, ev.PostToolUse) and e.error is not None]
    assert failed
    assert failed[0].error == failed[0].tool_response


def test_todo_write_and_ask_user_question_have_their_own_events() -> None:
    mapper = ClaudeEventMapper(agent="coder")
    message = AssistantMessage(
        content=[
            TextBlock("thinking aloud"),
            ToolUseBlock("t1", "TodoWrite", {"todos": [{"id": "1", "content": "x"}]}),
            ToolUseBlock(
                "t2",
                "AskUserQuestion",
                {"questions": [{"question": "Which?", "options": [{"label": "A"}]}]},
            ),
            TextBlock("   "),
        ],
        model="claude-sonnet-4-6",
    )
    events = mapper.map(message)
    assert [e.type for e in events] == ["assistant_message", "todo_write", "ask_user_question"]
    assert isinstance(events[0], ev.AssistantMessage)
    assert events[0].agent == "coder"
    ask = events[2]
    assert isinstance(ask, ev.AskUserQuestion)
    assert ask.question == "Which?"
    assert ask.options == [{"label": "A"}]


def test_the_meter_counts_each_message_once_and_reconciles_with_the_cli() -> None:
    meter = CostMeter()
    usage = {"input_tokens": 1_000_000, "output_tokens": 100_000}
    first = meter.on_usage("m1", "claude-sonnet-4-6", usage)
    assert first == pytest.approx(3.0 + 1.5)
    assert meter.on_usage("m1", "claude-sonnet-4-6", usage) == 0.0  # same message again
    assert meter.total == pytest.approx(4.5)
    # the CLI says the turn cost 4.0 (cumulative over its process)
    assert meter.on_result(4.0) == pytest.approx(4.0)
    assert meter.total == pytest.approx(4.0)
    meter.on_usage("m2", "claude-sonnet-4-6", {"output_tokens": 1_000_000})
    assert meter.on_result(20.0) == pytest.approx(16.0)  # cumulative 20 - 4 before
    assert meter.total == pytest.approx(20.0)
    meter.new_process()
    assert meter.on_result(1.0) == pytest.approx(1.0)
    assert meter.total == pytest.approx(21.0)


def test_prices_by_family() -> None:
    assert price_for("claude-opus-4-1-20250805").input == 15.0
    assert price_for("claude-opus-4-5").input == 5.0
    assert price_for("claude-haiku-4-5").output == 5.0
    assert price_for("something-new").input == 3.0


def test_events_round_trip_through_their_stream_form() -> None:
    for event in mapped("claude-code-2.1.331-tool-use.jsonl"):
        back, source = ev.event_from_json(json.loads(json.dumps(event.to_json("agent"))))
        assert back == event
        assert source == "agent"


def test_a_long_session_remembers_a_bounded_amount() -> None:
    # 5,000 tool calls, each with its result, and 5,000 messages metered: what the mapper
    # and the meter keep does not grow with the session
    mapper = ClaudeEventMapper()
    meter = CostMeter()
    usage = {"input_tokens": 1_000_000}
    for index in range(5_000):
        call = {
            "type": "assistant",
            "message": {
                "model": "claude-sonnet-4-6",
                "id": f"m{index}",
                "content": [{"type": "tool_use", "id": f"t{index}", "name": "Bash", "input": {}}],
            },
        }
        result = {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": f"t{index}"}]},
        }
        assert [e.type for e in mapper.map(parse_message(call))] == ["pre_tool_use"]
        [post] = mapper.map(parse_message(result))
        assert isinstance(post, ev.PostToolUse)
        assert post.tool_name == "Bash"  # still named
        assert meter.on_usage(f"m{index}", "claude-sonnet-4-6", usage) == 3.0
        assert meter.on_usage(f"m{index}", "claude-sonnet-4-6", usage) == 0.0  # repeated
    assert meter.total == 15_000.0
    assert len(mapper._tools) == 0
    assert len(meter._seen) <= 256
    # results that never come are forgotten beyond a bound
    for index in range(3_000):
        mapper.map(
            parse_message(
                {
                    "type": "assistant",
                    "message": {
                        "model": "m",
                        "content": [
                            {"type": "tool_use", "id": f"u{index}", "name": "X", "input": {}}
                        ],
                    },
                }
            )
        )
    assert len(mapper._tools) <= 1024

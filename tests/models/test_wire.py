"""The Anthropic dialect without a server: the event stream read back by a client's
rules, side requests told from main turns (bodies shaped like Claude Code's), and
scripts from and to JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.models import (
    AgentScript,
    Script,
    ScriptError,
    SseEvent,
    Text,
    ToolCall,
    Turn,
    Usage,
    accumulate,
    encode_sse,
    example_of_schema,
    parse_sse,
    side_reason,
    stream_events,
)
from orchestrator.models._anthropic import message_body, side_turn, tool_ids

TURN = Turn(
    blocks=(
        Text("Let me write the file, then read it back."),
        ToolCall("Bash", {"command": "echo hello > f.txt", "description": "write"}),
        ToolCall("Read", {"file_path": "/tmp/f.txt"}, id="toolu_given"),
    ),
    usage=Usage(input_tokens=1234, output_tokens=56, cache_read_input_tokens=7),
)


def roundtrip(turn: Turn, chunk_size: int = 8) -> tuple[list[SseEvent], dict[str, Any]]:
    ids = tool_ids(turn, 3)
    events = stream_events(turn, message_id="msg_1", model="m", ids=ids, chunk_size=chunk_size)
    wire = b"".join(encode_sse(e) for e in events)
    parsed = parse_sse(wire)
    return parsed, accumulate(parsed)


def test_stream_reads_back_as_the_json_message() -> None:
    events, message = roundtrip(TURN)
    assert message == message_body(TURN, message_id="msg_1", model="m", ids=tool_ids(TURN, 3))
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "tool_use"]
    assert message["content"][1]["id"] == "toolu_000003_00"
    assert message["content"][2]["id"] == "toolu_given"
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 1234,
        "output_tokens": 56,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
    }
    names = [e.event for e in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    # message_start carries the input tokens; the final count comes in message_delta.
    assert events[0].data["message"]["usage"]["output_tokens"] == 1
    assert events[0].data["message"]["stop_reason"] is None
    deltas = [e.data["delta"] for e in events if e.event == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"text_delta", "input_json_delta"}
    assert all(len(d.get("text", d.get("partial_json", ""))) <= 8 for d in deltas)


def test_sse_framing_on_the_wire() -> None:
    event = SseEvent("ping", {"type": "ping"})
    assert encode_sse(event) == b'event: ping\ndata: {"type":"ping"}\n\n'
    text = ': comment\r\nevent: a\r\ndata: {"x":\r\ndata: 1}\r\nid: 7\r\n\r\ndata: {}\n\n'
    assert parse_sse(text) == [SseEvent("a", {"x": 1}), SseEvent("message", {})]
    with pytest.raises(ValueError, match=r"^event 'a': data is not a JSON object$"):
        parse_sse("event: a\ndata: [1]\n\n")


def test_accumulate_refuses_broken_streams() -> None:
    events = stream_events(TURN, message_id="m", model="m", ids=tool_ids(TURN, 1))
    with pytest.raises(ValueError, match=r"^the stream ended before message_stop$"):
        accumulate(events[:-1])
    with pytest.raises(ValueError, match=r"outside a message"):
        accumulate(events[2:])
    with pytest.raises(ValueError, match=r"^block index 1, expected 0$"):
        accumulate([*events[:2], *events[5:]])


def test_stop_reason_and_empty_text() -> None:
    assert Turn.text("x").effective_stop_reason == "end_turn"
    assert Turn.tool("Bash", {}).effective_stop_reason == "tool_use"
    assert Turn.text("x", stop_reason="max_tokens").effective_stop_reason == "max_tokens"
    _, message = roundtrip(Turn.text(""))
    assert message["content"] == [{"type": "text", "text": ""}]
    with pytest.raises(ValueError, match=r"^chunk_size must be >= 1, got 0$"):
        stream_events(TURN, message_id="m", model="m", ids=["a", "b"], chunk_size=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
blocks = st.one_of(
    st.builds(Text, st.text()),
    st.builds(ToolCall, st.text(min_size=1), st.dictionaries(st.text(), json_values, max_size=4)),
)


@given(st.lists(blocks, max_size=4), st.integers(1, 40))
def test_any_turn_survives_the_stream(content: list[Text | ToolCall], chunk_size: int) -> None:
    turn = Turn(blocks=tuple(content))
    _, message = roundtrip(turn, chunk_size)
    assert message == message_body(turn, message_id="msg_1", model="m", ids=tool_ids(turn, 3))


# -- side requests ---------------------------------------------------------------------
# Shapes of the bodies Claude Code 2.1.332 sent (system prompt and tools cut short).


def main_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "make f.txt"}]},
            {"role": "system", "content": "# Environment ..."},
        ],
        "system": [{"type": "text", "text": "You are a Claude agent"}],
        "tools": [{"name": "Bash", "description": "", "input_schema": {}}],
        "metadata": {"user_id": "{}"},
        "max_tokens": 128000,
        "thinking": {"type": "adaptive", "display": "updates"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "stream": True,
    }
    body.update(changes)
    return body


def rename_body() -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    return {
        "model": "claude-opus-5-5",
        "system": [{"type": "text", "text": "Generate a short kebab-case name"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "<conversation>"}]}],
        "tools": [],
        "metadata": {"user_id": "{}"},
        "max_tokens": 128000,
        "output_config": {"effort": "medium", "format": {"type": "json_schema", "schema": schema}},
        "stream": True,
    }


def compact_body() -> dict[str, Any]:
    last = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "hello"},
            {
                "type": "text",
                "text": "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.\n\n"
                "Your task is to create a detailed summary of the conversation so far, ...",
            },
        ],
    }
    return main_body(messages=[*main_body()["messages"], last])


def test_main_turns_are_not_side_requests() -> None:
    assert side_reason(main_body()) is None
    # --tools "": no tools, but thinking and context management are still sent.
    assert side_reason(main_body(tools=[])) is None
    # A tool result last, a system message after the user's: still the conversation.
    tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
    assert side_reason(main_body(messages=[*main_body()["messages"], tool_result])) is None


def test_side_requests_are_told_apart() -> None:
    assert side_reason(rename_body()) == "structured_output"
    assert side_reason(compact_body()) == "compaction"
    helper = {"model": "m", "max_tokens": 4096, "messages": main_body()["messages"]}
    assert side_reason(helper) == "tool_free_helper"
    assert side_reason(main_body(max_tokens=1)) == "small_max_tokens"
    assert side_reason(main_body(max_tokens=100), side_max_tokens=50) is None


def test_side_answers_fit_what_was_asked() -> None:
    named = side_turn(rename_body(), "structured_output", "OK.")
    assert named.blocks == (Text('{"name": "OK."}'),)
    summary = side_turn(compact_body(), "compaction", "Nothing yet.")
    assert isinstance(summary.blocks[0], Text)
    assert "<summary>\nNothing yet.\n</summary>" in summary.blocks[0].text
    assert side_turn(main_body(), "small_max_tokens", "OK.").blocks == (Text("OK."),)


def test_example_of_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
            "maybe": {"type": ["null", "boolean"]},
            "pick": {"anyOf": [{"const": 3}, {"type": "string"}]},
        },
    }
    assert example_of_schema(schema, "t") == {
        "title": "t",
        "n": 0,
        "tags": ["a", "a"],
        "maybe": False,
        "pick": 3,
    }


# -- scripts ---------------------------------------------------------------------------


def test_script_from_json() -> None:
    script = Script.from_json(
        {
            "agents": {
                "agent-a": {
                    "turns": [
                        {
                            "content": [
                                {"type": "text", "text": "hi"},
                                {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}},
                            ],
                            "usage": {"input_tokens": 5, "output_tokens": 6},
                            "delay": 0.5,
                        },
                        "bye",
                        {"error": {"status": 529, "type": "overloaded_error"}},
                    ],
                    "final": "over",
                    "subagents": ["sub"],
                }
            },
            "default": ["hello"],
            "final_text": "F",
            "side_text": "S",
        }
    )
    a = script.for_agent("agent-a")
    assert a.turns[0] == Turn(
        blocks=(Text("hi"), ToolCall("Bash", {"command": "ls"})),
        usage=Usage(input_tokens=5, output_tokens=6),
        delay=0.5,
    )
    assert a.turns[1] == Turn.text("bye")
    assert a.turns[2].error is not None
    assert a.turns[2].error.status == 529
    assert script.final_turn("agent-a") == Turn.text("over")
    assert script.for_agent("agent-a", subagent=True) == AgentScript.of("sub")
    assert script.final_turn("agent-a", subagent=True) == Turn.text("F")
    assert script.for_agent("someone else") == AgentScript.of("hello")
    assert script.for_agent(None) == AgentScript.of("hello")
    assert Script.from_json(json.loads(json.dumps(script.to_json()))) == script


def test_script_load(tmp_path: Any) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(Script.single("a", "b").to_json()))
    assert Script.load(path) == Script.single("a", "b")
    path.write_text("{")
    with pytest.raises(ScriptError, match=r"not JSON"):
        Script.load(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"^script: expected an object, got list$"),
        ({"agentz": {}}, r"^script: unknown keys \['agentz'\]"),
        ({"default": {"turns": "x"}}, r"^script.default.turns: expected a list$"),
        (
            {"agents": {"a": [{"content": [{"type": "image"}]}]}},
            r"^script.agents\['a'\].turns\[0\].content\[0\].type: expected 'text' or 'tool_use', "
            r"got 'image'$",
        ),
        (
            {"default": [{"content": [{"type": "tool_use", "name": ""}]}]},
            r"^script.default.turns\[0\].content\[0\].name: expected a non-empty string$",
        ),
        (
            {"default": [{"usage": {"input_tokens": -1}}]},
            r"^script.default.turns\[0\]: input_tokens must be >= 0, got -1$",
        ),
        (
            {"default": [{"stop_reason": "later"}]},
            r"^script.default.turns\[0\]: stop_reason must be one of \['end_turn', .*got 'later'$",
        ),
        ({"side_text": 3}, r"^script.side_text: expected a string$"),
    ],
)
def test_bad_scripts_name_the_place(data: object, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        Script.from_json(data)

"""Codex app-server notifications -> session events, on recorded transcripts of the real
CLI (``tests/data/codex``) and on arbitrary JSON."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import events as ev
from orchestrator.bridges.codex_events import CodexEventMapper, unwrap_shell

from ..event_support import fits

DATA = Path(__file__).resolve().parents[1] / "data" / "codex"


def transcript(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def mapped(name: str, mapper: CodexEventMapper | None = None) -> list[ev.Event]:
    """What the mapper makes of a transcript's server messages: the thread from the
    answer to thread/start or thread/resume, every notification mapped."""
    mapper = mapper or CodexEventMapper(agent="codex-a")
    out: list[ev.Event] = []
    for entry in transcript(name):
        message = entry["message"]
        if entry["from"] != "server":
            continue
        result = message.get("result")
        if isinstance(result, dict) and "thread" in result:
            mapper.on_thread(result["thread"])
        elif "method" in message and "id" not in message:
            out += mapper.map(message)
    return out


def kinds(events: list[ev.Event]) -> list[str]:
    return [e.type for e in events]


def test_a_tool_call_and_a_second_turn() -> None:
    mapper = CodexEventMapper(agent="codex-a")
    events = mapped("tool-call.jsonl", mapper)
    assert kinds(events) == [
        "session_start",
        "pre_tool_use",
        "post_tool_use",
        "pre_tool_use",
        "post_tool_use",
        "assistant_message",
        "session_end",
        "session_start",
        "assistant_message",
        "session_end",
    ]
    start = events[0]
    assert isinstance(start, ev.SessionStart)
    assert start.session_id == mapper.thread_id
    assert start.cwd == "/workspace"
    assert start.agent == "codex-a"
    pre, post, pre_fail, post_fail = events[1:5]
    assert isinstance(pre, ev.PreToolUse)
    assert isinstance(post, ev.PostToolUse)
    assert pre.tool_name == "Bash"
    assert pre.tool_input == {"command": "echo hello > f.txt && cat f.txt"}  # unwrapped
    assert (post.tool_use_id, post.tool_name, post.tool_response, post.error) == (
        pre.tool_use_id,
        "Bash",
        "hello\n",
        None,
    )
    assert isinstance(pre_fail, ev.PreToolUse)
    assert isinstance(post_fail, ev.PostToolUse)
    assert pre_fail.tool_input == {"command": "echo oops >&2; exit 3"}
    assert post_fail.error == "oops\n"  # exit code 3: the output is the error
    message = events[5]
    assert isinstance(message, ev.AssistantMessage)
    assert (message.text, message.agent) == ("Done: f.txt", "codex-a")
    end = events[6]
    assert isinstance(end, ev.SessionEnd)
    assert end.success
    assert end.num_turns == 1
    assert end.cost_usd is None  # the bridge's to fill in
    assert end.duration_ms is not None
    assert end.duration_ms > 0
    second = events[8]
    assert isinstance(second, ev.AssistantMessage)
    assert second.text == "Second answer."
    assert mapper.outcome is not None
    assert mapper.outcome.success


def test_a_resumed_thread_starts_its_turns_with_the_same_session_id() -> None:
    first = mapped("tool-call.jsonl")[0]
    assert isinstance(first, ev.SessionStart)
    events = mapped("resume.jsonl")
    assert kinds(events) == ["session_start", "assistant_message", "session_end"]
    start = events[0]
    assert isinstance(start, ev.SessionStart)
    assert start.session_id == first.session_id
    assert not any(
        e["message"].get("method") == "thread/started" for e in transcript("resume.jsonl")
    )


def test_a_declined_command_and_an_accepted_file_change() -> None:
    events = mapped("approvals.jsonl")
    assert kinds(events) == [
        "session_start",
        "pre_tool_use",
        "post_tool_use",
        "pre_tool_use",
        "post_tool_use",
        "assistant_message",
        "session_end",
    ]
    bash, declined, edit, edited = events[1:5]
    assert isinstance(bash, ev.PreToolUse)
    assert isinstance(declined, ev.PostToolUse)
    assert bash.tool_input == {"command": "touch declined.txt"}
    assert declined.error == "the command was declined"
    assert isinstance(edit, ev.PreToolUse)
    assert isinstance(edited, ev.PostToolUse)
    assert edit.tool_name == "Edit"
    assert edit.tool_input == {
        "changes": [{"path": "/workspace/patched.txt", "kind": "add", "diff": "patched\n"}]
    }
    assert edited.tool_name == "Edit"
    assert edited.error is None
    assert edited.tool_response == "add /workspace/patched.txt"


def test_the_approval_requests_name_items_the_mapper_knows() -> None:
    mapper = CodexEventMapper()
    asked: list[tuple[str, dict[str, Any]] | None] = []
    for entry in transcript("approvals.jsonl"):
        message = entry["message"]
        if entry["from"] != "server":
            continue
        if "method" in message and "id" in message:  # a request of the server's
            asked.append(mapper.tool_input(message["params"]["itemId"]))
        elif "method" in message:
            mapper.map(message)
    assert asked == [
        ("Bash", {"command": "touch declined.txt"}),
        (
            "Edit",
            {"changes": [{"path": "/workspace/patched.txt", "kind": "add", "diff": "patched\n"}]},
        ),
    ]
    assert mapper.item("anything") is None


def test_a_failed_turn_logs_its_error_once_and_ends_unsuccessfully() -> None:
    mapper = CodexEventMapper()
    events = mapped("failure.jsonl", mapper)
    assert kinds(events) == [
        "session_start",
        "log",
        "session_end",
        "session_start",
        "assistant_message",
        "session_end",
    ]
    log, end = events[1], events[2]
    assert isinstance(log, ev.Log)
    assert (log.level, log.message) == ("error", "scripted failure")
    assert isinstance(end, ev.SessionEnd)
    assert not end.success


def test_an_interrupted_turn_ends_unsuccessfully() -> None:
    mapper = CodexEventMapper()
    events: list[ev.Event] = []
    statuses = []
    for entry in transcript("interrupt.jsonl"):
        message = entry["message"]
        if entry["from"] == "server" and "method" in message and "id" not in message:
            events += mapper.map(message)
            if message["method"] == "turn/completed":
                assert mapper.outcome is not None
                statuses.append(mapper.outcome.status)
    assert statuses == ["interrupted", "completed"]
    ends = [e for e in events if isinstance(e, ev.SessionEnd)]
    assert [e.success for e in ends] == [False, True]


def test_unwrap_shell() -> None:
    assert unwrap_shell("/bin/bash -lc 'echo hi && ls'") == "echo hi && ls"
    assert unwrap_shell("bash -c 'a b'") == "a b"
    assert unwrap_shell("/usr/bin/zsh -lc ls") == "ls"
    assert unwrap_shell("ls -la") == "ls -la"
    assert unwrap_shell("python -c 'print(1)'") == "python -c 'print(1)'"
    assert unwrap_shell("/bin/bash -lc 'unterminated") == "/bin/bash -lc 'unterminated"


def notify(method: str, **params: Any) -> dict[str, Any]:
    return {"method": method, "params": params}


def test_other_items_plans_and_warnings() -> None:
    mapper = CodexEventMapper(agent="x")
    mapper.on_thread({"id": "th", "cwd": "/w"})
    assert mapper.map(notify("turn/started", threadId="other", turn={"id": "t0"})) == []
    [start] = mapper.map(notify("turn/started", threadId="th", turn={"id": "t1"}))
    assert isinstance(start, ev.SessionStart)
    assert start.cwd == "/w"
    [todo] = mapper.map(
        notify(
            "turn/plan/updated",
            threadId="th",
            turnId="t1",
            plan=[
                {"step": "read", "status": "completed"},
                {"step": "write", "status": "inProgress"},
                {"step": "test", "status": "pending"},
                {"nothing": 1},
            ],
        )
    )
    assert isinstance(todo, ev.TodoWrite)
    assert todo.tool_use_id == "plan-t1"
    assert todo.todos == [
        {"id": "1", "content": "read", "status": "completed"},
        {"id": "2", "content": "write", "status": "in_progress"},
        {"id": "3", "content": "test", "status": "pending"},
    ]
    mcp = {"type": "mcpToolCall", "id": "m1", "server": "docs", "tool": "find"}
    [pre] = mapper.map(notify("item/started", item={**mcp, "arguments": {"q": "x"}}))
    assert isinstance(pre, ev.PreToolUse)
    assert (pre.tool_name, pre.tool_input) == ("mcp__docs__find", {"q": "x"})
    [post] = mapper.map(
        notify(
            "item/completed",
            item={**mcp, "status": "failed", "error": {"message": "no such doc"}, "result": None},
        )
    )
    assert isinstance(post, ev.PostToolUse)
    assert post.error == "no such doc"
    # completed without a start: announced first
    dynamic = {"type": "dynamicToolCall", "id": "d1", "tool": "lookup", "arguments": [1, 2]}
    pre, post = mapper.map(
        notify(
            "item/completed",
            item={
                **dynamic,
                "success": True,
                "contentItems": [{"type": "inputText", "text": "ok"}],
            },
        )
    )
    assert isinstance(pre, ev.PreToolUse)
    assert pre.tool_input == {"arguments": [1, 2]}
    assert isinstance(post, ev.PostToolUse)
    assert (post.tool_response, post.error) == ("ok", None)
    [search] = mapper.map(
        notify("item/started", item={"type": "webSearch", "id": "w1", "query": "trio"})
    )
    assert isinstance(search, ev.PreToolUse)
    assert search.tool_input == {"query": "trio"}
    assert mapper.map(notify("item/completed", item={"type": "reasoning", "id": "r"})) == []
    assert mapper.map(notify("item/completed", item={"type": "agentMessage", "text": " "})) == []
    [plan] = mapper.map(notify("item/completed", item={"type": "plan", "id": "p", "text": "1."}))
    assert isinstance(plan, ev.Log)
    assert plan.level == "plan"
    [warning] = mapper.map(notify("warning", threadId="th", message="careful"))
    assert isinstance(warning, ev.Log)
    assert warning.level == "verbose"
    [config] = mapper.map(notify("configWarning", summary="bad key", details="x.y"))
    assert isinstance(config, ev.Log)
    assert config.message == "bad key: x.y"
    [retry] = mapper.map(
        notify("error", threadId="th", turnId="t1", willRetry=True, error={"message": "slow"})
    )
    assert isinstance(retry, ev.Log)
    assert retry.message == "slow (retrying)"
    # a retried error does not count as the turn's: the turn's own error is logged
    log, end = mapper.map(
        notify(
            "turn/completed",
            threadId="th",
            turn={"id": "t1", "status": "failed", "error": {"message": "gave up"}},
        )
    )
    assert isinstance(log, ev.Log)
    assert log.message == "gave up"
    assert isinstance(end, ev.SessionEnd)
    assert not end.success
    assert end.duration_ms is None
    assert mapper.map(notify("turn/completed", threadId="other", turn={"id": "t9"})) == []
    assert mapper.map(notify("thread/tokenUsage/updated", threadId="th")) == []


# -- arbitrary input ----------------------------------------------------------------------

METHODS = [
    "thread/started",
    "turn/started",
    "turn/completed",
    "turn/plan/updated",
    "item/started",
    "item/completed",
    "error",
    "warning",
    "configWarning",
    "thread/tokenUsage/updated",
    "item/agentMessage/delta",
]
KEYS = [
    "thread",
    "threadId",
    "turn",
    "turnId",
    "item",
    "id",
    "type",
    "status",
    "error",
    "message",
    "willRetry",
    "plan",
    "step",
    "command",
    "aggregatedOutput",
    "exitCode",
    "changes",
    "path",
    "kind",
    "diff",
    "move_path",
    "server",
    "tool",
    "arguments",
    "result",
    "content",
    "contentItems",
    "success",
    "text",
    "query",
    "durationMs",
    "cwd",
    "summary",
    "details",
    "additionalDetails",
]
VALUES = [
    "th",
    "t1",
    "commandExecution",
    "fileChange",
    "mcpToolCall",
    "dynamicToolCall",
    "webSearch",
    "agentMessage",
    "plan",
    "reasoning",
    "completed",
    "failed",
    "declined",
    "interrupted",
    "inProgress",
    "add",
    "update",
    "/bin/bash -lc 'x'",
    '{"error": {"message": "m"}}',
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(VALUES)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=40,
)
messages = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"method": st.sampled_from(METHODS), "params": json_values},
    ),
    st.fixed_dictionaries(
        {
            "method": st.sampled_from(METHODS),
            "params": st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
        }
    ),
)


def well_formed(event: ev.Event) -> bool:
    hints = typing.get_type_hints(type(event))
    for field in attrs.fields(type(event)):
        if not fits(getattr(event, field.name), hints[field.name]):
            return False
    data = json.loads(json.dumps(event.to_json("agent")))
    again, source = ev.event_from_json(data)
    return type(again) is type(event) and source == "agent"


@settings(max_examples=400, deadline=None)
@given(st.lists(messages, max_size=12))
def test_arbitrary_json_never_breaks_the_mapper(feed: list[object]) -> None:
    mapper = CodexEventMapper(agent="a")
    mapper.on_thread({"id": "th"})
    for message in feed:
        for event in mapper.map(message):
            assert well_formed(event), event
        mapper.tool_input("t1")
    mapper.on_thread(feed[0] if feed else None)


def test_well_formed_catches_a_wrong_type() -> None:
    assert well_formed(ev.PreToolUse(tool_name="Bash", tool_use_id="1", tool_input={}))
    assert not well_formed(
        ev.PreToolUse(tool_name="Bash", tool_use_id=1, tool_input={})  # type: ignore[arg-type]
    )

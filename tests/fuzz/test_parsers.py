"""hypothesis over the parsers of what agents and hooks say (issue 9, section 4): no
crash, no actor death.

- Claude Code: its stdout lines (``SandboxTransport._parse`` through ``_JsonLines``, any
  bytes, any split: only ``SandboxError`` escapes), and its messages, built from JSON by
  the SDK's own ``parse_message``, through the bridge's ``_relay`` (the event mapper and
  the cost meter);
- Codex: the JSON-RPC line reader and dispatch, and the event mapper (and the agent's
  notification handler) on notifications with deep, huge, unicode and wrong-typed
  values, out of order;
- hooks: ``hook_to_event`` on any payload;
- actors: a real ``HostedSessionActor`` fed hook events, and a real ``RoomRouterActor``
  reading agent turns, stay alive and answering, and record every event.

Every event a parser makes must be well-formed (each field of its declared type), come
back the same from ``event_from_json(event.to_json(source))`` and be what the store
accepts. The room parser and the stuck detector have their own properties
(``tests/rooms``). What the fuzzing found is at the end, each with its reproducer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import typing
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, TextBlock
from claude_agent_sdk._internal.message_parser import parse_message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors import Actor, ActorRef, ActorSystem, CrashReport
from orchestrator import events as ev
from orchestrator._values import replace_lone_surrogates
from orchestrator.bridges import claude as claude_bridge
from orchestrator.bridges import codex as codex_bridge
from orchestrator.bridges.claude import ClaudeAgent, SandboxTransport
from orchestrator.bridges.codex import CodexAgent, CodexError, JsonRpcConnection
from orchestrator.bridges.codex_events import CodexEventMapper
from orchestrator.errors import StoreUnavailable
from orchestrator.gates import GateRegistry, open_gate_supervisor
from orchestrator.hooks.mapping import hook_to_event
from orchestrator.rooms.actor import (
    AddParticipant,
    GetState,
    RoomConfig,
    RoomRouterActor,
    room_stream,
)
from orchestrator.rooms.parser import RoomMessage, parse_room_message
from orchestrator.rooms.stuck import StuckPolicy
from orchestrator.sandboxes.base import Process, Sandbox, SandboxError
from orchestrator.sessions.actor import Busy, GetSandbox, session_stream
from orchestrator.sessions.hosted import HookEvent, HostedSessionActor
from orchestrator.sessions.registry import RegisterRoom, RegisterSession, RegistryActor
from orchestrator.streams import read_events
from transport import AppendRequest, CreateRequest, MemoryStore, Store
from transport._local import encode_json_append

from ..event_support import fits

JSON = "application/json"
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]

# -- what a well-formed event is -----------------------------------------------------------


def check_event(event: ev.Event, source: ev.Source = "agent") -> None:
    """Well-formed, round-trips through its stream form, and the store takes it."""
    hints = typing.get_type_hints(type(event))
    for field in attrs.fields(type(event)):
        value = getattr(event, field.name)
        assert fits(value, hints[field.name]), (
            f"{type(event).__name__}.{field.name}: {value!r:.200} is not {hints[field.name]}"
        )
    data = event.to_json(source)
    again, read_source = ev.event_from_json(data)
    assert type(again) is type(event), again
    assert read_source == source
    assert again == event
    stored = encode_json_append(json.dumps([data]).encode(), initial=False)
    assert stored is not None
    [record] = json.loads(b"[" + stored + b"]")
    assert ev.event_from_json(record) == (event, source)


# -- values --------------------------------------------------------------------------------

UNICODE = [
    "",
    " ",
    "\n",
    "\r\n",
    "\x00",
    "\u2028",
    "é",
    "日本語",
    "🙂",
    "\U0010ffff",
    "a\u0301",
    "‮rtl",
    "x" * 5000,
]


def nested(depth: int, leaf: object = 1) -> object:
    """A list nested ``depth`` deep (built without recursion)."""
    value: object = leaf
    for _ in range(depth):
        value = [value]
    return value


# Values as an agent's JSON may hold them: any text (lone surrogates aside, see the
# bugs), integers in 64 bits, finite numbers (JavaScript and serde_json write no NaN,
# and no 400-digit integers); deep and huge ones too.
texts = st.text(max_size=40) | st.sampled_from(UNICODE)
# now and then (not in a sampled_from: hypothesis would print it) a 1 MB text
texts = st.integers(0, 30).flatmap(lambda k: st.just("y" * 1_000_000) if k == 30 else texts)
big_ints = st.integers(min_value=-(2**64), max_value=2**64)
finite = st.floats(min_value=-1e300, max_value=1e300)
scalars = st.none() | st.booleans() | big_ints | finite | texts
keys = st.text(max_size=12) | st.sampled_from(UNICODE[:10])


def json_values(leaves: st.SearchStrategy[Any] = scalars, size: int = 30) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=size,
    )


values = json_values()
objects = st.dictionaries(keys, values, max_size=5)
deep = st.builds(nested, st.integers(20, 300), scalars)
wild = json_values(scalars | deep, 40)


class Chunks:
    """An async iterator over byte chunks (a process's stdout)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(len(data), max(0, c)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


lines = st.one_of(
    st.binary(max_size=60),
    objects.map(lambda o: json.dumps(o).encode()),
    objects.map(lambda o: json.dumps(o, ensure_ascii=False).encode()),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"\r",
            b"{",
            b"{}",
            b'{"type":',
            b"[1, 2]",
            b"null",
            b'{"a": NaN}',
            b'{"a": Infinity}',
            b'{"a": 1e999}',
            b'{"a": "\\ud800"}',
            b"{\xff\xfe}",
            b'\xef\xbb\xbf{"bom": 1}',
            b"Warning: something on stdout",
        ]
    ),
)


def expected_lines(payload: bytes) -> tuple[list[dict[str, Any]], bool]:
    """What a JSON-lines reader must give for ``payload``: the objects of the lines
    that start (once stripped) with ``{``, other lines skipped; True when one of those
    is not JSON (the reader must then fail with its own error)."""
    out: list[dict[str, Any]] = []
    for line in payload.split(b"\n"):
        text = line.strip()
        if not text.startswith(b"{"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            return out, True
        assert isinstance(value, dict)
        out.append(replace_lone_surrogates(value))  # no UTF-8 stream holds one
    return out, False


# -- Claude Code: its stdout lines ---------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW)
@given(st.lists(lines, max_size=12), st.lists(st.integers(0, 2000), max_size=8), st.booleans())
async def test_claude_output_lines_in_any_split(
    found: list[bytes], cuts: list[int], trailing: bool
) -> None:
    payload = b"\n".join(found) + (b"\n" if trailing else b"")
    want, corrupt = expected_lines(payload)
    reader = claude_bridge._JsonLines(Chunks(split(payload, cuts)), SandboxTransport._parse)
    got: list[dict[str, Any]] = []
    try:
        async for message in reader:
            got.append(message)
    except SandboxError:
        assert corrupt
        assert got == want[: len(got)]
        return
    assert not corrupt
    assert got == want


# -- Claude Code: its messages, through the SDK's parser and the bridge --------------------

TOOL_NAMES = ["Bash", "Read", "Edit", "TodoWrite", "AskUserQuestion", "mcp__x__y", "Task"]
tool_ids = st.sampled_from(["t1", "t2", "toolu_01"]) | texts
todos = st.lists(
    st.fixed_dictionaries(
        {"content": texts, "status": st.sampled_from(["pending", "in_progress", "completed"])},
        optional={"activeForm": texts, "id": texts},
    ),
    max_size=4,
)
questions = st.lists(
    st.fixed_dictionaries(
        {"question": texts},
        optional={
            "header": texts,
            "multiSelect": st.booleans(),
            "options": st.lists(st.fixed_dictionaries({"label": texts}), max_size=3),
        },
    ),
    max_size=3,
)


@st.composite
def tool_use_blocks(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(TOOL_NAMES) | texts)
    if name == "TodoWrite":
        tool_input: dict[str, Any] = {"todos": draw(todos)}
    elif name == "AskUserQuestion":
        tool_input = {"questions": draw(questions)}
    else:
        tool_input = draw(objects)
    return {"type": "tool_use", "id": draw(tool_ids), "name": name, "input": tool_input}


text_blocks = st.builds(lambda t: {"type": "text", "text": t}, texts)
thinking_blocks = st.builds(
    lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, texts, texts
)
result_content = st.none() | texts | st.lists(text_blocks | objects, max_size=3)
tool_result_blocks = st.fixed_dictionaries(
    {"type": st.just("tool_result"), "tool_use_id": tool_ids},
    optional={"content": result_content, "is_error": st.none() | st.booleans()},
)
usages = st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": st.integers(0, 2**40),
        "output_tokens": st.integers(0, 2**40),
        "cache_creation_input_tokens": st.integers(0, 2**40),
        "cache_read_input_tokens": st.integers(0, 2**40),
        "service_tier": texts,
    },
)
claude_messages = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("system"), "subtype": st.just("init") | texts, "session_id": texts},
        optional={"cwd": texts, "tools": st.lists(texts, max_size=3), "model": texts},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("assistant"),
            "message": st.fixed_dictionaries(
                {
                    "model": st.sampled_from(["claude-sonnet-4-6", "claude-opus-4-1"]) | texts,
                    "content": st.lists(
                        text_blocks | thinking_blocks | tool_use_blocks(), max_size=4
                    ),
                },
                optional={"id": texts, "usage": usages, "stop_reason": st.none() | texts},
            ),
        },
        optional={"session_id": texts, "parent_tool_use_id": st.none() | texts},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("user"),
            "message": st.fixed_dictionaries(
                {"role": st.just("user"), "content": texts | st.lists(tool_result_blocks)}
            ),
        },
        optional={"session_id": texts},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("result"),
            "subtype": st.sampled_from(["success", "error_during_execution", "error_max_turns"]),
            "duration_ms": st.integers(0, 2**40),
            "duration_api_ms": st.integers(0, 2**40),
            "is_error": st.booleans(),
            "num_turns": st.integers(0, 2**31),
            "session_id": texts,
        },
        optional={
            "total_cost_usd": st.none() | st.floats(0, 1e6),
            "usage": usages,
            "result": texts,
        },
    ),
    objects,  # anything else: the SDK refuses it or the mapper ignores it
)


def accepted(data: object) -> Any:
    """The SDK's message for ``data``, or None when it refuses it."""
    try:
        return parse_message(data)  # type: ignore[arg-type]
    except Exception:
        return None


def claude_agent(emitted: list[ev.Event]) -> ClaudeAgent:
    """The bridge's agent, for its ``_relay`` (mapper and meter); its events checked."""

    async def emit(event: ev.Event) -> None:
        check_event(event)
        emitted.append(event)

    costs: list[float] = []

    async def on_cost(amount: float) -> None:
        assert math.isfinite(amount)
        assert amount >= 0
        costs.append(amount)

    sandbox = typing.cast(Sandbox, object())  # only kept: no process is started
    return ClaudeAgent(sandbox, ClaudeAgentOptions(), emit, on_cost=on_cost, agent_name="a")


async def relay_all(messages: Iterable[object]) -> list[ev.Event]:
    """Every message the SDK accepts through the bridge's ``_relay``."""
    emitted: list[ev.Event] = []
    agent = claude_agent(emitted)
    for data in messages:
        message = accepted(data)
        if message is not None:
            await agent._relay(message)
    return emitted


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW)
@given(st.lists(claude_messages, max_size=10))
async def test_claude_messages_the_sdk_accepts_map_to_well_formed_events(
    messages: list[dict[str, Any]],
) -> None:
    emitted = await relay_all(messages)
    said = [
        block.text
        for message in map(accepted, messages)
        if isinstance(message, AssistantMessage)
        for block in message.content
        if isinstance(block, TextBlock) and block.text.strip()
    ]
    assert [e.text for e in emitted if isinstance(e, ev.AssistantMessage)] == said


# -- Codex: the JSON-RPC line reader and dispatch ------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW)
@given(st.lists(lines, max_size=12), st.lists(st.integers(0, 2000), max_size=8), st.booleans())
async def test_codex_output_lines_in_any_split(
    found: list[bytes], cuts: list[int], trailing: bool
) -> None:
    payload = b"\n".join(found) + (b"\n" if trailing else b"")
    want, corrupt = expected_lines(payload)
    reader = codex_bridge._JsonLines(Chunks(split(payload, cuts)))
    got: list[dict[str, Any]] = []
    try:
        async for message in reader:
            got.append(message)
    except CodexError:
        assert corrupt
        assert got == want[: len(got)]
        return
    assert not corrupt
    assert got == want


class Writes(Process):
    """A process that only takes what is written to it."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        for line in data.splitlines():
            self.written.append(json.loads(line))

    async def close_stdin(self) -> None:
        pass

    def stdout(self) -> AsyncIterator[bytes]:
        return Chunks([])

    def stderr(self) -> AsyncIterator[bytes]:
        return Chunks([])

    async def wait(self) -> int:
        return 0

    async def kill(self) -> None:
        pass


class Messages:
    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> Messages:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


rpc_ids = st.none() | st.integers(-2, 3) | st.booleans() | texts | finite | st.lists(scalars)
rpc_messages = st.one_of(
    st.dictionaries(
        st.sampled_from(["id", "method", "params", "result", "error", "jsonrpc"]),
        wild,
        max_size=5,
    ),
    st.fixed_dictionaries(
        {"id": rpc_ids},
        optional={
            "result": wild,
            "error": wild
            | st.fixed_dictionaries({}, optional={"code": wild, "message": wild, "data": wild}),
        },
    ),
    st.fixed_dictionaries(
        {"method": texts | st.sampled_from(["turn/started", "item/completed"])},
        optional={"id": rpc_ids, "params": wild | objects},
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW)
@given(st.lists(rpc_messages, max_size=12))
async def test_codex_json_rpc_dispatch_takes_anything(messages: list[dict[str, Any]]) -> None:
    process = Writes()
    notified: list[dict[str, Any]] = []
    asked: list[tuple[str, dict[str, Any]]] = []

    async def on_notification(message: dict[str, Any]) -> None:
        assert isinstance(message["method"], str)
        assert isinstance(message["params"], dict)
        notified.append(message)

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "turn/started":
            raise RuntimeError("a handler that fails")
        return {"ok": True}

    outcome: list[object] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            rpc = JsonRpcConnection(process, nursery, on_notification, on_request)

            async def ask() -> None:
                try:
                    outcome.append(await rpc.request("thread/start", {"x": 1}))
                except CodexError as exc:  # an error answer, or the end of the stream
                    outcome.append(exc)

            nursery.start_soon(ask)
            await trio.lowlevel.checkpoint()
            await rpc.run(Messages(messages))
            rpc.close(CodexError("the stream ended"))
    requests = [
        m
        for m in messages
        if isinstance(m.get("method"), str) and isinstance(m.get("id"), int | str)
    ]
    assert len(asked) == len(requests)
    answers = [w for w in process.written if "method" not in w]
    assert len(answers) == len(requests)
    assert len(outcome) == 1


# -- Codex: the event mapper ---------------------------------------------------------------

ITEM_TYPES = [
    "commandExecution",
    "fileChange",
    "mcpToolCall",
    "dynamicToolCall",
    "webSearch",
    "agentMessage",
    "plan",
    "reasoning",
]
STATUSES = ["completed", "failed", "declined", "interrupted", "inProgress"]
ids = st.sampled_from(["th", "th2", "t1", "t2", "i1", "i2"])


def maybe_wrong(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right kind of value most of the time, any value (deep, huge, unicode, of
    the wrong type) otherwise."""
    return st.one_of(right, right, right, wild)


@st.composite
def codex_items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": draw(maybe_wrong(ids)),
        # a list or an object here is a known bug (see the end)
        "type": draw(st.one_of(*[st.sampled_from(ITEM_TYPES)] * 3, scalars)),
    }
    fields: dict[str, st.SearchStrategy[Any]] = {
        "status": st.sampled_from(STATUSES),
        "command": st.sampled_from(["/bin/bash -lc 'echo hi'", "ls", "bash -lc 'x"]) | texts,
        "aggregatedOutput": texts,
        "exitCode": st.none() | big_ints,
        "changes": st.lists(
            st.fixed_dictionaries(
                {"path": maybe_wrong(texts)},
                optional={
                    "kind": maybe_wrong(
                        st.fixed_dictionaries(
                            {"type": st.sampled_from(["add", "update", "delete"])},
                            optional={"move_path": maybe_wrong(texts)},
                        )
                    ),
                    "diff": maybe_wrong(texts),
                },
            ),
            max_size=3,
        ),
        "server": texts,
        "tool": texts,
        "arguments": objects | wild,
        "result": st.fixed_dictionaries({}, optional={"content": wild}),
        "error": st.none() | st.fixed_dictionaries({}, optional={"message": maybe_wrong(texts)}),
        "contentItems": st.lists(
            st.fixed_dictionaries({"type": st.just("inputText"), "text": maybe_wrong(texts)})
        ),
        "success": st.none() | st.booleans(),
        "text": texts,
        "query": texts,
    }
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=8)):
        item[name] = draw(maybe_wrong(fields[name]))
    return item


@st.composite
def codex_notifications(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(
        maybe_wrong(
            st.sampled_from(
                [
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
                    "serverRequest/resolved",
                ]
            )
        )
    )
    params: dict[str, Any] = {"threadId": draw(maybe_wrong(ids))}
    turn = st.fixed_dictionaries(
        {"id": maybe_wrong(ids)},
        optional={
            "status": maybe_wrong(st.sampled_from(STATUSES)),
            "durationMs": maybe_wrong(big_ints),
            "error": maybe_wrong(
                st.fixed_dictionaries(
                    {"message": maybe_wrong(texts | st.just('{"error": {"message": "m"}}'))},
                    optional={"additionalDetails": maybe_wrong(texts)},
                )
            ),
        },
    )
    extras: dict[str, st.SearchStrategy[Any]] = {
        "thread": st.fixed_dictionaries({"id": maybe_wrong(ids)}, optional={"cwd": texts}),
        "turn": turn,
        "turnId": ids,
        "item": codex_items(),
        "plan": st.lists(
            st.fixed_dictionaries(
                {"step": maybe_wrong(texts)},
                optional={"status": maybe_wrong(st.sampled_from(["pending", "inProgress"]))},
            ),
            max_size=4,
        ),
        "error": st.fixed_dictionaries({"message": maybe_wrong(texts)}),
        "willRetry": st.booleans(),
        "message": texts,
        "summary": texts,
        "details": texts,
        "requestId": ids | big_ints,
        "tokenUsage": st.fixed_dictionaries(
            {},
            optional={
                "total": maybe_wrong(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "inputTokens": maybe_wrong(st.integers(0, 2**40)),
                            "cachedInputTokens": maybe_wrong(st.integers(0, 2**40)),
                            "outputTokens": maybe_wrong(st.integers(0, 2**40)),
                            "reasoningOutputTokens": maybe_wrong(st.integers(0, 2**40)),
                            "totalTokens": maybe_wrong(st.integers(0, 2**40)),
                        },
                    )
                ),
                "last": wild,
            },
        ),
    }
    for name in draw(st.sets(st.sampled_from(sorted(extras)), max_size=6)):
        params[name] = draw(maybe_wrong(extras[name]))
    return {"method": method, "params": draw(maybe_wrong(st.just(params)))}


@settings(max_examples=400, deadline=None, suppress_health_check=SLOW)
@given(st.lists(codex_notifications(), max_size=16), st.data())
def test_codex_notifications_in_any_order_map_to_well_formed_events(
    notifications: list[dict[str, Any]], data: st.DataObject
) -> None:
    repeated = (
        data.draw(st.lists(st.sampled_from(notifications), max_size=3)) if notifications else []
    )
    for event in codex_events(data.draw(st.permutations([*notifications, *repeated]))):
        check_event(event)


def codex_events(notifications: Iterable[object]) -> list[ev.Event]:
    mapper = CodexEventMapper(agent="codex-a", cwd="/workspace")
    out = []
    for notification in notifications:
        out += mapper.map(notification)
        mapper.tool_input("i1")
        mapper.item("i2")
    return out


def test_codex_notifications_out_of_order() -> None:
    events = codex_events(
        [
            {"method": "item/completed", "params": {"threadId": "th", "item": ITEM}},
            {"method": "turn/completed", "params": {"threadId": "th", "turn": {"id": "t1"}}},
            {"method": "item/started", "params": {"threadId": "th", "item": ITEM}},
            {"method": "turn/started", "params": {"threadId": "th", "turn": {"id": "t1"}}},
            {"method": "turn/started", "params": {"threadId": "th", "turn": {"id": "t1"}}},
            {"method": "item/completed", "params": {"threadId": "th", "item": ITEM}},
        ]
    )
    for event in events:
        check_event(event)
    # a completion never announced gets its pre_tool_use first; a turn that ends
    # before it starts still ends once
    assert [e.type for e in events] == [
        "pre_tool_use",
        "post_tool_use",
        "session_end",
        "pre_tool_use",
        "session_start",
        "session_start",
        "post_tool_use",
    ]


ITEM = {"id": "i1", "type": "commandExecution", "command": "ls", "status": "completed"}


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW)
@given(st.lists(codex_notifications(), max_size=16))
async def test_the_codex_agent_handles_any_notification(
    notifications: list[dict[str, Any]],
) -> None:
    emitted: list[ev.Event] = []
    costs: list[float] = []

    async def emit(event: ev.Event) -> None:
        check_event(event)
        emitted.append(event)

    async def on_cost(amount: float) -> None:
        assert math.isfinite(amount)
        costs.append(amount)

    agent = CodexAgent(
        typing.cast(Sandbox, object()),
        emit,
        base_url="http://127.0.0.1:1/v1",
        api_key="k",
        cwd="/workspace",
        codex_home="/home/agent/.codex",
        on_cost=on_cost,
    )
    agent._mapper.on_thread({"id": "th"})
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def drain() -> None:  # what a running turn would take
                async for _ in agent._outcomes:
                    pass

            nursery.start_soon(drain)
            for notification in notifications:
                method, params = notification.get("method"), notification.get("params")
                if isinstance(method, str):  # as JsonRpcConnection._dispatch hands it over
                    params = params if isinstance(params, dict) else {}
                    await agent._on_notification({"method": method, "params": params})
            nursery.cancel_scope.cancel()
    assert math.isfinite(agent.meter.total)


# -- hooks ---------------------------------------------------------------------------------

HOOK_KINDS = [
    "SessionStart",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SessionEnd",
    "UserPromptSubmit",
    "SubagentStart",
    "SubagentStop",
    "Notification",
]


@st.composite
def hook_payloads(draw: st.DrawFn) -> dict[str, Any]:
    tool_input = st.one_of(
        objects,
        st.fixed_dictionaries({"todos": maybe_wrong(todos) | values}),
        st.fixed_dictionaries(
            {"questions": maybe_wrong(questions) | values},
            optional={"question": values},
        ),
    )
    fields: dict[str, st.SearchStrategy[Any]] = {
        "session_id": texts,
        "transcript_path": texts,
        "cwd": texts,
        "tool_name": st.sampled_from(["Bash", "TodoWrite", "AskUserQuestion"]) | texts,
        "tool_use_id": texts,
        "tool_input": tool_input,
        "tool_response": values,
        "error": texts,
        "last_assistant_message": texts,
        "prompt": texts,
        "agent_type": texts,
        "session": st.fixed_dictionaries(
            {},
            optional={
                "cost_usd": st.floats(-1e6, 1e6) | values,
                "num_turns": big_ints | values,
                "duration_ms": big_ints | values,
                "duration_api_ms": big_ints | values,
            },
        ),
    }
    payload: dict[str, Any] = {"hook_event_name": draw(maybe_wrong(st.sampled_from(HOOK_KINDS)))}
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=7)):
        payload[name] = draw(st.one_of(fields[name], fields[name], values))
    return payload


@settings(max_examples=400, deadline=None, suppress_health_check=SLOW)
@given(hook_payloads())
def test_any_hook_payload_maps_to_a_well_formed_event(payload: dict[str, Any]) -> None:
    event = hook_to_event(payload)
    if event is not None:
        check_event(event)


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(st.dictionaries(keys, wild, max_size=8), st.sampled_from(HOOK_KINDS))
def test_any_hook_payload_maps_without_crashing(payload: dict[str, Any], kind: str) -> None:
    hook_to_event({**payload, "hook_event_name": kind})


# -- actors: a hosted session --------------------------------------------------------------


@asynccontextmanager
async def actor_system() -> AsyncIterator[tuple[ActorSystem, MemoryStore, list[CrashReport]]]:
    crashes: list[CrashReport] = []
    async with MemoryStore() as store, ActorSystem(on_crash=crashes.append) as system:
        yield system, store, crashes


async def records(store: Store, path: str) -> list[dict[str, Any]]:
    found = []
    async with aclosing(read_events(store, path, "-1", follow=False)) as items:
        async for item in items:
            found.append(item.raw)
    return found


async def hosted_session(system: ActorSystem, store: Store) -> tuple[ActorRef, ActorRef, str]:
    registry = await system.spawn(RegistryActor(store), name="registry")
    session_id = str(uuid.uuid4())
    await registry.ask(RegisterSession({"id": session_id, "status": "running", "local": True}))
    actor = HostedSessionActor(session_id, store, registry)
    ref = await system.spawn(actor, name=f"session:{session_id}")
    return ref, registry, session_id


async def feed_hosted(payloads: list[dict[str, Any]]) -> None:
    """Each payload's event, if any, to a hosted session: it stays alive and answering,
    and its stream holds exactly those events, in order."""
    async with actor_system() as (system, store, crashes):
        ref, registry, session_id = await hosted_session(system, store)
        mapped = []
        for payload in payloads:
            event = hook_to_event(payload)
            if event is None:
                continue
            check_event(event)
            mapped.append(event)
            await ref.ask(HookEvent(event), timeout=10)
        assert ref.alive
        assert registry.alive
        assert not crashes
        assert await ref.ask(GetSandbox(), timeout=10) is None
        stream = await records(store, session_stream(session_id))
        assert [ev.event_from_json(r) for r in stream] == [(e, "agent") for e in mapped]


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(st.lists(hook_payloads(), max_size=10))
async def test_a_hosted_session_takes_any_hook_event_and_records_it(
    payloads: list[dict[str, Any]],
) -> None:
    await feed_hosted(payloads)


# -- actors: a room's router ---------------------------------------------------------------

NAMES = ["alice", "bob", "carol"]


@attrs.define(eq=False)
class Agent(Actor):
    """A participant's session, as the router sees it: told things, never busy."""

    told: list[object] = attrs.field(factory=list)

    async def handle(self, msg: Any) -> Any:
        self.told.append(msg)
        return False if isinstance(msg, Busy) else None


@attrs.frozen
class Room:
    store: Store
    router: ActorRef
    sessions: dict[str, str]  # name -> session id
    path: str  # the room's stream
    crashes: list[CrashReport]


@asynccontextmanager
async def room(config: RoomConfig) -> AsyncIterator[Room]:
    """A router over three participants, whose sessions are fakes and whose streams the
    test writes."""
    async with actor_system() as (system, store, crashes):
        registry = await system.spawn(RegistryActor(store), name="registry")
        gates = GateRegistry(await open_gate_supervisor(system), store, session_stream)
        room_id = str(uuid.uuid4())
        await registry.ask(RegisterRoom({"id": room_id, "name": "fuzz", "sessions": []}))
        sessions = {name: str(uuid.uuid4()) for name in NAMES}
        refs: dict[str, ActorRef] = {}
        for session_id in sessions.values():
            await store.create(session_stream(session_id), CreateRequest(content_type=JSON))
            refs[session_id] = await system.spawn(Agent())
        router = RoomRouterActor(
            room_id=room_id,
            name="fuzz",
            store=store,
            gates=gates,
            registry=registry,
            lookup=refs.get,
            config=config,
        )
        ref = await system.spawn(router, name=f"room:{room_id}")
        for name, session_id in sessions.items():
            await ref.ask(AddParticipant(session_id, name, owned=False), timeout=10)
        yield Room(store, ref, sessions, room_stream(room_id), crashes)


async def append(store: Store, path: str, *records: dict[str, Any]) -> None:
    for record in records:
        body = json.dumps([record]).encode()
        await store.append(path, AppendRequest(body=body, content_type=JSON))


async def settle(store: Store, path: str, sentinels: set[str]) -> list[dict[str, Any]]:
    """The room's records once every sentinel text is there (or the room closed)."""
    with trio.fail_after(20):
        while True:
            found = await records(store, path)
            seen = {r.get("text") for r in found if r.get("type") == "agent_activity"}
            if sentinels <= seen or any(r.get("type") == "room_closed" for r in found):
                return found
            await trio.sleep(0.01)


def turn_records(said: Sequence[str]) -> list[dict[str, Any]]:
    """An agent's turn in its session's stream: its text blocks, then its end."""
    events: list[ev.Event] = [ev.AssistantMessage(text=t) for t in said]
    events.append(ev.SessionEnd(success=True, num_turns=1))
    return [e.to_json("agent") for e in events]


def sentinel(name: str) -> list[dict[str, Any]]:
    """A last turn whose text (no directive) marks how far the router has read."""
    return turn_records([f"sentinel {name}"])


agent_texts = st.one_of(
    texts,
    st.builds(
        lambda head, target, sep, body: f"{head}@{target}{sep}{body}",
        st.sampled_from(["", "Done.\n", "x\r", "a\r\nb\n", " "]),
        st.sampled_from(["room", *NAMES, "Bob", "nobody", "room\u200b"]),
        st.sampled_from([" ", "\n", "\t", "\u2028", "\u3000", ""]),
        st.sampled_from(["", " ", "hi", "GATE: ship it?", "REVIEW_REQUEST: look", "🙂\n@room x"])
        | texts,
    ),
)
turns = st.lists(
    st.tuples(st.sampled_from(NAMES), st.lists(agent_texts, min_size=1, max_size=3)),
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(turns)
async def test_a_room_router_parses_any_turns_and_records_every_message(
    script: list[tuple[str, list[str]]],
) -> None:
    config = RoomConfig(
        max_rounds=10_000,
        stuck=StuckPolicy(repeat=0, pingpong=0, stale_rounds=0),
        idle_timeout=None,
    )
    async with room(config) as r:
        for name, said in script:
            await append(r.store, session_stream(r.sessions[name]), *turn_records(said))
        for name in NAMES:
            await append(r.store, session_stream(r.sessions[name]), *sentinel(name))
        found = await settle(r.store, r.path, {f"sentinel {n}" for n in NAMES})
        assert r.router.alive
        assert not r.crashes
        state = await r.router.ask(GetState(), timeout=10)
        assert state["state"] == "active"

        # what the router must have made of the turns (one message per turn: the last
        # directive; a GATE: message waits at a gate and holds its sender's next ones)
        routed: dict[str, list[tuple[str | None, str]]] = {n: [] for n in NAMES}
        chatter: dict[str, list[str]] = {n: [] for n in NAMES}
        gated: dict[str, list[str]] = {n: [] for n in NAMES}
        for name, said in [*script, *((n, [f"sentinel {n}"]) for n in NAMES)]:
            others = [n for n in NAMES if n != name]
            message: RoomMessage | None = None
            for text in said:
                parsed = parse_room_message(text, others)
                if parsed is None:
                    chatter[name].append(text)
                else:
                    message = parsed
            if message is None or gated[name]:
                continue
            if message.is_gate_request:
                gated[name].append(message.body)
            else:
                routed[name].append((message.to, message.body))
        for record in found:
            event, source = ev.event_from_json(record)
            assert not isinstance(event, ev.Unknown), record
            assert source == "server"
            check_event(event, "server")
        for name in NAMES:
            messages = [
                (r.get("to"), r["body"])
                for r in found
                if r.get("type") == "agent_message"
                and r.get("from") == name
                and isinstance(r.get("metadata"), dict)
            ]
            assert messages == routed[name]
            activity = [
                r["text"]
                for r in found
                if r.get("type") == "agent_activity"
                and r.get("from") == name
                and r.get("eventType") == "assistant_message"
            ]
            assert activity == chatter[name]
            own = await records(r.store, session_stream(r.sessions[name]))
            bodies = [r["body"] for r in own if r.get("type") == "outbound_message_gate"]
            assert bodies == gated[name]


watched_records = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["assistant_message", "session_end", "cost_update", "ask_user_question", "log"]
        )
    },
    optional={
        "source": st.sampled_from(["agent", "server"]) | values,
        "text": values,
        "question": values,
        "questions": values,
        "tool_use_id": values,
        "total_usd": st.floats(0, 100) | values,
        "cost_usd": values,
        "level": st.sampled_from(["error", "system"]) | values,
        "message": values,
        "success": values,
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(
    st.lists(st.tuples(st.sampled_from(NAMES), watched_records), max_size=12),
    st.booleans(),
    st.sampled_from(["close", "gate"]),
    st.integers(1, 4),
)
async def test_a_room_router_survives_any_record_of_its_participants(
    feed: list[tuple[str, dict[str, Any]]], gate_messages: bool, action: Any, max_rounds: int
) -> None:
    config = RoomConfig(
        max_rounds=max_rounds,
        max_cost_usd=50.0,
        stuck=StuckPolicy(repeat=2, pingpong=2, stale_rounds=1, action=action),
        gate_messages=gate_messages,
        idle_timeout=None,
    )
    async with room(config) as r:
        for name, record in feed:
            await append(r.store, session_stream(r.sessions[name]), record)
        for name in NAMES:
            await append(r.store, session_stream(r.sessions[name]), *sentinel(name))
        await settle(r.store, r.path, {f"sentinel {n}" for n in NAMES})
        assert r.router.alive
        assert not r.crashes
        state = await r.router.ask(GetState(), timeout=10)
        assert state["state"] in ("active", "closed")


# -- what the fuzzing found (each was a bug; fixed) -----------------------------------------


def test_a_deeply_nested_claude_line_is_a_sandbox_error() -> None:
    reader = claude_bridge._JsonLines(Chunks([DEEP_LINE]), SandboxTransport._parse)
    with pytest.raises(SandboxError):
        trio.run(drain, reader)


# (these run trio themselves, so ``pytest.raises`` sees the error itself, not an
# exception group from pytest-trio's nursery)
DEEP_LINE = b'{"a":' + b"[" * 100_000 + b"1" + b"]" * 100_000 + b"}\n"


async def drain(items: AsyncIterator[object]) -> None:
    async for _ in items:
        pass


def test_a_deeply_nested_codex_line_is_a_codex_error() -> None:
    reader = codex_bridge._JsonLines(Chunks([DEEP_LINE]))
    with pytest.raises(CodexError):
        trio.run(drain, reader)


# Messages the SDK accepts, with a value of another type than the CLI writes, and the
# events they give. Each crashed the bridge (the pump's task, hence the agent process)
# or made an event with a field of the wrong type; the error it raised is noted.
CLAUDE_WRONG_TYPES: list[tuple[dict[str, Any], list[ev.Event]]] = [
    # TextBlock.text not a string (AttributeError: 'int' object has no attribute 'strip')
    (
        {"type": "assistant", "message": {"model": "m", "content": [{"type": "text", "text": 5}]}},
        [],
    ),
    # ToolUseBlock.input not an object (AttributeError for TodoWrite, TypeError for others):
    # the call is shown, with no input
    (
        {
            "type": "assistant",
            "message": {
                "model": "m",
                "content": [{"type": "tool_use", "id": "a", "name": "Bash", "input": [1]}],
            },
        },
        [ev.PreToolUse(tool_name="Bash", tool_use_id="a", tool_input={}, agent="a")],
    ),
    # ToolUseBlock.id unhashable (TypeError: unhashable type: 'list')
    (
        {
            "type": "assistant",
            "message": {
                "model": "m",
                "content": [{"type": "tool_use", "id": [], "name": "Bash", "input": {}}],
            },
        },
        [],
    ),
    # UserMessage.content neither a string nor a list (TypeError: 'int' is not iterable)
    ({"type": "user", "message": {"content": 5}}, []),
    # ToolResultBlock.content an int (TypeError in _result_text): a result with no text
    (
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "x", "content": 5}]},
        },
        [ev.PostToolUse(tool_use_id="x", tool_response="", agent="a")],
    ),
    # the model not a string (AttributeError in price_for, the cost meter)
    (
        {
            "type": "assistant",
            "message": {"model": 5, "content": [], "usage": {"input_tokens": 1}, "id": "m1"},
        },
        [],
    ),
    # a TodoWrite whose todos are not objects (gave TodoWrite.todos == [1])
    (
        {
            "type": "assistant",
            "message": {
                "model": "m",
                "content": [
                    {"type": "tool_use", "id": "a", "name": "TodoWrite", "input": {"todos": [1]}}
                ],
            },
        },
        [ev.TodoWrite(tool_use_id="a", todos=[])],
    ),
    # a result whose numbers are strings (gave SessionEnd(num_turns="1", duration_ms="x"))
    (
        {
            "type": "result",
            "subtype": "success",
            "duration_ms": "x",
            "duration_api_ms": 0,
            "is_error": False,
            "num_turns": "1",
            "session_id": "s",
        },
        [ev.SessionEnd(success=True, cost_usd=0.0, duration_api_ms=0)],
    ),
]


def untimed(events: Iterable[ev.Event]) -> list[ev.Event]:
    return [attrs.evolve(event, ts="") for event in events]


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(
    st.lists(
        claude_messages | st.sampled_from([data for data, _ in CLAUDE_WRONG_TYPES]), max_size=6
    )
)
@example([CLAUDE_WRONG_TYPES[0][0]])
def test_claude_messages_of_the_wrong_types_are_skipped(
    messages: list[dict[str, Any]],
) -> None:
    trio.run(relay_all, messages)


@pytest.mark.parametrize(("data", "events"), CLAUDE_WRONG_TYPES)
def test_each_claude_message_of_the_wrong_types(
    data: dict[str, Any], events: list[ev.Event]
) -> None:
    assert accepted(data) is not None  # the SDK accepts it
    assert untimed(trio.run(relay_all, [data])) == untimed(events)


@pytest.mark.parametrize("escape", [b"\\ud83d", b"\\uDE00", b"\\ud83d\\ud83d"])
def test_a_lone_surrogate_from_claude_code_is_stored_as_a_replacement_character(
    escape: bytes,
) -> None:
    # JSON.stringify escapes an unpaired surrogate (a text cut inside an emoji)
    line = (
        b'{"type":"assistant","message":{"model":"m",'
        b'"content":[{"type":"text","text":"ok ' + escape + b'"},'
        b'{"type":"tool_use","id":"t","name":"Bash","input":{"k'
        + escape
        + b'":"\\ud83d\\ude00"}}]}}\n'
    )
    data = SandboxTransport._parse(line)  # as the transport reads it
    emitted = trio.run(relay_all, [data])  # checked: the store takes each event
    replaced = "\ufffd" * escape.count(b"\\u")
    assert untimed(emitted) == untimed(
        [
            ev.AssistantMessage(text=f"ok {replaced}", agent="a"),
            ev.PreToolUse(
                tool_name="Bash", tool_use_id="t", tool_input={f"k{replaced}": "😀"}, agent="a"
            ),
        ]
    )


@pytest.mark.parametrize("method", ["item/started", "item/completed"])
@pytest.mark.parametrize("kind", [[], {}, ["commandExecution"]])
def test_a_codex_item_whose_type_is_not_a_string_is_skipped(method: str, kind: object) -> None:
    notification = {
        "method": method,
        "params": {"threadId": "th", "item": {"id": "i", "type": kind}},
    }
    assert codex_events([notification]) == []


def test_a_huge_integer_in_a_hook_is_dropped() -> None:
    # json.loads reads integers too large for a float from a hook's body
    huge = 10**400
    event = hook_to_event(
        {"hook_event_name": "SessionEnd", "session": {"num_turns": huge, "cost_usd": huge}}
    )
    assert event is not None
    assert untimed([event]) == untimed([ev.SessionEnd(success=True)])


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(st.dictionaries(keys, json_values(scalars | st.floats(), 30), max_size=8))
def test_any_hook_payload_with_nan_maps_without_crashing(payload: dict[str, Any]) -> None:
    for kind in HOOK_KINDS:
        hook_to_event({**payload, "hook_event_name": kind})


@pytest.mark.parametrize(
    "payload",
    [
        {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"x": math.nan}},
        {
            "hook_event_name": "PreToolUse",
            "tool_name": "TodoWrite",
            "tool_input": {"todos": [{"n": math.inf}]},
        },
    ],
)
def test_a_hook_payload_with_nan_leaves_the_hosted_session_alive(
    payload: dict[str, Any],
) -> None:
    trio.run(hosted_takes, [payload])


def test_a_lone_surrogate_in_a_hook_leaves_the_hosted_session_alive() -> None:
    trio.run(hosted_takes, [{"hook_event_name": "Stop", "last_assistant_message": "\ud800"}])


def test_a_hosted_cost_that_overflows_is_refused_not_fatal() -> None:
    end = {"hook_event_name": "SessionEnd", "session": {"cost_usd": 1e308}}
    trio.run(hosted_takes, [end, end])


async def hosted_takes(payloads: list[dict[str, Any]]) -> None:
    """Each payload's event to a hosted session, unchecked: it takes each, or refuses
    one the store cannot hold (StoreUnavailable, answered), and stays alive."""
    async with actor_system() as (system, store, crashes):
        ref, _, _ = await hosted_session(system, store)
        for payload in payloads:
            event = hook_to_event(payload)
            assert event is not None
            with contextlib.suppress(StoreUnavailable):
                await ref.ask(HookEvent(event), timeout=10)
        assert ref.alive
        assert not crashes

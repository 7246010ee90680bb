"""The Codex bridge: prices and the token meter, the JSON-RPC layer over a fake process,
the agent replaying recorded app-server transcripts, and the real ``codex app-server``
(the pinned 0.169.0) in a local and in a Docker sandbox against the scripted model
server.

Tests of the real CLI skip without its binary (``scripts/setup`` installs it), unless
``CI=true``. ``CODEX_RECORD_DIR=DIR`` makes the Docker test write its transcripts there
(``tests/data/codex`` holds the ones the replay tests read).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import docker
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import events as ev
from orchestrator.bridges.codex import (
    CONFIG_TOML,
    CodexAgent,
    CodexError,
    CodexExited,
    CodexTurn,
    JsonRpcConnection,
    JsonRpcError,
    _JsonLines,
    build_argv,
    default_codex_home,
)
from orchestrator.bridges.prices import (
    DEFAULT_PRICE,
    PRICES,
    Price,
    TokenMeter,
    TokenUsage,
    cost_usd,
    price_for,
)
from orchestrator.models import AgentScript, Script, ToolCall, Turn, open_model_server
from orchestrator.sandboxes import DockerProvider, LocalProvider, SandboxSpec
from orchestrator.sandboxes.base import (
    AppStatus,
    ExecResult,
    Process,
    Sandbox,
    SandboxError,
)

from ..docker_support import codex_cli, off_loop
from ..sandboxes.conftest import docker_leftovers, remove_docker_leftovers

DATA = Path(__file__).resolve().parents[1] / "data" / "codex"


def transcript(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


# -- prices -------------------------------------------------------------------------------


def test_cost_usd_counts_cached_input_inside_input() -> None:
    # gpt-5: $1.25 in, $0.125 cached, $10 out per million
    assert cost_usd("gpt-5", 1_000_000, 0, 0) == pytest.approx(1.25)
    assert cost_usd("gpt-5", 1_000_000, 1_000_000, 0) == pytest.approx(0.125)
    assert cost_usd("gpt-5", 1000, 400, 100) == pytest.approx(
        (600 * 1.25 + 400 * 0.125 + 100 * 10) / 1e6
    )
    assert cost_usd("gpt-5", 10, 50, 0) == pytest.approx(10 * 0.125 / 1e6)  # cached <= input
    assert cost_usd("gpt-5", -5, -1, -7) == 0


def test_price_for_matches_exact_ids_then_dashed_families() -> None:
    assert price_for("gpt-5-codex") == PRICES["gpt-5-codex"]
    assert price_for("GPT-5-Codex-2025-09-15") == PRICES["gpt-5-codex"]
    assert price_for("openai/gpt-5-mini") == PRICES["gpt-5-mini"]
    assert price_for("o4-mini-high") == PRICES["o4-mini"]
    assert price_for("gpt-4.1-mini-2025-04-14") == PRICES["gpt-4.1-mini"]
    assert price_for("gpt-5.5") == Price(5.0, 0.5, 30.0)
    assert price_for("gpt-5.9") == DEFAULT_PRICE  # not gpt-5's
    assert price_for("some-local-model") == DEFAULT_PRICE
    sonnet = price_for("claude-sonnet-4-6")
    assert (sonnet.input, sonnet.cached_input, sonnet.output) == pytest.approx((3.0, 0.3, 15.0))


def test_token_usage_reads_every_wire_form() -> None:
    app_server = {"inputTokens": 200, "cachedInputTokens": 50, "outputTokens": 40}
    exec_json = {"input_tokens": 200, "cached_input_tokens": 50, "output_tokens": 40}
    responses = {"input_tokens": 200, "input_tokens_details": {"cached_tokens": 50}}
    expected = TokenUsage(200, 50, 40)
    assert TokenUsage.from_wire(app_server) == expected
    assert TokenUsage.from_wire(exec_json) == expected
    assert TokenUsage.from_wire(responses) == TokenUsage(200, 50, 0)
    assert TokenUsage.from_wire("nonsense") == TokenUsage()
    assert TokenUsage.from_wire({"inputTokens": True, "outputTokens": math.inf}) == TokenUsage()


def test_the_meter_charges_each_running_total_once() -> None:
    meter = TokenMeter()
    first = {"inputTokens": 200, "cachedInputTokens": 50, "outputTokens": 40}
    second = {"inputTokens": 400, "cachedInputTokens": 100, "outputTokens": 80}
    one = meter.on_total("th", "gpt-5", first)
    assert one == pytest.approx(cost_usd("gpt-5", 200, 50, 40))
    assert meter.on_total("th", "gpt-5", first) == 0  # seen again: nothing more
    assert meter.on_total("th", "gpt-5", second) == pytest.approx(one)  # the growth only
    assert meter.total == pytest.approx(2 * one)
    assert meter.take_turn() == pytest.approx(2 * one)
    assert meter.take_turn() == 0
    # another thread counts from zero
    assert meter.on_total("other", "gpt-5", first) == pytest.approx(one)
    # a baseline (a resumed thread's total so far) is not charged, what follows is
    resumed = TokenMeter()
    resumed.baseline("th", second)
    assert resumed.on_total("th", "gpt-5", second) == 0
    third = {"inputTokens": 600, "cachedInputTokens": 150, "outputTokens": 120}
    assert resumed.on_total("th", "gpt-5", third) == pytest.approx(one)
    # a total that went down starts a new count, charged nothing
    assert resumed.on_total("th", "gpt-5", first) == 0
    assert resumed.on_total("th", "gpt-5", second) == pytest.approx(one)
    # one call's counts (exec --json's turn.completed)
    assert resumed.on_usage("gpt-5", first) == pytest.approx(one)


totals = st.lists(
    st.tuples(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**6)).map(
        lambda t: TokenUsage(t[0], min(t[1], t[0]), t[2])
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(totals, st.data())
def test_the_meter_never_charges_more_than_the_growth(
    seen: list[TokenUsage], data: st.DataObject
) -> None:
    meter = TokenMeter()
    charged = 0.0
    for usage in seen:
        repeats = data.draw(st.integers(1, 3))
        for _ in range(repeats):  # an update seen more than once
            increment = meter.on_total("th", "gpt-5", usage)
            assert increment >= 0
            charged += increment
    assert meter.total == pytest.approx(charged)
    # running totals made of calls (each call's cached tokens are among its input):
    # charged exactly the last total's cost
    running = TokenUsage()
    ordered = []
    for call in seen:
        running = running.plus(call)
        ordered.append(running)
    monotone = TokenMeter()
    for usage in ordered:
        monotone.on_total("th", "gpt-5", usage)
        monotone.on_total("th", "gpt-5", usage)
    last = ordered[-1] if ordered else TokenUsage()
    assert monotone.total == pytest.approx(price_for("gpt-5").cost(last))


# -- a fake process -----------------------------------------------------------------------


class FakeProcess(Process):
    """A process whose stdout the test writes (``say``) and whose stdin it reads
    (``sent``, and ``on_message`` for each message written)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._out, self._stdout = trio.open_memory_channel[bytes](math.inf)
        self._err, self._stderr = trio.open_memory_channel[bytes](math.inf)
        self.on_message: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.on_stdin_closed: Callable[[], Awaitable[None]] | None = None
        self.stdin_closed = False
        self.killed = False
        self.code: int | None = None
        self._exited = trio.Event()

    async def write(self, data: bytes) -> None:
        if self.stdin_closed or self._exited.is_set():
            raise SandboxError("stdin is closed")
        for line in data.decode().splitlines():
            message = json.loads(line)
            self.sent.append(message)
            if self.on_message is not None:
                await self.on_message(message)

    async def close_stdin(self) -> None:
        self.stdin_closed = True
        if self.on_stdin_closed is not None:
            await self.on_stdin_closed()

    def stdout(self) -> AsyncIterator[bytes]:
        return self._stdout

    def stderr(self) -> AsyncIterator[bytes]:
        return self._stderr

    def say(self, message: Mapping[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        if not self._exited.is_set():
            self._out.send_nowait(data)

    def exit(self, code: int, stderr: bytes = b"") -> None:
        if self._exited.is_set():
            return
        if stderr:
            self._err.send_nowait(stderr)
        self.code = code
        self._out.close()
        self._err.close()
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.code is not None
        return self.code

    async def kill(self) -> None:
        self.killed = True
        self.exit(-9)


class ReplayProcess(FakeProcess):
    """Plays the server's side of a recorded transcript: checks that each message the
    client writes is the recorded one, then says what the server said up to the
    client's next message; exits when the client closes its stdin."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__()
        self.entries = entries
        self.position = 0
        self.on_message = self._check
        self.on_stdin_closed = self._close
        self._play()

    def _play(self) -> None:
        while self.position < len(self.entries) and self.entries[self.position]["from"] == "server":
            self.say(self.entries[self.position]["message"])
            self.position += 1

    async def _check(self, message: dict[str, Any]) -> None:
        assert self.position < len(self.entries), f"not in the transcript: {message}"
        expected = self.entries[self.position]
        assert expected["from"] == "client"
        assert message == expected["message"]
        self.position += 1
        self._play()

    async def _close(self) -> None:
        self.exit(0)

    @property
    def finished(self) -> bool:
        return self.position == len(self.entries)


class FakeSandbox(Sandbox):
    runtime = "fake"

    def __init__(self, processes: Sequence[Process], home: str = "/home/agent") -> None:
        self.sandbox_id = self.session_id = "fake"
        self.workdir = "/workspace"
        self.files: dict[str, bytes] = {}
        self.spawned: list[tuple[list[str], str | None, dict[str, str]]] = []
        self._processes = list(processes)
        self._home = home

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        self.spawned.append((list(argv), cwd, dict(env or {})))
        return self._processes.pop(0)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self.files[path] = data

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        assert list(argv) == ["printenv", "HOME"]
        return ExecResult(0, self._home.encode() + b"\n", b"")

    def exec_stream(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def read_file(self, path: str) -> bytes:
        return self.files[path]

    async def list_files(self, directory: str) -> list[str]:
        return sorted(self.files)

    async def start_app(self) -> AppStatus:
        raise NotImplementedError

    async def stop_app(self) -> None:
        raise NotImplementedError

    async def app_status(self) -> AppStatus:
        return AppStatus(running=False)

    async def is_alive(self) -> bool:
        return True

    async def destroy(self) -> None:
        pass


# -- JSON-RPC -----------------------------------------------------------------------------


async def test_json_rpc_matches_answers_dispatches_and_answers_requests() -> None:
    process = FakeProcess()
    notes: list[dict[str, Any]] = []
    asked: list[tuple[str, dict[str, Any]]] = []
    cancelled: list[str] = []

    async def on_notification(message: dict[str, Any]) -> None:
        notes.append(message)

    async def on_request(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "boom":
            raise RuntimeError("handler failed")
        if method == "slow":
            await trio.sleep(0.05)
        if method == "hang":
            try:
                await trio.sleep_forever()
            finally:
                cancelled.append(method)
        return {"ok": method}

    async with trio.open_nursery() as nursery:
        rpc = JsonRpcConnection(process, nursery, on_notification, on_request)
        nursery.start_soon(rpc.run, _JsonLines(process.stdout()))
        results: dict[str, Any] = {}

        async def ask(method: str) -> None:
            try:
                results[method] = await rpc.request(method, {"n": 1})
            except CodexError as exc:  # JsonRpcError: an error answer
                results[method] = exc

        nursery.start_soon(ask, "first")
        nursery.start_soon(ask, "second")
        nursery.start_soon(ask, "third")
        await trio.testing.wait_all_tasks_blocked()
        ids = {m["method"]: m["id"] for m in process.sent}
        assert sorted(ids.values()) == [0, 1, 2]
        assert all(m["params"] == {"n": 1} for m in process.sent)
        # answered out of order, with a notification and server requests between
        process.say({"id": ids["second"], "result": {"v": 2}})
        process.say({"method": "note", "params": {"x": 1}})
        process.say({"id": 7, "method": "slow", "params": {}})
        process.say({"id": 8, "method": "boom"})
        process.say({"id": "s", "method": "fast", "params": {"y": 2}})
        process.say({"id": ids["third"], "error": {"code": -32600, "message": "bad", "data": 3}})
        process.say({"id": 99, "result": "nobody asked"})
        process.say(b"not json, skipped\n")
        process.say({"id": ids["first"], "result": [1]})
        await rpc.notify("hello", {"a": 1})
        with trio.fail_after(5):
            while len(results) < 3 or len(process.sent) < 7:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert results["first"] == [1]
        assert results["second"] == {"v": 2}
        error = results["third"]
        assert isinstance(error, JsonRpcError)
        assert (error.method, error.code, error.message, error.data) == ("third", -32600, "bad", 3)
        assert notes == [{"method": "note", "params": {"x": 1}}]
        assert [m for m, _ in asked] == ["slow", "boom", "fast"]
        replies = {m["id"]: m for m in process.sent if "method" not in m}
        assert replies[7] == {"id": 7, "result": {"ok": "slow"}}
        assert replies[8]["error"]["code"] == -32603
        assert replies["s"] == {"id": "s", "result": {"ok": "fast"}}
        assert {"method": "hello", "params": {"a": 1}} in process.sent
        # a server request settled elsewhere: its handler is cancelled, nothing answered
        process.say({"id": 9, "method": "hang", "params": {}})
        await trio.testing.wait_all_tasks_blocked()
        rpc.cancel_answer(9)
        rpc.cancel_answer(12345)  # unknown: nothing
        await trio.testing.wait_all_tasks_blocked()
        assert cancelled == ["hang"]
        assert all(m.get("id") != 9 for m in process.sent)
        # the stream ends; closed, whoever waits and whoever asks later gets the reason
        nursery.start_soon(ask, "fourth")
        await trio.testing.wait_all_tasks_blocked()
        process.exit(1)
        await trio.testing.wait_all_tasks_blocked()
        assert "fourth" not in results
        rpc.close(CodexError("gone"))
        with pytest.raises(CodexError, match="gone"):
            await rpc.request("fifth")
    fourth = results["fourth"]
    assert isinstance(fourth, CodexError)
    assert str(fourth) == "gone"


# -- the agent, on recorded transcripts ------------------------------------------------------


def replaying_agent(
    name: str, **options: Any
) -> tuple[CodexAgent, ReplayProcess, FakeSandbox, list[ev.Event]]:
    process = ReplayProcess(transcript(name))
    sandbox = FakeSandbox([process])
    events: list[ev.Event] = []

    async def emit(event: ev.Event) -> None:
        events.append(event)

    agent = CodexAgent(
        sandbox,
        emit,
        base_url="http://127.0.0.1:9/v1",
        api_key=options.pop("api_key", "codex-a"),
        cwd="/workspace",
        codex_home="/home/agent/.codex",
        agent_name=options.pop("agent_name", "codex-a"),
        **options,
    )
    return agent, process, sandbox, events


async def serve(
    agent: CodexAgent,
    prompts: Sequence[str],
    *,
    during: Callable[[], Awaitable[None]] | None = None,
    timeout: float = 20,
) -> list[CodexTurn]:
    """``agent.serve`` with ``prompts`` (the first, then the others queued), and
    ``during`` running beside it; the turns it reported."""
    send, receive = trio.open_memory_channel[str](len(prompts))
    for prompt in prompts[1:]:
        send.send_nowait(prompt)
    send.close()
    turns: list[CodexTurn] = []

    async def on_turn(turn: CodexTurn) -> None:
        turns.append(turn)

    with trio.fail_after(timeout):
        if during is None:
            await agent.serve(prompts[0], receive, on_turn)
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(during)
                await agent.serve(prompts[0], receive, on_turn)
                nursery.cancel_scope.cancel()
    return turns


async def test_the_agent_replays_a_tool_call_and_a_second_turn() -> None:
    costs: list[float] = []

    async def on_cost(amount: float) -> None:
        costs.append(amount)

    agent, process, sandbox, events = replaying_agent("tool-call.jsonl", on_cost=on_cost)
    turns = await serve(agent, ["make f.txt", "and now?"])
    assert process.finished
    assert process.stdin_closed
    assert process.killed
    assert [e.type for e in events] == [
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
    # gpt-5.5 ($5 in, $30 out): the scripted model's 100 in / 20 out per call
    call = cost_usd("gpt-5.5", 100, 0, 20)
    ends = [e for e in events if isinstance(e, ev.SessionEnd)]
    assert [e.cost_usd for e in ends] == pytest.approx([3 * call, call])
    assert [(t.success, t.status, t.error) for t in turns] == [(True, "completed", None)] * 2
    assert turns[0].cost_usd == pytest.approx(3 * call)
    assert turns[0].usage == {"input_tokens": 300, "cached_input_tokens": 0, "output_tokens": 60}
    assert turns[0].thread_id == agent.thread_id is not None
    assert costs == pytest.approx([call] * 4)
    assert agent.meter.total == pytest.approx(4 * call)
    # how it was started
    [(argv, cwd, env)] = sandbox.spawned
    assert argv == build_argv("/opt/codex/codex", "http://127.0.0.1:9/v1")
    assert argv[:2] == ["/opt/codex/codex", "app-server"]
    assert 'model_provider="orchestrator"' in argv
    assert cwd == "/workspace"
    assert env["CODEX_HOME"] == "/home/agent/.codex"
    assert env["OPENAI_API_KEY"] == "codex-a"
    assert sandbox.files == {"/home/agent/.codex/config.toml": CONFIG_TOML}
    start = process.sent[2]
    assert start["method"] == "thread/start"
    assert start["params"]["approvalPolicy"] == "never"
    assert start["params"]["sandbox"] == "danger-full-access"


async def test_a_resumed_thread_is_not_charged_for_its_past() -> None:
    thread = next(
        e["message"]["result"]["thread"]["id"]
        for e in transcript("tool-call.jsonl")
        if "thread" in (e["message"].get("result") or {})
    )
    agent, process, _, events = replaying_agent("resume.jsonl", resume=thread)
    turns = await serve(agent, ["again, resumed"])
    assert process.finished
    assert agent.thread_id == thread
    assert [e.type for e in events] == ["session_start", "assistant_message", "session_end"]
    call = cost_usd("gpt-5.5", 100, 0, 20)
    assert turns[0].cost_usd == pytest.approx(call)  # not the replayed total's
    assert turns[0].usage == {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 20}
    assert agent.meter.total == pytest.approx(call)
    resume = process.sent[2]
    assert resume["method"] == "thread/resume"
    assert resume["params"]["threadId"] == thread
    assert resume["params"]["excludeTurns"] is True


async def test_approvals_are_asked_and_answered() -> None:
    asked: list[tuple[str, dict[str, Any], str]] = []

    async def can_use_tool(name: str, tool_input: dict[str, Any], item_id: str) -> bool:
        asked.append((name, tool_input, item_id))
        await trio.sleep(0.01)  # a person thinks; the stream goes on meanwhile
        return name != "Bash"

    agent, process, _, events = replaying_agent(
        "approvals.jsonl", api_key="codex-b", agent_name="codex-b", can_use_tool=can_use_tool
    )
    await serve(agent, ["touch and patch"])
    assert process.finished  # the answers were the recorded decline, then accept
    requests = [
        e["message"] for e in process.entries if "requestApproval" in e["message"].get("method", "")
    ]
    command, change = (r["params"]["itemId"] for r in requests)
    assert [(name, item) for name, _, item in asked] == [("Bash", command), ("Edit", change)]
    assert asked[0][1] == {"command": "touch declined.txt"}
    assert asked[1][1]["changes"][0]["path"] == "/workspace/patched.txt"
    assert process.sent[2]["params"]["approvalPolicy"] == "untrusted"
    declined = [e for e in events if isinstance(e, ev.PostToolUse) and e.error]
    assert [e.tool_use_id for e in declined] == [command]


async def test_a_failing_permission_callback_declines() -> None:
    async def broken(name: str, tool_input: dict[str, Any], item_id: str) -> bool:
        if name == "Bash":
            raise RuntimeError("the gate is gone")
        return True

    agent, process, _, _ = replaying_agent(
        "approvals.jsonl", api_key="codex-b", agent_name="codex-b", can_use_tool=broken
    )
    await serve(agent, ["touch and patch"])
    assert process.finished  # declined, as recorded


async def test_a_failed_turn_is_reported_and_the_next_one_runs() -> None:
    agent, process, _, events = replaying_agent("failure.jsonl", api_key="codex-c")
    turns = await serve(agent, ["fail", "recover"])
    assert process.finished
    assert [(t.success, t.status, t.error) for t in turns] == [
        (False, "failed", "scripted failure"),
        (True, "completed", None),
    ]
    assert turns[0].cost_usd == 0
    logs = [e for e in events if isinstance(e, ev.Log)]
    assert [(log.level, log.message) for log in logs] == [("error", "scripted failure")]


async def test_interrupt_stops_the_running_turn() -> None:
    agent, process, _, events = replaying_agent("interrupt.jsonl", api_key="codex-d")
    await agent.interrupt()  # not serving: nothing

    async def interrupt_when_it_runs() -> None:
        while not any(isinstance(e, ev.SessionStart) for e in events):  # noqa: ASYNC110
            await trio.sleep(0.01)
        await agent.interrupt()

    turns = await serve(agent, ["slow", "go on"], during=interrupt_when_it_runs)
    assert process.finished
    assert [(t.success, t.status) for t in turns] == [(False, "interrupted"), (True, "completed")]
    ends = [e for e in events if isinstance(e, ev.SessionEnd)]
    assert [e.success for e in ends] == [False, True]


async def test_an_interrupt_at_an_approval_cancels_the_question() -> None:
    """Codex settles a pending approval itself when its turn is interrupted
    (``serverRequest/resolved``): the permission callback is cancelled, and the tool
    that never ran gets its failed post_tool_use."""
    process = FakeProcess()
    command = {"type": "commandExecution", "id": "c1", "command": "/bin/bash -lc 'rm -rf x'"}

    async def server(message: dict[str, Any]) -> None:
        method, request_id = message.get("method"), message.get("id")
        if method == "initialize":
            process.say({"id": request_id, "result": {}})
        elif method in ("thread/start", "thread/resume"):
            process.say({"id": request_id, "result": {"thread": {"id": "th", "cwd": "/w"}}})
        elif method == "turn/start":
            process.say({"id": request_id, "result": {"turn": {"id": "t1"}}})
            process.say(
                {"method": "turn/started", "params": {"threadId": "th", "turn": {"id": "t1"}}}
            )
            process.say(
                {
                    "method": "item/started",
                    "params": {"threadId": "th", "turnId": "t1", "item": command},
                }
            )
            params = {"threadId": "th", "turnId": "t1", "itemId": "c1", "command": "rm -rf x"}
            process.say(
                {"id": 0, "method": "item/commandExecution/requestApproval", "params": params}
            )
        elif method == "turn/interrupt":
            assert message["params"] == {"threadId": "th", "turnId": "t1"}
            process.say({"id": request_id, "result": {}})
            process.say(
                {"method": "serverRequest/resolved", "params": {"threadId": "th", "requestId": 0}}
            )
            turn = {"id": "t1", "status": "interrupted", "error": None}
            process.say({"method": "turn/completed", "params": {"threadId": "th", "turn": turn}})

    async def exit_on_eof() -> None:
        process.exit(0)

    process.on_message = server
    process.on_stdin_closed = exit_on_eof
    states: list[str] = []

    async def can_use_tool(name: str, tool_input: dict[str, Any], item_id: str) -> bool:
        states.append(f"asked {name} {tool_input['command']} {item_id}")
        try:
            await trio.sleep_forever()
        finally:
            states.append("cancelled")

    events: list[ev.Event] = []

    async def emit(event: ev.Event) -> None:
        events.append(event)

    agent = CodexAgent(
        FakeSandbox([process]),
        emit,
        base_url="http://x/v1",
        api_key="k",
        cwd="/w",
        codex_home="/h/.codex",
        can_use_tool=can_use_tool,
    )

    async def interrupt_when_asked() -> None:
        while not states:  # noqa: ASYNC110
            await trio.sleep(0.01)
        await agent.interrupt()

    turns = await serve(agent, ["remove x"], during=interrupt_when_asked)
    assert states == ["asked Bash rm -rf x c1", "cancelled"]
    assert [(t.success, t.status) for t in turns] == [(False, "interrupted")]
    assert all(m.get("id") != 0 or "method" in m for m in process.sent)  # never answered
    assert [e.type for e in events] == [
        "session_start",
        "pre_tool_use",
        "post_tool_use",
        "session_end",
    ]
    post = events[2]
    assert isinstance(post, ev.PostToolUse)
    assert post.error == "the turn ended (interrupted) before the tool finished"


async def test_a_process_that_dies_raises_with_what_it_said() -> None:
    process = FakeProcess()

    async def die(message: dict[str, Any]) -> None:
        if message.get("method") == "initialize":
            process.exit(1, b"Error: something is wrong\n")

    process.on_message = die
    sandbox = FakeSandbox([process])

    async def emit(event: ev.Event) -> None:
        pass

    agent = CodexAgent(
        sandbox, emit, base_url="http://x/v1", api_key="k", cwd="/w", codex_home="/h/.codex"
    )
    send, receive = trio.open_memory_channel[str](1)

    async def on_turn(turn: CodexTurn) -> None:
        raise AssertionError("no turn")

    with pytest.raises(CodexExited, match=r"exit code 1\): Error: something is wrong"):
        await agent.serve("hi", receive, on_turn)
    assert process.killed
    send.close()


async def test_a_process_that_dies_mid_turn_raises() -> None:
    entries = transcript("tool-call.jsonl")
    cut = next(i for i, e in enumerate(entries) if e["message"].get("method") == "turn/started")
    process = ReplayProcess(entries[: cut + 1])
    sandbox = FakeSandbox([process])
    events: list[ev.Event] = []

    async def emit(event: ev.Event) -> None:
        events.append(event)
        if isinstance(event, ev.SessionStart):
            process.exit(137)

    agent = CodexAgent(
        sandbox,
        emit,
        base_url="http://127.0.0.1:9/v1",
        api_key="codex-a",
        cwd="/workspace",
        codex_home="/home/agent/.codex",
        agent_name="codex-a",
    )
    with pytest.raises(CodexExited, match="exit code 137"):
        await serve(agent, ["make f.txt"])
    assert [e.type for e in events] == ["session_start"]


async def test_cancelling_serve_kills_the_process() -> None:
    process = FakeProcess()  # never answers
    sandbox = FakeSandbox([process])

    async def emit(event: ev.Event) -> None:
        pass

    agent = CodexAgent(
        sandbox, emit, base_url="http://x/v1", api_key="k", cwd="/w", codex_home="/h/.codex"
    )
    _, receive = trio.open_memory_channel[str](1)

    async def on_turn(turn: CodexTurn) -> None:
        pass

    with trio.move_on_after(0.2) as scope:
        await agent.serve("hi", receive, on_turn)
    assert scope.cancelled_caught
    assert process.killed


async def test_an_agent_serves_once() -> None:
    agent, process, _, _ = replaying_agent("failure.jsonl", api_key="codex-c")
    await serve(agent, ["fail", "recover"])
    assert process.finished
    with pytest.raises(RuntimeError, match="serves once"):
        await serve(agent, ["again"])


async def test_default_codex_home_and_bad_homes() -> None:
    assert await default_codex_home(FakeSandbox([], home="/home/agent")) == "/home/agent/.codex"
    with pytest.raises(SandboxError):
        await default_codex_home(FakeSandbox([], home=""))

    async def emit(event: ev.Event) -> None:
        pass

    with pytest.raises(ValueError, match="absolute"):
        CodexAgent(FakeSandbox([]), emit, base_url="u", api_key="k", cwd="/w", codex_home="h")


# -- the real CLI -------------------------------------------------------------------------


@pytest.fixture
def codex() -> Path:
    return codex_cli()


# The scenarios of tests/data/codex (its README), played by the real CLI.
CREATE = "echo hello > f.txt && cat f.txt"
FAIL = "echo oops >&2; exit 3"
PATCH = (  # Codex runs an apply_patch heredoc as a file change (a fileChange item)
    "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: patched.txt\n+patched\n"
    "*** End Patch\nEOF\n"
)


def live_script() -> Script:
    return Script(
        agents={
            "codex-a": AgentScript.of(
                Turn(blocks=(ToolCall("exec_command", {"cmd": CREATE}),)),
                Turn(blocks=(ToolCall("exec_command", {"cmd": FAIL}),)),
                "Done: f.txt",
                "Second answer.",
                "Resumed answer.",
            ),
            "codex-b": AgentScript.of(
                Turn(blocks=(ToolCall("exec_command", {"cmd": "touch declined.txt"}),)),
                Turn(blocks=(ToolCall("exec_command", {"cmd": PATCH}),)),
                "Done: patched.",
            ),
            "codex-c": AgentScript.of(
                Turn.failure(400, "invalid_request_error", "scripted failure"), "Recovered."
            ),
            "codex-d": AgentScript.of(Turn.text("too late", delay=20), "After the interrupt."),
        }
    )


class RecordingSandbox(Sandbox):
    """A sandbox whose spawned processes' JSON lines, both ways, go to a transcript."""

    def __init__(self, inner: Sandbox, path: Path) -> None:
        self._inner = inner
        self._path = path
        self.sandbox_id, self.session_id = inner.sandbox_id, inner.session_id
        self.runtime, self.workdir = inner.runtime, inner.workdir
        self.claude_path, self.codex_path = inner.claude_path, inner.codex_path

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        return _Tee(await self._inner.spawn(argv, cwd=cwd, env=env), self._path.open("w"))

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        return await self._inner.exec(argv, cwd=cwd, env=env, stdin=stdin, timeout=timeout)

    def exec_stream(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        return self._inner.exec_stream(argv, cwd=cwd, env=env)

    async def read_file(self, path: str) -> bytes:
        return await self._inner.read_file(path)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        await self._inner.write_file(path, data, mode=mode)

    async def list_files(self, directory: str) -> list[str]:
        return await self._inner.list_files(directory)

    async def start_app(self) -> AppStatus:
        return await self._inner.start_app()

    async def stop_app(self) -> None:
        await self._inner.stop_app()

    async def app_status(self) -> AppStatus:
        return await self._inner.app_status()

    async def is_alive(self) -> bool:
        return await self._inner.is_alive()

    async def destroy(self) -> None:
        await self._inner.destroy()


class _TeeLines:
    def __init__(self, chunks: AsyncIterator[bytes], log: Callable[[str, bytes], None]) -> None:
        self._chunks = chunks
        self._log = log
        self._pending = b""

    def __aiter__(self) -> _TeeLines:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            self._log("server", line)
        return chunk


class _Tee(Process):
    def __init__(self, inner: Process, file: Any) -> None:
        self._inner = inner
        self._file = file

    def _log(self, who: str, line: bytes) -> None:
        if line.strip().startswith(b"{"):
            entry = {"from": who, "message": json.loads(line)}
            self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._file.flush()

    async def write(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            self._log("client", line)
        await self._inner.write(data)

    async def close_stdin(self) -> None:
        await self._inner.close_stdin()

    def stdout(self) -> AsyncIterator[bytes]:
        return _TeeLines(self._inner.stdout(), self._log)

    def stderr(self) -> AsyncIterator[bytes]:
        return self._inner.stderr()

    async def wait(self) -> int:
        return await self._inner.wait()

    async def kill(self) -> None:
        try:
            await self._inner.kill()
        finally:
            self._file.close()


async def run_agent(
    sandbox: Sandbox,
    base_url: str,
    key: str,
    prompts: Sequence[str],
    *,
    codex_home: str,
    record: Path | None = None,
    interrupt_after: float | None = None,
    **options: Any,
) -> tuple[CodexAgent, list[ev.Event], list[CodexTurn]]:
    events: list[ev.Event] = []

    async def emit(event: ev.Event) -> None:
        events.append(event)

    assert sandbox.codex_path is not None
    agent = CodexAgent(
        sandbox if record is None else RecordingSandbox(sandbox, record),
        emit,
        base_url=base_url,
        api_key=key,
        cwd=sandbox.workdir,
        codex_home=codex_home,
        cli_path=sandbox.codex_path,
        agent_name=key,
        **options,
    )

    async def interrupt() -> None:
        await trio.sleep(interrupt_after or 0)
        await agent.interrupt()

    turns = await serve(
        agent, prompts, timeout=90, during=None if interrupt_after is None else interrupt
    )
    return agent, events, turns


def kinds(events: list[ev.Event]) -> list[str]:
    return [e.type for e in events]


async def check_the_scenarios(
    sandbox: Sandbox, base_url: str, codex_home: str, record: Path | None = None
) -> None:
    """The scenarios of tests/data/codex: tool calls that make a file (and one that
    fails), a second turn on the same process, the thread resumed by a new process, a
    command declined and a file change accepted at their approvals, a failed model
    call, an interrupted turn. ``record``: write the transcripts there."""

    def recording(name: str) -> Path | None:
        return None if record is None else record / name

    call = cost_usd("gpt-5.5", 100, 0, 20)  # what each scripted model call costs
    agent, events, turns = await run_agent(
        sandbox,
        base_url,
        "codex-a",
        ["make f.txt", "and now?"],
        codex_home=codex_home,
        record=recording("tool-call.jsonl"),
    )
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
    ], kinds(events)
    start, pre, post, _, failed, said, end = events[:7]
    assert isinstance(start, ev.SessionStart)
    assert start.session_id == agent.thread_id
    assert start.cwd == sandbox.workdir
    assert start.agent == "codex-a"
    assert isinstance(pre, ev.PreToolUse)
    assert (pre.tool_name, pre.tool_input) == ("Bash", {"command": CREATE})
    assert isinstance(post, ev.PostToolUse)
    assert (post.tool_use_id, post.tool_response, post.error) == (pre.tool_use_id, "hello\n", None)
    assert isinstance(failed, ev.PostToolUse)
    assert failed.error == "oops\n"
    assert isinstance(said, ev.AssistantMessage)
    assert (said.text, said.agent) == ("Done: f.txt", "codex-a")
    assert isinstance(end, ev.SessionEnd)
    assert end.success
    assert end.cost_usd is not None
    assert end.cost_usd > 0
    assert end.cost_usd == pytest.approx(3 * call)
    second = events[8]
    assert isinstance(second, ev.AssistantMessage)
    assert second.text == "Second answer."
    assert [t.success for t in turns] == [True, True]
    assert [t.cost_usd for t in turns] == pytest.approx([3 * call, call])
    assert await sandbox.read_file(f"{sandbox.workdir}/f.txt") == b"hello\n"

    # the thread, resumed by a new process
    resumed, events, turns = await run_agent(
        sandbox,
        base_url,
        "codex-a",
        ["again, resumed"],
        codex_home=codex_home,
        resume=agent.thread_id,
        record=recording("resume.jsonl"),
    )
    assert resumed.thread_id == agent.thread_id
    assert kinds(events) == ["session_start", "assistant_message", "session_end"]
    start = events[0]
    assert isinstance(start, ev.SessionStart)
    assert start.session_id == agent.thread_id
    assert turns[0].cost_usd == pytest.approx(call)  # the thread's past is not charged again

    # approvals: the command declined does not run; the file change accepted does
    asked: list[tuple[str, dict[str, Any]]] = []

    async def can_use_tool(name: str, tool_input: dict[str, Any], item_id: str) -> bool:
        asked.append((name, tool_input))
        return name != "Bash"

    _, events, turns = await run_agent(
        sandbox,
        base_url,
        "codex-b",
        ["touch and patch"],
        codex_home=codex_home,
        can_use_tool=can_use_tool,
        record=recording("approvals.jsonl"),
    )
    assert [name for name, _ in asked] == ["Bash", "Edit"]
    assert asked[0][1] == {"command": "touch declined.txt"}
    declined = next(e for e in events if isinstance(e, ev.PostToolUse))
    assert declined.error == "the command was declined"
    files = await sandbox.list_files(sandbox.workdir)
    assert not any(f.endswith("/declined.txt") for f in files)
    assert any(f.endswith("/patched.txt") for f in files)
    assert turns[0].success

    # a model call that fails, then a turn that works
    _, events, turns = await run_agent(
        sandbox,
        base_url,
        "codex-c",
        ["fail", "recover"],
        codex_home=codex_home,
        record=recording("failure.jsonl"),
    )
    assert [(t.success, t.error) for t in turns] == [(False, "scripted failure"), (True, None)]
    assert kinds(events)[:3] == ["session_start", "log", "session_end"]

    # a turn interrupted while the model thinks
    _, events, turns = await run_agent(
        sandbox,
        base_url,
        "codex-d",
        ["slow", "go on"],
        codex_home=codex_home,
        interrupt_after=1.5,
        record=recording("interrupt.jsonl"),
    )
    assert [(t.success, t.status) for t in turns] == [(False, "interrupted"), (True, "completed")]
    assert kinds(events) == [
        "session_start",
        "session_end",
        "session_start",
        "assistant_message",
        "session_end",
    ]


async def test_codex_in_a_local_sandbox(tmp_path: Path, codex: Path) -> None:
    async with (
        open_model_server(live_script()) as models,
        LocalProvider("test-codex", tmp_path / "sandboxes", codex_binary=codex) as provider,
    ):
        sandbox = await provider.create(
            SandboxSpec(session_id="s1", project_name="p", network="host")
        )
        try:
            codex_home = await default_codex_home(sandbox)
            assert codex_home.endswith("/home/.codex")
            await check_the_scenarios(sandbox, models.openai_base_url, codex_home)
            # the resumed process sent the thread's history to the model
            last = models.main_requests("codex-a")[-1]
            assert "make f.txt" in json.dumps(last.body)
        finally:
            await sandbox.destroy()
        assert await provider.list_owned() == []


@pytest.mark.docker
async def test_codex_in_a_docker_sandbox(
    docker_client: docker.DockerClient, docker_limiter: trio.CapacityLimiter, codex: Path
) -> None:
    server_id = f"test-{uuid.uuid4().hex[:12]}"
    provider = DockerProvider(
        server_id,
        client=docker_client,
        limiter=docker_limiter,
        network="host",
        codex_binary=codex,
    )
    record = os.environ.get("CODEX_RECORD_DIR")
    try:
        async with open_model_server(live_script()) as models:
            sandbox = await provider.create(SandboxSpec(session_id="s1", project_name="p"))
            try:
                assert sandbox.codex_path == "/opt/codex/codex"
                version = await sandbox.exec([sandbox.codex_path, "--version"], timeout=60)
                assert version.ok
                assert b"0.169.0" in version.stdout
                assert not (await sandbox.exec(["touch", sandbox.codex_path])).ok  # read-only
                codex_home = await default_codex_home(sandbox)
                assert codex_home == "/home/agent/.codex"
                await check_the_scenarios(
                    sandbox,
                    models.openai_base_url,
                    codex_home,
                    record=Path(record) if record else None,
                )
            finally:
                await sandbox.destroy()
    finally:
        await provider.aclose()
        left = await off_loop(
            docker_limiter, partial(remove_docker_leftovers, docker_client, server_id)
        )
        assert left == []
    assert await off_loop(docker_limiter, partial(docker_leftovers, docker_client, server_id)) == []


async def test_sandboxes_without_a_codex_binary_have_no_codex_path(tmp_path: Path) -> None:
    async with LocalProvider("test-codex", tmp_path / "sandboxes", bwrap=False) as provider:
        sandbox = await provider.create(SandboxSpec(session_id="s1", project_name="p"))
        try:
            assert sandbox.codex_path is None
        finally:
            await sandbox.destroy()
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\necho fake codex\n")
    fake.chmod(0o755)
    async with LocalProvider(
        "test-codex", tmp_path / "more", bwrap=False, codex_binary=fake
    ) as provider:
        sandbox = await provider.create(SandboxSpec(session_id="s2", project_name="p"))
        try:
            assert sandbox.codex_path == str(fake)
            result = await sandbox.exec([sandbox.codex_path])
            assert result.stdout == b"fake codex\n"
        finally:
            await sandbox.destroy()

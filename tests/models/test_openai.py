"""The OpenAI Responses dialect: the event stream read back by a client's rules, side
requests told from main turns (bodies shaped like Codex 0.169.0's), the recorded
request's helpers, the server over real HTTP, ``orchestrator model-server``, and the real
Codex CLI (``codex exec --json``) against a scripted server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.bridges.codex_cli import (
    BINARY_ENV,
    OFFLINE_MODEL,
    codex_binary,
    offline_args,
)
from orchestrator.models import (
    AgentScript,
    ModelServer,
    RecordedRequest,
    RequestKind,
    Script,
    SseEvent,
    Text,
    ToolCall,
    Turn,
    Usage,
    accumulate,
    accumulate_response,
    call_ids,
    encode_sse,
    open_model_server,
    parse_sse,
    response_body,
    response_events,
    response_side_reason,
    response_usage,
)
from orchestrator.models._openai import response_side_turn

from ..docker_support import codex_cli
from .test_wire import main_body

REPO = Path(__file__).resolve().parents[2]

TURN = Turn(
    blocks=(
        Text("Let me write the file."),
        ToolCall("exec_command", {"cmd": "echo hello > f.txt", "workdir": "/w"}),
        ToolCall("exec_command", {"cmd": "cat f.txt"}, id="call_given"),
        Text("Then I read it back."),
    ),
    usage=Usage(
        input_tokens=1000,
        output_tokens=56,
        cache_read_input_tokens=200,
        cache_creation_input_tokens=7,
    ),
)


def roundtrip(turn: Turn, chunk_size: int = 8) -> tuple[list[SseEvent], dict[str, Any]]:
    events = response_events(turn, seq=3, model="m", ids=call_ids(turn, 3), chunk_size=chunk_size)
    parsed = parse_sse(b"".join(encode_sse(e) for e in events))
    return parsed, accumulate_response(parsed)


def test_stream_reads_back_as_the_json_response() -> None:
    events, response = roundtrip(TURN)
    assert response == response_body(TURN, seq=3, model="m", ids=call_ids(TURN, 3))
    assert response["id"] == "resp_scripted_000003"
    assert response["status"] == "completed"
    assert [(i["type"], i["id"]) for i in response["output"]] == [
        ("message", "msg_000003_00"),
        ("function_call", "fc_000003_01"),
        ("function_call", "fc_000003_02"),
        ("message", "msg_000003_03"),
    ]
    first, call, given_call, last = response["output"]
    assert first["role"] == "assistant"
    assert first["content"] == [
        {"type": "output_text", "text": "Let me write the file.", "annotations": []}
    ]
    assert call["name"] == "exec_command"
    assert call["call_id"] == "call_000003_00"
    assert json.loads(call["arguments"]) == {"cmd": "echo hello > f.txt", "workdir": "/w"}
    assert given_call["call_id"] == "call_given"
    assert last["content"][0]["text"] == "Then I read it back."
    assert response["usage"] == {
        "input_tokens": 1207,
        "input_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 7},
        "output_tokens": 56,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 1263,
    }
    names = [e.event for e in events]
    assert names[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert names[-1] == "response.completed"
    assert names.count("response.output_item.added") == names.count("response.output_item.done")
    assert names.count("response.content_part.added") == 2
    assert names.count("response.output_text.done") == 2
    assert names.count("response.function_call_arguments.done") == 2
    assert [e.data["sequence_number"] for e in events] == list(range(len(events)))
    # The start carries no output and no usage yet; every delta is at most chunk_size.
    assert events[0].data["response"]["status"] == "in_progress"
    assert events[0].data["response"]["output"] == []
    assert events[0].data["response"]["usage"] is None
    deltas = [e.data["delta"] for e in events if e.event.endswith(".delta")]
    assert deltas
    assert all(0 < len(d) <= 8 for d in deltas)


def test_a_max_tokens_turn_is_incomplete() -> None:
    turn = Turn.text("cut sho", stop_reason="max_tokens")
    events, response = roundtrip(turn)
    assert events[-1].event == "response.incomplete"
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    _, empty = roundtrip(Turn.text(""))
    assert empty["output"][0]["content"][0]["text"] == ""
    with pytest.raises(ValueError, match=r"^chunk_size must be >= 1, got 0$"):
        response_events(TURN, seq=1, model="m", ids=call_ids(TURN, 1), chunk_size=0)


def test_usage_of_the_scripted_counts() -> None:
    assert response_usage(Usage(input_tokens=200, output_tokens=40)) == {
        "input_tokens": 200,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 240,
    }


def test_accumulate_refuses_broken_streams() -> None:
    events = response_events(TURN, seq=1, model="m", ids=call_ids(TURN, 1))
    with pytest.raises(ValueError, match=r"^the stream ended before the response did$"):
        accumulate_response(events[:-1])
    with pytest.raises(ValueError, match=r"sequence_number 1, expected 0"):
        accumulate_response(events[1:])
    renumbered = [
        SseEvent(e.event, {**e.data, "sequence_number": n})
        for n, e in enumerate([events[0], *events[3:]])
    ]
    with pytest.raises(ValueError, match=r"output_index 0 of no item"):
        accumulate_response(renumbered)
    bad_delta = [
        SseEvent(e.event, {**e.data, "delta": "X"}) if e.event.endswith("text.delta") else e
        for e in events
    ]
    with pytest.raises(ValueError, match=r"the deltas do not add up"):
        accumulate_response(bad_delta)
    with pytest.raises(ValueError, match=r"does not match data type"):
        accumulate_response([SseEvent("response.created", {"type": "response.completed"})])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
any_blocks = st.one_of(
    st.builds(Text, st.text()),
    st.builds(ToolCall, st.text(min_size=1), st.dictionaries(st.text(), json_values, max_size=4)),
)
usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cache_creation_input_tokens=st.integers(0, 10**6),
    cache_read_input_tokens=st.integers(0, 10**6),
)


@given(st.lists(any_blocks, max_size=4), usages, st.integers(1, 40))
def test_any_turn_survives_the_stream(
    content: list[Text | ToolCall], usage: Usage, size: int
) -> None:
    turn = Turn(blocks=tuple(content), usage=usage)
    _, response = roundtrip(turn, size)
    assert response == response_body(turn, seq=3, model="m", ids=call_ids(turn, 3))
    calls = [b for b in content if isinstance(b, ToolCall)]
    got = [i for i in response["output"] if i["type"] == "function_call"]
    assert [json.loads(i["arguments"]) for i in got] == [dict(c.input) for c in calls]
    assert response["usage"]["total_tokens"] == (
        usage.input_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens
        + usage.output_tokens
    )


# -- side requests and recorded requests -----------------------------------------------
# Shapes of the bodies Codex 0.169.0 sent (instructions and tools cut short).


def codex_meta(request_kind: str) -> str:
    return json.dumps({"session_id": "s", "turn_id": "t", "request_kind": request_kind})


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def codex_body(
    *items: dict[str, Any], request_kind: str = "turn", **changes: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": OFFLINE_MODEL,
        "stream": True,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex"}],
            },
            user("<environment_context>\n  <cwd>/w</cwd>\n</environment_context>"),
            *items,
        ],
        "tools": [{"type": "function", "name": "exec_command", "parameters": {}}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "client_metadata": {"x-codex-turn-metadata": codex_meta(request_kind)},
    }
    body.update(changes)
    return body


def call(call_id: str) -> dict[str, Any]:
    return {"type": "function_call", "name": "exec_command", "arguments": "{}", "call_id": call_id}


def output(call_id: str, text: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


COMPACTION_PROMPT = (
    "You are performing a CONTEXT CHECKPOINT COMPACTION. Create a handoff summary for "
    "another LLM that will resume the task."
)


def test_side_requests_are_told_apart() -> None:
    assert response_side_reason(codex_body(user("make f.txt"))) is None
    after_tool = codex_body(user("make f.txt"), call("c1"), output("c1", "done"))
    assert response_side_reason(after_tool) is None
    compaction = codex_body(user("make f.txt"), user(COMPACTION_PROMPT), request_kind="compaction")
    assert response_side_reason(compaction) == "request_kind:compaction"
    # Without Codex's metadata: the compaction prompt, or a tiny max_output_tokens.
    del compaction["client_metadata"]
    assert response_side_reason(compaction) == "compaction"
    plain = {"model": "m", "input": "hello"}
    assert response_side_reason(plain) is None
    assert response_side_reason({**plain, "max_output_tokens": 16}) == "small_max_tokens"
    assert response_side_reason({**plain, "max_output_tokens": 16}, side_max_tokens=8) is None
    broken = {**plain, "client_metadata": {"x-codex-turn-metadata": "not json"}}
    assert response_side_reason(broken) is None


def test_side_answers_fit_what_was_asked() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    structured = {"input": "t", "text": {"format": {"type": "json_schema", "schema": schema}}}
    turn = response_side_turn(structured, "small_max_tokens", "OK.")
    assert turn.blocks == (Text('{"title": "OK."}'),)
    assert response_side_turn({"input": "t"}, "compaction", "summary").blocks == (Text("summary"),)


def recorded(body: dict[str, Any], api: str = "openai") -> RecordedRequest:
    return RecordedRequest(
        seq=1,
        api=api,
        method="POST",
        path="/v1/responses",
        query="",
        headers={},
        body=body,
        agent=None,
        kind=RequestKind.MAIN,
    )


def test_recorded_responses_requests_read_like_messages_ones() -> None:
    first = recorded(codex_body(user("make f.txt")))
    assert first.user_text() == "make f.txt"
    assert first.tool_results() == []
    assert first.messages == []
    assert len(first.input_items) == 3
    # Two steps: only the outputs answering the latest response are this request's.
    steps = recorded(
        codex_body(
            user("make f.txt"),
            {"type": "reasoning", "summary": []},
            call("c1"),
            output("c1", "one"),
            {"type": "message", "role": "assistant", "content": [{"type": "output_text"}]},
            call("c2"),
            call("c3"),
            output("c2", "two"),
            output("c3", "three"),
        )
    )
    assert steps.user_text() == "make f.txt"
    assert [r["output"] for r in steps.tool_results()] == ["two", "three"]
    # Outputs before a later user message are not this request's.
    later = recorded(codex_body(user("a"), call("c1"), output("c1", "one"), user("b")))
    assert later.tool_results() == []
    assert later.user_text() == "b"
    # A string input is one user message; with previous_response_id, just outputs.
    assert recorded({"input": "hello"}).user_text() == "hello"
    assert recorded({"input": [output("c9", "nine")]}).tool_results() == [output("c9", "nine")]
    assert recorded({"input": 7}).input_items == []
    # The same helpers on a Messages request.
    anthropic = recorded(main_body(), api="anthropic")
    assert anthropic.user_text() == "make f.txt"
    assert anthropic.input_items == []


# -- the server ------------------------------------------------------------------------

SCRIPT = Script(
    agents={
        "agent-a": AgentScript.of(
            Turn(
                blocks=(Text("a1"), ToolCall("exec_command", {"cmd": "ls"})),
                usage=Usage(input_tokens=7, output_tokens=3, cache_read_input_tokens=2),
            ),
            "a2",
            final="a is done",
        ),
        "agent-b": AgentScript.of(
            Turn.failure(429, "rate_limit_error", "slow down"),
            Turn.failure(400, "invalid_request_error", "no such thing"),
            "b after errors",
        ),
    },
    default=AgentScript.of("d1"),
)


async def respond(
    client: httpx.AsyncClient, key: str | None, body: dict[str, Any], path: str = "/v1/responses"
) -> dict[str, Any]:
    """Posts like Codex does; returns the response, read back from the stream when the
    body asks for one."""
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    if body.get("stream"):
        assert response.headers["content-type"].startswith("text/event-stream")
        return accumulate_response(parse_sse(response.content))
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


def output_texts(response: dict[str, Any]) -> list[str]:
    return [
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    ]


async def test_each_agent_plays_its_turns_by_bearer_token() -> None:
    async with (
        open_model_server(SCRIPT) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        assert models.openai_base_url == f"{models.base_url}/v1"
        first = await respond(client, "agent-a", codex_body(user("go")))
        assert output_texts(first) == ["a1"]
        fc = first["output"][1]
        assert (fc["type"], fc["name"], fc["call_id"]) == (
            "function_call",
            "exec_command",
            "call_000001_00",
        )
        assert json.loads(fc["arguments"]) == {"cmd": "ls"}
        assert first["model"] == OFFLINE_MODEL
        assert first["usage"]["input_tokens"] == 9
        assert first["usage"]["input_tokens_details"]["cached_tokens"] == 2
        assert first["usage"]["output_tokens"] == 3
        # A compaction takes no turn; the tool follow-up takes the next one, not streamed.
        compaction = codex_body(user(COMPACTION_PROMPT), request_kind="compaction")
        assert output_texts(await respond(client, "agent-a", compaction)) == ["OK."]
        follow_up = codex_body(
            user("go"), call("call_000001_00"), output("call_000001_00", "f.txt")
        )
        second = await respond(client, "agent-a", {**follow_up, "stream": False})
        assert output_texts(second) == ["a2"]
        assert second["status"] == "completed"
        assert second["id"] == "resp_scripted_000003"
        assert output_texts(await respond(client, "agent-a", codex_body(user("more")))) == [
            "a is done"
        ]
        # /responses (a base URL without /v1) and an unknown or missing key: the default.
        assert output_texts(await respond(client, "x", codex_body(user("go")), "/responses")) == [
            "d1"
        ]
        assert output_texts(await respond(client, None, {"input": "hi", "stream": True})) == ["d1"]

        kinds = [(r.api, r.agent, r.kind, r.turn, r.side_reason) for r in models.requests]
        main, side = RequestKind.MAIN, RequestKind.SIDE
        assert kinds == [
            ("openai", "agent-a", main, 0, None),
            ("openai", "agent-a", side, None, "request_kind:compaction"),
            ("openai", "agent-a", main, 1, None),
            ("openai", "agent-a", main, None, None),
            ("openai", "x", main, 0, None),
            ("openai", None, main, 0, None),
        ]
        follow = models.main_requests("agent-a")[1]
        assert follow.user_text() == "go"
        assert follow.tool_results() == [output("call_000001_00", "f.txt")]
        assert models.turns_taken("agent-a") == 3


async def test_both_apis_on_one_port_share_the_agent_cursor() -> None:
    script = Script.single("first", "second")
    async with (
        open_model_server(script) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        response = await respond(client, "k", codex_body(user("go")))
        assert output_texts(response) == ["first"]
        answer = await client.post("/v1/messages", json=main_body(), headers={"x-api-key": "k"})
        message = accumulate(parse_sse(answer.content))
        assert [b["text"] for b in message["content"]] == ["second"]
        assert [r.api for r in models.requests] == ["openai", "anthropic"]


async def test_errors_are_openai_shaped_and_take_a_turn() -> None:
    async with (
        open_model_server(SCRIPT) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        bearer = {"authorization": "Bearer agent-b"}
        limited = await client.post("/v1/responses", json=codex_body(user("go")), headers=bearer)
        assert limited.status_code == 429
        assert limited.json() == {
            "error": {
                "message": "slow down",
                "type": "rate_limit_error",
                "param": None,
                "code": None,
            }
        }
        assert limited.headers["x-request-id"] == "req_scripted_000001"
        refused = await client.post(
            "/v1/responses", json={**codex_body(user("go")), "stream": False}, headers=bearer
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "invalid_request_error"
        assert output_texts(await respond(client, "agent-b", codex_body(user("go")))) == [
            "b after errors"
        ]
        bad = await client.post("/v1/responses", json={"model": "m"}, headers=bearer)
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == "bad body"
        missing = await client.post("/v1/responses/compact", json={"input": []})
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
        assert [(r.status, r.kind) for r in models.requests] == [
            (429, RequestKind.MAIN),
            (400, RequestKind.MAIN),
            (200, RequestKind.MAIN),
            (400, RequestKind.OTHER),
            (404, RequestKind.OTHER),
        ]


async def test_models_list_reads_as_either_api() -> None:
    async with (
        open_model_server(SCRIPT) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        for path in ("/v1/models", "/models"):
            listing = (await client.get(path)).json()
            assert listing["object"] == "list"
            assert listing["has_more"] is False
            ids = [m["id"] for m in listing["data"]]
            assert OFFLINE_MODEL in ids
            assert "claude-opus-5-5" in ids
            assert (listing["first_id"], listing["last_id"]) == (ids[0], ids[-1])
            for entry in listing["data"]:
                assert entry["object"] == "model"  # OpenAI
                assert entry["type"] == "model"  # Anthropic
                assert isinstance(entry["created"], int)
                assert isinstance(entry["created_at"], str)
        one = (await client.get(f"/v1/models/{OFFLINE_MODEL}")).json()
        assert (one["id"], one["object"], one["owned_by"]) == (OFFLINE_MODEL, "model", "scripted")


async def test_a_delay_holds_the_content_after_the_start() -> None:
    script = Script.single(Turn.text("late", delay=0.5))
    async with (
        open_model_server(script) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        started = trio.current_time()
        async with client.stream("POST", "/v1/responses", json=codex_body(user("x"))) as response:
            chunks = response.aiter_bytes()
            head = await anext(chunks)
            assert trio.current_time() - started < 0.4
            assert b"response.created" in head
            rest = b"".join([c async for c in chunks])
        assert trio.current_time() - started >= 0.5
        assert output_texts(accumulate_response(parse_sse(head + rest))) == ["late"]


# -- orchestrator model-server -----------------------------------------------------------


async def test_the_model_server_command_serves_both_apis(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"agents": {"k": ["one", "two"]}}))
    argv = [sys.executable, "-m", "orchestrator.cli", "model-server", "--script", str(path)]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(trio.run_process, [*argv, "--port", "0"], stdout=subprocess.PIPE, check=False)
        )
        assert process.stdout is not None
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        found = re.match(r"model-server: listening on (http://127\.0\.0\.1:\d+) ", line.decode())
        assert found is not None, line
        async with httpx.AsyncClient(base_url=found[1]) as client:
            assert output_texts(await respond(client, "k", codex_body(user("go")))) == ["one"]
            answer = await client.post("/v1/messages", json=main_body(), headers={"x-api-key": "k"})
            assert accumulate(parse_sse(answer.content))["content"][0]["text"] == "two"
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await process.wait() == 0


def test_the_model_server_command_refuses_a_bad_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli import main

    path = tmp_path / "bad.json"
    path.write_text("[]")
    assert main(["model-server", "--script", str(path)]) == 2
    assert capsys.readouterr().err == "orchestrator: script: expected an object, got list\n"


# -- the real Codex CLI ------------------------------------------------------------------


def test_offline_args() -> None:
    args = offline_args("http://127.0.0.1:9/v1", provider="p")
    assert args[:4] == [
        "-c",
        'model_provider="p"',
        "-c",
        'model_providers.p={name="p", base_url="http://127.0.0.1:9/v1", '
        'env_key="OPENAI_API_KEY", wire_api="responses"}',
    ]
    assert args[4:6] == ["-c", 'model="gpt-5.5"']
    assert "analytics.enabled=false" in args
    disabled = [args[i + 1] for i, a in enumerate(args) if a == "--disable"]
    assert disabled == ["plugins", "remote_plugin", "apps", "in_app_updates", "plugin_sharing"]
    assert not any(a.startswith("model=") for a in offline_args("u", model=None))
    with pytest.raises(ValueError, match=r"bare TOML key"):
        offline_args("u", provider="a.b")


def test_codex_binary_honours_the_environment(tmp_path: Path) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(FileNotFoundError, match=BINARY_ENV):
        codex_binary(env={BINARY_ENV: str(fake)})
    fake.chmod(0o755)
    assert codex_binary(env={BINARY_ENV: str(fake)}) == fake
    assert codex_binary(vendor_dir=tmp_path, env={}) is None


@pytest.fixture
def codex() -> Path:
    """The Codex binary; skips the test when it is not installed (fails in CI)."""
    return codex_cli()


@pytest.fixture
def codex_home(tmp_path: Path) -> Iterator[Path]:
    """A CODEX_HOME of its own, not under /tmp (Codex's sandbox helper refuses to run
    from there): pytest's tmp_path when that is elsewhere, else under the repository's
    ``.pytest-codex/`` (git-ignored), removed afterwards."""
    if not tmp_path.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        home = tmp_path / "codex-home"
        home.mkdir()
        yield home
        return
    parent = REPO / ".pytest-codex"
    parent.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=parent))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def run_codex(
    codex: Path,
    models: ModelServer,
    key: str,
    prompt: str,
    *,
    cwd: Path,
    home: Path,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """``codex exec --json`` (stdin closed) as agent ``key`` of ``models``; its JSON lines.
    Raises AssertionError (with stderr) when it exits non-zero."""
    argv = [
        str(codex),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        *offline_args(models.openai_base_url),
        prompt,
    ]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home),
        "OPENAI_API_KEY": key,
    }
    with trio.fail_after(timeout):
        done = await trio.run_process(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def items(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The completed items of type ``kind`` in Codex's JSON lines."""
    return [
        line["item"]
        for line in lines
        if line["type"] == "item.completed" and line["item"]["type"] == kind
    ]


def offered_tools(request: RecordedRequest) -> list[str]:
    return [t["name"] for t in request.body.get("tools", []) if "name" in t]


async def test_codex_runs_a_scripted_shell_call(
    codex: Path, tmp_path: Path, codex_home: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    command = "printf 'made by codex\\n' > made.txt && echo created"
    script = Script(
        agents={
            "codex-a": AgentScript.of(
                Turn(
                    blocks=(Text("Creating it."), ToolCall("exec_command", {"cmd": command})),
                    usage=Usage(input_tokens=1000, output_tokens=50, cache_read_input_tokens=200),
                ),
                Turn.text("made.txt is there.", usage=Usage(input_tokens=1300, output_tokens=30)),
            )
        }
    )
    async with open_model_server(script) as models:
        lines = await run_codex(
            codex, models, "codex-a", "make made.txt", cwd=project, home=codex_home
        )

    assert (project / "made.txt").read_text() == "made by codex\n"
    assert lines[0]["type"] == "thread.started"
    assert [line["type"] for line in lines if "item" not in line][1:] == [
        "turn.started",
        "turn.completed",
    ]
    (execution,) = items(lines, "command_execution")
    assert execution["command"].startswith("/bin/bash -lc ")
    assert "made.txt && echo created" in execution["command"]
    assert (execution["exit_code"], execution["status"]) == (0, "completed")
    assert execution["aggregated_output"] == "created\n"
    assert [m["text"] for m in items(lines, "agent_message")] == [
        "Creating it.",
        "made.txt is there.",
    ]
    assert not items(lines, "error")
    # Usage as Codex adds it up over the turn's two requests (cached tokens included).
    assert lines[-1]["usage"] == {
        "input_tokens": 2500,
        "cached_input_tokens": 200,
        "cache_write_input_tokens": 0,
        "output_tokens": 80,
        "reasoning_output_tokens": 0,
    }

    # What the server saw: two main turns of agent codex-a, nothing else.
    assert [(r.path, r.kind, r.turn) for r in models.requests] == [
        ("/v1/responses", RequestKind.MAIN, 0),
        ("/v1/responses", RequestKind.MAIN, 1),
    ]
    first, second = models.requests
    assert first.agent == second.agent == "codex-a"
    assert first.headers["authorization"] == "Bearer codex-a"
    assert first.body["model"] == OFFLINE_MODEL
    assert first.body["stream"] is True
    assert "exec_command" in offered_tools(first)
    assert first.user_text() == second.user_text() == "make made.txt"
    assert first.tool_results() == []
    (result,) = second.tool_results()
    assert result["type"] == "function_call_output"
    assert result["call_id"] == "call_000001_00"
    assert "Process exited with code 0" in result["output"]
    assert result["output"].endswith("Output:\ncreated\n")


async def test_codex_compaction_is_a_side_request(
    codex: Path, tmp_path: Path, codex_home: Path
) -> None:
    """A usage near the context window makes Codex compact (a request of kind
    ``compaction``) before it goes on: that takes no turn."""
    full = Usage(input_tokens=270_000, output_tokens=10)
    script = Script.single(
        Turn.tool("exec_command", {"cmd": "echo hi"}, usage=full),
        "after the compaction",
        side_text="the summary",
    )
    async with open_model_server(script) as models:
        lines = await run_codex(codex, models, "codex-b", "go", cwd=tmp_path, home=codex_home)
    assert [m["text"] for m in items(lines, "agent_message")] == ["after the compaction"]
    assert [(r.kind, r.turn, r.side_reason) for r in models.requests] == [
        (RequestKind.MAIN, 0, None),
        (RequestKind.SIDE, None, "request_kind:compaction"),
        (RequestKind.MAIN, 1, None),
    ]
    compaction, after = models.requests[1:]
    assert "CONTEXT CHECKPOINT COMPACTION" in compaction.user_text()
    # The compaction request carries the history, the tool's output included.
    outputs = [i for i in compaction.input_items if i["type"] == "function_call_output"]
    assert outputs[0]["output"].endswith("Output:\nhi\n")
    assert after.user_text().endswith("the summary")
    # The history was replaced by the summary: the tool's output is no longer in it.
    assert after.tool_results() == []

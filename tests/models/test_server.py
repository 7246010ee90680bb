"""The scripted model server over real HTTP (httpx to hypercorn on 127.0.0.1): turns per
agent, side requests that take none, recording, errors, delays, the probes and the
command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from orchestrator.models import (
    AgentScript,
    RequestKind,
    Script,
    Text,
    ToolCall,
    Turn,
    Usage,
    accumulate,
    open_model_server,
    parse_sse,
)

from .test_wire import compact_body, main_body, rename_body

SCRIPT = Script(
    agents={
        "agent-a": AgentScript.of(
            Turn(blocks=(Text("a1"), ToolCall("Bash", {"command": "ls"}))),
            Turn.text("a2", usage=Usage(input_tokens=7, output_tokens=3)),
            final="a is done",
            subagents=AgentScript.of("sub1"),
        ),
        "agent-b": AgentScript.of("b1"),
    },
    default=AgentScript.of("d1", "d2"),
)


async def ask(
    client: httpx.AsyncClient, key: str | None, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    """Posts like Claude Code does; returns the message, read back from the stream when
    the body asks for one."""
    if key is not None:
        headers["x-api-key"] = key
    response = await client.post("/v1/messages?beta=true", json=body, headers=headers)
    assert response.status_code == 200, response.text
    if body.get("stream"):
        assert response.headers["content-type"].startswith("text/event-stream")
        return accumulate(parse_sse(response.content))
    assert response.headers["content-type"] == "application/json"
    message: dict[str, Any] = response.json()
    return message


def texts(message: dict[str, Any]) -> list[str]:
    return [b["text"] for b in message["content"] if b["type"] == "text"]


async def test_each_agent_plays_its_turns_and_side_requests_take_none() -> None:
    async with (
        open_model_server(SCRIPT) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        first = await ask(client, "agent-a", main_body())
        assert texts(first) == ["a1"]
        assert first["content"][1]["name"] == "Bash"
        assert first["stop_reason"] == "tool_use"
        assert first["model"] == "claude-opus-5-5"
        assert texts(await ask(client, "agent-b", main_body(stream=False))) == ["b1"]
        assert texts(await ask(client, "agent-a", rename_body())) == ['{"name": "OK."}']
        assert "<summary>" in texts(await ask(client, "agent-a", compact_body()))[0]
        second = await ask(client, "agent-a", main_body(stream=False))
        assert texts(second) == ["a2"]
        assert second["stop_reason"] == "end_turn"
        assert second["usage"]["input_tokens"] == 7
        assert texts(await ask(client, "agent-a", main_body())) == ["a is done"]
        assert texts(await ask(client, "agent-b", main_body())) == ["Done."]
        # A subagent (Claude Code sends its id) plays the subagent script, from the start.
        sub = {"x-claude-code-agent-id": "s1"}
        assert texts(await ask(client, "agent-a", main_body(), **sub)) == ["sub1"]
        assert texts(await ask(client, "agent-a", main_body(), **sub)) == ["Done."]
        other = {"x-claude-code-agent-id": "s2"}
        assert texts(await ask(client, "agent-a", main_body(), **other)) == ["sub1"]
        # Unknown credentials (bearer or key) and none play the default, each its own cursor.
        bearer = {"authorization": "Bearer tok"}
        assert texts(await ask(client, None, main_body(), **bearer)) == ["d1"]
        assert texts(await ask(client, "x", main_body())) == ["d1"]
        assert texts(await ask(client, None, main_body(), **bearer)) == ["d2"]
        assert texts(await ask(client, None, main_body())) == ["d1"]

        kinds = [(r.agent, r.subagent, r.kind, r.turn, r.side_reason) for r in models.requests]
        main, side = RequestKind.MAIN, RequestKind.SIDE
        assert kinds == [
            ("agent-a", None, main, 0, None),
            ("agent-b", None, main, 0, None),
            ("agent-a", None, side, None, "structured_output"),
            ("agent-a", None, side, None, "compaction"),
            ("agent-a", None, main, 1, None),
            ("agent-a", None, main, None, None),
            ("agent-b", None, main, None, None),
            ("agent-a", "s1", main, 0, None),
            ("agent-a", "s1", main, None, None),
            ("agent-a", "s2", main, 0, None),
            ("tok", None, main, 0, None),
            ("x", None, main, 0, None),
            ("tok", None, main, 1, None),
            (None, None, main, 0, None),
        ]
        assert [r.seq for r in models.requests] == list(range(1, 15))
        assert models.turns_taken("agent-a") == 3
        assert models.turns_taken("agent-a", "s1") == 2
        assert len(models.main_requests("agent-b")) == 2
        assert len(models.side_requests()) == 2
        recorded = models.requests[0]
        assert (recorded.method, recorded.path, recorded.query) == (
            "POST",
            "/v1/messages",
            "beta=true",
        )
        assert recorded.headers["x-api-key"] == "agent-a"
        assert recorded.user_text() == "make f.txt"


async def test_ids_are_deterministic_and_tool_results_are_recorded() -> None:
    script = Script.single(Turn.tool("Bash", {"command": "ls"}), "ok")
    async with (
        open_model_server(script) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        first = await ask(client, "k", main_body())
        assert first["id"] == "msg_scripted_000001"
        call = first["content"][0]
        assert call == {
            "type": "tool_use",
            "id": "toolu_000001_00",
            "name": "Bash",
            "input": {"command": "ls"},
        }
        result = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "f.txt"}],
        }
        history = [*main_body()["messages"], {"role": "assistant", "content": [call]}, result]
        history.append({"role": "system", "content": "a reminder after the user's message"})
        await ask(client, "k", main_body(messages=history))
        assert models.requests[1].tool_results() == result["content"]
        assert models.requests[0].tool_results() == []


async def test_error_turns_and_bad_bodies() -> None:
    script = Script.single(Turn.failure(400, "invalid_request_error", "nope"), "after")
    async with (
        open_model_server(script) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        failed = await client.post("/v1/messages", json=main_body(), headers={"x-api-key": "k"})
        assert failed.status_code == 400
        assert failed.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "nope"},
        }
        assert failed.headers["request-id"] == "req_scripted_000001"
        bad = await client.post("/v1/messages", content=b"{", headers={"x-api-key": "k"})
        assert bad.status_code == 400
        assert texts(await ask(client, "k", main_body())) == ["after"]
        assert [(r.kind, r.status) for r in models.requests] == [
            (RequestKind.MAIN, 400),
            (RequestKind.OTHER, 400),
            (RequestKind.MAIN, 200),
        ]


async def test_delay_holds_the_stream_after_message_start() -> None:
    script = Script.single(Turn.text("slow", delay=0.3))
    async with (
        open_model_server(script) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
        client.stream("POST", "/v1/messages", json=main_body()) as response,
    ):
        started = trio.current_time()
        chunks = response.aiter_bytes()
        head = await chunks.__anext__()
        assert trio.current_time() - started < 0.25
        assert [e.event for e in parse_sse(head)] == ["message_start", "ping"]
        rest = b"".join([c async for c in chunks])
        assert trio.current_time() - started >= 0.3
        assert texts(accumulate(parse_sse(head + rest))) == ["slow"]


async def test_probes_count_tokens_models_and_unknown_paths() -> None:
    async with (
        open_model_server(Script()) as models,
        httpx.AsyncClient(base_url=models.base_url) as client,
    ):
        assert (await client.head("/api/hello")).status_code == 200
        assert (await client.get("/")).status_code == 200
        counted = await client.post("/v1/messages/count_tokens", json={"messages": []})
        assert counted.json() == {"input_tokens": 4}
        listed = (await client.get("/v1/models")).json()
        assert "claude-opus-5-5" in [m["id"] for m in listed["data"]]
        one = (await client.get("/v1/models/claude-x")).json()
        assert one["id"] == "claude-x"
        missing = await client.post("/v1/complete", json={})
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
        assert [(r.method, r.path, r.kind, r.status) for r in models.requests] == [
            ("HEAD", "/api/hello", RequestKind.OTHER, 200),
            ("GET", "/", RequestKind.OTHER, 200),
            ("POST", "/v1/messages/count_tokens", RequestKind.OTHER, 200),
            ("GET", "/v1/models", RequestKind.OTHER, 200),
            ("GET", "/v1/models/claude-x", RequestKind.OTHER, 200),
            ("POST", "/v1/complete", RequestKind.OTHER, 404),
        ]
        assert models.turns_taken(None) == 0


async def test_custom_classifier() -> None:
    script = Script.single("main", side_text="side")
    async with (
        open_model_server(script, classify=lambda b: "mine" if b.get("tag") else None) as m,
        httpx.AsyncClient(base_url=m.base_url) as client,
    ):
        assert texts(await ask(client, "k", rename_body())) == ["main"]
        assert texts(await ask(client, "k", main_body(tag=1))) == ["side"]
        assert m.requests[1].side_reason == "mine"


async def test_the_server_stops_promptly_with_a_keep_alive_connection_open() -> None:
    async with httpx.AsyncClient() as client:
        started = trio.current_time()
        async with open_model_server(Script.single("x")) as models:
            response = await client.post(f"{models.base_url}/v1/messages", json=main_body())
            assert response.status_code == 200
        assert trio.current_time() - started < 1.0


async def test_the_command_serves_a_script_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"default": ["from the file"]}))
    argv = [sys.executable, "-m", "orchestrator.models", str(path), "--port", "0"]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(trio.run_process, argv, stdout=subprocess.PIPE, check=False)
        )
        assert process.stdout is not None
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        word, url = line.decode().split()
        assert word == "READY"
        async with httpx.AsyncClient(base_url=url) as client:
            assert texts(await ask(client, "k", main_body())) == ["from the file"]
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await process.wait() == 0


def test_bad_script_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.models.__main__ import main

    path = tmp_path / "bad.json"
    path.write_text("[]")
    assert main([str(path)]) == 2
    assert capsys.readouterr().err == "error: script: expected an object, got list\n"

"""Hook payloads -> events (hypothesis: anything in, no crash), and the installer run for
real in a temporary project, its forwarder posting to a local receiver."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from quart import Response, request
from quart_trio import QuartTrio

from orchestrator import events as ev
from orchestrator.hooks.mapping import hook_to_event
from orchestrator.hooks.setup import HOOK_EVENTS, setup_script
from transport import serve

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    kind=st.sampled_from([*HOOK_EVENTS, "Other", None, 5]),
    payload=st.dictionaries(
        st.sampled_from(
            [
                "tool_name",
                "tool_use_id",
                "tool_input",
                "tool_response",
                "session",
                "cwd",
                "session_id",
                "prompt",
                "error",
                "last_assistant_message",
                "agent_type",
            ]
        ),
        json_values,
        max_size=6,
    ),
)
def test_any_payload_maps_without_crashing(kind: object, payload: dict[str, Any]) -> None:
    event = hook_to_event({**payload, "hook_event_name": kind})
    if event is not None:
        json.dumps(event.to_json("server"), allow_nan=False)  # always serializable


def test_the_reference_mapping() -> None:
    ask = hook_to_event(
        {
            "hook_event_name": "PreToolUse",
            "tool_name": "AskUserQuestion",
            "tool_use_id": "t1",
            "tool_input": {"questions": [{"question": "Which?", "options": [{"label": "A"}]}]},
        }
    )
    assert isinstance(ask, ev.AskUserQuestion)
    assert (ask.question, ask.options) == ("Which?", [{"label": "A"}])
    end = hook_to_event({"hook_event_name": "SessionEnd", "session": {"cost_usd": 0.5}})
    assert end == ev.SessionEnd(success=True, cost_usd=0.5, ts=end.ts if end else "")
    failure = hook_to_event({"hook_event_name": "PostToolUseFailure", "tool_use_id": "t2"})
    assert isinstance(failure, ev.PostToolUse)
    assert failure.error == "Unknown error"
    sub = hook_to_event({"hook_event_name": "SubagentStart", "agent_type": "Explore"})
    assert isinstance(sub, ev.Log)
    assert sub.message == "SubagentStart: Explore"
    assert hook_to_event({"hook_event_name": "Notification"}) is None


@asynccontextmanager
async def receiver(answer: dict[str, Any]) -> AsyncIterator[tuple[str, list[Any]]]:
    app = QuartTrio("hook-receiver")
    got: list[Any] = []

    @app.post("/api/hook")
    async def hook() -> Response:
        got.append((request.headers.get("Authorization"), await request.get_json()))
        return Response(json.dumps(answer), content_type="application/json")

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(app, host="127.0.0.1", port=0, task_status=task_status)
        )
        yield binds[0] + "/api/hook", got
        nursery.cancel_scope.cancel()


def test_bad_urls_and_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        setup_script("file:///etc/passwd", "abc")
    with pytest.raises(ValueError, match="alphanumeric"):
        setup_script("http://127.0.0.1:1/api/hook", "x'; touch /tmp/pwned; '")


async def test_the_installer_writes_hooks_and_the_forwarder_posts(tmp_path: Path) -> None:
    project = tmp_path / "my project"
    project.mkdir()
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.local.json").write_text(
        json.dumps(
            {
                "model": "keep-me",
                "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "other"}]}]},
            }
        )
    )
    decision = {
        "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow"}
    }
    async with receiver(decision) as (url, got):
        # an odd but valid URL: a query with shell characters stays data
        script = setup_script(url + "?x=$(touch${IFS}pwned)'`touch${IFS}pwned`", "abc123")
        for _ in range(2):  # idempotent
            done = await trio.run_process(
                ["bash", "-c", script], cwd=project, capture_stdout=True, check=True
            )
        assert b"hooks:" in done.stdout
        settings = json.loads((project / ".claude" / "settings.local.json").read_text())
        assert settings["model"] == "keep-me"
        command = str(project / ".claude" / "hooks" / "forward.sh")
        for event in HOOK_EVENTS:
            commands = [h["command"] for e in settings["hooks"][event] for h in e["hooks"]]
            assert commands.count(command) == 1, event
        assert next(h["command"] for e in settings["hooks"]["Stop"] for h in e["hooks"]) == "other"
        payload = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "x": "'\"$(id)"}
        forwarded = await trio.run_process(
            [command],
            stdin=json.dumps(payload).encode(),
            capture_stdout=True,
            cwd=project,
            env={**os.environ},
            check=True,
        )
    assert json.loads(forwarded.stdout) == decision
    assert got == [("Bearer abc123", payload)]
    leftovers = await trio.to_thread.run_sync(lambda: [p.name for p in tmp_path.rglob("*")])
    assert "pwned" not in leftovers
    mode = (await trio.Path(command).stat()).st_mode & 0o777
    assert mode == 0o700


async def test_the_forwarder_never_blocks_claude_code(tmp_path: Path) -> None:
    script = setup_script("http://127.0.0.1:9/api/hook", "abc123")
    await trio.run_process(["bash", "-c", script], cwd=tmp_path, capture_stdout=True, check=True)
    done = await trio.run_process(
        [str(tmp_path / ".claude" / "hooks" / "forward.sh")],
        stdin=b"{}",
        capture_stdout=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == b""

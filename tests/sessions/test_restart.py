"""``kill -9`` of the server with 20 sessions and a room of two agents live in
containers, then a start on the same data directory: no acknowledged event is lost,
every container is re-attached to its session (none orphaned), each agent resumes its
conversation (Claude's session id, a Codex one its thread id) with the next message,
one whose container was removed meanwhile is marked ended, a container left for a
session that had ended is removed, a session waiting at its setup choice waits again,
and the room routes the next message between its agents. Two more are killed in the
middle of a turn, one at a tool approval and one at a question: the turn ends failed
(the agent process that asked is gone), the gates are issued again, and once a person
answers, the resumed agent is given the answer: the approved call runs without asking
again, the answers reach the model."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import trio

from orchestrator.models import (
    AgentScript,
    ModelServer,
    Script,
    ToolCall,
    Turn,
    open_model_server,
)
from orchestrator.sandboxes._common import LABEL_SERVER, LABEL_SESSION

from ..docker_support import off_loop
from ..sandboxes.conftest import docker_leftovers, remove_docker_leftovers
from .support import COLOR_QUESTION
from .test_api import sse_events

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 20


def remove_session_container(client: docker.DockerClient, session_id: str) -> None:
    [found] = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})
    found.remove(force=True)


def image_of(client: docker.DockerClient, session_id: str) -> str:
    [found] = client.containers.list(filters={"label": f"{LABEL_SESSION}={session_id}"})
    return str(found.attrs["Config"]["Image"])


def agents_in(client: docker.DockerClient, session_id: str) -> list[str]:
    """The command lines of the Claude Code processes running in a session's container."""
    [found] = client.containers.list(filters={"label": f"{LABEL_SESSION}={session_id}"})
    listing = 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done'
    output = found.exec_run(["sh", "-c", listing]).output
    assert isinstance(output, bytes)
    return [line for line in output.decode(errors="replace").splitlines() if "claude" in line]


@asynccontextmanager
async def server(data_dir: Path, models: ModelServer, log: Path) -> AsyncIterator[tuple[Any, str]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ORCH"))},
        "ANTHROPIC_BASE_URL": models.base_url,
        "ORCHESTRATOR_OPENAI_BASE_URL": models.openai_base_url,
        "ORCHESTRATOR_SANDBOX": "docker",
        "ORCHESTRATOR_DATA_DIR": str(data_dir),
    }
    with open(log, "wb") as out:  # noqa: ASYNC230 - the child's log file, once
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "orchestrator", "serve", "--port", "0"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        text = ""
        with trio.fail_after(60):
            while "listening on" not in text:
                assert process.returncode is None, text
                await trio.sleep(0.05)
                text = await trio.Path(log).read_text()
        line = next(x for x in text.splitlines() if "listening on" in x)
        yield process, line.split("listening on ")[1].split()[0]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            with trio.move_on_after(60):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def status_of(client: httpx.AsyncClient, sid: str, token: str) -> dict[str, Any]:
    response = await client.get(
        f"/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()
    return info


async def until_status(
    client: httpx.AsyncClient, sid: str, token: str, *statuses: str
) -> dict[str, Any]:
    with trio.fail_after(120):
        while True:
            info = await status_of(client, sid, token)
            if info["status"] in statuses:
                return info
            await trio.sleep(0.1)


@pytest.fixture
async def data(
    tmp_path: Path, docker_client: docker.DockerClient, docker_limiter: trio.CapacityLimiter
) -> AsyncIterator[Path]:
    """The servers' data directory. What they left in Docker is removed afterwards,
    pass or fail: after a kill -9 it waits for the next start on this directory, and a
    test that failed in between would leave it to the tests after it."""
    data = tmp_path / "data"
    yield data
    server_id = data / "server-id"
    if server_id.exists():
        found = server_id.read_text().strip()
        await off_loop(docker_limiter, partial(remove_docker_leftovers, docker_client, found))


async def test_a_killed_server_comes_back_with_every_session(
    tmp_path: Path,
    data: Path,
    docker_client: docker.DockerClient,
    docker_limiter: trio.CapacityLimiter,
) -> None:
    hi = Turn(blocks=(ToolCall("Bash", {"command": "echo hi > hi.txt"}),))
    # Killed at a gate. The old agent process of the tool call goes on alone once its
    # server is gone (its permission call fails) and asks the model again: that request
    # stalls until the restart ends the process. Once the gate is answered, the call is
    # made again. (The one asking a question does not go on.)
    at_a_gate = {
        "agent-tool": AgentScript.of(
            hi, Turn.text("stalled", delay=300), hi, "Done after the restart.", "Once more."
        ),
        "agent-question": AgentScript.of(
            Turn(blocks=(ToolCall("AskUserQuestion", COLOR_QUESTION),)), "Red it is.", "Once more."
        ),
    }
    in_a_room = {  # a room of two: ann's second turn speaks to ben
        "room-ann": AgentScript.of("Ready.", "@ben hello after the restart"),
        "room-ben": AgentScript.of("Ready.", "Hi ann."),
    }
    script = Script(
        agents={**at_a_gate, **in_a_room},
        default=AgentScript.of("First answer.", "Second answer."),
    )
    async with open_model_server(script) as models:
        sessions: dict[str, str] = {}  # id -> token
        keys: dict[str, str] = {}  # id -> its agent's key (its script)
        before: dict[str, list[tuple[str, str]]] = {}
        async with server(data, models, tmp_path / "one.log") as (process, url):
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:

                async def create(index: int) -> None:
                    response = await client.post(
                        "/api/sessions",
                        json={
                            "description": f"say hello {index}",
                            "freeform": True,
                            "apiKey": f"agent-{index}",
                        },
                    )
                    assert response.status_code == 201, response.text
                    made = response.json()
                    sessions[made["sessionId"]] = made["sessionToken"]
                    keys[made["sessionId"]] = f"agent-{index}"

                async with trio.open_nursery() as nursery:
                    for index in range(SESSIONS):
                        nursery.start_soon(create, index)
                # and one with Codex, which resumes its thread
                response = await client.post(
                    "/api/sessions",
                    json={
                        "description": "say hello",
                        "freeform": True,
                        "agent": "codex",
                        "apiKey": "codex-agent",
                    },
                )
                assert response.status_code == 201, response.text
                made = response.json()
                sessions[made["sessionId"]] = made["sessionToken"]
                keys[made["sessionId"]] = "codex-agent"
                # one more, waiting at its setup choice when the server dies
                response = await client.post(
                    "/api/sessions", json={"description": "an app", "apiKey": "agent-app"}
                )
                waiting = response.json()
                # two more, in the middle of a turn: at a tool approval, at a question
                at_gate: dict[str, tuple[str, str]] = {}  # id -> (token, its gate's event)
                for key, ask_tools, shown in (
                    ("agent-tool", True, "tool_permission_request"),
                    ("agent-question", False, "ask_user_question"),
                ):
                    response = await client.post(
                        "/api/sessions",
                        json={
                            "description": key,
                            "freeform": True,
                            "askTools": ask_tools,
                            "apiKey": key,
                        },
                    )
                    assert response.status_code == 201, response.text
                    made = response.json()
                    at_gate[made["sessionId"]] = (made["sessionToken"], shown)
                for sid, token in sessions.items():
                    events = await sse_events(
                        client, f"/api/sessions/{sid}/events", token, "session_end"
                    )
                    before[sid] = [(i, e["type"]) for i, e in events]
                    await until_status(client, sid, token, "complete")
                await sse_events(
                    client,
                    f"/api/sessions/{waiting['sessionId']}/events",
                    waiting["sessionToken"],
                    "infra_config_prompt",
                )
                # and a room of two agents, both through their first turn
                response = await client.post("/api/rooms", json={"name": "restarted"})
                assert response.status_code == 201, response.text
                room = response.json()
                room_auth = {"X-Room-Token": room["roomToken"]}
                for name in ("ann", "ben"):
                    response = await client.post(
                        f"/api/rooms/{room['roomId']}/agents",
                        json={"name": name, "apiKey": f"room-{name}"},
                        headers=room_auth,
                    )
                    assert response.status_code == 201, response.text
                    made = response.json()
                    await sse_events(
                        client,
                        f"/api/sessions/{made['sessionId']}/events",
                        made["sessionToken"],
                        "session_end",
                    )
                asked: dict[str, dict[str, Any]] = {}
                gated: dict[str, list[tuple[str, str]]] = {}  # what they had acknowledged
                for sid, (token, shown) in at_gate.items():
                    # at its gate (a question is in the stream before its gate opens, a
                    # tool approval's announcement just after it)
                    path = f"/api/sessions/{sid}/events"
                    await sse_events(client, path, token, "gate_opened")
                    events = await sse_events(client, path, token, shown)
                    asked[sid] = events[-1][1]
                    gated[sid] = [(i, e["type"]) for i, e in events]
                    assert (await status_of(client, sid, token))["status"] == "running"
                # one more has ended (cancelled): its container is gone with it
                ended_sid = next(sid for sid in sessions if sid != next(iter(sessions)))
                ended_token = sessions.pop(ended_sid)
                response = await client.post(
                    f"/api/sessions/{ended_sid}/cancel",
                    headers={"Authorization": f"Bearer {ended_token}"},
                )
                assert response.status_code == 200, response.text
                await until_status(client, ended_sid, ended_token, "cancelled")
            process.kill()  # kill -9: nothing is cleaned up
            await process.wait()
        server_id = (data / "server-id").read_text().strip()
        left = await off_loop(docker_limiter, partial(docker_leftovers, docker_client, server_id))
        assert len([x for x in left if x.startswith("container")]) == SESSIONS + len(at_gate) + 2
        # as if the kill had come between the session's end and its container's removal
        image = await off_loop(
            docker_limiter, partial(image_of, docker_client, next(iter(sessions)))
        )
        await off_loop(
            docker_limiter,
            partial(
                docker_client.containers.run,
                image,
                ["sleep", "3600"],
                labels={LABEL_SERVER: server_id, LABEL_SESSION: ended_sid},
                detach=True,
            ),
        )
        # the agent killed at a tool approval went on alone, and waits on the model
        with trio.fail_after(60):
            while models.turns_taken("agent-tool") < 2:  # noqa: ASYNC110
                await trio.sleep(0.05)
        tool_sid = next(sid for sid, (_, shown) in at_gate.items() if shown.startswith("tool"))
        found = await off_loop(docker_limiter, partial(agents_in, docker_client, tool_sid))
        assert found, "the old agent process is not running"
        # one more is lost while the server is down: its container removed
        gone_sid = next(iter(sessions))
        gone_token = sessions.pop(gone_sid)
        await off_loop(docker_limiter, partial(remove_session_container, docker_client, gone_sid))

        async with (
            server(data, models, tmp_path / "two.log") as (_process, url),
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            if True:
                # the container of the session that had ended is removed; the session
                # stays as it was
                remaining = await off_loop(
                    docker_limiter,
                    partial(
                        docker_client.containers.list,
                        all=True,
                        filters={"label": f"{LABEL_SESSION}={ended_sid}"},
                    ),
                )
                assert remaining == []
                info = await status_of(client, ended_sid, ended_token)
                assert (info["status"], info["ended"]) == ("cancelled", True)
                # the sessions killed at a gate lost nothing they had acknowledged
                for sid, (token, shown) in at_gate.items():
                    path = f"/api/sessions/{sid}/events"
                    replay = await sse_events(client, path, token, shown)
                    assert [(i, e["type"]) for i, e in replay] == gated[sid]
                # the session whose sandbox is gone is marked ended, saying why
                info = await status_of(client, gone_sid, gone_token)
                assert (info["status"], info["ended"]) == ("error", True)
                events = await sse_events(
                    client,
                    f"/api/sessions/{gone_sid}/events",
                    gone_token,
                    "log",
                    offset=before[gone_sid][-1][0],
                )
                assert events[-1][1]["message"] == (
                    "The server restarted and this session's sandbox is gone"
                )
                for sid, token in sessions.items():
                    # every acknowledged event is there, in order, with its offset
                    events = await sse_events(
                        client,
                        f"/api/sessions/{sid}/events",
                        token,
                        "log",
                        offset=before[sid][-1][0],
                    )
                    replay = await sse_events(
                        client, f"/api/sessions/{sid}/events", token, "session_end"
                    )
                    assert [(i, e["type"]) for i, e in replay] == before[sid]
                    assert "Re-attached" in events[-1][1]["message"]
                    assert (await status_of(client, sid, token))["status"] == "complete"
                    response = await client.post(
                        f"/api/sessions/{sid}/iterate",
                        json={"request": "and again?"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert response.status_code == 200, response.text
                for index, (sid, token) in enumerate(sessions.items()):
                    events = await sse_events(
                        client,
                        f"/api/sessions/{sid}/events",
                        token,
                        "session_end",
                        offset=before[sid][-1][0],
                    )
                    texts = [e["text"] for _, e in events if e["type"] == "assistant_message"]
                    assert texts == ["Second answer."], (index, events)
                # each agent resumed its conversation: its second request carries the first
                for sid in sessions:
                    second = models.main_requests(keys[sid])[1]
                    assert "First answer." in json.dumps(second.body)
                # what the old server left running was ended, the gates' agents included
                for sid in at_gate:
                    found = await off_loop(docker_limiter, partial(agents_in, docker_client, sid))
                    assert found == [], found
                # cut in the middle of a turn: the turn ended failed, the gate is
                # pending again; answered, the answer is the resumed agent's next turn
                for sid, (token, shown) in at_gate.items():
                    auth = {"Authorization": f"Bearer {token}"}
                    path = f"/api/sessions/{sid}/events"
                    cut = await sse_events(client, path, token, "session_end")
                    assert not [e for _, e in cut if e["type"] == "gate_ended"], cut
                    assert cut[-1][1]["success"] is False
                    assert (await status_of(client, sid, token))["status"] == "complete"
                    key = "agent-tool" if shown == "tool_permission_request" else "agent-question"
                    asked_before = len(models.main_requests(key))
                    answer: dict[str, Any] = (
                        {"gate": "tool_permission", "decision": "allow"}
                        if shown == "tool_permission_request"
                        else {"gate": "ask_user_question", "answers": {"Which color?": "red"}}
                    )
                    answer["toolUseId"] = asked[sid]["tool_use_id"]
                    response = await client.post(
                        f"/api/sessions/{sid}/respond", json=answer, headers=auth
                    )
                    assert response.status_code == 200, response.text
                    after = await sse_events(client, path, token, "session_end", offset=cut[-1][0])
                    assert after[-1][1]["success"] is True, after
                    kinds = [e["type"] for _, e in after]
                    assert kinds.count("gate_ended") == 1, after  # the answered one only
                    assert "gate_opened" not in kinds, after  # nothing asked again
                    told = models.main_requests(key)[asked_before]
                    # killed in its first turn, it resumed that turn's conversation
                    assert '"type": "tool_use"' in json.dumps(told.messages), told.messages
                    if shown == "tool_permission_request":
                        assert "A person has now allowed it" in told.user_text(), told.messages
                        ran = [e for _, e in after if e["type"] == "post_tool_use"]
                        assert [e["tool_name"] for e in ran] == ["Bash"], after
                        results = models.main_requests(key)[-1].tool_results()
                        assert results, models.main_requests(key)[-1].messages
                        assert not results[0].get("is_error"), results
                    else:
                        assert "- Which color?: red" in told.user_text(), told.messages
                    # and the agent answers the next message as before
                    response = await client.post(
                        f"/api/sessions/{sid}/iterate", json={"request": "go on"}, headers=auth
                    )
                    assert response.status_code == 200, response.text
                    more = await sse_events(client, path, token, "session_end", offset=after[-1][0])
                    assert more[-1][1]["success"] is True, more
                # the room is back, with its agents: a message to ann makes her speak to
                # ben, routed once
                response = await client.post(
                    f"/api/rooms/{room['roomId']}/messages",
                    json={"from": "pat", "to": "ann", "body": "say hello to ben"},
                    headers=room_auth,
                )
                assert response.status_code == 200, response.text
                said = await sse_events(
                    client,
                    f"/api/rooms/{room['roomId']}/events",
                    "",
                    "agent_message",
                    headers=room_auth,
                    offset=(
                        await sse_events(
                            client,
                            f"/api/rooms/{room['roomId']}/events",
                            "",
                            "agent_message",
                            headers=room_auth,
                        )
                    )[-1][0],
                )
                message = said[-1][1]
                assert (message["from"], message["to"], message["body"]) == (
                    "ann",
                    "ben",
                    "hello after the restart",
                )
                response = await client.post(
                    f"/api/rooms/{room['roomId']}/close", headers=room_auth
                )
                assert response.status_code == 200, response.text
                # the setup choice is still asked; answered, the session goes on
                response = await client.post(
                    f"/api/sessions/{waiting['sessionId']}/respond",
                    json={"gate": "infra_config", "mode": "local"},
                    headers={"Authorization": f"Bearer {waiting['sessionToken']}"},
                )
                assert response.status_code == 200, response.text
                await sse_events(
                    client,
                    f"/api/sessions/{waiting['sessionId']}/events",
                    waiting["sessionToken"],
                    "session_end",
                )
                sessions[waiting["sessionId"]] = waiting["sessionToken"]
                sessions.update({sid: token for sid, (token, _) in at_gate.items()})
                for sid, token in sessions.items():
                    response = await client.delete(
                        f"/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"}
                    )
                    assert response.status_code == 200
        left = await off_loop(docker_limiter, partial(docker_leftovers, docker_client, server_id))
        await off_loop(docker_limiter, partial(remove_docker_leftovers, docker_client, server_id))
        assert left == []

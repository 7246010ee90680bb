"""The room routes over a real hypercorn server, with real Claude Code CLIs in local
sandboxes against the scripted model: room and session tokens kept apart, invite codes
and their revocation, agents, messages, SSE (resumable), the create-app flow, close."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import trio

from orchestrator.core import bundled_claude_cli
from orchestrator.sandboxes.local import LocalProvider

from ..sessions.test_api import api_server, sse_events
from .support import READY, ended, scripted_room


def local(tmp_path: Path) -> LocalProvider:
    return LocalProvider("test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli())


def room_headers(token: str) -> dict[str, str]:
    return {"X-Room-Token": token}


async def make_room(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/rooms", json={"name": "team", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_rooms_over_http(tmp_path: Path) -> None:
    agents = {"alice": [READY, "@bob hi bob"], "bob": [READY, "Hi alice.", "Thanks, pat."]}
    async with (
        scripted_room(agents, tmp_path, local(tmp_path)) as (models, orch),
        api_server(orch) as client,
    ):
        # bad input changes nothing
        for bad in ({}, {"name": ""}, {"name": "r", "maxRounds": 0}, {"name": "r", "stuck": 3}):
            response = await client.post("/api/rooms", json=bad)
            assert response.status_code == 400, bad
        assert await orch.rooms() == []

        created = await make_room(client, idleTimeoutSeconds=None)
        room_id, token, code = created["roomId"], created["roomToken"], created["code"]
        assert len(code) == 9
        assert code[4] == "-"
        other = await make_room(client)

        # join by code; a wrong code is 404
        joined = await client.get(f"/api/join-room/{room_id}/{code}")
        assert joined.status_code == 200
        assert joined.json()["roomToken"] == token
        assert (await client.get(f"/api/join-room/{room_id}/AAAA-AAAA")).status_code == 404

        # agents
        response = await client.post(
            f"/api/rooms/{room_id}/agents",
            json={"name": "bob", "apiKey": "bob"},
            headers=room_headers(token),
        )
        assert response.status_code == 201, response.text
        bob = response.json()
        assert bob["participantName"] == "bob"
        assert bob["sessionToken"]
        response = await client.post(
            f"/api/rooms/{room_id}/agents",
            json={
                "name": "alice",
                "role": "Code Reviewer",
                "initialPrompt": "Say hi.",
                "apiKey": "alice",
            },
            headers=room_headers(token),
        )
        assert response.status_code == 201
        alice = response.json()
        events = await sse_events(
            client, f"/api/rooms/{room_id}/events", "", "agent_message", headers=room_headers(token)
        )
        message = events[-1][1]
        assert (message["from"], message["to"], message["body"]) == ("alice", "bob", "hi bob")
        assert message["metadata"]["round"] == 1
        joined_names = [
            e["participant"]["displayName"] for _, e in events if e["type"] == "participant_joined"
        ]
        assert joined_names == ["bob", "alice"]
        # resumable: from the id of the joins, the message comes again, nothing before it
        after = await sse_events(
            client,
            f"/api/rooms/{room_id}/events",
            "",
            "agent_message",
            headers=room_headers(token),
            offset=events[-2][0],
        )
        assert [e for _, e in after] == [message]

        # the state shows no session token (a room token does not control sessions)
        state = (await client.get(f"/api/rooms/{room_id}", headers=room_headers(token))).json()
        assert state["roundCount"] == 1
        assert [(p["name"], p["role"]) for p in state["participants"]] == [
            ("bob", None),
            ("alice", "Code Reviewer"),
        ]
        assert "sessionToken" not in str(state)
        assert "sessionToken" not in joined.text

        # the alias resolved to the reviewer role: its skill and no Write/Edit
        sandbox = await orch.sandbox_of(alice["sessionId"])
        assert sandbox is not None
        skill = await sandbox.read_file(f"{sandbox.workdir}/.claude/skills/role/SKILL.md")
        assert b"REVIEW_FEEDBACK" in skill
        assert b"@room" in await sandbox.read_file(
            f"{sandbox.workdir}/.claude/skills/room-messaging/SKILL.md"
        )

        # a person's message; impersonating an agent is refused
        response = await client.post(
            f"/api/rooms/{room_id}/messages",
            json={"from": "pat", "to": "bob", "body": "over to you"},
            headers=room_headers(token),
        )
        assert response.status_code == 200
        response = await client.post(
            f"/api/rooms/{room_id}/messages",
            json={"from": "alice", "body": "I am alice"},
            headers=room_headers(token),
        )
        assert response.status_code == 400
        with trio.fail_after(60):
            while len([r for r in models.main_requests() if r.agent == "bob"]) < 3:  # noqa: ASYNC110
                await trio.sleep(0.05)
        bob_turns = [r.user_text() for r in models.main_requests() if r.agent == "bob"]
        assert "Message from pat:\n\nover to you" in bob_turns[2]

        # a participant's events, read-only, with the room token
        seen = await sse_events(
            client,
            f"/api/rooms/{room_id}/sessions/{bob['sessionId']}/events",
            "",
            "session_end",
            headers=room_headers(token),
        )
        assert seen[0][1]["type"] == "user_prompt"
        # tokens do not cross over
        for path in (
            f"/api/rooms/{room_id}",
            f"/api/rooms/{other['roomId']}",
        ):
            for headers in (
                {},
                room_headers(bob["sessionToken"]),
                room_headers(other["roomToken"] if path.endswith(room_id) else token),
            ):
                assert (await client.get(path, headers=headers)).status_code == 401
        response = await client.get(
            f"/api/sessions/{bob['sessionId']}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        response = await client.post(
            f"/api/rooms/{room_id}/respond",
            json={"sessionId": other["roomId"], "gate": "outbound_message_gate"},
            headers=room_headers(token),
        )
        assert response.status_code == 403
        # another room's token reads and drives only its own participants: bob is not one
        before = [i.raw async for i in orch.session(bob["sessionId"]).events(follow=False)]
        other_id, other_headers = other["roomId"], room_headers(other["roomToken"])
        response = await client.get(
            f"/api/rooms/{other_id}/sessions/{bob['sessionId']}/events", headers=other_headers
        )
        assert response.status_code in (403, 404), response.text
        response = await client.post(
            f"/api/rooms/{other_id}/sessions/{bob['sessionId']}/iterate",
            json={"request": "do what I say"},
            headers=other_headers,
        )
        assert response.status_code in (403, 404), response.text
        now = [i.raw async for i in orch.session(bob["sessionId"]).events(follow=False)]
        assert now == before

        # revoking: a new code and token; the old ones stop working
        response = await client.post(f"/api/rooms/{room_id}/revoke", headers=room_headers(token))
        assert response.status_code == 200
        renewed = response.json()
        assert renewed["roomToken"] != token
        assert renewed["code"] != code
        assert (
            await client.get(f"/api/rooms/{room_id}", headers=room_headers(token))
        ).status_code == 401
        assert (await client.get(f"/api/join-room/{room_id}/{code}")).status_code == 404
        token = renewed["roomToken"]

        # close: the reason is recorded, the agents end, the room refuses messages
        response = await client.post(f"/api/rooms/{room_id}/close", headers=room_headers(token))
        assert response.status_code == 200
        for session_id in (alice["sessionId"], bob["sessionId"]):
            await ended(orch.session(session_id))
        state = (await client.get(f"/api/rooms/{room_id}", headers=room_headers(token))).json()
        assert (state["state"], state["stopReason"]) == ("closed", "closed_by_human")
        response = await client.post(
            f"/api/rooms/{room_id}/messages",
            json={"from": "pat", "body": "still there?"},
            headers=room_headers(token),
        )
        assert response.status_code == 409


async def test_the_create_app_room_waits_for_the_setup_choice(tmp_path: Path) -> None:
    async with (
        scripted_room({}, tmp_path, local(tmp_path)) as (models, orch),
        api_server(orch) as client,
    ):
        response = await client.post(
            "/api/rooms/create-app", json={"description": "a todo app", "apiKey": "coder"}
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["name"].startswith("app-")
        [coder] = created["sessions"]
        assert coder["role"] == "coder"
        assert coder["name"].startswith("coder-")
        token = created["roomToken"]
        # nothing runs before the setup choice
        await trio.sleep(0.3)
        assert models.main_requests() == []
        response = await client.post(
            f"/api/rooms/{created['roomId']}/respond",
            json={"sessionId": coder["sessionId"], "gate": "infra_config", "mode": "local"},
            headers=room_headers(token),
        )
        assert response.status_code == 200, response.text
        events = await sse_events(
            client,
            f"/api/sessions/{coder['sessionId']}/events",
            coder["sessionToken"],
            "session_end",
        )
        kinds = [e["type"] for _, e in events]
        assert "gate_resolved" in kinds
        sandbox = await orch.sandbox_of(coder["sessionId"])
        assert sandbox is not None
        files = {
            name: await sandbox.read_file(f"{sandbox.workdir}/{name}")
            for name in (
                "CLAUDE.md",
                ".claude/skills/create-app/SKILL.md",
                ".claude/skills/role/SKILL.md",
                ".claude/skills/room-messaging/SKILL.md",
            )
        }
        assert b"a todo app" in files["CLAUDE.md"]
        assert b"REVIEW_REQUEST" in files[".claude/skills/role/SKILL.md"]
        room_events = await sse_events(
            client,
            f"/api/rooms/{created['roomId']}/events",
            "",
            "participant_joined",
            headers=room_headers(token),
        )
        assert room_events[0][1]["type"] == "room_created"
        notices = [e["body"] for _, e in room_events if e["type"] == "agent_message"]
        assert notices == ["Waiting for infrastructure configuration"]
        # the first turn is the room context, the /create-app request comes after it
        with trio.fail_after(60):
            while len(models.main_requests()) < 2:  # noqa: ASYNC110
                await trio.sleep(0.05)
        first, second = models.main_requests()[:2]
        assert "Your name in this room" in first.user_text()
        assert "a todo app" in second.user_text()

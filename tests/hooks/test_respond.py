"""Gates over HTTP: an AskUserQuestion hook blocks at a gate until ``/respond`` answers
it; a second answer is 409; cancelling the session releases a waiting hook."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import trio

from orchestrator.models import open_model_server
from orchestrator.sandboxes.local import LocalProvider
from orchestrator.tokens import Purpose

from ..sessions.support import DONE, orchestrator_on, script
from ..sessions.test_api import api_server

QUESTION = {
    "hook_event_name": "PreToolUse",
    "tool_name": "AskUserQuestion",
    "tool_use_id": "toolu_ask_1",
    "tool_input": {"questions": [{"question": "Which color?", "options": [{"label": "red"}]}]},
}


async def test_a_question_waits_for_its_answer(tmp_path: Path) -> None:
    async with (
        open_model_server(script(DONE)) as models,
        orchestrator_on(models, tmp_path / "data", LocalProvider("t", tmp_path / "sb")) as orch,
        api_server(orch) as client,
    ):
        admin = {"Authorization": f"Bearer {orch.signer.token(Purpose.ADMIN)}"}
        made = (await client.post("/api/sessions/local", json={}, headers=admin)).json()
        sid = made["sessionId"]
        auth = {"Authorization": f"Bearer {made['sessionToken']}"}
        hook = {"Authorization": f"Bearer {made['hookToken']}"}
        answered: list[dict[str, Any]] = []

        async def ask(payload: dict[str, Any]) -> None:
            response = await client.post(
                f"/api/sessions/{sid}/hook-event", json=payload, headers=hook, timeout=60
            )
            answered.append(response.json())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, QUESTION)
            with trio.fail_after(10):
                while not orch.gates.pending(sid):  # noqa: ASYNC110 - no event to wait on
                    await trio.sleep(0.01)
            assert (await orch.session_info(sid) or {}).get("needsInput") is True
            for bad, status in (
                ({}, 400),
                ({"gate": "nonsense"}, 400),
                ({"gate": "ask_user_question"}, 400),
                ({"gate": "ask_user_question", "toolUseId": "other"}, 404),
            ):
                response = await client.post(f"/api/sessions/{sid}/respond", json=bad, headers=auth)
                assert response.status_code == status, bad
            answer = {
                "gate": "ask_user_question",
                "toolUseId": "toolu_ask_1",
                "answers": {"Which color?": "red"},
                "_summary": "red",
            }
            first = await client.post(
                f"/api/sessions/{sid}/respond",
                json=answer,
                headers={**auth, "X-Participant-Id": "p1", "X-Participant-Name": "Ada"},
            )
            assert first.json() == {"ok": True}
            second = await client.post(f"/api/sessions/{sid}/respond", json=answer, headers=auth)
            assert second.status_code == 409
        assert answered == [
            {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "allow",
                    "updatedInput": {
                        "questions": QUESTION["tool_input"]["questions"],  # type: ignore[index]
                        "answers": {"Which color?": "red"},
                    },
                }
            }
        ]
        kinds = []
        async with aclosing(orch.session(sid).events(follow=False)) as events:
            async for item in events:
                kinds.append(item.raw["type"])
                if item.raw["type"] == "gate_resolved":
                    assert item.raw["resolvedBy"] == {"id": "p1", "displayName": "Ada"}
        assert kinds.count("ask_user_question") == 1
        assert kinds.count("gate_resolved") == 1

        # a question still waiting when the session is cancelled gets a plain answer
        answered.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, {**QUESTION, "tool_use_id": "toolu_ask_2"})
            with trio.fail_after(10):
                while not orch.gates.pending(sid):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            assert (await client.post(f"/api/sessions/{sid}/cancel", headers=auth)).json() == {
                "ok": True
            }
        assert answered == [{"ok": True}]


async def test_hook_routes_need_their_own_tokens(tmp_path: Path) -> None:
    async with (
        open_model_server(script(DONE)) as models,
        orchestrator_on(models, tmp_path / "data", LocalProvider("t", tmp_path / "sb")) as orch,
        api_server(orch) as client,
    ):
        session_token = orch.signer.token(Purpose.SESSION, "x")
        for path in ("/api/hook", "/api/sessions/auto", "/api/sessions/x/hook-event"):
            response = await client.post(
                path, json=QUESTION, headers={"Authorization": f"Bearer {session_token}"}
            )
            assert response.status_code == 401, path
        assert (await client.post("/api/sessions/local", json={})).status_code == 401
        assert isinstance(client, httpx.AsyncClient)

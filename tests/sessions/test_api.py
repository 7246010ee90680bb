"""The HTTP API over a real hypercorn server, with the real Claude Code CLI in local
sandboxes against the scripted model: create, SSE events (resumable), iterate, files,
path traversal refused, tokens checked, delete."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from orchestrator.api.app import create_api
from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.models import Turn
from orchestrator.sandboxes import DockerProvider, LocalProvider, SandboxProvider
from orchestrator.tokens import Purpose
from transport import serve

from .support import DONE, WRITE_FILE, scripted


@asynccontextmanager
async def api_server(orch: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(orch)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(app, host="127.0.0.1", port=0, task_status=task_status)
        )
        async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
            yield client
        nursery.cancel_scope.cancel()


async def sse_events(
    client: httpx.AsyncClient,
    path: str,
    token: str,
    until: str,
    *,
    headers: dict[str, str] | None = None,
    **params: str,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, event) pairs from the session's SSE up to and including type ``until``.

    Leaving is a cancellation of the read, which unwinds httpx's chain of body
    generators (closing only the outer one would leave the others to the GC)."""
    found: list[tuple[str, dict[str, Any]]] = []
    headers = headers or {"Authorization": f"Bearer {token}"}
    with trio.fail_after(60), trio.CancelScope() as done:
        async with client.stream("GET", path, headers=headers, params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event_id = ""
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: ") and not done.cancel_called:
                    # (lines already read can still come after the cancel: not kept)
                    event = json.loads(line[6:])
                    found.append((event_id, event))
                    if event["type"] == until:
                        done.cancel()
    assert found, "no event came"
    assert found[-1][1]["type"] == until, "the SSE stream ended early"
    return found


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> SandboxProvider:
    if request.param == "local":
        return LocalProvider(
            "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
        )
    client = request.getfixturevalue("docker_client")
    limiter = request.getfixturevalue("docker_limiter")
    return DockerProvider(
        f"test-{uuid.uuid4().hex[:12]}",
        client=client,
        limiter=limiter,
        network="host",
        claude_binary=bundled_claude_cli(),
    )


async def test_a_session_over_http(tmp_path: Path, provider: SandboxProvider) -> None:
    turns: list[Turn | str] = [WRITE_FILE, DONE, "Again."]
    async with scripted(turns, tmp_path, provider) as (_models, orch), api_server(orch) as client:
        assert (await client.get("/api/health")).json()["healthy"] is True
        assert (await client.get("/api/config")).json() == {"devMode": True}

        # validation: clear 400s, nothing created
        for bad in (
            {},
            {"description": ""},
            {"description": 5},
            {"description": "x" * 10_001},
            {"description": "x", "askTools": "yes"},
            {"description": "x", "freeform": "true"},
        ):
            response = await client.post("/api/sessions", json=bad)
            assert response.status_code == 400, bad
            assert response.json()["error"].startswith("Validation failed")
        response = await client.post(
            "/api/sessions", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert response.json() == {"error": "Invalid JSON body"}
        assert await orch.sessions() == []

        created = await client.post(
            "/api/sessions", json={"description": "make f.txt", "freeform": True}
        )
        assert created.status_code == 201
        body = created.json()
        sid, token = body["sessionId"], body["sessionToken"]
        assert body["session"]["id"] == sid
        auth = {"Authorization": f"Bearer {token}"}

        # tokens: none, another purpose, another session's -> 401
        other = orch.signer.token(Purpose.SESSION, "someone-else")
        hook = orch.signer.token(Purpose.HOOK, sid)
        for headers in (
            {},
            {"Authorization": f"Bearer {other}"},
            {"Authorization": f"Bearer {hook}"},
        ):
            assert (await client.get(f"/api/sessions/{sid}", headers=headers)).status_code == 401
        assert (await client.get("/api/sandboxes")).status_code == 401

        events = await sse_events(client, f"/api/sessions/{sid}/events", token, "session_end")
        kinds = [event["type"] for _, event in events]
        assert "pre_tool_use" in kinds
        assert "post_tool_use" in kinds
        assert events[-1][1]["success"] is True
        assert events[-1][1]["cost_usd"] > 0

        files = (await client.get(f"/api/sessions/{sid}/files", headers=auth)).json()
        assert any(path.endswith("/f.txt") for path in files["files"])
        content = await client.get(
            f"/api/sessions/{sid}/file-content", params={"path": "f.txt"}, headers=auth
        )
        assert content.json() == {"content": "hello\n"}
        for escape in ("../../../../etc/passwd", "/etc/passwd", "a/../../x"):
            refused = await client.get(
                f"/api/sessions/{sid}/file-content", params={"path": escape}, headers=auth
            )
            assert refused.status_code == 403, escape

        # iterate, then resume the SSE from the last id: only the new turn arrives
        last_id = events[-1][0]
        iterate = await client.post(
            f"/api/sessions/{sid}/iterate", json={"request": "again"}, headers=auth
        )
        assert iterate.json() == {"ok": True}
        assert (
            await client.post(f"/api/sessions/{sid}/iterate", json={}, headers=auth)
        ).status_code == 400
        more = await sse_events(
            client, f"/api/sessions/{sid}/events", token, "session_end", offset=last_id
        )
        assert more[0][1] == {**more[0][1], "type": "user_prompt", "message": "again"}
        texts = [event["text"] for _, event in more if event["type"] == "assistant_message"]
        assert texts == ["Again."]

        admin = orch.signer.token(Purpose.ADMIN)
        admin_auth = {"Authorization": f"Bearer {admin}"}
        listed = await client.get("/api/sandboxes", headers=admin_auth)
        assert [item["sessionId"] for item in listed.json()["sandboxes"]] == [sid]
        one = await client.get(f"/api/sandboxes/{sid}", headers=admin_auth)
        assert one.json()["alive"] is True
        assert (await client.get(f"/api/sandboxes/{sid}", headers=auth)).status_code == 401
        made = await client.post("/api/sandboxes", json={"projectName": "ops"}, headers=admin_auth)
        assert made.status_code == 201
        assert (
            await client.post("/api/sandboxes", json={"projectName": "../x"}, headers=admin_auth)
        ).status_code == 400
        gone = await client.delete(f"/api/sandboxes/{made.json()['sessionId']}", headers=admin_auth)
        assert gone.json() == {"ok": True}

        deleted = await client.delete(f"/api/sessions/{sid}", headers=auth)
        assert deleted.json() == {"ok": True}
        assert (await client.get(f"/api/sessions/{sid}", headers=auth)).status_code == 404
    assert await provider.list_owned() == []


async def test_production_mode_refuses_freeform_and_shows_the_budget(tmp_path: Path) -> None:
    provider = LocalProvider("test-server", tmp_path / "sb", claude_binary=bundled_claude_cli())
    async with (
        scripted(["Working."], tmp_path, provider, mode="production", max_session_cost_usd=2.0) as (
            models,
            orch,
        ),
        api_server(orch) as client,
    ):
        config = (await client.get("/api/config")).json()
        assert config == {"devMode": False, "maxSessionCostUsd": 2.0}
        refused = await client.post("/api/sessions", json={"description": "x", "freeform": True})
        assert refused.status_code == 403
        assert refused.json() == {"error": "Freeform sessions are not available"}
        created = await client.post(
            "/api/sessions", json={"description": "an app", "apiKey": "user-key"}
        )
        sid, token = created.json()["sessionId"], created.json()["sessionToken"]
        # non-freeform: it waits for the setup choice before anything is provisioned
        await sse_events(client, f"/api/sessions/{sid}/events", token, "infra_config_prompt")
        assert await provider.list_owned() == []
        choice = await client.post(
            f"/api/sessions/{sid}/respond",
            json={"gate": "infra_config", "mode": "local"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert choice.json() == {"ok": True}
        await sse_events(client, f"/api/sessions/{sid}/events", token, "session_end")
        first = models.main_requests()[0]
        assert first.body["model"] == orch.settings.model  # pinned
        tools = {tool["name"] for tool in first.body["tools"]}
        assert "WebSearch" not in tools
        # the server's key, not the caller's
        assert all(request.agent != "user-key" for request in models.requests)
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.post(f"/api/sessions/{sid}/cancel", headers=auth)).json() == {
            "ok": True
        }
        info = (await client.get(f"/api/sessions/{sid}", headers=auth)).json()
        assert info["status"] == "cancelled"
    assert await provider.list_owned() == []


async def test_provision_electric_needs_a_session_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.api import app as api_module

    from ..orchestrator.test_electric import fake_claim_api

    monkeypatch.setattr(api_module, "PROVISION_POLL_INTERVAL", 0.01)
    provider = LocalProvider("test-server", tmp_path / "sb", claude_binary=bundled_claude_cli())
    async with (
        fake_claim_api() as claim_api,
        scripted([DONE], tmp_path, provider, electric_api_base_url=claim_api) as (_m, orch),
        api_server(orch) as client,
    ):
        created = await client.post("/api/sessions", json={"description": "x", "freeform": True})
        sid, token = created.json()["sessionId"], created.json()["sessionToken"]
        refused = await client.post("/api/provision-electric", json={"sessionId": sid})
        assert refused.status_code == 401
        claimed = await client.post(
            "/api/provision-electric",
            json={"sessionId": sid},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert claimed.status_code == 200
        assert claimed.json()["sourceId"] == "src-9"
        await orch.session(sid).delete()


async def test_cancel_at_the_setup_choice_provisions_nothing(tmp_path: Path) -> None:
    provider = LocalProvider("test-server", tmp_path / "sb", claude_binary=bundled_claude_cli())
    async with (
        scripted(["Working."], tmp_path, provider) as (models, orch),
        api_server(orch) as client,
    ):
        created = await client.post("/api/sessions", json={"description": "an app"})
        sid, token = created.json()["sessionId"], created.json()["sessionToken"]
        auth = {"Authorization": f"Bearer {token}"}
        events = await sse_events(
            client, f"/api/sessions/{sid}/events", token, "infra_config_prompt"
        )
        assert events[-1][1]["projectName"] == created.json()["session"]["projectName"]
        assert len(orch.gates.pending(sid)) == 1
        assert (await client.post(f"/api/sessions/{sid}/cancel", headers=auth)).json() == {
            "ok": True
        }
        with trio.fail_after(10):
            while (await orch.session_info(sid) or {}).get("status") != "cancelled":  # noqa: ASYNC110
                await trio.sleep(0.02)
        await trio.sleep(0.3)
        assert await provider.list_owned() == []
        assert models.main_requests() == []
        late = await client.post(
            f"/api/sessions/{sid}/respond",
            json={"gate": "infra_config", "mode": "local"},
            headers=auth,
        )
        assert late.status_code == 409


async def test_a_cloud_setup_choice_reaches_the_sandbox_not_the_stream(tmp_path: Path) -> None:
    provider = LocalProvider("test-server", tmp_path / "sb", claude_binary=bundled_claude_cli())
    async with scripted(["Working."], tmp_path, provider) as (_m, orch), api_server(orch) as client:
        created = await client.post("/api/sessions", json={"description": "an app"})
        sid, token = created.json()["sessionId"], created.json()["sessionToken"]
        auth = {"Authorization": f"Bearer {token}"}
        await sse_events(client, f"/api/sessions/{sid}/events", token, "infra_config_prompt")
        secret_url = "postgresql://user:hunter2@db.example/app"
        choice = {
            "gate": "infra_config",
            "mode": "cloud",
            "databaseUrl": secret_url,
            "electricUrl": "https://electric.example",
            "sourceId": "src-1",
            "secret": "s3",
        }
        assert (
            await client.post(f"/api/sessions/{sid}/respond", json=choice, headers=auth)
        ).json() == {"ok": True}
        events = await sse_events(client, f"/api/sessions/{sid}/events", token, "session_end")
        resolved = next(e for _, e in events if e["type"] == "gate_resolved")
        assert resolved["details"]["Infrastructure"] == "Electric Cloud (BYO)"
        assert all("hunter2" not in json.dumps(e) for _, e in events)  # no secret in the stream
        sandbox = await orch.sandbox_of(sid)
        assert sandbox is not None
        env = await sandbox.exec(["printenv", "DATABASE_URL", "ELECTRIC_SOURCE_ID"])
        assert env.stdout.decode().split() == [secret_url, "src-1"]
        await orch.session(sid).delete()

"""A developer's own Claude Code feeding a session through hooks: the installer from
``GET /api/hooks/setup`` run in a temporary project, then the real CLI run there against
the scripted model; its hook events arrive in the session's stream."""

from __future__ import annotations

import os
from contextlib import aclosing
from pathlib import Path

import trio

from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.models import open_model_server
from orchestrator.sandboxes.local import LocalProvider
from orchestrator.tokens import Purpose

from ..sessions.support import AGENT_KEY, DONE, WRITE_FILE, orchestrator_on, script
from ..sessions.test_api import api_server


async def test_hooks_from_a_local_claude_code_fill_a_session(tmp_path: Path) -> None:
    project = tmp_path / "my-app"
    home = tmp_path / "home"
    project.mkdir()
    home.mkdir()
    provider = LocalProvider("test-server", tmp_path / "sb")
    async with (
        open_model_server(script(WRITE_FILE, DONE)) as models,
        orchestrator_on(models, tmp_path / "data", provider) as orch,
        api_server(orch) as client,
    ):
        refused = await client.get("/api/hooks/setup")
        assert refused.status_code == 401  # it carries the hook secret: operators only
        admin = {"Authorization": f"Bearer {orch.signer.token(Purpose.ADMIN)}"}
        setup = await client.get("/api/hooks/setup", headers=admin)
        assert setup.status_code == 200
        await trio.run_process(["bash", "-c", setup.text], cwd=project, capture_stdout=True)

        env = {
            **os.environ,
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": models.base_url,
            "ANTHROPIC_API_KEY": AGENT_KEY,
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        with trio.fail_after(60):
            done = await trio.run_process(
                [
                    str(bundled_claude_cli()),
                    "-p",
                    "make f.txt",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--allowedTools",
                    "Bash",
                ],
                cwd=project,
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        assert (project / "f.txt").read_text() == "hello\n"

        [info] = [i for i in await orch.sessions() if i.get("local")]
        assert info["projectName"] == "my-app"
        session = orch.session(info["id"])
        kinds = []
        async with aclosing(session.events(follow=False)) as events:
            async for item in events:
                kinds.append(item.event.type)
        for kind in ("session_start", "user_prompt", "pre_tool_use", "post_tool_use"):
            assert kind in kinds, kinds
        assert kinds.count("session_start") == 1
        # the hook token path: another purpose's token is refused
        bad = await client.post(
            f"/api/sessions/{info['id']}/hook-event",
            json={"hook_event_name": "Stop"},
            headers={"Authorization": f"Bearer {session.token}"},
        )
        assert bad.status_code == 401
        # a session started by a SessionStart hook, then fed through its hook token
        secret = {"Authorization": f"Bearer {orch.signer.token(Purpose.GLOBAL_HOOK)}"}
        start = {"hook_event_name": "SessionStart", "session_id": "cc-1", "cwd": "/p/demo"}
        assert (await client.post("/api/sessions/auto", json=start)).status_code == 401
        not_start = {"hook_event_name": "Stop"}
        refused_kind = await client.post("/api/sessions/auto", json=not_start, headers=secret)
        assert refused_kind.status_code == 400
        auto = await client.post("/api/sessions/auto", json=start, headers=secret)
        assert auto.status_code == 201
        hook_auth = {"Authorization": f"Bearer {auto.json()['hookToken']}"}
        fed = await client.post(
            f"/api/sessions/{auto.json()['sessionId']}/hook-event",
            json={"hook_event_name": "Stop", "last_assistant_message": "bye"},
            headers=hook_auth,
        )
        assert fed.json() == {"ok": True}
        auto_info = await orch.session_info(auto.json()["sessionId"])
        assert auto_info is not None
        assert auto_info["projectName"] == "demo"
    # the transcript -> session mapping survives a restart
    transcript = "/tmp/never/used.jsonl"
    async with Orchestrator(orch.settings, provider=provider) as again:
        first = await again.hook_session(transcript, "/x/app")
    async with Orchestrator(orch.settings, provider=provider) as again:
        second = await again.hook_session(transcript, "/x/app")
    assert first.id == second.id

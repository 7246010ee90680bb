"""The orchestrator on an external Durable Streams server (the npm reference server
0.3.7) instead of its embedded store: a session runs, its events and the registry live
on that server, and a second orchestrator on the same URL knows the session."""

from __future__ import annotations

import uuid
from pathlib import Path

from orchestrator import events as ev
from orchestrator.config import Settings
from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.models import open_model_server
from orchestrator.sandboxes.local import LocalProvider

from ..sessions.support import AGENT_KEY, DONE, WRITE_FILE, collect_until, script, wait_status


async def test_sessions_on_the_reference_stream_server(
    tmp_path: Path, ds_reference_url: str
) -> None:
    url = f"{ds_reference_url}/v1/stream/orch-{uuid.uuid4().hex[:8]}"
    async with open_model_server(script(WRITE_FILE, DONE)) as models:
        settings = Settings(
            data_dir=tmp_path,
            streams_url=url,
            anthropic_base_url=models.base_url,
            anthropic_api_key=AGENT_KEY,
        )
        provider = LocalProvider(
            "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
        )
        async with Orchestrator(settings, provider=provider) as orch:
            session = await orch.create_session("make f.txt", freeform=True)
            items = await collect_until(session, "session_end")
            post = next(i.event for i in items if isinstance(i.event, ev.PostToolUse))
            assert post.tool_response == "hello"
            await wait_status(session, "complete")
            # resuming from any event's position repeats nothing
            middle = items[len(items) // 2]
            rest = await collect_until(session, "session_end", offset=middle.offset)
            assert [i.raw for i in rest] == [i.raw for i in items[len(items) // 2 + 1 :]]
        provider = LocalProvider(
            "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
        )
        async with Orchestrator(settings, provider=provider) as again:
            info = await again.session_info(session.id)
            assert info is not None
            assert info["description"] == "make f.txt"
            replay = [i.raw async for i in again.session(session.id).events(follow=False)]
            assert replay[: len(items)] == [i.raw for i in items]

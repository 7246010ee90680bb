"""The stream store out of disk (every fdatasync failing with ENOSPC): requests get a
clear 503 and change nothing, no actor dies, and once there is room again the server
carries on; the store on disk is intact (a restart reads every acknowledged event)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core import bundled_claude_cli
from orchestrator.sandboxes.local import LocalProvider

from ..sessions.support import DONE, collect_until, scripted, wait_status
from ..sessions.test_api import api_server


async def test_a_full_disk_is_a_clear_503_and_nothing_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real: Callable[[int], None] = os.fdatasync
    full = [False]

    def fdatasync(fd: int) -> None:
        if full[0]:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    provider = LocalProvider(
        "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
    )
    async with (
        scripted([DONE, "Again.", "Third."], tmp_path, provider) as (_models, orch),
        api_server(orch) as client,
    ):
        created = (
            await client.post("/api/sessions", json={"description": "hi", "freeform": True})
        ).json()
        sid, token = created["sessionId"], created["sessionToken"]
        auth = {"Authorization": f"Bearer {token}"}
        session = orch.session(sid)
        before = await collect_until(session, "session_end")
        await wait_status(session, "complete")

        full[0] = True
        response = await client.post(
            f"/api/sessions/{sid}/iterate", json={"request": "x"}, headers=auth
        )
        assert response.status_code == 503
        assert "No space left" in response.json()["error"]
        response = await client.post("/api/sessions", json={"description": "hi", "freeform": True})
        assert response.status_code == 503
        assert "No space left" in response.json()["error"]
        response = await client.post("/api/rooms", json={"name": "r"})
        assert response.status_code == 503
        # nothing changed, and every actor still answers
        assert len(await orch.sessions()) == 1
        assert (await client.get(f"/api/sessions/{sid}", headers=auth)).json()[
            "status"
        ] == "complete"

        full[0] = False
        response = await client.post(
            f"/api/sessions/{sid}/iterate", json={"request": "again"}, headers=auth
        )
        assert response.status_code == 200, response.text
        after = await collect_until(session, "session_end", offset=before[-1].offset)
        assert [i.raw.get("text") for i in after if i.event.type == "assistant_message"] == [
            "Again."
        ]
        recorded = [i.raw async for i in session.events(follow=False)]
    # the store on disk: every acknowledged event, in order, after a restart
    async with scripted([], tmp_path, provider) as (_models, again):
        replay = [i.raw async for i in again.session(sid).events(follow=False)]
        assert replay[: len(recorded)] == recorded

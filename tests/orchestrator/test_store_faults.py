"""The stream store out of disk (every fdatasync failing with ENOSPC): requests get a
clear 503 and change nothing, no actor dies, and once there is room again the server
carries on; the store on disk is intact (a restart reads every acknowledged event)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from orchestrator.core import OrchestratorError, bundled_claude_cli
from orchestrator.models import ToolCall, Turn, Usage
from orchestrator.sandboxes.local import LocalProvider
from orchestrator.sessions.actor import Busy

from ..sessions.support import AGENT_KEY, DONE, collect_until, scripted, wait_status
from ..sessions.test_api import api_server


def disk_full(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A switch: while its one item is True, every fdatasync fails with ENOSPC."""
    real: Callable[[int], None] = os.fdatasync
    full = [False]

    def fdatasync(fd: int) -> None:
        if full[0]:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return full


def local(tmp_path: Path) -> LocalProvider:
    return LocalProvider("test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli())


async def test_a_full_disk_is_a_clear_503_and_nothing_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = disk_full(monkeypatch)
    provider = local(tmp_path)
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


async def test_a_disk_that_fills_during_a_turn_stops_the_turn_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's events are refused mid-turn: its turn is stopped (nothing it does
    could be watched), and once the store takes writes again the stream says what was
    lost and ends the cut turn; the session goes on."""
    full = disk_full(monkeypatch)
    provider = local(tmp_path)
    slow = Turn(blocks=(ToolCall("Bash", {"command": "sleep 8"}),), delay=1.0)
    async with (
        scripted([DONE, slow, "After the tool.", "Again."], tmp_path, provider) as (models, orch),
    ):
        session = await orch.create_session("hi", freeform=True)
        before = await collect_until(session, "session_end")
        await wait_status(session, "complete")
        await session.send("run it")
        actor = orch._actor(session.id)
        assert actor is not None
        with trio.fail_after(30):
            while models.turns_taken(AGENT_KEY) < 2:  # noqa: ASYNC110 - the model is asked
                await trio.sleep(0.01)
        full[0] = True  # while the model "thinks": its tool call is refused
        with trio.fail_after(30):
            while await actor.ask(Busy()):  # noqa: ASYNC110 - no event to wait on
                await trio.sleep(0.1)
        # the turn stopped before the tool's result went back to the model
        assert models.turns_taken(AGENT_KEY) == 2
        full[0] = False
        await session.send("again")
        after = await collect_until(session, "session_end", offset=before[-1].offset)
        after += await collect_until(session, "session_end", offset=after[-1].offset)
        kinds = [i.event.type for i in after]
        assert kinds.count("session_end") == 2, kinds
        told = next(i.raw for i in after if i.raw.get("level") == "error")
        assert "refused" in told["message"], told
        assert "No space left" in told["message"], told
        assert "the agent's turn was stopped" in told["message"], told
        cut = kinds.index("session_end")
        assert after[cut].raw["success"] is False
        assert kinds.index("user_prompt", cut) > cut  # "again" comes after the cut turn
        assert after[-1].raw["success"] is True
        assert (await wait_status(session, "complete"))["status"] == "complete"


async def test_a_budget_spent_while_the_disk_is_full_still_ends_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost that spends the budget is refused by the store: the session ends all
    the same (its sandbox removed), and says so once the store takes writes again,
    with nothing more happening in the session."""
    full = disk_full(monkeypatch)
    provider = local(tmp_path)
    dear = Turn.text("Costly.", usage=Usage(input_tokens=2_000_000), delay=1.0)
    async with scripted([DONE, dear], tmp_path, provider, max_session_cost_usd=0.5) as (
        models,
        orch,
    ):
        session = await orch.create_session("hi", freeform=True)
        before = await collect_until(session, "session_end")
        await wait_status(session, "complete")
        await session.send("spend")
        with trio.fail_after(30):
            while models.turns_taken(AGENT_KEY) < 2:  # noqa: ASYNC110 - the model is asked
                await trio.sleep(0.01)
        full[0] = True
        with trio.fail_after(30):
            while await provider.list_owned():  # noqa: ASYNC110 - the sandbox goes
                await trio.sleep(0.1)
        full[0] = False
        info = await wait_status(session, "error")
        assert info["ended"] is True
        after = [i.raw async for i in session.events(before[-1].offset, follow=False)]
        told = [e for e in after if e.get("level") == "error"]
        assert told, after
        assert "refused" in told[0]["message"]
        with pytest.raises(OrchestratorError, match="Container is not running"):
            await session.send("more")

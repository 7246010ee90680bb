"""The API under test: a real hypercorn server on 127.0.0.1 over an Orchestrator with
local sandboxes and the scripted model (every agent answers "Done."), the limits off
unless a test sets them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from orchestrator.api._limits import RateLimiter
from orchestrator.api.app import create_api
from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.models import Script, open_model_server
from orchestrator.sandboxes.local import LocalProvider
from orchestrator.tokens import Purpose
from transport import serve

from ..sessions.support import AGENT_KEY, orchestrator_on

NO_LIMITS: dict[str, Any] = {"rate_limit": None, "create_rate_limit": None}


@attrs.define
class Api:
    orch: Orchestrator
    client: httpx.AsyncClient
    url: str
    root: Path  # the local sandboxes' folder

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.orch.signer.token(Purpose.ADMIN)}"}


@contextlib.asynccontextmanager
async def running_api(
    tmp_path: Path, *, limiter: RateLimiter | None = None, **settings: Any
) -> AsyncIterator[Api]:
    root = tmp_path / "sandboxes"
    provider = LocalProvider("test-server", root, claude_binary=bundled_claude_cli())
    async with (
        open_model_server(Script.single()) as models,
        orchestrator_on(models, tmp_path / "data", provider, **{**NO_LIMITS, **settings}) as orch,
    ):
        app = create_api(orch, limiter=limiter)
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                lambda task_status: serve(app, host="127.0.0.1", port=0, task_status=task_status)
            )
            async with httpx.AsyncClient(base_url=binds[0], timeout=30) as client:
                yield Api(orch, client, binds[0], root)
            nursery.cancel_scope.cancel()


async def wait_until_idle(orch: Orchestrator, session_id: str, timeout: float = 60) -> None:
    """Until the session's first run is over (the agent said its piece)."""
    with trio.fail_after(timeout):
        while (await orch.session_info(session_id) or {}).get("status") == "running":  # noqa: ASYNC110
            await trio.sleep(0.05)


__all__ = ["AGENT_KEY", "NO_LIMITS", "Api", "running_api", "wait_until_idle"]

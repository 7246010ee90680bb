"""GitHub under test: a local fake of GitHub (API and git over HTTP) with its cast, and
the orchestrator's API with the GitHub routes on a real server, over local sandboxes
and the scripted model (every agent answers "Done.")."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from orchestrator.api.app import create_api
from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.github.app import GitHubSettings
from orchestrator.github.fake import FakeGitHub, serve_fake_github
from orchestrator.models import Script, open_model_server
from orchestrator.sandboxes.local import LocalProvider
from transport import serve

from ..sessions.support import orchestrator_on

OCTOCAT = "gho_octocat_token_000000000000"  # member of octo-org
MALLORY = "gho_mallory_token_000000000000"  # no organization
NO_LIMITS: dict[str, Any] = {"rate_limit": None, "create_rate_limit": None}
README = b"# hello\n\nfrom the fake GitHub\n"
FEATURE = b"a feature\n"
SECRET = b"the private one\n"


@contextlib.asynccontextmanager
async def github_fake(root: Path, public_key_pem: bytes) -> AsyncIterator[FakeGitHub]:
    """The fake with its cast: users octocat (in octo-org) and mallory; the app
    installed on octo-org; repositories octo-org/hello (public: main and feature/x),
    octo-org/secret and octo-org/other (private), octocat/personal (public, the app
    not installed)."""
    async with serve_fake_github(root, public_key_pem=public_key_pem) as fake:
        fake.add_user("octocat", OCTOCAT, orgs=["octo-org"])
        fake.add_user("mallory", MALLORY)
        fake.install("octo-org")
        await fake.add_repo(
            "octo-org",
            "hello",
            {"README.md": README},
            branches={"feature/x": {"feature.txt": FEATURE}},
        )
        await fake.add_repo("octo-org", "secret", {"SECRET.md": SECRET}, private=True)
        await fake.add_repo("octo-org", "other", {"OTHER.md": b"other\n"}, private=True)
        await fake.add_repo("octocat", "personal", {"ME.md": b"me\n"})
        yield fake


@attrs.define
class Api:
    orch: Orchestrator
    client: httpx.AsyncClient
    url: str
    provider: LocalProvider

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def github_api(
    tmp_path: Path,
    github: GitHubSettings,
    *,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> AsyncIterator[Api]:
    """``create_api(orch)`` with these GitHub settings, on a real server."""
    provider = LocalProvider(
        "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
    )
    async with (
        open_model_server(Script.single()) as models,
        orchestrator_on(models, tmp_path / "data", provider, **{**NO_LIMITS, **settings}) as orch,
    ):
        app = create_api(orch, github=github, github_clock=clock)
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                lambda task_status: serve(app, host="127.0.0.1", port=0, task_status=task_status)
            )
            async with httpx.AsyncClient(base_url=binds[0], timeout=60) as client:
                yield Api(orch, client, binds[0], provider)
            nursery.cancel_scope.cancel()


async def wait_until_idle(orch: Orchestrator, session_id: str, timeout: float = 60) -> str:
    """Until the session's first run is over; its status."""
    with trio.fail_after(timeout):
        while True:
            status = str((await orch.session_info(session_id) or {}).get("status"))
            if status != "running":
                return status
            await trio.sleep(0.05)

"""The GitHub App's key (one per test run: RSA generation takes a moment) and the fake
GitHub with its cast."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from orchestrator.github.app import GitHubSettings
from orchestrator.github.fake import FakeGitHub, generate_app_key

from .support import github_fake


@attrs.frozen
class AppKey:
    private_pem: bytes
    public_pem: bytes
    path: Path  # the private key's file (GITHUB_APP_PRIVATE_KEY_PATH)


@pytest.fixture(scope="session")
def app_key(tmp_path_factory: pytest.TempPathFactory) -> AppKey:
    private, public = generate_app_key()
    path = tmp_path_factory.mktemp("github-app") / "app.pem"
    path.write_bytes(private)
    path.chmod(0o600)
    return AppKey(private, public, path)


@pytest.fixture
async def fake(tmp_path: Path, app_key: AppKey) -> AsyncIterator[FakeGitHub]:
    async with github_fake(tmp_path / "fake-github", app_key.public_pem) as found:
        yield found


@pytest.fixture
def github(fake: FakeGitHub, app_key: AppKey) -> GitHubSettings:
    """The app's settings, aimed at the fake."""
    return fake.settings(app_key.path)

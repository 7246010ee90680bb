"""The GitHub App against the fake: its JWT (claims, and a signature the fake verifies
with the public key), installation tokens scoped to one repository with
``contents: write``, repository creation; its settings."""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.github.app import (
    GitHubApp,
    GitHubAppUnavailable,
    GitHubError,
    GitHubSettings,
    app_jwt,
    load_private_key,
)
from orchestrator.github.fake import FakeGitHub, generate_app_key

from .conftest import AppKey
from .support import MALLORY, OCTOCAT


def _part(segment: str) -> dict[str, Any]:
    decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(decoded, dict)
    return decoded


async def test_the_app_jwt_has_its_claims_and_the_fake_verifies_its_signature(
    fake: FakeGitHub, github: GitHubSettings, app_key: AppKey
) -> None:
    now = time.time()
    token = app_jwt("424242", app_key.private_pem, now=now)
    header, claims = _part(token.split(".")[0]), _part(token.split(".")[1])
    assert header == {"alg": "RS256", "typ": "JWT"}
    assert claims == {"iat": int(now) - 60, "exp": int(now) - 60 + 600, "iss": 424242}

    app = GitHubApp(github)
    installation = await app.installation("octo-org")
    assert installation.account == "octo-org"
    assert installation.account_type == "Organization"
    verified = fake.jwt_claims[-1]
    assert verified["iss"] == 424242
    assert verified["exp"] - verified["iat"] == 600
    assert verified["iat"] <= time.time() - 59
    assert verified["exp"] - time.time() <= 540 + 1


async def test_a_jwt_of_another_key_or_out_of_date_is_refused(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    other, _ = generate_app_key()
    path = tmp_path / "other.pem"
    path.write_bytes(other)
    with pytest.raises(GitHubError) as refused:
        await GitHubApp(
            GitHubSettings(**{**_fields(github), "private_key_path": path})
        ).installation("octo-org")
    assert refused.value.status == 401
    with pytest.raises(GitHubError) as stale:
        await GitHubApp(github, clock=lambda: time.time() - 3600).installation("octo-org")
    assert stale.value.status == 401
    with pytest.raises(GitHubError) as wrong_app:
        await GitHubApp(GitHubSettings(**{**_fields(github), "app_id": "7"})).installation(
            "octo-org"
        )
    assert wrong_app.value.status == 401
    assert fake.jwt_claims == []


def _fields(settings: GitHubSettings) -> dict[str, Any]:
    return {
        "app_id": settings.app_id,
        "private_key_path": settings.private_key_path,
        "api_url": settings.api_url,
        "web_url": settings.web_url,
    }


async def test_an_installation_token_is_scoped_to_one_repository_with_contents_write(
    fake: FakeGitHub, github: GitHubSettings
) -> None:
    app = GitHubApp(github)
    token = await app.installation_token("octo-org", "secret")
    issued = fake.issued[-1]
    assert issued.token == token.token
    assert issued.repositories == ("secret",)
    assert issued.permissions == {"contents": "write", "metadata": "read"}
    assert token.repositories == ("secret",)
    assert token.expires_at == issued.expires_at
    assert token.token not in repr(token)
    # the fake lets it see its repository and no other
    auth = {"Authorization": f"Bearer {token.token}"}
    async with httpx.AsyncClient(base_url=fake.api_url) as client:
        assert (await client.get("/repos/octo-org/secret", headers=auth)).status_code == 200
        assert (await client.get("/repos/octo-org/other", headers=auth)).status_code == 404


async def test_no_token_where_the_app_is_not_installed_or_for_a_missing_repository(
    fake: FakeGitHub, github: GitHubSettings
) -> None:
    app = GitHubApp(github)
    for owner, repo in (("octocat", "personal"), ("octo-org", "missing"), ("nobody", "x")):
        with pytest.raises(GitHubError) as refused:
            await app.installation_token(owner, repo)
        assert refused.value.status == 404
    for owner, repo in (("-bad", "x"), ("octo-org", "../x"), ("octo-org", "x.git")):
        with pytest.raises(GitHubError) as invalid:
            await app.installation_token(owner, repo)
        assert invalid.value.status == 400
    assert fake.issued == []


async def test_a_configured_installation_id_skips_the_lookup(
    fake: FakeGitHub, github: GitHubSettings
) -> None:
    installation = next(iter(fake.installations))
    app = GitHubApp(GitHubSettings(**_fields(github), installation_id=installation))
    token = await app.installation_token("octo-org", "hello")
    assert token.repositories == ("hello",)
    assert not any("/repos/octo-org/hello/installation" in r for r in fake.requests)
    with pytest.raises(GitHubError) as elsewhere:  # the installation is octo-org's
        await app.installation_token("octocat", "personal")
    assert elsewhere.value.status == 404


async def test_the_app_creates_a_repository_in_an_organization(
    fake: FakeGitHub, github: GitHubSettings
) -> None:
    app = GitHubApp(github)
    repo = await app.create_repository("octo-org", "new-app", private=True, description="x")
    assert repo.full_name == "octo-org/new-app"
    assert repo.private
    assert repo.clone_url == f"{fake.web_url}/octo-org/new-app.git"
    assert repo.html_url == f"{fake.web_url}/octo-org/new-app"
    assert "octo-org/new-app" in fake.repos
    # an installation-wide token that may administer, used for that call only
    assert fake.issued[-1].repositories is None
    assert fake.issued[-1].permissions["administration"] == "write"
    with pytest.raises(GitHubError) as taken:
        await app.create_repository("octo-org", "new-app")
    assert taken.value.status == 409


async def test_a_users_repository_needs_the_users_token(
    fake: FakeGitHub, github: GitHubSettings
) -> None:
    fake.install("octocat")
    app = GitHubApp(github)
    with pytest.raises(GitHubError) as refused:
        await app.create_repository("octocat", "mine")
    assert refused.value.status == 400
    mine = await app.create_repository("octocat", "mine", user_token=OCTOCAT, private=False)
    assert mine.full_name == "octocat/mine"
    assert not mine.private
    in_org = await app.create_repository("octo-org", "by-octocat", user_token=OCTOCAT)
    assert in_org.full_name == "octo-org/by-octocat"
    with pytest.raises(GitHubError) as outsider:
        await app.create_repository("octo-org", "by-mallory", user_token=MALLORY)
    assert outsider.value.status == 403


def test_settings_from_the_environment() -> None:
    assert GitHubSettings.from_env({}) == GitHubSettings()
    assert not GitHubSettings().app_configured
    found = GitHubSettings.from_env(
        {
            "GITHUB_APP_ID": "123",
            "GITHUB_APP_PRIVATE_KEY_PATH": "/keys/app.pem",
            "ORCHESTRATOR_GITHUB_API_URL": "https://ghe.example/api/v3/",
            "ORCHESTRATOR_GITHUB_URL": "https://ghe.example",
            "GITHUB_INSTALLATION_ID": "99",
            "ORCHESTRATOR_GITHUB_ORG": "apps",
            "ORCHESTRATOR_PUBLIC_URL": "http://127.0.0.1:4400",
            "UNRELATED": "x",
        }
    )
    assert found.app_configured
    assert found.private_key_path == Path("/keys/app.pem")
    assert found.installation_id == 99
    assert (found.web_host, found.web_scheme) == ("ghe.example", "https")
    for bad in (
        {"GITHUB_APP_ID": "123"},  # no key
        {"GITHUB_APP_PRIVATE_KEY_PATH": "/k.pem"},  # no id
        {"ORCHESTRATOR_GITHUB_API_URL": "http://api.github.example"},  # http, not loopback
        {"ORCHESTRATOR_GITHUB_URL": "https://user:pw@github.com"},
        {"ORCHESTRATOR_GITHUB_URL": "https://github.com/?x=1"},
        {"ORCHESTRATOR_GITHUB_URL": "ext::sh"},
        {"ORCHESTRATOR_GITHUB_URL": "file:///srv/git"},
        {"GITHUB_INSTALLATION_ID": "12a"},
        {"ORCHESTRATOR_GITHUB_ORG": "-org"},
    ):
        with pytest.raises(ValueError, match=r"GITHUB|URL|ORCHESTRATOR"):
            GitHubSettings.from_env(bad)


async def test_missing_cryptography_or_key_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app_key: AppKey
) -> None:
    with pytest.raises(GitHubAppUnavailable, match="not an unencrypted PEM"):
        load_private_key(b"not a key")
    missing = GitHubSettings(app_id="1", private_key_path=tmp_path / "missing.pem")
    with pytest.raises(GitHubAppUnavailable, match="cannot be read"):
        await GitHubApp(missing).jwt()
    with pytest.raises(GitHubAppUnavailable, match="no GitHub App is configured"):
        GitHubApp(GitHubSettings())
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)
    with pytest.raises(GitHubAppUnavailable, match=r"agent-orchestrator\[github\]"):
        load_private_key(app_key.private_pem)
    with pytest.raises(GitHubAppUnavailable, match=r"agent-orchestrator\[github\]"):
        app_jwt("1", app_key.private_pem)

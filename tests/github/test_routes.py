"""The GitHub routes on a real server: listing (with and without the caller's token,
development and production), the credential helper's token (scoped to the session's
repository) with the helper itself run in a real local sandbox, and
``POST /api/sessions/resume``: a clone in the session's sandbox, and injection
attempts refused with nothing run."""

from __future__ import annotations

import json
import stat
import time
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from orchestrator.github.app import GitHubSettings
from orchestrator.github.credentials import CONFIG_FILE, install_credential_helper, sandbox_home
from orchestrator.github.fake import FakeGitHub
from orchestrator.github.repo import RepoRef, create_session_repository, record_repository
from orchestrator.sandboxes.base import Sandbox
from orchestrator.tokens import Purpose

from ..api.test_openapi import GITHUB_LISTING, run_schemathesis
from .support import FEATURE, MALLORY, OCTOCAT, README, SECRET, github_api, wait_until_idle

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}


def gh(token: str) -> dict[str, str]:
    return {"X-GH-Token": token}


# -- listing ------------------------------------------------------------------------------


async def test_accounts_repositories_and_branches_with_the_callers_token(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    async with github_api(tmp_path, github) as api:
        client = api.client
        accounts = await client.get("/api/github/accounts", headers=gh(OCTOCAT))
        assert accounts.status_code == 200
        assert accounts.json() == {
            "accounts": [{"login": "octocat", "type": "user"}, {"login": "octo-org", "type": "org"}]
        }
        repos = (await client.get("/api/github/repos", headers=gh(OCTOCAT))).json()["repos"]
        assert [r["nameWithOwner"] for r in repos] == [
            "octocat/personal",
            "octo-org/other",
            "octo-org/secret",
            "octo-org/hello",
        ]
        assert repos[0] == {
            "nameWithOwner": "octocat/personal",
            "url": f"{fake.web_url}/octocat/personal",
            "updatedAt": fake.repos["octocat/personal"].updated_at,
        }
        [listed] = [r for r in fake.requests if r.startswith("GET /api/v3/user/repos")]
        for part in ("sort=updated", "per_page=50", "affiliation=owner"):
            assert part in listed
        branches = await client.get(
            "/api/github/repos/octo-org/hello/branches", headers=gh(OCTOCAT)
        )
        assert branches.json() == {
            "branches": [
                {"name": "feature/x", "isDefault": False},
                {"name": "main", "isDefault": True},
            ]
        }
        # mallory sees the public ones only
        repos = (await client.get("/api/github/repos", headers=gh(MALLORY))).json()["repos"]
        assert repos == []
        hidden = await client.get("/api/github/repos/octo-org/secret/branches", headers=gh(MALLORY))
        assert hidden.status_code == 404
        public = await client.get("/api/github/repos/octo-org/hello/branches", headers=gh(MALLORY))
        assert len(public.json()["branches"]) == 2


async def test_no_token_lists_nothing_and_a_bad_one_is_401(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    async with github_api(tmp_path, github) as api:
        client = api.client
        assert (await client.get("/api/github/accounts")).json() == {"accounts": []}
        assert (await client.get("/api/github/repos")).json() == {"repos": []}
        branches = await client.get("/api/github/repos/octo-org/hello/branches")
        assert branches.json() == {"branches": []}
        assert fake.requests == []  # nothing asked of GitHub without a token
        for path in (
            "/api/github/accounts",
            "/api/github/repos",
            "/api/github/repos/octo-org/hello/branches",
        ):
            refused = await client.get(path, headers=gh("gho_not_a_known_token"))
            assert refused.status_code == 401, path
            assert refused.json() == {"error": "GitHub refused the token"}
        for owner, repo in (("-bad", "x"), ("octo-org", "x.git"), ("octo org", "x")):
            invalid = await client.get(
                f"/api/github/repos/{owner}/{repo}/branches", headers=gh(OCTOCAT)
            )
            assert invalid.status_code == 400
        odd = await client.get("/api/github/accounts", headers=gh("a\x01b"))
        assert odd.status_code == 400


async def test_at_most_fifty_repositories_most_recent_first(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    fake.add_user("busy", "gho_busy_token_0000000000000")
    for n in range(55):
        await fake.add_repo("busy", f"repo-{n:02}")
    async with github_api(tmp_path, github) as api:
        found = await api.client.get(
            "/api/github/repos", headers=gh("gho_busy_token_0000000000000")
        )
        names = [r["nameWithOwner"] for r in found.json()["repos"]]
        assert names == [f"busy/repo-{n:02}" for n in range(54, 4, -1)]


async def test_listing_and_resume_are_refused_in_production(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    async with github_api(tmp_path, github, mode="production") as api:
        for path in (
            "/api/github/accounts",
            "/api/github/repos",
            "/api/github/repos/octo-org/hello/branches",
        ):
            refused = await api.client.get(path, headers=gh(OCTOCAT))
            assert refused.status_code == 403
            assert refused.json() == {"error": "Not available in production"}
        resume = await api.client.post(
            "/api/sessions/resume", json={"repoUrl": f"{fake.web_url}/octo-org/hello"}
        )
        assert resume.status_code == 403
        assert resume.json() == {"error": "Resume from repo not available"}
        assert fake.requests == []
        assert await api.orch.sessions() == []


# -- the credential helper's token --------------------------------------------------------


async def test_the_token_route_gives_the_sessions_repository_only(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    clock = [time.time()]
    async with github_api(tmp_path, github, clock=lambda: clock[0]) as api:
        session = await api.orch.create_session("hello", freeform=True)
        other = await api.orch.create_session("other", freeform=True)
        git = api.orch.signer.token(Purpose.GIT, session.id)
        other_git = api.orch.signer.token(Purpose.GIT, other.id)
        url = f"/api/sessions/{session.id}/github-token"
        assert (await api.client.post(url)).status_code == 401
        assert (await api.client.post(url, headers=api.bearer(other_git))).status_code == 401
        # the session token is not a git token (and the git token is good for nothing else)
        assert (await api.client.post(url, headers=api.bearer(session.token))).status_code == 401
        assert (await api.client.post(url, params={"token": "0" * 64})).status_code == 401
        unknown = "00000000-0000-4000-8000-000000000000"
        missing = await api.client.post(
            f"/api/sessions/{unknown}/github-token",
            headers=api.bearer(api.orch.signer.token(Purpose.GIT, unknown)),
        )
        assert missing.status_code == 404
        no_repo = await api.client.post(url, headers=api.bearer(git))
        assert no_repo.status_code == 404
        assert no_repo.json() == {"error": "This session has no GitHub repository"}

        await record_repository(api.orch, session.id, RepoRef("octo-org", "secret", fake.web_url))
        given = await api.client.post(url, headers=api.bearer(git))
        assert given.status_code == 200
        body = given.json()
        [issued] = fake.issued
        assert body == {"token": issued.token, "expires_at": issued.expires_at}
        assert issued.repositories == ("secret",)
        assert issued.permissions == {"contents": "write", "metadata": "read"}
        # a token with time left is handed out again
        again = await api.client.post(url, params={"token": git})
        assert again.json()["token"] == issued.token
        assert len(fake.issued) == 1
        # near its expiry a new one is made: ten an hour
        clock[0] += 3500
        for _ in range(9):
            fresh = await api.client.post(url, headers=api.bearer(git))
            assert fresh.status_code == 200
        assert len(fake.issued) == 10
        limited = await api.client.post(url, headers=api.bearer(git))
        assert limited.status_code == 429
        assert limited.json() == {"error": "Too many token requests"}
        assert {t.repositories for t in fake.issued} == {("secret",)}

        # where the app is not installed
        await record_repository(api.orch, other.id, RepoRef("octocat", "personal", fake.web_url))
        elsewhere = await api.client.post(
            f"/api/sessions/{other.id}/github-token", headers=api.bearer(other_git)
        )
        assert elsewhere.status_code == 404
        # an ended session gets none
        await other.cancel()
        with trio.fail_after(30):
            while not (await api.orch.session_info(other.id) or {}).get("ended"):  # noqa: ASYNC110
                await trio.sleep(0.05)
        ended = await api.client.post(
            f"/api/sessions/{other.id}/github-token", headers=api.bearer(other_git)
        )
        assert ended.status_code == 409


async def test_no_token_without_a_github_app(fake: FakeGitHub, tmp_path: Path) -> None:
    settings = GitHubSettings(api_url=fake.api_url, web_url=fake.web_url)
    async with github_api(tmp_path, settings) as api:
        session = await api.orch.create_session("hello", freeform=True)
        await record_repository(api.orch, session.id, RepoRef("octo-org", "secret", fake.web_url))
        response = await api.client.post(
            f"/api/sessions/{session.id}/github-token",
            headers=api.bearer(api.orch.signer.token(Purpose.GIT, session.id)),
        )
        assert response.status_code == 404
        assert response.json() == {"error": "No GitHub App is configured"}


async def _git(sandbox: Sandbox, *args: str, stdin: bytes | None = None) -> Any:
    return await sandbox.exec(["git", *args], env=GIT_ENV, stdin=stdin, timeout=120)


async def commit_and_push(sandbox: Sandbox, work: str, what: str) -> None:
    """``git add what``, a commit and ``git push origin main`` in ``work``."""
    identity = ("-c", "user.name=agent", "-c", "user.email=agent@example.com")
    assert (await _git(sandbox, "-C", work, "add", what)).ok
    commit = await _git(sandbox, "-C", work, *identity, "commit", "-q", "-m", "pushed")
    assert commit.ok, commit.stderr
    push = await _git(sandbox, "-C", work, "push", "origin", "main")
    assert push.ok, push.stderr


async def test_the_credential_helper_in_a_local_sandbox_gets_a_token_for_its_repository(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    async with github_api(tmp_path, github) as api:
        session = await api.orch.create_session("hello", freeform=True)
        await wait_until_idle(api.orch, session.id)
        sandbox = await api.orch.sandbox_of(session.id)
        assert sandbox is not None
        await record_repository(api.orch, session.id, RepoRef("octo-org", "secret", fake.web_url))
        helper = await install_credential_helper(
            sandbox,
            orchestrator_url=api.url,
            session_id=session.id,
            git_token=api.orch.signer.token(Purpose.GIT, session.id),
            github=github,
        )
        home = await sandbox_home(sandbox)
        assert helper.startswith(home + "/")
        assert stat.S_IMODE((await trio.Path(helper).stat()).st_mode) == 0o755
        settings = trio.Path(helper).parent / CONFIG_FILE
        assert stat.S_IMODE((await settings.stat()).st_mode) == 0o600
        # what the sandbox holds gets tokens and nothing else: the agent cannot answer
        # its own gates, read its session or end it
        held = api.bearer(json.loads(await settings.read_text())["token"])
        assert held != api.bearer(session.token)
        for method, path, body in (
            ("GET", "", None),
            (
                "POST",
                "/respond",
                {"gate": "tool_permission", "toolUseId": "t", "decision": "allow"},
            ),
            ("POST", "/iterate", {"request": "hi"}),
            ("DELETE", "", None),
        ):
            response = await api.client.request(
                method, f"/api/sessions/{session.id}{path}", json=body, headers=held
            )
            assert response.status_code == 401, (path, response.text)

        # git asks it, through the configuration it was given
        asked = f"protocol=http\nhost={github.web_host}\npath=octo-org/secret.git\n\n".encode()
        filled = await _git(sandbox, "credential", "fill", stdin=asked)
        assert filled.ok, filled.stderr
        [issued] = fake.issued
        lines = filled.stdout.decode().splitlines()
        assert "username=x-access-token" in lines
        assert f"password={issued.token}" in lines
        assert issued.repositories == ("secret",)
        assert issued.permissions == {"contents": "write", "metadata": "read"}
        # the helper itself, as git runs it
        direct = await sandbox.exec([helper, "get"], stdin=asked)
        assert direct.ok
        assert direct.stdout.decode() == (
            f"protocol=http\nhost={github.web_host}\nusername=x-access-token\n"
            f"password={issued.token}\n"
        )
        assert (await sandbox.exec([helper, "store"], stdin=asked)).ok
        # another host: it says nothing (and git has no other helper to ask)
        elsewhere = await _git(
            sandbox, "credential", "fill", stdin=b"protocol=https\nhost=example.com\n\n"
        )
        assert not elsewhere.ok
        assert b"password=" not in elsewhere.stdout
        quiet = await sandbox.exec([helper, "get"], stdin=b"protocol=https\nhost=example.com\n\n")
        assert quiet.ok
        assert quiet.stdout == b""

        # a private clone and a push through it; a push to another repository of the
        # same installation is refused: the token is scoped to the session's
        work = f"{sandbox.workdir}/secret"
        clone = await _git(sandbox, "clone", "--", f"{fake.web_url}/octo-org/secret.git", work)
        assert clone.ok, clone.stderr
        assert await sandbox.read_file(f"{work}/SECRET.md") == SECRET
        await sandbox.write_file(f"{work}/PUSHED.md", b"pushed\n")
        await commit_and_push(sandbox, work, "PUSHED.md")
        assert (await fake.files_of("octo-org", "secret"))["PUSHED.md"] == b"pushed\n"
        other = f"{fake.web_url}/octo-org/other.git"
        refused = await _git(sandbox, "-C", work, "push", other, "main:refs/heads/main")
        assert not refused.ok
        assert b"403" in refused.stderr
        assert "PUSHED.md" not in await fake.files_of("octo-org", "other")
        assert {t.repositories for t in fake.issued} == {("secret",)}
        config = await sandbox.read_file(f"{work}/.git/config")
        assert all(t.token.encode() not in config for t in fake.issued)


# -- resume ----------------------------------------------------------------------------


async def test_resume_clones_the_repository_before_the_agent_starts(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    async with github_api(tmp_path, github) as api:
        response = await api.client.post(
            "/api/sessions/resume",
            json={
                "repoUrl": f"{fake.web_url}/octo-org/hello.git",
                "branch": "feature/x",
                "oauthToken": "ignored",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        session_id = body["sessionId"]
        assert body["sessionToken"] == api.orch.session(session_id).token
        assert body["session"]["githubRepo"] == "octo-org/hello"
        assert body["session"]["git"] == {
            "repoName": "octo-org/hello",
            "remoteUrl": f"{fake.web_url}/octo-org/hello",
            "branch": "feature/x",
        }
        assert body["session"]["projectName"] == "hello"
        assert await wait_until_idle(api.orch, session_id) == "complete"
        sandbox = await api.orch.sandbox_of(session_id)
        assert sandbox is not None
        assert await sandbox.read_file(f"{sandbox.workdir}/README.md") == README
        assert await sandbox.read_file(f"{sandbox.workdir}/feature.txt") == FEATURE
        # the agent was told to explore what was cloned
        session = api.orch.session(session_id)
        first = await session.wait_for("user_prompt")
        assert "resuming work on an existing project" in first.raw["message"]
        assert f"{fake.web_url}/octo-org/hello" in first.raw["message"]
        # the app is configured: the clone used a token of that repository, and the
        # credential helper is in place for the agent's pushes
        assert {t.repositories for t in fake.issued} == {("hello",)}
        home = await sandbox_home(sandbox)
        helper = trio.Path(home) / ".local/share/agent-orchestrator/git-credential-orchestrator"
        assert await helper.exists()


async def test_resume_a_private_repository_with_the_users_token(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    no_app = GitHubSettings(api_url=fake.api_url, web_url=fake.web_url)
    async with github_api(tmp_path, no_app) as api:
        response = await api.client.post(
            "/api/sessions/resume",
            json={"repoUrl": f"{fake.web_url}/octo-org/secret", "ghToken": OCTOCAT},
        )
        assert response.status_code == 201, response.text
        session_id = response.json()["sessionId"]
        assert await wait_until_idle(api.orch, session_id) == "complete"
        sandbox = await api.orch.sandbox_of(session_id)
        assert sandbox is not None
        assert await sandbox.read_file(f"{sandbox.workdir}/SECRET.md") == SECRET
        assert OCTOCAT.encode() not in await sandbox.read_file(f"{sandbox.workdir}/.git/config")
        assert fake.issued == []


async def test_a_clone_that_fails_fails_the_session(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    async with github_api(tmp_path, github) as api:
        response = await api.client.post(
            "/api/sessions/resume",
            json={"repoUrl": f"{fake.web_url}/octo-org/hello", "branch": "no-such-branch"},
        )
        assert response.status_code == 201
        session = api.orch.session(response.json()["sessionId"])
        assert await wait_until_idle(api.orch, session.id) == "error"
        failed = await session.wait_for("log")
        while "Session failed" not in failed.raw.get("message", ""):
            failed = await session.wait_for("log", offset=failed.offset)
        assert "no-such-branch" in failed.raw["message"]


async def test_resume_refuses_injection_attempts_and_runs_nothing(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    victim = tmp_path / "victim"
    victim.mkdir()
    repo = f"{fake.web_url}/octo-org/hello.git"
    bare = fake.git_root / "octo-org" / "hello.git"
    attempts: list[dict[str, Any]] = [
        {"repoUrl": f"--upload-pack=touch {marker}"},
        {"repoUrl": f"--upload-pack=touch${{IFS}}{marker}"},
        {"repoUrl": f"{repo} --upload-pack=touch {marker}"},
        {"repoUrl": f"-b main {repo}"},
        {"repoUrl": f"-c core.sshCommand=touch {repo}"},
        {"repoUrl": f"{fake.web_url}/octo-org/$(touch {marker})"},
        {"repoUrl": f"{fake.web_url}/octo-org/`touch {marker}`"},
        {"repoUrl": f"{repo}; touch {marker}"},
        {"repoUrl": f"{repo};touch${{IFS}}{marker}"},
        {"repoUrl": f"{repo} && rm -rf {victim}"},
        {"repoUrl": f"{repo}\ntouch {marker}"},
        {"repoUrl": f"{repo}\r\ntouch {marker}"},
        {"repoUrl": f"ext::sh -c touch% {marker}"},
        {"repoUrl": f"ext::sh -c 'touch {marker}'"},
        {"repoUrl": f"file://{bare}"},
        {"repoUrl": str(bare)},
        {"repoUrl": f"{fake.web_url}/octo-org/../../{bare}"},
        {"repoUrl": "https://github.com/octo-org/hello"},  # not the configured GitHub
        {"repoUrl": f"{fake.web_url}@evil.example/octo-org/hello"},
        {"repoUrl": repo, "branch": f"--upload-pack=touch {marker}"},
        {"repoUrl": repo, "branch": "--upload-pack=touch"},
        {"repoUrl": repo, "branch": "-b"},
        {"repoUrl": repo, "branch": "-bmain"},
        {"repoUrl": repo, "branch": f"$(touch {marker})"},
        {"repoUrl": repo, "branch": "$(id)"},
        {"repoUrl": repo, "branch": f"`touch {marker}`"},
        {"repoUrl": repo, "branch": f"main; rm -rf {victim}"},
        {"repoUrl": repo, "branch": f"main\ntouch {marker}"},
        {"repoUrl": repo, "branch": "main\x00"},
        {"repoUrl": repo, "branch": "a..b"},
        {"repoUrl": repo, "ghToken": "tok en"},
        {"repoUrl": repo, "ghToken": "token\nHost: evil"},
        {},  # no repoUrl
        {"repoUrl": ""},
        {"repoUrl": "   "},
        {"repoUrl": 42},
        {"repoUrl": repo, "branch": ["main"]},
        {"repoUrl": "x" * 1001},
    ]
    async with github_api(tmp_path, github) as api:
        for attempt in attempts:
            response = await api.client.post("/api/sessions/resume", json=attempt)
            assert response.status_code == 400, attempt
            assert response.json()["error"] == "Validation failed", attempt
            assert response.json()["details"], attempt
        for raw in (b"[]", b"not json", b'"a string"'):
            response = await api.client.post(
                "/api/sessions/resume",
                content=raw,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400, raw
        # nothing was created, nothing ran, git was never reached
        assert await api.orch.sessions() == []
        assert await api.provider.list_owned() == []
    assert not marker.exists()
    assert victim.is_dir()
    assert not any("info/refs" in r or "upload-pack" in r for r in fake.requests)
    assert fake.issued == []


# -- a new project's repository ---------------------------------------------------------


async def test_a_new_project_gets_its_repository_and_pushes_to_it(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    """Reference 8.1 step 3: after the setup choice the GitHub App makes the repository
    it names, the project becomes a git repository with origin there, and the agent
    can push to it through the credential helper; a name already taken is a clear
    error in the log and the session goes on."""
    async with github_api(tmp_path, github) as api:
        public = attrs.evolve(github, orchestrator_url=api.url)  # the sandbox's way back
        api.orch.new_repository = partial(create_session_repository, api.orch, public)

        async def new_project(name: str) -> str:
            made = (await api.client.post("/api/sessions", json={"description": "an app"})).json()
            answer = {
                "gate": "infra_config",
                "mode": "local",
                "repoAccount": "octo-org",
                "repoName": name,
                "repoVisibility": "private",
            }
            response = await api.client.post(
                f"/api/sessions/{made['sessionId']}/respond",
                json=answer,
                headers=api.bearer(made["sessionToken"]),
            )
            assert response.status_code == 200, response.text
            assert await wait_until_idle(api.orch, made["sessionId"]) == "complete"
            return str(made["sessionId"])

        sid = await new_project("new-app")
        info = await api.orch.session_info(sid)
        assert info is not None
        assert info["githubRepo"] == "octo-org/new-app"
        assert info["git"]["remoteUrl"] == f"{fake.web_url}/octo-org/new-app"
        assert fake.repos["octo-org/new-app"].private
        logs = [i.raw async for i in api.orch.session(sid).events(follow=False)]
        created = f"GitHub repository created: {fake.web_url}/octo-org/new-app (private)"
        assert created in [e.get("message") for e in logs]
        sandbox = await api.orch.sandbox_of(sid)
        assert sandbox is not None
        work = sandbox.workdir
        origin = await _git(sandbox, "-C", work, "remote", "get-url", "origin")
        assert origin.stdout.decode().strip() == f"{fake.web_url}/octo-org/new-app.git"
        # the project goes up through the helper, with a token for that repository only
        await commit_and_push(sandbox, work, "-A")
        assert "CLAUDE.md" in await fake.files_of("octo-org", "new-app")
        # (besides the app's own, on the server, that made the repository)
        scoped = {t.repositories for t in fake.issued if t.repositories is not None}
        assert scoped == {("new-app",)}

        # a name already taken: said in the log, and the session goes on without one
        taken = await new_project("hello")
        logs = [i.raw async for i in api.orch.session(taken).events(follow=False)]
        failed = [e["message"] for e in logs if e.get("level") == "error"]
        assert len(failed) == 1, failed
        assert failed[0].startswith("Project setup failed:"), failed
        info = await api.orch.session_info(taken)
        assert info is not None
        assert "githubRepo" not in info


# -- bad input, systematically ---------------------------------------------------------


async def test_schemathesis_over_the_github_routes_finds_no_server_error(
    fake: FakeGitHub, github: GitHubSettings, tmp_path: Path
) -> None:
    """The GitHub routes of the OpenAPI document, fuzzed against a real server whose
    GitHub is the fake: any X-GH-Token (the fake refuses what it does not know), any
    owner, repository and branch, the token route with the session's git token, the
    resume route with any body. No server error."""
    async with github_api(tmp_path, github, max_sessions=4) as api:
        session = await api.orch.create_session("hello", freeform=True)
        await wait_until_idle(api.orch, session.id)
        await record_repository(api.orch, session.id, RepoRef("octo-org", "secret", fake.web_url))
        git = api.orch.signer.token(Purpose.GIT, session.id)
        capacity = {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}}
        blocks: list[dict[str, Any]] = [
            {"include-operation-id": "github_token", "parameters": {"session_id": session.id},
             "headers": {"Authorization": f"Bearer {git}"}},
            {"include-operation-id": "resume_session", "checks": capacity},
            {"include-operation-id": "github_branches",
             "parameters": {"owner": "octo-org", "repo": "hello"}},
        ]  # fmt: skip
        await run_schemathesis(
            api.url,
            tmp_path / "schemathesis",
            blocks,
            include=(*GITHUB_LISTING, "github_token", "resume_session"),
        )
        assert (await api.client.get("/api/health")).status_code == 200

"""Repository URLs and branches: what is accepted, what is refused (injection
attempts), and a clone into a real local sandbox from the fake's git over HTTP (a
private one with a token that never lands in ``.git/config``)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import bundled_claude_cli
from orchestrator.github.app import GitHubApp, GitHubSettings
from orchestrator.github.fake import FakeGitHub
from orchestrator.github.repo import (
    CloneFailed,
    InvalidRepository,
    RepoRef,
    clone_repository,
    init_repository,
    parse_repo_url,
    validate_branch,
)
from orchestrator.sandboxes.base import Sandbox, SandboxSpec
from orchestrator.sandboxes.local import LocalProvider

from .support import FEATURE, README, SECRET

GH = "https://github.com"


@pytest.mark.parametrize(
    "url",
    [
        f"{GH}/octo/hello",
        f"{GH}/octo/hello.git",
        f"{GH}/octo/hello/",
        f"{GH}/octo/hello.git/",
    ],
)
def test_a_repository_url_is_parsed_and_rebuilt(url: str) -> None:
    ref = parse_repo_url(url)
    assert ref == RepoRef("octo", "hello", GH)
    assert ref.clone_url == f"{GH}/octo/hello.git"
    assert ref.html_url == f"{GH}/octo/hello"


def test_dots_and_dashes_in_names() -> None:
    assert parse_repo_url(f"{GH}/a-b/.github").name == ".github"
    assert parse_repo_url(f"{GH}/a-b/x_y.z-1.git").name == "x_y.z-1"


MARKER = "/tmp/pwned-by-a-test"
REFUSED_URLS = [
    "",
    f"--upload-pack=touch {MARKER}",
    "--upload-pack=touch",
    f"-u touch {MARKER} {GH}/octo/hello",
    f"{GH}/octo/hello.git --upload-pack=touch {MARKER}",
    f"{GH}/octo/hello.git\ntouch {MARKER}",
    f"{GH}/octo/hello.git\r\n",
    f"{GH}/octo/hello.git\x00",
    f"{GH}/octo/hello\t",
    f"{GH}/octo/$(touch {MARKER})",
    f"{GH}/octo/`touch {MARKER}`",
    f"{GH}/octo/hello;rm -rf ~",
    f"{GH}/octo/hello;touch",
    f"{GH}/octo/hello|id",
    f"{GH}/octo/hello&&id",
    f"ext::sh -c touch% {MARKER}",
    "ext::sh",
    "file:///etc/passwd",
    "file:///tmp/repo.git",
    "/tmp/repo.git",
    "../repo.git",
    "git@github.com:octo/hello.git",
    "ssh://git@github.com/octo/hello.git",
    "git://github.com/octo/hello.git",
    "http://github.com/octo/hello.git",
    "https://evil.example/octo/hello.git",
    "https://github.com.evil.example/octo/hello.git",
    "https://github.com@evil.example/octo/hello.git",
    "https://user:pw@github.com/octo/hello.git",
    "HTTPS://GITHUB.COM/octo/hello",
    f"{GH}/octo",
    f"{GH}/octo/",
    f"{GH}//hello",
    f"{GH}/octo/hello/tree/main",
    f"{GH}/octo/../../etc/passwd",
    f"{GH}/octo/..",
    f"{GH}/octo/.",
    f"{GH}/octo/hello.git.git",
    f"{GH}/-octo/hello",
    f"{GH}/octo/hello?ref=x",
    f"{GH}/octo/hello#main",
    f"{GH}/octo/h%65llo",
    f"{GH}/octo/héllo",
    f"{GH}/{'o' * 40}/hello",
    f"{GH}/octo/{'r' * 101}",
    f"{GH}/octo/{'r' * 1000}",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_anything_but_a_plain_repository_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidRepository):
        parse_repo_url(url)


def test_only_the_configured_github_is_allowed() -> None:
    local = "http://127.0.0.1:8123"
    assert parse_repo_url(f"{local}/octo/hello", local).clone_url == f"{local}/octo/hello.git"
    with pytest.raises(InvalidRepository):
        parse_repo_url(f"{GH}/octo/hello", local)
    with pytest.raises(InvalidRepository):
        parse_repo_url(f"{local}@evil.example/octo/hello", local)
    with pytest.raises(InvalidRepository):
        parse_repo_url("http://127.0.0.1:8124/octo/hello", local)
    with pytest.raises(ValueError, match="loopback"):
        parse_repo_url("http://github.com/octo/hello", "http://github.com")


@pytest.mark.parametrize(
    "branch", ["main", "feature/x", "release-1.2", "v1.0+build", "a_b", "deep/er/branch"]
)
def test_branch_names_git_accepts(branch: str) -> None:
    assert validate_branch(branch) == branch


REFUSED_BRANCHES = [
    "",
    "-b",
    "--upload-pack=touch",
    f"--upload-pack=touch {MARKER}",
    "-bmain",
    f"$(touch {MARKER})",
    "$(id)",
    "`id`",
    "main; rm -rf ~",
    "main;id",
    "main && id",
    "main|id",
    "main\ntouch x",
    "main\r",
    "main\x00",
    "main\x7f",
    "a b",
    "a..b",
    "a/.hidden",
    ".hidden",
    "ref.lock",
    "a/ref.lock/b",
    "/main",
    "main/",
    "a//b",
    "main.",
    "@{-1}",
    "@",
    "main~1",
    "HEAD^",
    "HEAD",
    "x:y",
    "a*",
    "a?",
    "[x",
    "a\\b",
    "ünicode",
    "x" * 256,
]


@pytest.mark.parametrize("branch", REFUSED_BRANCHES)
def test_branch_injection_attempts_are_refused(branch: str) -> None:
    with pytest.raises(InvalidRepository):
        validate_branch(branch)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./-_+@{}~^:?*[\\ \n$()`;.lock"), max_size=12))
def test_an_accepted_branch_is_one_git_accepts(branch: str) -> None:
    try:
        validate_branch(branch)
    except InvalidRepository:
        return
    checked = subprocess.run(
        ["git", "check-ref-format", "--branch", branch], capture_output=True, check=False
    )
    assert checked.returncode == 0, branch
    assert not branch.startswith("-")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_refused_or_a_canonical_url(text: str) -> None:
    for candidate in (text, f"{GH}/{text}", f"{GH}/octo/{text}"):
        try:
            ref = parse_repo_url(candidate)
        except InvalidRepository:
            continue
        assert ref.clone_url == f"{GH}/{ref.owner}/{ref.name}.git"
        assert all(c.isalnum() or c in "._-/:" for c in ref.clone_url)


# -- a clone into a real local sandbox ----------------------------------------------------


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    provider = LocalProvider(
        "test-server", tmp_path / "sandboxes", claude_binary=bundled_claude_cli()
    )
    found = await provider.create(
        SandboxSpec(session_id=str(uuid.uuid4()), project_name="project", network="host")
    )
    try:
        yield found
    finally:
        await found.destroy()


async def test_a_public_repository_is_cloned_at_a_branch(
    fake: FakeGitHub, sandbox: Sandbox
) -> None:
    ref = parse_repo_url(f"{fake.web_url}/octo-org/hello", fake.web_url)
    await clone_repository(sandbox, ref, branch="feature/x")
    workdir = sandbox.workdir
    assert await sandbox.read_file(f"{workdir}/README.md") == README
    assert await sandbox.read_file(f"{workdir}/feature.txt") == FEATURE
    head = await sandbox.exec(["git", "rev-parse", "--abbrev-ref", "HEAD"])
    assert head.stdout.strip() == b"feature/x"
    origin = await sandbox.exec(["git", "remote", "get-url", "origin"])
    assert origin.stdout.strip().decode() == f"{fake.web_url}/octo-org/hello.git"


async def test_a_private_repository_needs_a_token_that_is_not_kept(
    fake: FakeGitHub, github: GitHubSettings, sandbox: Sandbox
) -> None:
    ref = parse_repo_url(f"{fake.web_url}/octo-org/secret.git", fake.web_url)
    with pytest.raises(CloneFailed, match="secret"):
        await clone_repository(sandbox, ref)
    token = await GitHubApp(github).installation_token("octo-org", "secret")
    await clone_repository(sandbox, ref, token=token.token)
    assert await sandbox.read_file(f"{sandbox.workdir}/SECRET.md") == SECRET
    config = await sandbox.read_file(f"{sandbox.workdir}/.git/config")
    assert token.token.encode() not in config
    assert b"extraHeader" not in config
    for path in await sandbox.list_files(f"{sandbox.workdir}/.git"):
        if not path.endswith((".pack", ".idx")):
            assert token.token.encode() not in await sandbox.read_file(path), path


async def test_a_missing_branch_fails_with_gits_message(fake: FakeGitHub, sandbox: Sandbox) -> None:
    ref = parse_repo_url(f"{fake.web_url}/octo-org/hello", fake.web_url)
    with pytest.raises(CloneFailed, match="no-such-branch"):
        await clone_repository(sandbox, ref, branch="no-such-branch")
    with pytest.raises(InvalidRepository):
        await clone_repository(sandbox, ref, branch="--upload-pack=touch")


async def test_a_new_repository_gets_its_origin(fake: FakeGitHub, sandbox: Sandbox) -> None:
    url = f"{fake.web_url}/octo-org/fresh.git"
    await init_repository(sandbox, url)
    origin = await sandbox.exec(["git", "remote", "get-url", "origin"])
    assert origin.stdout.strip().decode() == url
    branch = await sandbox.exec(["git", "symbolic-ref", "--short", "HEAD"])
    assert branch.stdout.strip() == b"main"
    with pytest.raises(InvalidRepository):
        await init_repository(sandbox, "ext::sh -c id")

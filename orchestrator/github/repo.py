"""Repositories in sandboxes: a session resumed from a repository
(``POST /api/sessions/resume``, reference §3.3), and a session's own repository (the
create-app flow's, §8.1 step 3).

The reference built shell strings from the user's URL and branch (§17.6). Here:

- the URL must be ``{web_url}/{owner}/{repo}`` (``.git`` and a final ``/`` allowed) on
  the configured GitHub (``https://github.com`` unless ``ORCHESTRATOR_GITHUB_URL`` says
  otherwise; the tests point it at a local fake on ``http://127.0.0.1:<port>``), owner
  and name by GitHub's rules; anything else is refused: other hosts, ``ext::``,
  ``file://``, scp-style ``git@host:path``, a leading ``-``, white space, control
  characters, credentials, a query, a fragment, ``..``. The clone uses the URL rebuilt
  from the parsed owner and name, never the string given;
- the branch must pass git's ``check-ref-format`` rules within a conservative
  character set (letters, digits, ``. _ / + -``; no leading ``-``);
- git runs as an argument list (``git clone --branch B -- URL DIR``), with
  ``GIT_ALLOW_PROTOCOL`` set to the one scheme allowed and no terminal prompt; a token
  for a private repository goes in an ``http.<url>.extraHeader`` set through git's
  ``GIT_CONFIG_*`` environment: not in the URL, the command line or ``.git/config``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..core import Orchestrator, Session
from ..sandboxes.base import Sandbox
from ..sessions.registry import UpdateSession
from ..tokens import Purpose
from .app import (
    GITHUB_URL,
    GitHubApp,
    GitHubError,
    GitHubSettings,
    check_base_url,
    valid_owner,
    valid_repo_name,
)
from .credentials import install_credential_helper

__all__ = [
    "CloneFailed",
    "InvalidRepository",
    "RepoRef",
    "clone_repository",
    "create_session_repository",
    "git_auth_env",
    "init_repository",
    "parse_repo_url",
    "record_repository",
    "resume_from_repository",
    "validate_branch",
]

URL_LIMIT = 1_000
BRANCH_LIMIT = 255
CLONE_TIMEOUT = 600.0
_PATH = re.compile(r"([^/]+)/([^/]+?)(?:\.git)?/?")
_BRANCH_CHARS = re.compile(r"[A-Za-z0-9._/+-]+")
_GH_TOKEN = re.compile(r"[\x21-\x7e]{1,1000}")  # printable ASCII, no space
RESUME_PROMPT = (
    "You are resuming work on an existing project, cloned from {url}{branch} into the "
    "current directory. Explore the codebase to understand its structure and current "
    "state, then wait for instructions."
)


class InvalidRepository(ValueError):
    """A repository URL, branch or token that is refused."""


class CloneFailed(Exception):
    """git could not clone the repository."""


@attrs.frozen
class RepoRef:
    """A repository on the configured GitHub, by owner and name."""

    owner: str
    name: str
    web_url: str = GITHUB_URL

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def clone_url(self) -> str:
        return f"{self.web_url}/{self.owner}/{self.name}.git"

    @property
    def html_url(self) -> str:
        return f"{self.web_url}/{self.owner}/{self.name}"


def parse_repo_url(url: object, web_url: str = GITHUB_URL) -> RepoRef:
    """The repository ``url`` names on ``web_url``; InvalidRepository otherwise."""
    if not isinstance(url, str) or not url:
        raise InvalidRepository("repoUrl must be a non-empty string")
    if len(url) > URL_LIMIT:
        raise InvalidRepository(f"repoUrl is over {URL_LIMIT} characters")
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        raise InvalidRepository("repoUrl must not hold white space or control characters")
    if url.startswith("-"):
        raise InvalidRepository("repoUrl must not start with '-'")
    base = check_base_url(web_url, "the GitHub URL")
    if not url.startswith(base + "/"):
        raise InvalidRepository(f"repoUrl must be a repository on {base}: {base}/OWNER/REPO")
    found = _PATH.fullmatch(url[len(base) + 1 :])
    if found is None:
        raise InvalidRepository(f"repoUrl must be {base}/OWNER/REPO")
    owner, name = found.groups()
    if not valid_owner(owner):
        raise InvalidRepository(f"not a GitHub owner: {owner!r}")
    if not valid_repo_name(name):
        raise InvalidRepository(f"not a GitHub repository name: {name!r}")
    return RepoRef(owner, name, base)


def validate_branch(branch: object) -> str:
    """A branch name by git's ``check-ref-format --branch`` rules, within letters,
    digits and ``. _ / + -``; InvalidRepository otherwise."""
    if not isinstance(branch, str) or not branch:
        raise InvalidRepository("branch must be a non-empty string")
    if len(branch) > BRANCH_LIMIT:
        raise InvalidRepository(f"branch is over {BRANCH_LIMIT} characters")
    if not _BRANCH_CHARS.fullmatch(branch):
        raise InvalidRepository("branch may hold letters, digits and '._/+-' only")
    parts = branch.split("/")
    if (
        branch.startswith("-")
        or branch == "HEAD"
        or ".." in branch
        or branch.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
    ):
        raise InvalidRepository(f"not a valid branch name: {branch!r}")
    return branch


def git_auth_env(web_url: str, token: str) -> dict[str, str]:
    """git's environment for ``token`` on ``web_url`` only (``x-access-token``, as
    GitHub wants for installation and user tokens alike)."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{web_url}/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


def _git_env(ref: RepoRef, token: str | None) -> dict[str, str]:
    scheme = ref.web_url.split(":", 1)[0]
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": scheme, "GCM_INTERACTIVE": "never"}
    if token:
        env.update(git_auth_env(ref.web_url, token))
    return env


def _failure(stderr: bytes, token: str | None) -> str:
    text = stderr.decode(errors="replace").strip()
    if token:
        text = text.replace(token, "***")
    return text[-800:]


async def clone_repository(
    sandbox: Sandbox,
    ref: RepoRef,
    *,
    branch: str | None = None,
    dest: str | None = None,
    token: str | None = None,
    timeout: float = CLONE_TIMEOUT,
) -> None:
    """``git clone [--branch B] -- URL DEST`` in ``sandbox`` (``dest``: its workdir,
    which must be empty). CloneFailed with git's message."""
    if branch is not None:
        validate_branch(branch)
    argv = ["git", "clone", "--origin", "origin"]
    if branch is not None:
        argv += ["--branch", branch]
    argv += ["--", ref.clone_url, dest or sandbox.workdir]
    result = await sandbox.exec(argv, env=_git_env(ref, token), timeout=timeout)
    if not result.ok:
        raise CloneFailed(
            f"git clone {ref.clone_url} failed ({result.exit_code}): "
            f"{_failure(result.stderr, token)}"
        )


async def init_repository(
    sandbox: Sandbox, clone_url: str, *, branch: str = "main", dest: str | None = None
) -> None:
    """A new repository in ``dest`` (the workdir) with ``origin`` at ``clone_url`` (a
    repository just created, reference §8.1 step 3): ``git init -b`` and ``git remote
    add``, as argument lists."""
    validate_branch(branch)
    if not clone_url.startswith(("https://", "http://")) or any(
        c.isspace() or not c.isprintable() for c in clone_url
    ):
        raise InvalidRepository(f"not a clone URL: {clone_url!r}")
    directory = dest or sandbox.workdir
    for argv in (
        ["git", "init", "--quiet", "--initial-branch", branch, "--", directory],
        ["git", "-C", directory, "remote", "add", "origin", clone_url],
    ):
        result = await sandbox.exec(argv, timeout=60)
        if not result.ok:
            raise CloneFailed(f"{' '.join(argv[:4])} failed: {_failure(result.stderr, None)}")


async def record_repository(
    orch: Orchestrator, session_id: str, ref: RepoRef, *, branch: str | None = None
) -> None:
    """The session's repository, in its record: ``githubRepo`` (``owner/name``: the one
    repository ``/github-token`` gives tokens for) and the reference's ``git`` block."""
    git: dict[str, Any] = {"repoName": ref.full_name, "remoteUrl": ref.html_url}
    if branch is not None:
        git["branch"] = branch
    await orch.registry.ask(UpdateSession(session_id, {"githubRepo": ref.full_name, "git": git}))


async def create_session_repository(
    orch: Orchestrator,
    github: GitHubSettings,
    sandbox: Sandbox,
    project: str,
    choice: Mapping[str, Any],
) -> str | None:
    """A new project's repository (reference 8.1 step 3), made by the GitHub App once
    the project is set up: ``repoAccount/repoName`` of the setup choice (with its
    ``repoVisibility``, private by default), else ``<ORCHESTRATOR_GITHUB_ORG>/<project>``
    (private); none when neither names an owner. The project becomes a git repository
    with ``origin`` there (argument-list git, the URL rebuilt from owner and name), the
    credential helper is installed when the orchestrator's URL is known (so that the
    agent can push there, and only there), and the session's record names it. What it
    did, for the session's log; a GitHubError (a name taken, an owner the app is not
    installed on) or a git failure raises."""
    if not github.app_configured:
        return None
    owner, name = choice.get("repoAccount"), choice.get("repoName")
    if not (isinstance(owner, str) and isinstance(name, str)):
        owner, name = github.org, project
    if owner is None:
        return None
    if not valid_owner(owner) or not valid_repo_name(name):
        raise InvalidRepository(f"not a repository to create: {owner!r}/{name!r}")
    private = choice.get("repoVisibility") != "public"
    made = await GitHubApp(github).create_repository(owner, name, private=private)
    ref = RepoRef(made.owner, made.name, github.web_url)
    await init_repository(sandbox, ref.clone_url)
    if github.orchestrator_url is not None:
        await install_credential_helper(
            sandbox,
            orchestrator_url=github.orchestrator_url,
            session_id=sandbox.session_id,
            git_token=orch.signer.token(Purpose.GIT, sandbox.session_id),
            github=github,
        )
    await record_repository(orch, sandbox.session_id, ref, branch="main")
    shown = "private" if made.private else "public"
    return f"GitHub repository created: {ref.html_url} ({shown})"


def _project_name(ref: RepoRef) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", ref.name).lstrip("._-")[:100]
    return name or "resumed-project"


async def resume_from_repository(
    orch: Orchestrator,
    github: GitHubSettings,
    repo_url: object,
    *,
    branch: str | None = None,
    api_key: str | None = None,
    gh_token: str | None = None,
    orchestrator_url: str | None = None,
) -> Session:
    """A freeform session whose sandbox gets ``repo_url`` (at ``branch``) cloned into
    its workdir before the agent starts, told to explore it and wait.

    The clone authenticates with ``gh_token`` (the caller's, used for the clone only),
    else with a token of the GitHub App scoped to that repository (when the app is
    installed there), else not at all (a public repository). With a GitHub App
    configured and ``orchestrator_url`` known, the credential helper is installed, so
    that the agent can push to that repository (and only that one).

    Raises InvalidRepository (nothing is created, nothing runs) or OrchestratorError.
    """
    ref = parse_repo_url(repo_url, github.web_url)
    if branch is not None and branch.strip() == "":
        branch = None
    if branch is not None:
        validate_branch(branch)
    if gh_token is not None and not _GH_TOKEN.fullmatch(gh_token):
        raise InvalidRepository("ghToken must be printable ASCII without white space")
    if orchestrator_url is not None:
        orchestrator_url = check_base_url(orchestrator_url, "the orchestrator URL", any_http=True)
    app = GitHubApp(github) if github.app_configured else None

    async def prepare(sandbox: Sandbox) -> None:
        token = gh_token
        if token is None and app is not None:
            try:
                token = (await app.installation_token(ref.owner, ref.name)).token
            except GitHubError:
                token = None  # the app is not installed there: a public clone
        await clone_repository(sandbox, ref, branch=branch, token=token)
        if app is not None and orchestrator_url is not None:
            await install_credential_helper(
                sandbox,
                orchestrator_url=orchestrator_url,
                session_id=sandbox.session_id,
                git_token=orch.signer.token(Purpose.GIT, sandbox.session_id),
                github=github,
            )

    prompt = RESUME_PROMPT.format(url=ref.html_url, branch=f" (branch {branch})" if branch else "")
    session = await orch.create_session(
        prompt, freeform=True, name=_project_name(ref), api_key=api_key, prepare=prepare
    )
    await record_repository(orch, session.id, ref, branch=branch)
    return session

"""The GitHub routes of the reference, with these differences:

- ``GET /api/github/accounts``, ``/repos``, ``/repos/{owner}/{repo}/branches`` (§3.7):
  development mode only (403 in production), with the caller's ``X-GH-Token`` and
  async REST calls (no ``gh`` CLI on the server); no header: empty lists; GitHub's
  refusal of the token: 401.
- ``POST /api/sessions/{id}/github-token`` (§3.2 row 12, the credential helper's
  call): the session's git token (what the helper in the sandbox holds, the
  reference's held the session token; no other route takes it, so the agent cannot act
  as its session's owner); ``{token, expires_at}`` for a token scoped to **that
  session's repository** with ``contents: write`` (the reference's covered the whole
  installation, §17.9); 404 when the session has no repository or no GitHub App is
  configured, 409 once the session has ended. A token with more than ten minutes
  left is handed out again instead of a new one; at most 10 new ones per session and
  hour (429). It answers in development mode too (the reference: 403), as the token
  can reach the session's own repository only.
- ``POST /api/sessions/resume`` (§3.2 row 46): development mode only (403
  ``Resume from repo not available``); body ``repoUrl`` (required), ``branch``,
  ``apiKey``, ``ghToken`` (``oauthToken`` is accepted and ignored); a URL or branch
  that is not plainly a repository on the configured GitHub and a branch name is 400
  before anything runs (:mod:`orchestrator.github.repo`); 201 ``{sessionId, session,
  sessionToken}``, the clone then happening in the session's sandbox before its
  agent starts.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from functools import partial

from quart import Quart, Response, request

from ..core import Orchestrator
from ..github.app import (
    GitHubApp,
    GitHubAppUnavailable,
    GitHubError,
    GitHubSettings,
    InstallationToken,
    check_base_url,
    valid_owner,
    valid_repo_name,
)
from ..github.listing import list_accounts, list_branches, list_repos
from ..github.repo import InvalidRepository, create_session_repository, resume_from_repository
from ..tokens import Purpose
from . import _schemas
from ._http import ValidationFailed, _bearer, _body, _error, _json

__all__ = ["RESUME_SESSION", "TOKEN_REQUESTS_PER_HOUR", "add_github_routes"]

GH_TOKEN_HEADER = "X-GH-Token"
TOKEN_REQUESTS_PER_HOUR = 10
TOKEN_REUSE_MARGIN = 600.0  # seconds a cached token must have left to be handed out
HOUR = 3600.0
SWEEP_AT = 1_000  # sessions remembered before the forgotten ones are swept

RESUME_SESSION = _schemas.RESUME_SESSION


def _expiry(token: InstallationToken) -> float | None:
    """``expires_at`` as a POSIX time, if it reads as one."""
    try:
        return datetime.fromisoformat(token.expires_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def add_github_routes(
    app: Quart,
    orch: Orchestrator,
    *,
    github: GitHubSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Add the GitHub routes to ``app`` (made by ``create_api(orch)``). ``github``:
    the settings (by default from the environment, :meth:`GitHubSettings.from_env`);
    ``clock``: the token cache's and rate limit's (for tests)."""
    settings = github if github is not None else GitHubSettings.from_env(os.environ)
    github_app = GitHubApp(settings) if settings.app_configured else None
    if github_app is not None:  # new projects get their repository
        orch.new_repository = partial(create_session_repository, orch, settings)
    minted: dict[str, deque[float]] = {}  # session id -> when its tokens were made
    cached: dict[tuple[str, str], InstallationToken] = {}  # (session, repo) -> token

    def dev_only() -> Response | None:
        if orch.settings.production:
            return _error("Not available in production", 403)
        return None

    def caller_token() -> str | None:
        value = request.headers.get(GH_TOKEN_HEADER, "").strip()
        if not value:
            return None
        if len(value) > _schemas.KEY or not value.isascii() or not value.isprintable():
            raise ValidationFailed([f"header.{GH_TOKEN_HEADER}: not a token"])
        return value

    def github_failure(exc: GitHubError) -> Response:
        if exc.status == 401:
            return _error("GitHub refused the token", 401)
        status = exc.status if exc.status in (400, 403, 404) else 502
        return _error(exc.message, status)

    # -- listing (the caller's own token) -------------------------------------------------

    @app.get("/api/github/accounts")
    async def github_accounts() -> Response:
        refused = dev_only()
        if refused is not None:
            return refused
        token = caller_token()
        if token is None:
            return _json({"accounts": []})
        try:
            return _json({"accounts": await list_accounts(settings.api_url, token)})
        except GitHubError as exc:
            return github_failure(exc)

    @app.get("/api/github/repos")
    async def github_repos() -> Response:
        refused = dev_only()
        if refused is not None:
            return refused
        token = caller_token()
        if token is None:
            return _json({"repos": []})
        try:
            return _json({"repos": await list_repos(settings.api_url, token)})
        except GitHubError as exc:
            return github_failure(exc)

    @app.get("/api/github/repos/<owner>/<repo>/branches")
    async def github_branches(owner: str, repo: str) -> Response:
        refused = dev_only()
        if refused is not None:
            return refused
        if not valid_owner(owner) or not valid_repo_name(repo):
            return _error("Invalid repository name", 400)
        token = caller_token()
        if token is None:
            return _json({"branches": []})
        try:
            return _json({"branches": await list_branches(settings.api_url, token, owner, repo)})
        except GitHubError as exc:
            return github_failure(exc)

    # -- the credential helper's token ------------------------------------------------

    def fresh(session_id: str, repo: str) -> InstallationToken | None:
        token = cached.get((session_id, repo))
        if token is None:
            return None
        expiry = _expiry(token)
        if expiry is None or expiry - clock() < TOKEN_REUSE_MARGIN:
            del cached[(session_id, repo)]
            return None
        return token

    def over_limit(session_id: str) -> bool:
        now = clock()
        if len(minted) + len(cached) > SWEEP_AT:
            sweep(now)
        times = minted.setdefault(session_id, deque())
        while times and now - times[0] >= HOUR:
            times.popleft()
        if len(times) >= TOKEN_REQUESTS_PER_HOUR:
            return True
        times.append(now)
        return False

    def sweep(now: float) -> None:
        """Forget what no longer counts (sessions gone quiet, tokens expired)."""
        for key in [k for k, times in minted.items() if not times or now - times[-1] >= HOUR]:
            del minted[key]
        for pair in [p for p, t in cached.items() if (_expiry(t) or 0) <= now]:
            del cached[pair]

    @app.post("/api/sessions/<session_id>/github-token")
    async def github_token(session_id: str) -> Response:
        if not orch.signer.check(Purpose.GIT, session_id, _bearer()):
            return _error("Invalid or missing git token", 401)
        info = await orch.session_info(session_id)
        if info is None:
            return _error("Session not found", 404)
        repo = info.get("githubRepo")
        if not isinstance(repo, str) or repo.count("/") != 1:
            return _error("This session has no GitHub repository", 404)
        if github_app is None:
            return _error("No GitHub App is configured", 404)
        if info.get("ended"):
            return _error("The session has ended", 409)
        token = fresh(session_id, repo)
        if token is None:
            if over_limit(session_id):
                return _error("Too many token requests", 429)
            owner, name = repo.split("/")
            try:
                token = await github_app.installation_token(owner, name)
            except GitHubAppUnavailable as exc:
                return _error(exc.message, 503)
            except GitHubError as exc:
                if exc.status == 404:
                    return _error(f"The GitHub App is not installed for {repo}", 404)
                return _error("Failed to generate GitHub token", 502)
            cached[(session_id, repo)] = token
        return _json({"token": token.token, "expires_at": token.expires_at})

    # -- a session from a repository ----------------------------------------------------

    def helper_url() -> str | None:
        """This server as the sandbox's credential helper calls it: the configured
        public URL, else the one the request came to (None if it is no base URL)."""
        if settings.orchestrator_url is not None:
            return settings.orchestrator_url
        try:
            return check_base_url(request.host_url, "the orchestrator URL", any_http=True)
        except ValueError:
            return None

    @app.post("/api/sessions/resume")
    async def resume_session() -> Response:
        if orch.settings.production:
            return _error("Resume from repo not available", 403)
        body, errors = _schemas.validate(RESUME_SESSION, await _body())
        if errors:
            raise ValidationFailed(errors)
        assert isinstance(body, dict)
        try:
            session = await resume_from_repository(
                orch,
                settings,
                body["repoUrl"],
                branch=body.get("branch"),
                api_key=body.get("apiKey"),
                gh_token=body.get("ghToken"),
                orchestrator_url=helper_url(),
            )
        except InvalidRepository as exc:
            raise ValidationFailed([str(exc)]) from None
        info = await session.info()
        return _json({"sessionId": session.id, "session": info, "sessionToken": session.token}, 201)

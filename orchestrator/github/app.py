"""The GitHub App (reference §14.4), with its weak spot (§17.9) fixed: every token a
sandbox can get is scoped to **one repository** with ``contents: write`` only.

- The app JWT: RS256 over ``{iat: now - 60, exp: iat + 600, iss: app id}`` (GitHub
  takes at most ten minutes), signed with the app's private key (``cryptography``, the
  optional extra ``github``: imported when first needed, with a clear error when it
  is missing).
- The installation of an owner (an organization or a user) or of one repository.
- Installation access tokens for one repository: ``repositories: [name]``,
  ``permissions: {contents: write}``; GitHub's answer is checked to have that scope.
- Repository creation in an organization (an installation token with
  ``administration: write`` that never leaves the orchestrator), or for a user with
  that user's own token (a GitHub App cannot create a user's repository).

Settings come from the environment (:meth:`GitHubSettings.from_env`):

| Setting | Environment | Default |
|---|---|---|
| app_id | ``GITHUB_APP_ID`` | unset: no GitHub App |
| private_key_path | ``GITHUB_APP_PRIVATE_KEY_PATH`` (a PEM file) | unset: no GitHub App |
| api_url | ``ORCHESTRATOR_GITHUB_API_URL`` | ``https://api.github.com`` |
| web_url | ``ORCHESTRATOR_GITHUB_URL`` (repositories' host) | ``https://github.com`` |
| installation_id | ``GITHUB_INSTALLATION_ID`` (skip the lookup) | unset |
| org | ``ORCHESTRATOR_GITHUB_ORG`` (where session repositories are created) | unset |
| orchestrator_url | ``ORCHESTRATOR_PUBLIC_URL`` (as sandboxes reach it) | the request's |

GitHub's URLs must be ``https``, or ``http`` to a loopback host (a local fake, in
tests); ``ORCHESTRATOR_PUBLIC_URL`` may be ``http`` to any host.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import httpx
import trio

from ..config import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = [
    "GITHUB_API_URL",
    "GITHUB_URL",
    "GitHubApp",
    "GitHubAppUnavailable",
    "GitHubError",
    "GitHubSettings",
    "Installation",
    "InstallationToken",
    "Repository",
    "api_request",
    "app_jwt",
    "check_base_url",
    "load_private_key",
    "valid_owner",
    "valid_repo_name",
]

GITHUB_API_URL = "https://api.github.com"
GITHUB_URL = "https://github.com"
API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
USER_AGENT = "agent-orchestrator"
JWT_BACKDATE = 60  # seconds: iat is set in the past, for clock drift
JWT_LIFETIME = 600  # exp - iat; GitHub refuses more than ten minutes
REQUEST_TIMEOUT = 30.0
REPO_PERMISSIONS: Mapping[str, str] = {"contents": "write"}

# GitHub's rules: a login is letters, digits and single hyphens (up to 39, no leading
# hyphen); a repository name is letters, digits, '.', '_', '-' (up to 100).
_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_APP_ID = re.compile(r"[A-Za-z0-9.]{1,100}")

_INSTALL_HINT = (
    "the GitHub App needs the optional 'cryptography' package (RS256 signatures): "
    "pip install 'agent-orchestrator[github]'"
)


class GitHubError(Exception):
    """A GitHub call failed. ``status``: the HTTP status it maps to (GitHub's own for a
    4xx answer, 502 when GitHub cannot be reached or fails)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class GitHubAppUnavailable(GitHubError):
    """No GitHub App is configured, its key cannot be used, or ``cryptography`` is
    missing."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


def valid_owner(value: object) -> bool:
    return isinstance(value, str) and _OWNER.fullmatch(value) is not None


def valid_repo_name(value: object) -> bool:
    """A repository name that is safe in a URL path and unambiguous in a clone URL
    (no ``.``/``..``, no ``.git`` ending)."""
    return (
        isinstance(value, str)
        and _REPO.fullmatch(value) is not None
        and value not in (".", "..")
        and not value.lower().endswith(".git")
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, what: str, *, any_http: bool = False) -> str:
    """``url`` without its trailing slash, if it is a plain base URL: ``https`` (or
    ``http`` to a loopback host; to any host with ``any_http``), a host, maybe a port
    and a path; no credentials, query or fragment. Raises ConfigError (a ValueError)."""
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        raise ConfigError(f"{what} must be an http(s) URL, not {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL: {url!r} ({exc})") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"{what} must be an http(s) URL, not {url!r}")
    if parts.scheme == "http" and not any_http and not _loopback(host):
        raise ConfigError(f"{what} must use https (http only to a loopback host): {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{what} must not hold credentials")
    if parts.query or parts.fragment or "#" in url or "?" in url:
        raise ConfigError(f"{what} must not have a query or fragment: {url!r}")
    if port == 0:
        raise ConfigError(f"{what} has no valid port: {url!r}")
    return url.rstrip("/")


@attrs.frozen(kw_only=True)
class GitHubSettings:
    app_id: str | None = None
    private_key_path: Path | None = None
    api_url: str = GITHUB_API_URL
    web_url: str = GITHUB_URL
    installation_id: int | None = None
    org: str | None = None
    orchestrator_url: str | None = None

    def __attrs_post_init__(self) -> None:
        check_base_url(self.api_url, "ORCHESTRATOR_GITHUB_API_URL")
        check_base_url(self.web_url, "ORCHESTRATOR_GITHUB_URL")
        if self.orchestrator_url is not None:
            check_base_url(self.orchestrator_url, "ORCHESTRATOR_PUBLIC_URL", any_http=True)
        if self.app_id is not None and not _APP_ID.fullmatch(self.app_id):
            raise ConfigError(f"GITHUB_APP_ID must be an app id, not {self.app_id!r}")
        if self.org is not None and not valid_owner(self.org):
            raise ConfigError(f"ORCHESTRATOR_GITHUB_ORG is not a GitHub login: {self.org!r}")
        if (self.app_id is None) != (self.private_key_path is None):
            raise ConfigError(
                "a GitHub App needs both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_PATH"
            )

    @property
    def app_configured(self) -> bool:
        return self.app_id is not None and self.private_key_path is not None

    @property
    def web_host(self) -> str:
        """The host (and port) of ``web_url``: what git's credential protocol names."""
        return urlsplit(self.web_url).netloc

    @property
    def web_scheme(self) -> str:
        return urlsplit(self.web_url).scheme

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GitHubSettings:
        """From the environment (empty values are unset). Raises ConfigError."""
        env = {k: v for k, v in environ.items() if v.strip()}
        installation = env.get("GITHUB_INSTALLATION_ID")
        if installation is not None and not installation.isdigit():
            raise ConfigError(f"GITHUB_INSTALLATION_ID must be a number, not {installation!r}")
        key_path = env.get("GITHUB_APP_PRIVATE_KEY_PATH")
        return cls(
            app_id=env.get("GITHUB_APP_ID"),
            private_key_path=Path(key_path) if key_path else None,
            api_url=env.get("ORCHESTRATOR_GITHUB_API_URL", GITHUB_API_URL),
            web_url=env.get("ORCHESTRATOR_GITHUB_URL", GITHUB_URL),
            installation_id=int(installation) if installation else None,
            org=env.get("ORCHESTRATOR_GITHUB_ORG"),
            orchestrator_url=env.get("ORCHESTRATOR_PUBLIC_URL"),
        )


# -- the app JWT --------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_private_key(pem: bytes) -> RSAPrivateKey:
    """The app's RSA private key from PEM (unencrypted, as GitHub hands it out)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError as exc:
        raise GitHubAppUnavailable(_INSTALL_HINT) from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise GitHubAppUnavailable(
            f"the GitHub App private key is not an unencrypted PEM key ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GitHubAppUnavailable("the GitHub App private key is not an RSA key")
    return key


def app_jwt(app_id: str, private_key: RSAPrivateKey | bytes, *, now: float | None = None) -> str:
    """The JWT that authenticates as the app: RS256, ``iat`` a minute in the past,
    ``exp`` ten minutes after ``iat``, ``iss`` the app id."""
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
    except ImportError as exc:
        raise GitHubAppUnavailable(_INSTALL_HINT) from exc
    key = load_private_key(private_key) if isinstance(private_key, bytes) else private_key
    issued = int(time.time() if now is None else now) - JWT_BACKDATE
    claims = {
        "iat": issued,
        "exp": issued + JWT_LIFETIME,
        "iss": int(app_id) if app_id.isdigit() else app_id,
    }
    header = {"alg": "RS256", "typ": "JWT"}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


# -- calls --------------------------------------------------------------------------------


def _client(api_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api_url,
        timeout=REQUEST_TIMEOUT,
        follow_redirects=False,  # never hand a credential to another host
        headers={
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        },
    )


async def api_request(
    api_url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, str | int] | None = None,
) -> Any:
    """One GitHub API call (``path`` built from validated names only); its JSON.
    Raises :class:`GitHubError` with GitHub's status for a 4xx, else 502."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with _client(api_url) as client:
            response = await client.request(
                method, path, headers=headers, json=body, params=dict(params or {})
            )
    except httpx.HTTPError as exc:
        raise GitHubError(f"GitHub cannot be reached: {type(exc).__name__}") from None
    if response.status_code >= 300:
        try:
            message = str(response.json().get("message", ""))[:300]
        except (ValueError, AttributeError):
            message = ""
        status = response.status_code if 400 <= response.status_code < 500 else 502
        raise GitHubError(
            f"GitHub {method} {path}: {response.status_code} {message}".strip(), status
        )
    try:
        return response.json()
    except ValueError:
        raise GitHubError(f"GitHub {method} {path}: the answer is not JSON") from None


@attrs.frozen
class Installation:
    id: int
    account: str
    account_type: str  # "Organization" or "User"


@attrs.frozen
class InstallationToken:
    token: str = attrs.field(repr=False)
    expires_at: str
    repositories: tuple[str, ...]  # names (within the installation's account)
    permissions: Mapping[str, str]


@attrs.frozen
class Repository:
    full_name: str
    owner: str
    name: str
    clone_url: str
    html_url: str
    private: bool
    default_branch: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Repository:
        try:
            return cls(
                full_name=str(data["full_name"]),
                owner=str(data["owner"]["login"]),
                name=str(data["name"]),
                clone_url=str(data["clone_url"]),
                html_url=str(data["html_url"]),
                private=bool(data.get("private", False)),
                default_branch=str(data.get("default_branch") or "main"),
            )
        except (KeyError, TypeError) as exc:
            raise GitHubError(f"GitHub answered with an odd repository: {exc}") from None


def _check_names(owner: str, repo: str | None = None) -> None:
    if not valid_owner(owner):
        raise GitHubError(f"not a GitHub owner: {owner!r}", 400)
    if repo is not None and not valid_repo_name(repo):
        raise GitHubError(f"not a GitHub repository name: {repo!r}", 400)


class GitHubApp:
    """The configured GitHub App. Every call makes its own JWT (cheap) and asks
    GitHub afresh; nothing is cached here."""

    def __init__(self, settings: GitHubSettings, *, clock: Callable[[], float] = time.time):
        if not settings.app_configured:
            raise GitHubAppUnavailable(
                "no GitHub App is configured (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_PATH)"
            )
        self.settings = settings
        self._clock = clock
        self._key: RSAPrivateKey | None = None

    async def jwt(self) -> str:
        if self._key is None:
            path = self.settings.private_key_path
            assert path is not None
            try:
                pem = await trio.Path(path).read_bytes()
            except OSError as exc:
                raise GitHubAppUnavailable(
                    f"the GitHub App private key cannot be read: {exc.strerror or exc}"
                ) from None
            self._key = load_private_key(pem)
        app_id = self.settings.app_id
        assert app_id is not None
        return app_jwt(app_id, self._key, now=self._clock())

    async def _as_app(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return await api_request(
            self.settings.api_url, method, path, token=await self.jwt(), body=body
        )

    async def installation(self, owner: str, repo: str | None = None) -> Installation:
        """The app's installation for ``owner`` (for ``owner/repo`` when given); 404
        GitHubError when the app is not installed there."""
        _check_names(owner, repo)
        configured = self.settings.installation_id
        if configured is not None:
            data = await self._as_app("GET", f"/app/installations/{configured}")
        elif repo is not None:
            data = await self._as_app("GET", f"/repos/{owner}/{repo}/installation")
        else:
            try:
                data = await self._as_app("GET", f"/orgs/{owner}/installation")
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                data = await self._as_app("GET", f"/users/{owner}/installation")
        try:
            found = Installation(
                id=int(data["id"]),
                account=str(data["account"]["login"]),
                account_type=str(data["account"].get("type", "User")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GitHubError(f"GitHub answered with an odd installation: {exc}") from None
        if found.account.lower() != owner.lower():
            raise GitHubError(f"The GitHub App is not installed for {owner}", 404)
        return found

    async def installation_token(
        self,
        owner: str,
        repo: str,
        *,
        permissions: Mapping[str, str] = REPO_PERMISSIONS,
    ) -> InstallationToken:
        """A token for ``owner/repo`` only, with ``permissions`` only (by default
        ``contents: write``). GitHub's answer must name exactly that scope."""
        _check_names(owner, repo)
        installation = await self.installation(owner, repo)
        data = await self._as_app(
            "POST",
            f"/app/installations/{installation.id}/access_tokens",
            {"repositories": [repo], "permissions": dict(permissions)},
        )
        token = _token_of(data)
        names = tuple(str(r.get("name", "")) for r in data.get("repositories") or ())
        granted = data.get("permissions")
        if [n.lower() for n in names] != [repo.lower()] or not _as_asked(granted, permissions):
            raise GitHubError("GitHub answered with a token of another scope than asked")
        return InstallationToken(
            token=token,
            expires_at=str(data.get("expires_at", "")),
            repositories=names,
            permissions=dict(granted),
        )

    async def create_repository(
        self,
        owner: str,
        name: str,
        *,
        private: bool = True,
        description: str | None = None,
        user_token: str | None = None,
    ) -> Repository:
        """Create ``owner/name`` (empty). With ``user_token`` as that user (for their
        own account, or an organization they may create in); else as the app, which
        can do so in an organization it is installed in only."""
        _check_names(owner, name)
        body: dict[str, Any] = {
            "name": name,
            "private": private,
            "visibility": "private" if private else "public",
            "auto_init": False,
        }
        if description:
            body["description"] = description[:350]
        api = self.settings.api_url
        if user_token is not None:
            return await create_repository_as_user(api, user_token, owner, name, body)
        installation = await self.installation(owner)
        if installation.account_type != "Organization":
            raise GitHubError(
                f"{owner} is a user: a GitHub App cannot create a user's repository "
                "(create it with that user's token)",
                400,
            )
        # An installation-wide token (the repository does not exist yet) that may
        # administer repositories: used for this one call, never handed out.
        data = await self._as_app(
            "POST",
            f"/app/installations/{installation.id}/access_tokens",
            {"permissions": {"administration": "write"}},
        )
        token = _token_of(data)
        return await _create(api, token, f"/orgs/{owner}/repos", owner, name, body)


async def create_repository_as_user(
    api_url: str, user_token: str, owner: str, name: str, body: Mapping[str, Any]
) -> Repository:
    me = await api_request(api_url, "GET", "/user", token=user_token)
    login = str(me.get("login", "")) if isinstance(me, dict) else ""
    path = "/user/repos" if login.lower() == owner.lower() else f"/orgs/{owner}/repos"
    return await _create(api_url, user_token, path, owner, name, body)


async def _create(
    api_url: str, token: str, path: str, owner: str, name: str, body: Mapping[str, Any]
) -> Repository:
    try:
        data = await api_request(api_url, "POST", path, token=token, body=body)
    except GitHubError as exc:
        if exc.status == 422:
            raise GitHubError(
                f"The repository {owner}/{name} cannot be created (it may exist)", 409
            ) from None
        raise
    return Repository.from_json(data)


def _as_asked(granted: object, asked: Mapping[str, str]) -> bool:
    """Whether ``granted`` is what was asked (GitHub adds ``metadata: read``, which
    every token has)."""
    if not isinstance(granted, dict):
        return False
    extra = {k: v for k, v in granted.items() if k not in asked}
    return all(granted.get(k) == v for k, v in asked.items()) and extra in (
        {},
        {"metadata": "read"},
    )


def _token_of(data: Any) -> str:
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token or not token.isprintable() or " " in token:
        raise GitHubError("GitHub answered without a usable token")
    return token

"""A local fake of GitHub for the tests: the REST API the orchestrator calls (under
``/api/v3``, as GitHub Enterprise serves it) and git over smart HTTP (``git
http-backend`` as CGI), both from one quart-trio app on 127.0.0.1.

What it checks, as GitHub does:

- the app JWT: RS256 signature by the app's key (its public half given to the fake),
  ``iss`` the app id, ``iat`` not in the future, ``exp`` in the future and at most
  ten minutes after ``iat``; the claims of each verified JWT are kept (``jwt_claims``);
- installation tokens: the repositories asked for must belong to the installation's
  account and the permissions must be the app's; every token issued is kept with its
  scope (``issued``);
- every API and git request with a token is allowed what that token may do: a user
  token what its user may (their repositories and their organizations'), an
  installation token its repositories (all of its account's when unscoped) with its
  permissions (``contents: write`` to push); a private repository is invisible
  without one.

Use::

    async with serve_fake_github(tmp_path, public_key_pem=public) as fake:
        fake.add_user("octocat", "gho_user_token", orgs=["octo-org"])
        fake.install("octo-org")
        await fake.add_repo("octo-org", "hello", {"README.md": b"hi\\n"})
        settings = fake.settings(key_path)  # GitHubSettings aimed at the fake
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio
from quart import Response, request
from quart_trio import QuartTrio

from transport import serve

from .app import GitHubSettings, valid_owner, valid_repo_name

__all__ = [
    "FakeGitHub",
    "FakeInstallation",
    "FakeRepo",
    "IssuedToken",
    "generate_app_key",
    "serve_fake_github",
]

API = "/api/v3"
LEVELS = {"read": 1, "write": 2, "admin": 3}
APP_PERMISSIONS = {"contents": "write", "administration": "write", "metadata": "read"}


def generate_app_key() -> tuple[bytes, bytes]:
    """A new RSA key for a test app: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class IssuedToken:
    token: str = attrs.field(repr=False)
    installation_id: int
    repositories: tuple[str, ...] | None  # names; None: every repository of the account
    permissions: dict[str, str]
    expires_at: str


@attrs.define
class FakeInstallation:
    id: int
    account: str
    account_type: str  # "Organization" or "User"


@attrs.define
class FakeRepo:
    owner: str
    name: str
    private: bool
    default_branch: str
    updated_at: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@attrs.define
class _Caller:
    user: str | None = None  # a user token's login
    installation: IssuedToken | None = None


class FakeGitHub:
    def __init__(self, root: Path, *, public_key_pem: bytes, app_id: str = "424242") -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_public_key(public_key_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        self._public_key = key
        self.app_id = app_id
        self.root = root
        self.git_root = root / "git"
        self.url = ""  # once served
        self.users: dict[str, str] = {}  # token -> login
        self.orgs: dict[str, set[str]] = {}  # org -> member logins
        self.installations: dict[int, FakeInstallation] = {}
        self.repos: dict[str, FakeRepo] = {}  # lower-case full name -> repo
        self.issued: list[IssuedToken] = []
        self.jwt_claims: list[dict[str, Any]] = []
        self.requests: list[str] = []  # "METHOD /path?query" of every request
        self._ids = itertools.count(1000)
        self._clock = itertools.count(1)

    # -- set-up ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.url + API

    @property
    def web_url(self) -> str:
        return self.url

    def settings(self, private_key_path: Path, **more: Any) -> GitHubSettings:
        """GitHub settings for the app, aimed at this fake."""
        return GitHubSettings(
            app_id=self.app_id,
            private_key_path=private_key_path,
            api_url=self.api_url,
            web_url=self.web_url,
            **more,
        )

    def add_user(self, login: str, token: str, *, orgs: Iterable[str] = ()) -> None:
        self.users[token] = login
        for org in orgs:
            self.orgs.setdefault(org, set()).add(login)

    def install(self, account: str, account_type: str | None = None) -> int:
        """The app installed on ``account`` (every repository of it); its id."""
        kind = account_type or ("Organization" if account in self.orgs else "User")
        installation = FakeInstallation(next(self._ids), account, kind)
        self.installations[installation.id] = installation
        return installation.id

    def _stamp(self) -> str:
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=next(self._clock))
        return _ts(moment)

    async def _git(self, *args: str, cwd: Path | None = None) -> bytes:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "fake",
            "GIT_AUTHOR_EMAIL": "fake@example.com",
            "GIT_COMMITTER_NAME": "fake",
            "GIT_COMMITTER_EMAIL": "fake@example.com",
        }
        result = await trio.run_process(
            ["git", *args], cwd=cwd, env=env, capture_stdout=True, capture_stderr=True
        )
        return bytes(result.stdout)

    def _bare(self, owner: str, name: str) -> Path:
        return self.git_root / owner / f"{name}.git"

    async def add_repo(
        self,
        owner: str,
        name: str,
        files: Mapping[str, bytes] | None = None,
        *,
        private: bool = False,
        branches: Mapping[str, Mapping[str, bytes]] | None = None,
        default_branch: str = "main",
    ) -> FakeRepo:
        """A repository with one commit of ``files`` on ``default_branch`` (none:
        empty), and each of ``branches`` (name -> files added) branched from it."""
        assert valid_owner(owner)
        assert valid_repo_name(name)
        bare = self._bare(owner, name)
        await trio.Path(bare.parent).mkdir(parents=True, exist_ok=True)
        if files is None:
            await self._git(
                "init", "--quiet", "--bare", "--initial-branch", default_branch, str(bare)
            )
        else:
            work = self.root / "work" / owner / name
            await trio.Path(work).mkdir(parents=True)
            await self._git("init", "--quiet", "--initial-branch", default_branch, str(work))
            await self._commit(work, files, "initial")
            for branch, more in (branches or {}).items():
                await self._git("checkout", "--quiet", "-b", branch, default_branch, cwd=work)
                await self._commit(work, more, f"on {branch}")
            await self._git("checkout", "--quiet", default_branch, cwd=work)
            await self._git("clone", "--quiet", "--bare", str(work), str(bare))
        repo = FakeRepo(owner, name, private, default_branch, self._stamp())
        self.repos[repo.full_name.lower()] = repo
        return repo

    async def _commit(self, work: Path, files: Mapping[str, bytes], message: str) -> None:
        for path, data in files.items():
            target = trio.Path(work / path)
            await target.parent.mkdir(parents=True, exist_ok=True)
            await target.write_bytes(data)
        await self._git("add", "--all", cwd=work)
        await self._git("commit", "--quiet", "--allow-empty", "-m", message, cwd=work)

    async def files_of(self, owner: str, name: str, branch: str = "main") -> dict[str, bytes]:
        """The files at the tip of ``branch`` (what a push left there)."""
        bare = str(self._bare(owner, name))
        listing = await self._git("--git-dir", bare, "ls-tree", "-r", "--name-only", branch)
        return {
            path: await self._git("--git-dir", bare, "show", f"{branch}:{path}")
            for path in listing.decode().splitlines()
        }

    # -- who is calling ------------------------------------------------------------------

    def _credential(self) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token"):
            return value.strip() or None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2] or None
        return None

    def _caller(self) -> _Caller | None:
        """The caller of a token; None for a token GitHub does not know."""
        credential = self._credential()
        if credential is None:
            return _Caller()
        if credential in self.users:
            return _Caller(user=self.users[credential])
        for issued in self.issued:
            if secrets.compare_digest(issued.token, credential):
                return _Caller(installation=issued)
        return None

    def _verify_jwt(self) -> dict[str, Any] | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        token = self._credential()
        parts = token.split(".") if token else []
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return None
        try:
            self._public_key.verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return None
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(claims, dict)
            or str(claims.get("iss")) != self.app_id
            or not isinstance(iat, int)
            or not isinstance(exp, int)
            or iat > now + 5
            or exp <= now
            or exp - iat > 600
        ):
            return None
        self.jwt_claims.append(claims)
        return dict(claims)

    def _member(self, user: str, owner: str) -> bool:
        return user.lower() == owner.lower() or user in self.orgs.get(owner, set())

    def _may(self, caller: _Caller, repo: FakeRepo, write: bool) -> bool:
        if caller.user is not None:
            return self._member(caller.user, repo.owner) or (not write and not repo.private)
        issued = caller.installation
        if issued is not None:
            installation = self.installations[issued.installation_id]
            in_scope = installation.account.lower() == repo.owner.lower() and (
                issued.repositories is None or repo.name in issued.repositories
            )
            level = LEVELS.get(issued.permissions.get("contents", ""), 0)
            if in_scope and level >= (2 if write else 1):
                return True
            return not write and not repo.private
        return not write and not repo.private

    def _repo(self, owner: str, name: str) -> FakeRepo | None:
        if name.endswith(".git"):
            name = name[:-4]
        return self.repos.get(f"{owner}/{name}".lower())

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        installation = next(
            (i for i in self.installations.values() if i.account == repo.owner), None
        )
        kind = "Organization" if repo.owner in self.orgs else "User"
        if installation is not None:
            kind = installation.account_type
        return {
            "id": abs(hash(repo.full_name)) % 10**8,
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner, "type": kind},
            "private": repo.private,
            "html_url": f"{self.url}/{repo.full_name}",
            "clone_url": f"{self.url}/{repo.full_name}.git",
            "default_branch": repo.default_branch,
            "updated_at": repo.updated_at,
        }

    # -- the app -------------------------------------------------------------------------

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-github")

        def answer(data: Any, status: int = 200) -> Response:
            return Response(json.dumps(data), status=status, content_type="application/json")

        def message(text: str, status: int) -> Response:
            return answer({"message": text}, status)

        @app.before_request
        async def log() -> None:
            query = request.query_string.decode()
            self.requests.append(
                f"{request.method} {request.path}" + (f"?{query}" if query else "")
            )

        def installation_json(installation: FakeInstallation) -> dict[str, Any]:
            return {
                "id": installation.id,
                "account": {"login": installation.account, "type": installation.account_type},
                "app_id": int(self.app_id),
                "repository_selection": "all",
                "permissions": APP_PERMISSIONS,
            }

        def installation_of(account: str) -> FakeInstallation | None:
            return next(
                (i for i in self.installations.values() if i.account.lower() == account.lower()),
                None,
            )

        # the app, with its JWT

        @app.get(f"{API}/app/installations/<int:installation_id>")
        async def get_installation(installation_id: int) -> Response:
            if self._verify_jwt() is None:
                return message("A JSON web token could not be decoded", 401)
            found = self.installations.get(installation_id)
            if found is None:
                return message("Not Found", 404)
            return answer(installation_json(found))

        @app.get(f"{API}/orgs/<account>/installation")
        @app.get(f"{API}/users/<account>/installation")
        async def account_installation(account: str) -> Response:
            if self._verify_jwt() is None:
                return message("A JSON web token could not be decoded", 401)
            found = installation_of(account)
            is_org = request.path.startswith(f"{API}/orgs/")
            if found is None or (found.account_type == "Organization") != is_org:
                return message("Not Found", 404)
            return answer(installation_json(found))

        @app.get(f"{API}/repos/<owner>/<name>/installation")
        async def repo_installation(owner: str, name: str) -> Response:
            if self._verify_jwt() is None:
                return message("A JSON web token could not be decoded", 401)
            found = installation_of(owner)
            if found is None or self._repo(owner, name) is None:
                return message("Not Found", 404)
            return answer(installation_json(found))

        @app.post(f"{API}/app/installations/<int:installation_id>/access_tokens")
        async def access_token(installation_id: int) -> Response:
            if self._verify_jwt() is None:
                return message("A JSON web token could not be decoded", 401)
            installation = self.installations.get(installation_id)
            if installation is None:
                return message("Not Found", 404)
            body = await request.get_json(force=True, silent=True) or {}
            names = body.get("repositories")
            permissions = body.get("permissions") or dict(APP_PERMISSIONS)
            known = isinstance(names, list) and all(
                isinstance(n, str) and self._repo(installation.account, n) for n in names
            )
            if names is not None and not known:
                return message(
                    "There is at least one repository that does not exist or is not "
                    "accessible to the parent installation.",
                    422,
                )
            if not isinstance(permissions, dict) or any(
                LEVELS.get(str(level), 9) > LEVELS.get(APP_PERMISSIONS.get(str(name), ""), 0)
                for name, level in permissions.items()
            ):
                return message(
                    "The permissions requested are not granted to this installation.", 422
                )
            granted = {str(k): str(v) for k, v in permissions.items()}
            granted.setdefault("metadata", "read")
            issued = IssuedToken(
                token=f"ghs_{secrets.token_urlsafe(27)}",
                installation_id=installation.id,
                repositories=tuple(names) if names is not None else None,
                permissions=granted,
                expires_at=_ts(datetime.now(UTC) + timedelta(hours=1)),
            )
            self.issued.append(issued)
            data: dict[str, Any] = {
                "token": issued.token,
                "expires_at": issued.expires_at,
                "permissions": granted,
                "repository_selection": "all" if names is None else "selected",
            }
            if names is not None:
                data["repositories"] = [
                    {"name": n, "full_name": f"{installation.account}/{n}"} for n in names
                ]
            return answer(data, 201)

        # users and their tokens (a user's, or an installation's)

        @app.get(f"{API}/user")
        async def user() -> Response:
            caller = self._caller()
            if caller is None or caller.user is None:
                return message("Bad credentials", 401)
            return answer({"login": caller.user, "type": "User"})

        @app.get(f"{API}/user/orgs")
        async def user_orgs() -> Response:
            caller = self._caller()
            if caller is None or caller.user is None:
                return message("Bad credentials", 401)
            login = caller.user
            return answer([{"login": o} for o, members in self.orgs.items() if login in members])

        @app.get(f"{API}/user/repos")
        async def user_repos() -> Response:
            caller = self._caller()
            if caller is None or caller.user is None:
                return message("Bad credentials", 401)
            login = caller.user
            per_page = min(int(request.args.get("per_page", "30")), 100)
            mine = [r for r in self.repos.values() if self._member(login, r.owner)]
            mine.sort(key=lambda r: r.updated_at, reverse=True)
            return answer([self._repo_json(r) for r in mine[:per_page]])

        async def create(owner: str) -> Response:
            body = await request.get_json(force=True, silent=True) or {}
            name = body.get("name")
            if not isinstance(name, str) or not valid_repo_name(name):
                return message("name is invalid", 422)
            if self._repo(owner, name) is not None:
                return message("Repository creation failed: name already exists", 422)
            repo = await self.add_repo(owner, name, private=bool(body.get("private", False)))
            return answer(self._repo_json(repo), 201)

        @app.post(f"{API}/user/repos")
        async def create_user_repo() -> Response:
            caller = self._caller()
            if caller is None or caller.user is None:
                return message("Bad credentials", 401)
            return await create(caller.user)

        @app.post(f"{API}/orgs/<org>/repos")
        async def create_org_repo(org: str) -> Response:
            caller = self._caller()
            if caller is None:
                return message("Bad credentials", 401)
            if org not in self.orgs:
                return message("Not Found", 404)
            issued = caller.installation
            allowed = (caller.user is not None and self._member(caller.user, org)) or (
                issued is not None
                and issued.repositories is None
                and self.installations[issued.installation_id].account == org
                and issued.permissions.get("administration") == "write"
            )
            if not allowed:
                return message("Resource not accessible by integration", 403)
            return await create(org)

        @app.get(f"{API}/repos/<owner>/<name>")
        async def get_repo(owner: str, name: str) -> Response:
            caller = self._caller()
            repo = self._repo(owner, name)
            if caller is None:
                return message("Bad credentials", 401)
            if repo is None or not self._may(caller, repo, write=False):
                return message("Not Found", 404)
            return answer(self._repo_json(repo))

        @app.get(f"{API}/repos/<owner>/<name>/branches")
        async def branches(owner: str, name: str) -> Response:
            caller = self._caller()
            repo = self._repo(owner, name)
            if caller is None:
                return message("Bad credentials", 401)
            if repo is None or not self._may(caller, repo, write=False):
                return message("Not Found", 404)
            per_page = min(int(request.args.get("per_page", "30")), 100)
            refs = await self._git(
                "--git-dir",
                str(self._bare(repo.owner, repo.name)),
                "for-each-ref",
                "--format=%(refname:short) %(objectname)",
                "refs/heads",
            )
            found = [line.split(" ", 1) for line in refs.decode().splitlines()]
            return answer([{"name": n, "commit": {"sha": sha}} for n, sha in found][:per_page])

        # git over smart HTTP

        async def git_backend(owner: str, name: str, tail: str, write: bool) -> Response:
            repo = self._repo(owner, name)
            caller = self._caller()
            challenge = {"WWW-Authenticate": 'Basic realm="fake-github"'}
            if repo is None:
                return Response("Repository not found\n", status=404)
            if caller is None or not self._may(caller, repo, write):
                if caller is not None and (caller.user or caller.installation):
                    return Response("Permission denied\n", status=403)
                return Response("Authentication required\n", status=401, headers=challenge)
            body = await request.get_data()
            assert isinstance(body, bytes)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self.root),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_PROJECT_ROOT": str(self.git_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": f"/{repo.owner}/{repo.name}.git/{tail}",
                "REQUEST_METHOD": request.method,
                "QUERY_STRING": request.query_string.decode(),
                "CONTENT_TYPE": request.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": "127.0.0.1",
            }
            if caller.user or caller.installation:
                env["REMOTE_USER"] = caller.user or "x-access-token"  # allows receive-pack
            for header, variable in (
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
            ):
                if header in request.headers:
                    env[variable] = request.headers[header]
            result = await trio.run_process(
                ["git", "http-backend"],
                stdin=body,
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            output = bytes(result.stdout)
            split = output.find(b"\r\n\r\n")
            head, payload = (
                (output[:split], output[split + 4 :])
                if split >= 0
                else output.partition(b"\n\n")[::2]
            )
            status = 200
            headers: dict[str, str] = {}
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split(" ", 1)[0])
                elif key:
                    headers[key] = value.strip()
            if write and status == 200:
                repo.updated_at = self._stamp()
            return Response(payload, status=status, headers=headers)

        @app.get("/<owner>/<name>/info/refs")
        async def info_refs(owner: str, name: str) -> Response:
            write = request.args.get("service") == "git-receive-pack"
            return await git_backend(owner, name, "info/refs", write)

        @app.post("/<owner>/<name>/git-upload-pack")
        async def upload_pack(owner: str, name: str) -> Response:
            return await git_backend(owner, name, "git-upload-pack", False)

        @app.post("/<owner>/<name>/git-receive-pack")
        async def receive_pack(owner: str, name: str) -> Response:
            return await git_backend(owner, name, "git-receive-pack", True)

        return app


@contextlib.asynccontextmanager
async def serve_fake_github(
    root: Path, *, public_key_pem: bytes, app_id: str = "424242"
) -> AsyncIterator[FakeGitHub]:
    """A :class:`FakeGitHub` served on 127.0.0.1 (a free port) while inside."""
    fake = FakeGitHub(root, public_key_pem=public_key_pem, app_id=app_id)
    await trio.Path(fake.git_root).mkdir(parents=True, exist_ok=True)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, fake.app(), host="127.0.0.1", port=0))
        fake.url = binds[0]
        try:
            yield fake
        finally:
            nursery.cancel_scope.cancel()

"""The in-sandbox git credential helper (reference §12.4).

When git inside a sandbox needs a password for the configured GitHub host, it runs
the helper, which asks the orchestrator for a fresh token
(``POST /api/sessions/{id}/github-token`` with the session's git token, which no other
route takes) and answers in git's
credential protocol::

    protocol=https
    host=github.com
    username=x-access-token
    password=<token>

The token is an installation token scoped to the session's repository with
``contents: write`` (:meth:`~orchestrator.github.app.GitHubApp.installation_token`):
the sandbox never holds more than that, nor any token for longer than its hour.

Everything is put in place without a shell: the helper (a small Python script, as
``python3`` is in every sandbox image and ``curl`` is not) and its settings (a JSON
file, mode 600: orchestrator URL, session id and token, host) are written with
``sandbox.write_file``; git is configured with argument-list ``git config`` calls. The
helper reads its settings as JSON (the reference *sourced* an env file, §17.6), does
not follow redirects and ignores proxies (the git token goes to the orchestrator
only), answers for the configured host only and stays silent for any other (git then
asks its next helper), and does nothing on ``store``/``erase``.
"""

from __future__ import annotations

import json
import re

from ..sandboxes.base import Sandbox
from .app import GitHubSettings, check_base_url

__all__ = [
    "CONFIG_FILE",
    "HELPER_DIR",
    "HELPER_FILE",
    "HELPER_SCRIPT",
    "CredentialHelperError",
    "install_credential_helper",
]

HELPER_DIR = ".local/share/agent-orchestrator"  # under the sandbox user's HOME
HELPER_FILE = "git-credential-orchestrator"
CONFIG_FILE = "git-credential.json"  # beside the helper, mode 600

# git runs a helper given as an absolute path through its shell ("<path> get"): the
# path must hold nothing that shell would read.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")
_SESSION_ID = re.compile(r"[A-Za-z0-9-]{1,100}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,200}")

HELPER_SCRIPT = '''\
#!/usr/bin/env python3
"""git credential helper of agent-orchestrator: a fresh GitHub token for this
session's repository, from the orchestrator (git's credential protocol)."""

import json
import os
import sys
import urllib.error
import urllib.request

CONFIG = os.path.join(os.path.dirname(os.path.realpath(__file__)), "git-credential.json")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the git token goes to the orchestrator only


def fail(message):
    sys.stderr.write("git-credential-orchestrator: " + message + "\\n")
    return 1


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "get":
        return 0  # store, erase: nothing is kept here
    asked = {}
    for line in sys.stdin:
        line = line.rstrip("\\n")
        if not line:
            break
        key, _, value = line.partition("=")
        asked[key] = value
    try:
        with open(CONFIG, encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError) as exc:
        return fail("no settings: %s" % exc)
    if asked.get("protocol") != config["protocol"] or asked.get("host") != config["host"]:
        return 0  # not our host: git asks its next helper
    url = "%s/api/sessions/%s/github-token" % (config["url"], config["sessionId"])
    request = urllib.request.Request(
        url,
        data=b"{}",
        method="POST",
        headers={
            "Authorization": "Bearer " + config["token"],
            "Content-Type": "application/json",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            token = json.load(response).get("token")
    except urllib.error.HTTPError as exc:
        return fail("the orchestrator gave no token (HTTP %d)" % exc.code)
    except (OSError, ValueError, AttributeError) as exc:
        return fail("the orchestrator cannot be asked: %s" % exc)
    if not isinstance(token, str) or not token or any(c in token for c in "\\r\\n\\0"):
        return fail("the orchestrator answered without a token")
    sys.stdout.write(
        "protocol=%s\\nhost=%s\\nusername=x-access-token\\npassword=%s\\n"
        % (config["protocol"], config["host"], token)
    )
    return 0


sys.exit(main())
'''


class CredentialHelperError(Exception):
    """The helper cannot be installed in the sandbox."""


async def _checked(sandbox: Sandbox, argv: list[str]) -> str:
    result = await sandbox.exec(argv, timeout=60)
    if not result.ok:
        detail = result.stderr.decode(errors="replace").strip()[-500:]
        raise CredentialHelperError(f"{argv[0]} {argv[1]} failed ({result.exit_code}): {detail}")
    return result.stdout.decode(errors="replace").strip()


async def sandbox_home(sandbox: Sandbox) -> str:
    """HOME of the sandbox's user (where ``git config --global`` writes)."""
    home = await _checked(sandbox, ["printenv", "HOME"])
    if not _SAFE_PATH.fullmatch(home) or ".." in home.split("/"):
        raise CredentialHelperError(f"the sandbox's HOME is not a plain path: {home!r}")
    return home.rstrip("/")


async def install_credential_helper(
    sandbox: Sandbox,
    *,
    orchestrator_url: str,
    session_id: str,
    git_token: str,
    github: GitHubSettings,
) -> str:
    """Install the helper in ``sandbox`` for ``github.web_url``; its path. Idempotent
    (a second call replaces the settings and keeps one helper entry). ``git_token``
    is the session's :attr:`~orchestrator.tokens.Purpose.GIT` token: never its session
    token, which would let the agent answer its own gates."""
    url = check_base_url(orchestrator_url, "the orchestrator URL", any_http=True)
    if not _SESSION_ID.fullmatch(session_id):
        raise CredentialHelperError(f"not a session id: {session_id!r}")
    if not _TOKEN.fullmatch(git_token):
        raise CredentialHelperError("not a token")
    home = await sandbox_home(sandbox)
    directory = f"{home}/{HELPER_DIR}"
    helper = f"{directory}/{HELPER_FILE}"
    settings = {
        "url": url,
        "sessionId": session_id,
        "token": git_token,
        "protocol": github.web_scheme,
        "host": github.web_host,
    }
    await sandbox.write_file(
        f"{directory}/{CONFIG_FILE}", json.dumps(settings, indent=2).encode(), mode=0o600
    )
    await sandbox.write_file(helper, HELPER_SCRIPT.encode(), mode=0o755)
    key = f"credential.{github.web_url}.helper"
    # "" first: the helpers configured before (a system-wide `gh auth git-credential`)
    # are not asked for this host; then ours, the only one.
    await _checked(sandbox, ["git", "config", "--global", "--replace-all", key, ""])
    await _checked(sandbox, ["git", "config", "--global", "--add", key, helper])
    return helper

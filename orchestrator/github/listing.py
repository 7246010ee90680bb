"""What ``/api/github/*`` lists (reference §3.7), with the caller's own GitHub token
(``X-GH-Token``), never the server's: accounts (the user and their organizations),
repositories (50, most recently updated first) and a repository's branches (100,
the default one marked). The reference ran the ``gh`` CLI synchronously on the server
(§17.27); these are async REST calls with a time-out."""

from __future__ import annotations

from typing import Any

from .app import GitHubError, api_request, valid_owner, valid_repo_name

__all__ = ["MAX_BRANCHES", "MAX_REPOS", "list_accounts", "list_branches", "list_repos"]

MAX_REPOS = 50
MAX_BRANCHES = 100


def _items(data: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise GitHubError(f"GitHub answered with odd {what}")
    return [item for item in data if isinstance(item, dict)]


async def list_accounts(api_url: str, token: str) -> list[dict[str, str]]:
    """``[{login, type: "user"}, {login, type: "org"}, ...]``."""
    user = await api_request(api_url, "GET", "/user", token=token)
    if not isinstance(user, dict) or not isinstance(user.get("login"), str):
        raise GitHubError("GitHub answered with an odd user")
    orgs = _items(
        await api_request(api_url, "GET", "/user/orgs", token=token, params={"per_page": 100}),
        "organizations",
    )
    accounts = [{"login": user["login"], "type": "user"}]
    accounts += [{"login": str(o["login"]), "type": "org"} for o in orgs if o.get("login")]
    return accounts


async def list_repos(api_url: str, token: str) -> list[dict[str, str]]:
    """``[{nameWithOwner, url, updatedAt}]``, at most :data:`MAX_REPOS`."""
    repos = _items(
        await api_request(
            api_url,
            "GET",
            "/user/repos",
            token=token,
            params={
                "sort": "updated",
                "per_page": MAX_REPOS,
                "affiliation": "owner,collaborator,organization_member",
            },
        ),
        "repositories",
    )
    return [
        {
            "nameWithOwner": str(repo.get("full_name", "")),
            "url": str(repo.get("html_url", "")),
            "updatedAt": str(repo.get("updated_at", "")),
        }
        for repo in repos[:MAX_REPOS]
    ]


async def list_branches(api_url: str, token: str, owner: str, repo: str) -> list[dict[str, Any]]:
    """``[{name, isDefault}]`` of ``owner/repo``, at most :data:`MAX_BRANCHES`."""
    if not valid_owner(owner) or not valid_repo_name(repo):
        raise GitHubError("Invalid repository name", 400)
    info = await api_request(api_url, "GET", f"/repos/{owner}/{repo}", token=token)
    default = info.get("default_branch") if isinstance(info, dict) else None
    branches = _items(
        await api_request(
            api_url,
            "GET",
            f"/repos/{owner}/{repo}/branches",
            token=token,
            params={"per_page": MAX_BRANCHES},
        ),
        "branches",
    )
    return [
        {"name": str(b["name"]), "isDefault": b["name"] == default}
        for b in branches[:MAX_BRANCHES]
        if isinstance(b.get("name"), str)
    ]

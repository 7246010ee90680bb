"""GitHub: the GitHub App of the reference (§14.4) with its tokens scoped to one
repository, the in-sandbox git credential helper (§12.4), cloning a repository into a
sandbox with argument-list git commands, the listing calls behind ``/api/github/*``
(§3.7), and a local fake of the GitHub API for the tests."""

from __future__ import annotations

from .app import (
    GitHubApp,
    GitHubAppUnavailable,
    GitHubError,
    GitHubSettings,
    InstallationToken,
    Repository,
    app_jwt,
)

__all__ = [
    "GitHubApp",
    "GitHubAppUnavailable",
    "GitHubError",
    "GitHubSettings",
    "InstallationToken",
    "Repository",
    "app_jwt",
]

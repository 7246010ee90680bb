"""The workspace of a non-freeform session (reference §13): the project scaffold from
the template folder, a generated ``CLAUDE.md`` and the ``create-app`` skill.

Every file is written as a file through the sandbox's file API: no shell, so nothing
in the user's description can end a heredoc and run as a command (reference §17.6).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from importlib.abc import Traversable
from pathlib import PurePosixPath

from ..sandboxes.base import Sandbox

__all__ = ["claude_md", "prepare", "write_files"]

TEMPLATES = resources.files("orchestrator") / "templates"


def claude_md(project_name: str, description: str) -> str:
    return "\n".join(
        [
            f"# {project_name}",
            "",
            "## Current Task",
            "",
            description,
            "",
            "## App Generation Pipeline",
            "",
            "Build the app with the `/create-app` skill, in this directory.",
            "",
            "## Guardrails",
            "",
            "- Work only inside this project directory.",
            "- Never remove dependencies from package.json.",
            "",
        ]
    )


def _files(root: Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for item in sorted(root.iterdir(), key=lambda entry: entry.name):
        name = f"{prefix}{item.name}"
        if item.is_dir():
            found += _files(item, f"{name}/")
        else:
            found.append((name, item.read_bytes()))
    return found


async def prepare(sandbox: Sandbox, project_name: str, description: str) -> None:
    base = sandbox.workdir.rstrip("/")
    for name, data in _files(TEMPLATES / "scaffold"):
        if name == "package.json":
            package = json.loads(data)
            package["name"] = project_name.lower()
            data = (json.dumps(package, indent=2) + "\n").encode()
        await sandbox.write_file(f"{base}/{name}", data)
    await sandbox.write_file(f"{base}/CLAUDE.md", claude_md(project_name, description).encode())
    for name, data in _files(TEMPLATES / "skills"):
        await sandbox.write_file(f"{base}/.claude/skills/{name}", data)


async def write_files(sandbox: Sandbox, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (paths relative to the workspace, no ``..``) into it."""
    base = sandbox.workdir.rstrip("/")
    for name, data in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"a workspace file must be a relative path inside it: {name!r}")
        await sandbox.write_file(f"{base}/{relative}", data)

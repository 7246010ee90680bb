"""Running the real Claude Code CLI (the binary bundled in claude-agent-sdk) as a local
subprocess against a scripted model server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import claude_agent_sdk
import trio

from orchestrator.models import ModelServer

CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


def claude_env(models: ModelServer, key: str, home: Path) -> dict[str, str]:
    """Only what the CLI needs: PATH (its Bash tool), a HOME of its own, the server."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)} | (
        models.claude_env(key)
    )


async def run_claude(
    models: ModelServer,
    key: str,
    prompt: str,
    *flags: str,
    cwd: Path,
    home: Path,
    timeout: float = 20,
) -> list[dict[str, Any]]:
    """``claude -p PROMPT --output-format stream-json --verbose FLAGS``; its output lines.
    Raises AssertionError (with stderr) when it exits non-zero."""
    argv = [str(CLI), "-p", prompt, "--output-format", "stream-json", "--verbose", *flags]
    with trio.fail_after(timeout):
        done = await trio.run_process(
            argv,
            cwd=cwd,
            env=claude_env(models, key, home),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def blocks(lines: list[dict[str, Any]], role: str, kind: str) -> list[dict[str, Any]]:
    """The content blocks of type ``kind`` in the ``role`` lines (assistant/user)."""
    return [
        block
        for line in lines
        if line.get("type") == role and isinstance(line["message"].get("content"), list)
        for block in line["message"]["content"]
        if block.get("type") == kind
    ]

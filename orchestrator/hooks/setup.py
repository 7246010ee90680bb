"""The hook installer for a developer's own Claude Code project (reference §11.3).

:func:`setup_script` returns a bash script that, run in a project directory, writes
``.claude/hooks/forward.sh`` (posts each hook payload to the orchestrator with the hook
secret) and merges one command hook per event into ``.claude/settings.local.json``.

Unlike the reference, nothing the server knows is pasted into shell code: the forwarder
and the merge program travel base64-encoded, and the URL and secret inside the
forwarder are quoted with :func:`shlex.quote`. The merge runs with ``python3``.
"""

from __future__ import annotations

import base64
import shlex
import textwrap
from urllib.parse import urlsplit

__all__ = ["HOOK_EVENTS", "forwarder", "setup_script"]

HOOK_EVENTS = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "SubagentStart",
    "SubagentStop",
)

_MERGE = textwrap.dedent(
    """
    import json, os, sys
    path, command, events = sys.argv[1], sys.argv[2], sys.argv[3:]
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        data = {}
    if not isinstance(data, dict):
        sys.exit(f"{path} is not a JSON object; not touching it")
    hooks = data.setdefault("hooks", {})
    added = 0
    for event in events:
        entries = hooks.setdefault(event, [])
        known = any(
            hook.get("command") == command
            for entry in entries if isinstance(entry, dict)
            for hook in entry.get("hooks", []) if isinstance(hook, dict)
        )
        if not known:
            entries.append({"hooks": [{"type": "command", "command": command}]})
            added += 1
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\\n")
    os.replace(path + ".tmp", path)
    print(f"hooks: {added} added, {len(events) - added} already there, in {path}")
    """
).strip()


def forwarder(hook_url: str, secret: str) -> str:
    """The ``forward.sh`` script: POST stdin to ``hook_url`` with ``secret``; print the
    answer only if it is a hook decision; always exit 0 (never block Claude Code)."""
    return textwrap.dedent(
        f"""\
        #!/bin/sh
        # Forwards a Claude Code hook payload to agent-orchestrator. Always exits 0.
        EA_HOOK_URL=${{EA_HOOK_URL:-{shlex.quote(hook_url)}}}
        EA_HOOK_SECRET=${{EA_HOOK_SECRET:-{shlex.quote(secret)}}}
        response=$(curl -sS --max-time 360 --connect-timeout 2 -X POST \\
            -H 'Content-Type: application/json' \\
            -H "Authorization: Bearer $EA_HOOK_SECRET" \\
            --data-binary @- "$EA_HOOK_URL" 2>/dev/null) || exit 0
        case $response in
            *hookSpecificOutput*) printf '%s\\n' "$response" ;;
        esac
        exit 0
        """
    )


def setup_script(hook_url: str, secret: str) -> str:
    """The installer, for ``curl ... | bash`` in a project directory."""
    parts = urlsplit(hook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the hook URL must be http(s)://host/..., not {hook_url!r}")
    if not secret.isalnum():
        raise ValueError("the hook secret must be alphanumeric")
    forward_b64 = base64.b64encode(forwarder(hook_url, secret).encode()).decode()
    merge_b64 = base64.b64encode(_MERGE.encode()).decode()
    events = " ".join(HOOK_EVENTS)
    return textwrap.dedent(
        f"""\
        #!/usr/bin/env bash
        # Installs agent-orchestrator hooks into the Claude Code project in this directory.
        set -euo pipefail
        for tool in python3 curl base64; do
            command -v "$tool" >/dev/null || {{ echo "hooks: $tool is needed" >&2; exit 1; }}
        done
        mkdir -p .claude/hooks
        umask 077
        printf '%s' '{forward_b64}' | base64 -d > .claude/hooks/forward.sh
        chmod 700 .claude/hooks/forward.sh
        printf '%s' '{merge_b64}' | base64 -d > .claude/hooks/.merge.py
        python3 .claude/hooks/.merge.py .claude/settings.local.json \\
            "$PWD/.claude/hooks/forward.sh" {events}
        rm -f .claude/hooks/.merge.py
        echo "hooks: forwarding to the orchestrator from $PWD/.claude/hooks/forward.sh"
        """
    )

"""The Codex CLI, pinned: where its binary is and the flags that point it at a Responses
API endpoint with no other network traffic.

``scripts/setup`` installs ``@openai/codex@0.169.0`` into ``vendor/codex/node_modules``
(``npm ci``). The npm package is a launcher; the binary is a static musl executable in
the platform package npm installs beside it (an alias of ``@openai/codex`` at version
``0.169.0-linux-x64`` / ``-linux-arm64``)::

    vendor/codex/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex
    vendor/codex/node_modules/@openai/codex-linux-arm64/vendor/aarch64-unknown-linux-musl/bin/codex

Run it with its own ``CODEX_HOME`` (not under ``/tmp``: its sandbox helper refuses to
work there), ``OPENAI_API_KEY`` set to the agent's key (sent as the bearer token), the
flags of :func:`offline_args`, and for ``codex exec`` stdin closed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "BINARY_ENV",
    "CODEX_VERSION",
    "OFFLINE_MODEL",
    "VENDOR_DIR",
    "codex_binary",
    "offline_args",
]

CODEX_VERSION = "0.169.0"
"""The pinned version (``vendor/codex/package.json``)."""

VENDOR_DIR = Path(__file__).resolve().parents[2] / "vendor" / "codex"
"""Where ``scripts/setup`` installs the npm package (``node_modules`` under it)."""

BINARY_ENV = "ORCHESTRATOR_CODEX_BINARY"
"""An environment variable naming another Codex binary to use instead."""

OFFLINE_MODEL = "gpt-5.5"
"""The model :func:`offline_args` selects by default. It is in 0.169.0's bundled model
catalog (no "model metadata not found" warning) and is driven with the plain Responses
API: the tools (``exec_command``, ``write_stdin``, ...) are function tools in the body's
``tools``. Codex's own default (``gpt-6.1-sol``) uses "responses lite" instead: the
tools come as an ``additional_tools`` input item and the model is offered one
JavaScript ``exec`` tool (code mode) that calls the others."""

# (sys.platform prefix, platform.machine()) -> (npm platform package, target triple)
_TARGETS: dict[tuple[str, str], tuple[str, str]] = {
    ("linux", "x86_64"): ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    ("linux", "amd64"): ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    ("linux", "aarch64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("linux", "arm64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("darwin", "x86_64"): ("codex-darwin-x64", "x86_64-apple-darwin"),
    ("darwin", "arm64"): ("codex-darwin-arm64", "aarch64-apple-darwin"),
}

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def codex_binary(
    *, vendor_dir: Path = VENDOR_DIR, env: Mapping[str, str] | None = None
) -> Path | None:
    """The Codex binary for this machine: ``$ORCHESTRATOR_CODEX_BINARY`` when set
    (raises ``FileNotFoundError`` when that is not an executable file), else the
    platform binary inside ``vendor_dir/node_modules``; ``None`` when it is not
    installed or this platform has none."""
    environ = os.environ if env is None else env
    given = environ.get(BINARY_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not _is_executable(path):
            raise FileNotFoundError(f"{BINARY_ENV}={given}: not an executable file")
        return path
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    target = _TARGETS.get((system, platform.machine().lower()))
    if target is None:
        return None
    package, triple = target
    modules = vendor_dir / "node_modules" / "@openai"
    for candidate in (
        modules / package / "vendor" / triple / "bin" / "codex",
        modules / "codex" / "vendor" / triple / "bin" / "codex",  # older single-package layout
    ):
        if _is_executable(candidate):
            return candidate
    return None


def _toml_string(value: str) -> str:
    # A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX, ...) are all valid.
    return json.dumps(value)


def offline_args(
    base_url: str, *, provider: str = "orchestrator", model: str | None = OFFLINE_MODEL
) -> list[str]:
    """Flags (for ``codex``, ``codex exec`` and ``codex app-server``) that make Codex talk
    to the Responses API at ``base_url`` (e.g. ``http://127.0.0.1:PORT/v1``; Codex posts
    to ``{base_url}/responses``) and nowhere else.

    A model provider ``provider`` (``wire_api = "responses"``, the key read from
    ``OPENAI_API_KEY`` and sent as ``Authorization: Bearer``) is defined and selected
    (Codex ignores ``OPENAI_BASE_URL``); analytics, the update check and feedback are
    turned off, and so are the features that reach OpenAI's services (plugins, remote
    plugins, apps, in-app updates, plugin sharing). ``model`` (``None``: Codex's
    default) is set with ``-c model=...``; see :data:`OFFLINE_MODEL`.

    Every key and feature here exists in 0.169.0: ``--strict-config`` accepts them, and
    an unknown ``--disable`` name is an error.
    """
    if not _BARE_KEY.fullmatch(provider):
        raise ValueError(f"provider must be a bare TOML key ([A-Za-z0-9_-]+), got {provider!r}")
    table = (
        f"{{name={_toml_string(provider)}, base_url={_toml_string(base_url)}, "
        f'env_key="OPENAI_API_KEY", wire_api="responses"}}'
    )
    args = [
        "-c",
        f"model_provider={_toml_string(provider)}",
        "-c",
        f"model_providers.{provider}={table}",
    ]
    if model is not None:
        args += ["-c", f"model={_toml_string(model)}"]
    args += [
        "-c",
        "analytics.enabled=false",
        "-c",
        "check_for_update_on_startup=false",
        "-c",
        "feedback.enabled=false",
    ]
    for feature in ("plugins", "remote_plugin", "apps", "in_app_updates", "plugin_sharing"):
        args += ["--disable", feature]
    return args
